"""flask seed pageviews / flask report slow-pageviews."""

import json
import time

import click
from flask.cli import with_appcontext

from webapp.extensions import db
from webapp.models import utcnow
from webapp.pageviews import seed as pageview_seed
from webapp.reports import coordinator, slow_pageviews
from webapp.reports.params import InvalidReportParams, SlowReportParams


@click.group(help="Fill the database with realistic fake data.")
def seed():
    pass


@seed.command("pageviews")
@click.option("--count", default=100_000, show_default=True, type=click.IntRange(1, 100_000_000))
@click.option("--days", default=60, show_default=True, type=click.IntRange(1, 3650))
@click.option("--seed", "seed_value", default=1, show_default=True, type=int, help="Same seed, same data.")
@with_appcontext
def seed_pageviews_command(count, days, seed_value):
    """Insert COUNT page views spread over the last DAYS days."""
    started = time.perf_counter()
    rows = pageview_seed.generate(count, days, seed_value)
    with click.progressbar(length=count, label="Seeding page views", show_pos=True) as bar:
        inserted = pageview_seed.bulk_insert(db.engine, rows, on_chunk=bar.update)
    elapsed = time.perf_counter() - started
    click.echo(f"Inserted {inserted:,} page views in {elapsed:.1f}s ({inserted / elapsed:,.0f}/s)")


@click.group(help="Compute reports.")
def report():
    pass


@report.command("slow-pageviews")
@click.option("--days", default="30", show_default=True)
@click.option("--min-ms", default="1000", show_default=True)
@click.option("--url-contains", default="blog", show_default=True)
@click.option("--site", default="", help="Only this tracked site's views (its key, from flask sites list).")
@click.option("--now", "in_process", is_flag=True, help="Compute here instead of asking a worker.")
@click.option("--timeout", default=120, show_default=True, help="Seconds to wait for a worker.")
@with_appcontext
def slow_pageviews_command(days, min_ms, url_contains, site, in_process, timeout):
    """Print the slow page-view report as JSON."""
    try:
        params = SlowReportParams.parse(
            {"days": days, "min_ms": min_ms, "url_contains": url_contains, "site": site}
        )
    except InvalidReportParams as exc:
        raise click.BadParameter(str(exc)) from None
    if in_process:
        with db.engine.connect() as conn:
            result = slow_pageviews.compute(conn, params, utcnow())
    else:
        result = wait_for_worker_result(params, timeout)
    click.echo(json.dumps(result, indent=2))


def wait_for_worker_result(params, timeout):
    deadline = time.monotonic() + timeout
    status = coordinator.request_report(params, start=True)
    if status.failed:
        # A failure stops automatic refreshes (see coordinator.needs_refresh);
        # running the command is an explicit request, so it retries.
        status = coordinator.request_report(params, force=True, start=True)
    while status.result is None or status.is_stale:
        if status.error and not status.busy:
            raise click.ClickException(f"report failed: {status.error['message']}")
        if time.monotonic() > deadline:
            raise click.ClickException(
                "no worker answered in time (is `celery -A celery_worker worker` running?)"
            )
        time.sleep(0.5)
        status = coordinator.request_report(params, start=True)
    return status.result["report"]
