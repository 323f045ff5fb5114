"""Many links at once (the API's bulk call, the dashboard's pasted list).

Each item is created on its own through ``service.create_link``: one bad
item fails alone, with its reason, and none is half-written.
"""

from typing import NamedTuple

from webapp.extensions import db
from webapp.links import service
from webapp.links.validation import InvalidLink

MAX_ITEMS = 1000


class InvalidBatch(ValueError):
    """The batch as a whole cannot be read; the message is for the user."""


class ItemResult(NamedTuple):
    index: int
    status: str  # created | existing | error
    link: object = None
    error: str | None = None


def create_many(items, owner):
    """[ItemResult] for a list of ``{"url", "slug"?, ...}`` objects, in order."""
    if not isinstance(items, list):
        raise InvalidBatch('send a JSON list of links, or {"links": [...]}, each like {"url": "https://..."}')
    if not items:
        raise InvalidBatch("send at least one link")
    if len(items) > MAX_ITEMS:
        raise InvalidBatch(f"send at most {MAX_ITEMS} links at once")
    return [create_one(index, item, owner) for index, item in enumerate(items)]


def create_one(index, item, owner):
    if not isinstance(item, dict):
        return ItemResult(index, "error", error='each item must be an object like {"url": "https://..."}')
    fields = {field: value for field, value in item.items() if field not in ("url", "slug")}
    try:
        link, created = service.create_link(item.get("url"), owner, slug=item.get("slug"), **fields)
    except (InvalidLink, service.SlugTaken) as exc:
        db.session.rollback()
        return ItemResult(index, "error", error=str(exc))
    return ItemResult(index, "created" if created else "existing", link)


def parse_pasted(text):
    """Items from a pasted list: one URL per line, optionally followed by a slug."""
    items = []
    for line in text.splitlines():
        parts = line.split()
        if parts:
            items.append({"url": parts[0], **({"slug": parts[1]} if len(parts) > 1 else {})})
    return items
