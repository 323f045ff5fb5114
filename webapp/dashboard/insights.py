"""The dashboard's analytics: a period picked by preset or by dates, in the user's time
zone; clicks over it against the period before; a table per dimension; each as CSV.

Every figure comes from ``webapp.analytics`` (hourly rollups), the same as
the API's statistics. A period the request gets wrong (reversed dates, a
year 1) falls back to the default period with the reason shown beside the
picker, so a hand-edited URL still gives a page.
"""

from datetime import timedelta

from flask import Response, abort, request
from flask_login import current_user

from webapp import analytics, periods
from webapp.dashboard import bp
from webapp.extensions import db
from webapp.links import export
from webapp.links.access import visible_link_ids
from webapp.models import DIMENSIONS, Link, utcnow
from webapp.request_args import optional_id

# Each table's title, and its first column's header.
TABLE_TITLES = {
    "referrer": ("Referrers", "Referrer"),
    "country": ("Countries", "Country"),
    "device": ("Devices", "Device"),
    "os": ("Operating systems", "Operating system"),
    "browser": ("Browsers", "Browser"),
    "bot": ("Bots", "Bot"),
}
TABLE_ROWS = 10


def zone_name():
    return current_user.time_zone or periods.DEFAULT_ZONE


def requested_period():
    """(period, message): the request's period, or the default one and why the request's was refused."""
    args = request.args
    try:
        return periods.resolve(
            args.get("range"), args.get("from"), args.get("to"), zone_name(), utcnow()
        ), None
    except periods.InvalidPeriod as exc:
        return periods.resolve(None, None, None, zone_name(), utcnow()), str(exc)


def period_args(period):
    """The query arguments that ask for ``period`` again (fragments, CSV links)."""
    if period.preset != "custom":
        return {"range": period.preset}
    last_day = period.end.date() - timedelta(days=1)
    return {"range": "custom", "from": period.start.date().isoformat(), "to": last_day.isoformat()}


def link_ids(link_id):
    """The links a chart or table covers: one of the user's, or all of them."""
    ids = visible_link_ids(current_user)
    return ids if link_id is None else ids.where(Link.id == link_id)


def chart_context(link_id):
    period, problem = requested_period()
    ids = link_ids(link_id)
    return {
        "period": period,
        "period_problem": problem,
        "period_args": period_args(period),
        "presets": periods.PRESETS,
        "chart_link": link_id,
        "points": [
            (periods.bucket_label(period.bucket, start), humans)
            for start, humans, _ in analytics.series(ids, period)
        ],
        "comparison": analytics.comparison(ids, period),
    }


def tables_context(link_id):
    period, _ = requested_period()
    ids = link_ids(link_id)
    return {
        "period": period,
        "period_args": period_args(period),
        "table_link": link_id,
        "tables": [
            (
                dimension,
                *TABLE_TITLES[dimension],
                [
                    (analytics.label(dimension, value), clicks)
                    for value, clicks in analytics.table(ids, period, dimension, TABLE_ROWS)
                ],
            )
            for dimension in DIMENSIONS
        ],
    }


@bp.get("/export/stats.csv")
def export_stats():
    """One table (``table``: a dimension) or the chart (``table=series``) of the period, as CSV:
    every row, not only the top ten."""
    table = request.args.get("table", "series")
    link_id = optional_id("link")
    if table != "series" and table not in DIMENSIONS:
        abort(404)
    if link_id is not None and not current_user_sees(link_id):
        abort(404)
    period, _ = requested_period()
    ids = link_ids(link_id)
    if table == "series":
        header = ("start", "clicks", "bot_clicks", "time_zone")
        rows = [
            (start.isoformat(), humans, bots, period.zone.key)
            for start, humans, bots in analytics.series(ids, period)
        ]
    else:
        header = (table, "clicks")
        rows = [
            (analytics.label(table, value), clicks)
            for value, clicks in analytics.table(ids, period, table, None)
        ]
    response = Response(export.csv_rows(header, rows), mimetype="text/csv")
    name = f"clickboard-{table}-{period.start.date()}-{period.end.date()}.csv"
    response.headers["Content-Disposition"] = f'attachment; filename="{name}"'
    return response


def current_user_sees(link_id):
    return db.session.scalar(link_ids(link_id)) is not None
