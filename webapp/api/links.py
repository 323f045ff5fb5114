"""/api/links: list, create, read, edit and delete links.

Every route needs a token and sees what its owner may see (``links.access``):
another user's link is a 404, as if it did not exist. Edits go through
``links.service`` like the dashboard's; ``If-Match`` with the ETag of a
read makes an edit fail with 412 instead of overwriting someone else's.
"""

from flask import g, jsonify, request
from sqlalchemy import func, or_, select

from webapp.api import bp
from webapp.api.errors import ApiError, json_object, query_int
from webapp.api.pagination import decode_cursor, encode_cursor
from webapp.auth.tokens import token_required
from webapp.extensions import db
from webapp.links import service
from webapp.links.access import can_see, visible_links
from webapp.links.representation import etag, link_json
from webapp.links.validation import InvalidLink, normalise_tags
from webapp.models import Link, LinkCounter, LinkTag
from webapp.search import LIKE_ESCAPE, contains_pattern

CLICKS = func.coalesce(LinkCounter.clicks, 0)
# sort name → (columns compared by the cursor, descending?)
SORTS = {
    "created": ((Link.id,), False),
    "-created": ((Link.id,), True),
    "slug": ((Link.slug,), False),
    "-slug": ((Link.slug,), True),
    "clicks": ((CLICKS, Link.id), False),
    "-clicks": ((CLICKS, Link.id), True),
}


def find_link(slug):
    """The caller's link with ``slug``, or raise a 404 ``ApiError``."""
    link = service.get_link(slug)
    if not can_see(g.api_user, link):
        raise ApiError(f"no link with slug '{slug}'", 404)
    return link


def with_etag(response, link):
    response.set_etag(etag(link))
    return response


@bp.get("/links")
@token_required
def list_links():
    sort = request.args.get("sort", "-created")
    if sort not in SORTS:
        raise ApiError(f"sort must be one of {', '.join(SORTS)}", details={"parameter": "sort"})
    limit = query_int("limit", 50, 1, 200)
    columns, descending = SORTS[sort]
    query = filtered(visible_links(g.api_user).outerjoin(LinkCounter, LinkCounter.link_id == Link.id))
    if request.args.get("cursor"):
        query = query.where(
            after_cursor(columns, descending, decode_cursor(request.args["cursor"], len(columns)))
        )
    order = [column.desc() if descending else column.asc() for column in columns]
    links = db.session.scalars(query.order_by(*order).limit(limit + 1)).unique().all()
    page = links[:limit]
    next_cursor = encode_cursor(cursor_values(page[-1], sort)) if len(links) > limit else None
    return jsonify(links=[link_json(link) for link in page], next_cursor=next_cursor)


def filtered(query):
    args = request.args
    if args.get("q"):
        pattern = contains_pattern(args["q"].strip().lower())
        query = query.where(
            or_(
                *(
                    func.lower(column).like(pattern, escape=LIKE_ESCAPE)
                    for column in (Link.slug, Link.target_url, Link.title)
                )
            )
        )
    if args.get("tag"):
        try:
            tags = normalise_tags([args["tag"]])
        except InvalidLink as exc:
            raise ApiError(str(exc), details={"parameter": "tag"}) from None
        query = query.where(Link.id.in_(select(LinkTag.link_id).where(LinkTag.tag.in_(tags))))
    if "enabled" in args:
        if args["enabled"] not in ("true", "false"):
            raise ApiError("enabled must be true or false", details={"parameter": "enabled"})
        query = query.where(Link.enabled.is_(args["enabled"] == "true"))
    return query


def after_cursor(columns, descending, values):
    """Rows strictly after the cursor's in the sort order (ties broken by the last column)."""
    if len(columns) == 1:
        return columns[0] < values[0] if descending else columns[0] > values[0]
    (first, second), (first_value, second_value) = columns, values
    if descending:
        return or_(first < first_value, (first == first_value) & (second < second_value))
    return or_(first > first_value, (first == first_value) & (second > second_value))


def cursor_values(link, sort):
    name = sort.lstrip("-")
    if name == "created":
        return [link.id]
    if name == "slug":
        return [link.slug]
    return [link.counter.clicks if link.counter else 0, link.id]


@bp.post("/links")
@token_required
def create_link():
    body = json_object()
    fields = {field: value for field, value in body.items() if field not in ("url", "slug")}
    try:
        link, created = service.create_link(body.get("url"), g.api_user, slug=body.get("slug"), **fields)
    except InvalidLink as exc:
        raise ApiError(str(exc)) from None
    except service.SlugTaken as exc:
        raise ApiError(str(exc), 409) from None
    return with_etag(jsonify(link_json(link)), link), 201 if created else 200


@bp.get("/links/<slug>")
@token_required
def show_link(slug):
    link = find_link(slug)
    return with_etag(jsonify(link_json(link)), link)


@bp.patch("/links/<slug>")
@token_required
def edit_link(slug):
    link = find_link(slug)
    if request.if_match and not request.if_match.contains(etag(link)):
        raise ApiError("the link changed since you read it: read it again, then retry", 412)
    body = json_object()
    try:
        service.update_link(link, body, g.api_user)
    except InvalidLink as exc:
        raise ApiError(str(exc)) from None
    except service.SlugTaken as exc:
        raise ApiError(str(exc), 409) from None
    return with_etag(jsonify(link_json(link)), link)


@bp.delete("/links/<slug>")
@token_required
def delete_link(slug):
    service.delete_link(find_link(slug))
    return "", 204


@bp.delete("/links/<slug>/aliases/<alias>")
@token_required
def remove_alias(slug, alias):
    link = find_link(slug)
    if not service.remove_alias(link, alias.lower(), g.api_user):
        raise ApiError(f"'{alias}' is not an alias of '{link.slug}'", 404)
    return "", 204


@bp.get("/links/<slug>/history")
@token_required
def link_history(slug):
    link = find_link(slug)
    changes = [
        {
            "at": change.changed_at.isoformat() + "Z",
            "by": change.user.email if change.user else None,
            "changes": change.changes,
        }
        for change in service.history(link, limit=query_int("limit", 50, 1, 500))
    ]
    return jsonify(history=changes)
