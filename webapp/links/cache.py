"""The slug → target cache the redirect reads instead of the database.

Each slug has one Redis string key. Its value is an encoded ``LinkEntry``,
or ``-`` for "no such enabled link" (cached briefly, so a scan of random
slugs does not become a scan of the database). Any change to a link deletes
its key; ``LINK_CACHE_SECONDS`` bounds how long a missed invalidation (Redis
down at that moment) can last.

Each process also remembers the entries it has seen, the "last known" cache
used only when both Redis and the database fail.
"""

from dataclasses import dataclass

from flask import current_app
from redis import RedisError

from webapp.extensions import db
from webapp.models import Link
from webapp.redis_client import request_redis, worker_redis

MISSING = "-"
MISSING_TTL_SECONDS = 30
LAST_KNOWN_LIMIT = 10_000
last_known = {}


@dataclass(frozen=True)
class LinkEntry:
    link_id: int
    redirect_code: int | None
    target_url: str

    def encode(self):
        return f"{self.link_id}\t{self.redirect_code or ''}\t{self.target_url}"

    @classmethod
    def decode(cls, value):
        link_id, code, target = value.split("\t", 2)
        return cls(int(link_id), int(code) if code else None, target)


def cache_key(slug):
    return f"cb:link:{slug}"


def entry_for(link):
    if link is None or not link.enabled:
        return None
    return LinkEntry(link.id, link.redirect_code, link.target_url)


def load_entry(slug):
    """Look the slug up in the database (the slow path)."""
    link = db.session.execute(db.select(Link).where(Link.slug == slug)).scalar_one_or_none()
    return entry_for(link)


def remember(slug, entry):
    if len(last_known) >= LAST_KNOWN_LIMIT:
        last_known.clear()
    last_known[slug] = entry


def store(client, slug, entry):
    """Cache an entry (or its absence) after a database lookup."""
    if entry is None:
        client.set(cache_key(slug), MISSING, ex=MISSING_TTL_SECONDS)
    else:
        client.set(cache_key(slug), entry.encode(), ex=current_app.config["LINK_CACHE_SECONDS"])


def invalidate(slug):
    """Forget a slug after its link changed; call after the commit."""
    last_known.pop(slug, None)
    try:
        worker_redis().delete(cache_key(slug))
    except RedisError:
        current_app.logger.warning(
            "could not invalidate cached link %r; it expires within %ss",
            slug,
            current_app.config["LINK_CACHE_SECONDS"],
        )
        request_redis().mark_down()
