"""The home page: totals, lag, clicks over a period, tables, top links, the report card."""

from flask import render_template
from flask_login import current_user
from redis import RedisError

from webapp.clicks.buffer import CLICK_BUFFER
from webapp.dashboard import bp, insights, stats
from webapp.dashboard.shared_fragments import shared_fragment
from webapp.redis_client import click_redis, request_redis
from webapp.reports.coordinator import report_card_context
from webapp.request_args import optional_id

# Above this many seconds behind, the dashboard says its counts are late.
LAG_WARNING_SECONDS = 10


@bp.get("/")
def index():
    return render_template(
        "dashboard/index.html",
        **overview_context(),
        **{**insights.chart_context(None), **insights.tables_context(None)},
        top=stats.top_links(current_user),
        **report_card_context({}),
    )


@bp.get("/fragments/overview")
@shared_fragment("overview")
def overview_fragment():
    return render_template("dashboard/_overview.html", **overview_context())


@bp.get("/fragments/clicks-chart")
@shared_fragment("clicks-chart")
def clicks_chart_fragment():
    link_id = optional_id("link")
    return render_template("dashboard/_clicks_chart.html", **insights.chart_context(link_id))


@bp.get("/fragments/tables")
@shared_fragment("tables")
def tables_fragment():
    return render_template("dashboard/_tables.html", **insights.tables_context(None))


@bp.get("/fragments/top-links")
@shared_fragment("top-links")
def top_links_fragment():
    return render_template("dashboard/_top_links.html", top=stats.top_links(current_user))


def overview_context():
    return {"totals": stats.totals(current_user), "lag": click_lag(), "lag_warning": LAG_WARNING_SECONDS}


def click_lag():
    """(backlog, seconds behind), or None if Redis cannot say."""
    guard = request_redis()
    if not guard.available:
        return None
    try:
        return CLICK_BUFFER.backlog(click_redis(purpose="request"))
    except RedisError:
        guard.mark_down()
        return None
