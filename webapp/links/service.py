"""Creating and changing links: the one place that writes the ``link`` table.

The API, the CLI and the dashboard all go through here, so validation,
slug collisions, the change history and cache invalidation are handled the
same way for each. A slug is taken while a link has it or keeps it as an
alias (its old slug, still redirecting after a rename).
"""

from datetime import datetime

from sqlalchemy import literal, union_all
from sqlalchemy.exc import IntegrityError

from webapp.extensions import db
from webapp.links import cache
from webapp.links.validation import (
    InvalidLink,
    generate_slug,
    normalise_slug,
    normalise_tags,
    normalise_title,
    normalise_url,
    parse_expiry,
    validate_max_clicks,
)
from webapp.models import DeletedLink, Link, LinkAlias, LinkChange, LinkTag, SlugTombstone, utcnow

GENERATE_ATTEMPTS = 8
REDIRECT_CODES = (301, 302, 307, 308)


class SlugTaken(Exception):
    """The requested slug belongs to another link (HTTP 409)."""


def validate_redirect_code(code):
    if code is None:
        return None
    if isinstance(code, bool) or code not in REDIRECT_CODES:
        raise InvalidLink("redirect_code must be one of 301, 302, 307, 308")
    return code


def validate_enabled(value):
    if not isinstance(value, bool):
        raise InvalidLink("enabled must be true or false")
    return value


# Every writable field, with the rule that validates it: create and edit share them.
FIELD_RULES = {
    "url": normalise_url,
    "slug": normalise_slug,
    "title": normalise_title,
    "tags": normalise_tags,
    "redirect_code": validate_redirect_code,
    "enabled": validate_enabled,
    "expires_at": parse_expiry,
    "max_clicks": validate_max_clicks,
}
# The link's attribute behind each field where the names differ.
ATTRIBUTES = {"url": "target_url"}


def clean_fields(fields):
    """Validate ``{field: value}``; return the stored values or raise ``InvalidLink``."""
    unknown = set(fields) - set(FIELD_RULES)
    if unknown:
        raise InvalidLink(f"unknown fields: {', '.join(sorted(map(str, unknown)))}")
    cleaned = {}
    for field, value in fields.items():
        try:
            cleaned[field] = FIELD_RULES[field](value)
        except InvalidLink as exc:
            exc.field = field  # forms show the message beside that field
            raise
    return cleaned


def create_link(url, owner, slug=None, **fields):
    """Create a link; return ``(link, created)``. ``fields``: title, tags, redirect_code,
    enabled, expires_at, max_clicks, as in ``FIELD_RULES``.

    Without a custom slug, a URL the owner has already shortened returns
    that link, unchanged (``created`` False): equivalent URLs are one link.
    """
    cleaned = clean_fields({"url": url, **fields, **({"slug": slug} if slug is not None else {})})
    if slug is None:
        existing = find_owned_link(cleaned["url"], owner)
        if existing is not None:
            return existing, False
        return insert_with_generated_slug(cleaned, owner), True
    if slug_in_use(cleaned["slug"], owner):
        raise SlugTaken(f"slug '{cleaned['slug']}' is already taken")
    link = new_link(cleaned, owner)
    db.session.add(link)
    forget_tombstone(link.slug)
    commit_or_slug_taken(link.slug)
    return link, True


def new_link(cleaned, owner):
    link = Link(owner=owner)
    for field, value in cleaned.items():
        assign(link, field, value)
    return link


def assign(link, field, value):
    if field == "tags":
        link.tag_rows = [LinkTag(tag=tag) for tag in value]
    else:
        setattr(link, ATTRIBUTES.get(field, field), value)


def current_value(link, field):
    return link.tags if field == "tags" else getattr(link, ATTRIBUTES.get(field, field))


def find_owned_link(target, owner):
    query = db.select(Link).where(Link.target_url == target, Link.enabled.is_(True))
    query = query.where(Link.owner_id == (owner.id if owner else None)).order_by(Link.id).limit(1)
    return db.session.execute(query).scalar_one_or_none()


def insert_with_generated_slug(cleaned, owner):
    for _ in range(GENERATE_ATTEMPTS):
        slug = generate_slug()
        if slug_in_use(slug):
            continue
        link = new_link({**cleaned, "slug": slug}, owner)
        db.session.add(link)
        try:
            commit_or_slug_taken(link.slug)
            return link
        except SlugTaken:
            continue
    raise RuntimeError("could not generate a free slug; the slug space is nearly full")


