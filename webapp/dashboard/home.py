"""The home page: totals, lag, clicks over time, top links, the report card."""

from flask import render_template, request
from flask_login import current_user
from redis import RedisError

from webapp.clicks.buffer import CLICK_BUFFER
from webapp.dashboard import bp, stats
from webapp.redis_client import request_redis
from webapp.reports.coordinator import report_card_context

# Above this many seconds behind, the dashboard says its counts are late.
LAG_WARNING_SECONDS = 10


@bp.get("/")
def index():
    return render_template(
        "dashboard/index.html",
        **overview_context(),
        **chart_context(None),
        top=stats.top_links(current_user),
        **report_card_context({}),
    )


@bp.get("/fragments/overview")
def overview_fragment():
    return render_template("dashboard/_overview.html", **overview_context())


@bp.get("/fragments/clicks-chart")
def clicks_chart_fragment():
    link_id = request.args.get("link", type=int)
    return render_template("dashboard/_clicks_chart.html", **chart_context(link_id))


@bp.get("/fragments/top-links")
def top_links_fragment():
    return render_template("dashboard/_top_links.html", top=stats.top_links(current_user))


def overview_context():
    return {"totals": stats.totals(current_user), "lag": click_lag(), "lag_warning": LAG_WARNING_SECONDS}


def chart_context(link_id):
    range_name = request.args.get("range", "hour")
    if range_name not in stats.RANGES:
        range_name = "hour"
    return {
        "chart_range": range_name,
        "chart_link": link_id,
        "series": stats.clicks_series(current_user, range_name, link_id),
    }


def click_lag():
    """(backlog, seconds behind), or None if Redis cannot say."""
    guard = request_redis()
    if not guard.available:
        return None
    try:
        return CLICK_BUFFER.backlog(guard.client)
    except RedisError:
        guard.mark_down()
        return None
