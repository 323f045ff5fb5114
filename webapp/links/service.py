"""Creating and changing links: the one place that writes the ``link`` table.

The API, the CLI and the dashboard all go through here, so validation,
slug collisions and cache invalidation are handled the same way for each.
"""

from sqlalchemy.exc import IntegrityError

from webapp.extensions import db
from webapp.links import cache
from webapp.links.validation import InvalidLink, generate_slug, normalise_slug, normalise_url
from webapp.models import DeletedLink, Link

GENERATE_ATTEMPTS = 8
REDIRECT_CODES = (301, 302, 307, 308)


class SlugTaken(Exception):
    """The requested slug belongs to another link (HTTP 409)."""


def create_link(url, owner, slug=None, redirect_code=None):
    """Create a link; return ``(link, created)``.

    Without a custom slug, a URL the owner has already shortened returns
    that link (``created`` False): equivalent URLs are one link.
    """
    target = normalise_url(url)
    code = validate_redirect_code(redirect_code)
    if slug is None:
        existing = find_owned_link(target, owner)
        if existing is not None:
            return existing, False
        return insert_with_generated_slug(target, owner, code), True
    link = Link(slug=normalise_slug(slug), target_url=target, owner=owner, redirect_code=code)
    db.session.add(link)
    commit_or_slug_taken(link.slug)
    return link, True


def validate_redirect_code(code):
    if code is None:
        return None
    if isinstance(code, bool) or code not in REDIRECT_CODES:
        raise InvalidLink("redirect_code must be one of 301, 302, 307, 308")
    return code


def find_owned_link(target, owner):
    query = db.select(Link).where(Link.target_url == target, Link.enabled.is_(True))
    query = query.where(Link.owner_id == (owner.id if owner else None)).order_by(Link.id).limit(1)
    return db.session.execute(query).scalar_one_or_none()


def insert_with_generated_slug(target, owner, code):
    for _ in range(GENERATE_ATTEMPTS):
        link = Link(slug=generate_slug(), target_url=target, owner=owner, redirect_code=code)
        db.session.add(link)
        try:
            commit_or_slug_taken(link.slug)
            return link
        except SlugTaken:
            continue
    raise RuntimeError("could not generate a free slug; the slug space is nearly full")


def commit_or_slug_taken(slug):
    try:
        db.session.commit()
    except IntegrityError:
        db.session.rollback()
        raise SlugTaken(f"slug '{slug}' is already taken") from None
    cache.invalidate(slug)  # drops a cached "no such link"


def set_enabled(link, enabled):
    link.enabled = enabled
    db.session.commit()
    cache.invalidate(link.slug)


def delete_link(link):
    """Delete a link; its id is remembered, so clicks still on their way are dropped quietly."""
    slug = link.slug
    db.session.merge(DeletedLink(link_id=link.id))  # merge: SQLite may reuse a deleted id
    db.session.delete(link)
    db.session.commit()
    cache.invalidate(slug)


def get_link(slug):
    try:
        slug = normalise_slug(slug)
    except InvalidLink:
        return None
    return db.session.execute(db.select(Link).where(Link.slug == slug)).scalar_one_or_none()
