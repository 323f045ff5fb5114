"""/api/stats and a link's clicks and statistics, read from the rollups (``webapp.analytics``)."""

from flask import Response, g, jsonify, request, stream_with_context
from sqlalchemy import func, select

from webapp import analytics
from webapp.api import bp
from webapp.api.errors import ApiError, query_int
from webapp.api.links import find_link
from webapp.api.pagination import decode_cursor, encode_cursor
from webapp.auth.tokens import token_required
from webapp.extensions import db
from webapp.links import export
from webapp.links.access import visible_link_ids
from webapp.links.representation import iso
from webapp.models import Click, Link, LinkCounter, utcnow


@bp.get("/links/<slug>/clicks")
@token_required
def link_clicks(slug):
    """The link's clicks, newest first, a page at a time (keyset on the click id); with
    ``?format=csv`` all of them, oldest first, streamed in constant memory."""
    link = find_link(slug)
    if request.args.get("format", "json") == "csv":
        rows = stream_with_context(export.clicks_csv(link.id))
        response = Response(rows, mimetype="text/csv")
        response.headers["Content-Disposition"] = f'attachment; filename="{link.slug}-clicks.csv"'
        return response
    if request.args.get("format", "json") != "json":
        raise ApiError("format must be json or csv", details={"parameter": "format"})
    limit = query_int("limit", 100, 1, 1000)
    query = select(Click).where(Click.link_id == link.id)
    if request.args.get("cursor"):
        (before,) = decode_cursor(request.args["cursor"], 1)
        query = query.where(Click.id < before)
    clicks = db.session.scalars(query.order_by(Click.id.desc()).limit(limit + 1)).all()
    page = clicks[:limit]
    return jsonify(
        clicks=[click_json(click) for click in page],
        next_cursor=encode_cursor([page[-1].id]) if len(clicks) > limit else None,
    )


def click_json(click):
    return {
        "at": iso(click.created_at),
        "referrer": click.referrer,
        "user_agent": click.user_agent,
        "ip": click.ip_anonymised,
        "bot": click.is_bot,
    }


@bp.get("/links/<slug>/stats")
@token_required
def link_stats(slug):
    link = find_link(slug)
    return jsonify(slug=link.slug, **range_stats(select(Link.id).where(Link.id == link.id)))


@bp.get("/stats")
@token_required
def all_stats():
    """Totals over every link the caller may see, and the same range statistics."""
    ids = visible_link_ids(g.api_user)
    totals = db.session.execute(
        select(
            func.count(),
            func.coalesce(func.sum(LinkCounter.clicks), 0),
            func.coalesce(func.sum(LinkCounter.bot_clicks), 0),
            func.coalesce(func.sum(LinkCounter.refused), 0),
        ).where(LinkCounter.link_id.in_(ids))
    ).one()
    links = db.session.scalar(select(func.count()).select_from(ids.subquery()))
    _, clicks, bot_clicks, refused = totals
    return jsonify(
        links=links, clicks=int(clicks), bot_clicks=int(bot_clicks), refused=int(refused), **range_stats(ids)
    )


# Response field → rollup dimension, for each table.
TABLES = {"referrers": "referrer", "countries": "country", "devices": "device", "os": "os",
          "browsers": "browser", "bots": "bot"}  # fmt: skip
TABLE_KEYS = {"referrers": "host", "countries": "code"}  # the rest: "name"


def range_stats(link_ids):
    """Series, comparison and tables of ``link_ids`` over the request's period."""
    args = request.args
    try:
        period = analytics.api_period(
            args.get("range"), args.get("from"), args.get("to"), args.get("bucket"), args.get("tz"), utcnow()
        )
    except analytics.InvalidPeriod as exc:
        raise ApiError(str(exc)) from None
    limit = query_int("top", 10, 1, 100)
    series = analytics.series(link_ids, period)
    compared = analytics.comparison(link_ids, period)
    previous = period.previous()
    tables = {
        field: [
            {TABLE_KEYS.get(field, "name"): value, "clicks": n}
            for value, n in analytics.table(link_ids, period, dimension, limit)
        ]
        for field, dimension in TABLES.items()
    }
    return {
        "from": local_iso(period.start, period),
        "to": local_iso(period.end, period),
        "tz": period.zone.key,
        "bucket": period.bucket,
        "range_clicks": compared["clicks"],
        "range_bot_clicks": compared["bot_clicks"],
        "previous": {
            "from": local_iso(previous.start, period),
            "to": local_iso(previous.end, period),
            "clicks": compared["previous_clicks"],
            "bot_clicks": compared["previous_bot_clicks"],
            "change_percent": compared["change_percent"],
        },
        "series": [
            {"start": local_iso(moment, period), "clicks": humans, "bot_clicks": bots}
            for moment, humans, bots in series
        ],
        **tables,
    }


def local_iso(moment, period):
    """ISO 8601 with the zone's offset at that moment (Z in UTC), as the API writes times."""
    if period.zone.key == "UTC":
        return iso(moment)
    return moment.replace(tzinfo=period.zone).isoformat()