def slug_in_use(slug, owner=None):
    """Whether a link has ``slug``, keeps it as an alias, or had it before it was deleted
    (unless ``owner`` deleted it: they may take their own slug again)."""
    owner_id = owner.id if owner else None
    taken = union_all(
        db.select(Link.id).where(Link.slug == slug),
        db.select(LinkAlias.link_id).where(LinkAlias.slug == slug),
        db.select(literal(0)).where(
            SlugTombstone.slug == slug, SlugTombstone.owner_id.is_distinct_from(owner_id)
        ),
    )
    return db.session.execute(taken.limit(1)).first() is not None


def forget_tombstone(slug):
    """The owner takes their deleted slug again: it is a link's once more."""
    db.session.execute(db.delete(SlugTombstone).where(SlugTombstone.slug == slug))


def commit_or_slug_taken(slug):
    try:
        db.session.commit()
    except IntegrityError:
        db.session.rollback()
        raise SlugTaken(f"slug '{slug}' is already taken") from None
    cache.invalidate(slug)  # drops a cached "no such link"


def update_link(link, fields, user):
    """Change a link's fields (validated as on create); record what changed; return the
    changes as ``{field: [old, new]}`` (empty when nothing did).

    A new slug must be free, or one of this link's own aliases; the old slug
    becomes an alias, so printed links keep working until the owner removes it.
    """
    cleaned = clean_fields(fields)
    changes = {
        field: [history_value(current_value(link, field)), history_value(value)]
        for field, value in cleaned.items()
        if current_value(link, field) != value
    }
    if not changes:
        return {}
    old_slugs = [link.slug, *(alias.slug for alias in link.aliases)]
    if "slug" in changes:
        rename(link, cleaned["slug"])
    for field, value in cleaned.items():
        if field != "slug" and field in changes:
            assign(link, field, value)
    db.session.add(LinkChange(link_id=link.id, user_id=user.id if user else None, changes=changes))
    commit_or_slug_taken(link.slug)
    for slug in old_slugs:
        cache.invalidate(slug)  # aliases resolve to the link: their entries changed too
    return changes


def rename(link, slug):
    own_alias = next((alias for alias in link.aliases if alias.slug == slug), None)
    if own_alias is not None:
        link.aliases.remove(own_alias)
    elif slug_in_use(slug, link.owner):
        raise SlugTaken(f"slug '{slug}' is already taken")
    forget_tombstone(slug)
    link.aliases.append(LinkAlias(slug=link.slug))
    link.slug = slug


def remove_alias(link, slug, user):
    """Stop an old slug from redirecting (it stays reserved for the link's owner, as a deleted
    link's slug does); False if not this link's."""
    alias = next((alias for alias in link.aliases if alias.slug == slug), None)
    if alias is None:
        return False
    link.aliases.remove(alias)
    db.session.merge(SlugTombstone(slug=slug, owner_id=link.owner_id, deleted_at=utcnow()))
    db.session.add(
        LinkChange(link_id=link.id, user_id=user.id if user else None, changes={"alias": [slug, None]})
    )
    db.session.commit()
    cache.invalidate(slug)
    return True


def history_value(value):
    """A field's value as the history keeps it (JSON)."""
    if isinstance(value, datetime):
        return value.isoformat() + "Z"
    return value


def history(link, limit=50):
    query = db.select(LinkChange).where(LinkChange.link_id == link.id)
    return db.session.scalars(
        query.order_by(LinkChange.changed_at.desc(), LinkChange.id.desc()).limit(limit)
    ).all()


def set_enabled(link, enabled, user=None):
    update_link(link, {"enabled": enabled}, user)


def delete_link(link):
    """Delete a link; its id is remembered, so clicks still on their way are dropped quietly,
    and its slugs stay reserved for its owner (tombstones)."""
    slugs = [link.slug, *(alias.slug for alias in link.aliases)]
    db.session.merge(DeletedLink(link_id=link.id))  # merge: SQLite may reuse a deleted id
    for slug in slugs:
        db.session.merge(SlugTombstone(slug=slug, owner_id=link.owner_id, deleted_at=utcnow()))
    db.session.delete(link)
    db.session.commit()
    for slug in slugs:
        cache.invalidate(slug)


def get_link(slug):
    try:
        slug = normalise_slug(slug)
    except InvalidLink:
        return None
    return db.session.execute(db.select(Link).where(Link.slug == slug)).scalar_one_or_none()
