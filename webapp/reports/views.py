"""The slow-page report in the dashboard: its page and its self-replacing status card.

One URL for the card: GET reports the status, POST starts a computation
(see ``coordinator``: only a POST starts one, within a per-user budget). While a computation
runs, the card carries its own polling trigger; once done it comes back
without one, so polling stops by itself.
"""

from flask import Blueprint, Response, abort, render_template, request
from flask_login import current_user, login_required

from webapp.extensions import db
from webapp.links import export
from webapp.models import ReportRun, Site
from webapp.reports import coordinator
from webapp.reports.params import InvalidReportParams, SlowReportParams

bp = Blueprint("reports", __name__, url_prefix="/reports")
RECENT_RUNS = 20


def recent_runs():
    query = db.select(ReportRun).order_by(ReportRun.id.desc()).limit(RECENT_RUNS)
    return db.session.execute(query).scalars().all()


@bp.get("/slow-pageviews")
@login_required
def slow_pageviews_page():
    page = "reports/slow_pageviews.html"
    known = {
        "runs": recent_runs(),
        "args": request.args,
        "sites": db.session.scalars(db.select(Site).order_by(Site.name)).all(),
    }
    try:
        context = coordinator.report_card_context(request.args)
    except InvalidReportParams as exc:
        return render_template(page, error=str(exc), **known), 400
    return render_template(page, **known, **context)


@bp.get("/slow-pageviews/runs")
@login_required
def runs_fragment():
    return render_template("reports/_runs.html", runs=recent_runs())


@bp.route("/slow-pageviews/status", methods=["GET", "POST"])
@login_required
def slow_pageviews_status():
    """GET: the card as it is. POST: start a computation if one is needed (``force=1``:
    even over a fresh result), within the user's budget."""
    starting = request.method == "POST"
    try:
        context = coordinator.report_card_context(
            request.args,
            force=starting and request.form.get("force") == "1",
            start=starting,
            user_id=current_user.id,
        )
    except InvalidReportParams as exc:
        return render_template("reports/_status_error.html", error=str(exc)), 400
    status = context["status"]
    limited = status is not None and status.limited and not request.htmx  # htmx swaps only 2xx
    return render_template("reports/_status.html", **context), 429 if limited else 200


# The report's tables as CSV: the slowest URLs, and slow and all views per day.
REPORT_TABLES = {
    "urls": ("slowest_urls", ("url", "slow_views", "avg_ms", "max_ms")),
    "days": ("slow_per_day", ("day", "slow", "views")),
}


@bp.get("/slow-pageviews.csv")
@login_required
def slow_pageviews_csv():
    """The last computed report's table (``table=urls|days``) as CSV; it starts no computation."""
    table = REPORT_TABLES.get(request.args.get("table", "urls"))
    try:
        status = coordinator.read_status(SlowReportParams.parse(request.args))
    except InvalidReportParams as exc:
        return render_template("reports/_status_error.html", error=str(exc)), 400
    if table is None or status.result is None:
        abort(404)
    field, columns = table
    rows = ([row.get(column) for column in columns] for row in status.result["report"][field])
    response = Response(export.csv_rows(columns, rows), mimetype="text/csv")
    response.headers["Content-Disposition"] = (
        f'attachment; filename="slow-pageviews-{request.args.get("table", "urls")}.csv"'
    )
    return response
