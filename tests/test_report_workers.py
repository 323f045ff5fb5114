"""The slow-page report through real processes: gunicorn, a Celery worker, beat, Redis.

The test's database is seeded in-process before the processes start; the
browser side is played by ``requests`` with a logged-in session cookie.
Page views are seeded over the last 25 days, so a 30-day report counts
every one of them whenever it is computed.
"""

import json
import re
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests
from sqlalchemy import func, select, text

from tests.processes import wait_for
from tests.test_click_pipeline import wait_for_drain_runs
from webapp.extensions import db
from webapp.models import PageView, ReportRun, utcnow
from webapp.pageviews import seed
from webapp.pageviews.ingest import PAGEVIEW_BUFFER
from webapp.reports.params import SlowReportParams
from webapp.reports.report_keys import ReportKeys

pytestmark = pytest.mark.integration

EMAIL, PASSWORD = "owner@example.com", "correct horse battery"
STATUS_PATH = "/reports/slow-pageviews/status"
DEFAULTS = SlowReportParams()
REPORT_QUEUES = "reports,default"
SUCCEEDED = re.compile(r"Task tasks\.reports\.compute_slow_pageviews\[[^\]]+\] succeeded")


# --- helpers ----------------------------------------------------------------------


def seed_views(count, doublings=0):
    """``count`` seeded views over the last 25 days, then the table doubled ``doublings`` times.

    Doubling in SQL is much faster than generating rows, for tests that only
    need a computation that takes a while.
    """
    seed.bulk_insert(db.engine, seed.generate(count, 25, 5))
    copy = text(
        "INSERT INTO page_view (url, created_at, response_time_ms) "
        "SELECT url, created_at, response_time_ms FROM page_view"
    )
    for _ in range(doublings):
        with db.engine.begin() as conn:
            conn.execute(copy)
    return count * 2**doublings


def mid_computation(redis_client, keys):
    """The report's progress while some but not all of its steps are done, else None."""
    progress = json.loads(redis_client.get(keys.progress) or "null")
    return progress if progress and 0 < progress["done"] < progress["total"] else None


def log_in(web):
    """Log in through the form like a browser; return the session cookies."""
    session = requests.Session()
    form = session.get(web.url + "/login", timeout=10)
    token = re.search(r'name="csrf_token"[^>]*value="([^"]+)"', form.text).group(1)
    response = session.post(
        web.url + "/login", data={"csrf_token": token, "email": EMAIL, "password": PASSWORD}, timeout=10
    )
    assert response.status_code == 200 and not response.url.endswith("/login"), response.text[:500]
    return session.cookies.get_dict()


def get_card(web, cookies, params=None):
    """The card as a browser has it: a GET, then the POST that a card wanting a computation
    sends as it loads (htmx, with the page's CSRF token)."""
    response = requests.get(web.url + STATUS_PATH, params=params, cookies=cookies, timeout=30)
    assert response.status_code == 200, response.text[:500]
    if 'data-wants-refresh="true"' not in response.text:
        return response.text
    headers = {"X-CSRFToken": page_csrf_token(web, cookies), "HX-Request": "true"}
    response = requests.post(
        web.url + STATUS_PATH, params=params, cookies=cookies, headers=headers, timeout=30
    )
    assert response.status_code == 200, response.text[:500]
    return response.text


def page_csrf_token(web, cookies):
    """The token htmx sends: the hx-headers of a dashboard page."""
    page = requests.get(web.url + "/reports/slow-pageviews", cookies=cookies, timeout=30).text
    return json.loads(re.search(r"hx-headers='([^']+)'", page).group(1))["X-CSRFToken"]


def burst(web, cookies, count, params=None):
    with ThreadPoolExecutor(max_workers=20) as pool:
        return list(pool.map(lambda _: get_card(web, cookies, params), range(count)))


def slow_count(html):
    """The number on the card, or None while there is none."""
    match = re.search(r'<dd class="slow-count">([^<]*)</dd>', html)
    return match.group(1) if match else None


def is_polling(html):
    return 'data-polling="true"' in html


def finished_card(web, cookies, params=None):
    """The card once it shows numbers and no longer polls (falsy until then)."""
    html = get_card(web, cookies, params)
    return html if slow_count(html) is not None and not is_polling(html) else None


def wait_for_finished_card(web, cookies, params=None, timeout=60):
    return wait_for(
        lambda: finished_card(web, cookies, params), timeout=timeout, interval=0.5, message="the report card"
    )


def runs():
    db.session.rollback()  # a new transaction sees what the processes committed
    return db.session.scalars(select(ReportRun).order_by(ReportRun.id)).all()


def finished_runs(count):
    current = runs()
    return current if len(current) >= count and all(run.finished_at for run in current) else None


def sentinels_present(redis_client, params=DEFAULTS):
    keys = ReportKeys(params)
    return [name for name in ("sent", "working", "lock") if redis_client.exists(getattr(keys, name))]


def in_process_report(runner, params=DEFAULTS):
    result = runner.invoke(
        args=[
            "report",
            "slow-pageviews",
            "--days",
            str(params.days),
            "--min-ms",
            str(params.min_ms),
            "--url-contains",
            params.url_contains,
            "--now",
        ]
    )
    assert result.exit_code == 0, result.output
    return json.loads(result.output)


@pytest.fixture
def broken_page_views(app):
    """Page views the computation fails on for real, without a transient (retried) error.

    SQLite stores any value in any column: a text response time in the
    window makes the engine's comparison fail. PostgreSQL's types forbid
    that; there the column is renamed, so the query fails outright, and
    renamed back afterwards for the next test's TRUNCATE. Request this
    fixture before ``processes`` so the processes are stopped first.
    """
    seed_views(2_000)
    sqlite = db.engine.dialect.name == "sqlite"
    with db.engine.begin() as conn:
        if sqlite:
            conn.execute(
                text(
                    "INSERT INTO page_view (url, created_at, response_time_ms) "
                    "VALUES ('/blog/broken', :at, 'slow')"
                ),
                {"at": seed.sqlite_time(utcnow())},
            )
        else:
            conn.execute(text("ALTER TABLE page_view RENAME COLUMN response_time_ms TO broken_ms"))
    yield
    if not sqlite:
        with db.engine.begin() as conn:
            conn.execute(text("ALTER TABLE page_view RENAME COLUMN broken_ms TO response_time_ms"))


# --- the report -------------------------------------------------------------------


def test_burst_on_cold_cache_computes_once(app, user, processes, redis_client):
    seed_views(20_000)
    web = processes.web(workers=3)
    worker = processes.worker(queues=REPORT_QUEUES, concurrency=2)
    cookies = log_in(web)

    cards = burst(web, cookies, 200)

    assert all(is_polling(html) or slow_count(html) for html in cards)
    html = wait_for_finished_card(web, cookies)
    (run,) = wait_for(lambda: finished_runs(1), timeout=60, message="the run row to be finished")
    # A request records its run before it sends the task: every request has been answered.
    assert len(runs()) == 1
    assert len(SUCCEEDED.findall(worker.log_text())) == 1
    assert run.status == "done"
    assert slow_count(html) == f"{run.result['slow_views']:,}"


def test_callback_writes_the_run_row(app, user, processes, redis_client, runner):
    seed_views(20_000)
    web = processes.web(workers=2)
    processes.worker(queues=REPORT_QUEUES, concurrency=2)
    cookies = log_in(web)

    get_card(web, cookies)
    (run,) = wait_for(lambda: finished_runs(1), timeout=60, message="the run row to be finished")

    assert run.status == "done"
    assert run.task_id
    assert run.enqueued_at <= run.started_at <= run.finished_at
    assert run.duration_ms == int((run.finished_at - run.started_at).total_seconds() * 1000)
    expected = in_process_report(runner)
    assert {k: v for k, v in run.result.items() if not k.startswith("window_")} == {
        k: v for k, v in expected.items() if not k.startswith("window_")
    }
    assert run.result["slow_views"] > 0


def test_failing_computation_is_recorded_and_shown(broken_page_views, user, processes, redis_client):
    web = processes.web(workers=2)
    processes.worker(queues=REPORT_QUEUES, concurrency=2)
    cookies = log_in(web)

    get_card(web, cookies)
    (run,) = wait_for(lambda: finished_runs(1), timeout=60, message="the failed run row")

    assert run.status == "failed"
    assert run.error and run.finished_at
    assert sentinels_present(redis_client) == []
    error = json.loads(redis_client.get(ReportKeys(DEFAULTS).error))
    assert error["message"].split(":")[0] in run.error
    html = get_card(web, cookies)
    assert "The last computation failed" in html
    assert re.search(r'hx-post="[^"]+" hx-vals=\'\{"force": "1"\}\'>Retry</button>', html)
    assert not is_polling(html)
    assert len(runs()) == 1  # the card showing the failure did not start another run


def test_killed_worker_releases_the_report_and_a_new_worker_computes_it(app, user, processes, redis_client):
    seed_views(125_000, doublings=2)  # 500,000 views: a day's step takes a noticeable while
    params = {"days": 60, "url_contains": ""}
    keys = ReportKeys(SlowReportParams.parse(params))
    web = processes.web(workers=2)
    worker = processes.worker(queues=REPORT_QUEUES, concurrency=1, REPORT_HEARTBEAT_TTL_SECONDS=2)
    cookies = log_in(web)

    get_card(web, cookies, params)
    wait_for(
        lambda: mid_computation(redis_client, keys), timeout=60, interval=0.005, message="a progress mark"
    )
    worker.pause()  # frozen where it was, then killed: no race with the computation's end
    frozen_at = mid_computation(redis_client, keys)
    worker.kill()

    assert frozen_at and not redis_client.exists(keys.result), "the computation finished before the kill"
    wait_for(
        lambda: not redis_client.exists(keys.lock, keys.working),
        timeout=30,
        interval=0.1,
        message="the dead worker's :lock and :working to expire",
    )
    processes.worker(name="worker2", queues=REPORT_QUEUES, concurrency=1, REPORT_HEARTBEAT_TTL_SECONDS=2)
    assert is_polling(get_card(web, cookies, params))
    html = wait_for_finished_card(web, cookies, params, timeout=90)
    assert slow_count(html) not in (None, "0")


def test_stale_result_is_served_while_exactly_one_refresh_runs(app, user, processes, redis_client):
    seed_views(20_000)
    web = processes.web(workers=3)
    processes.worker(queues=REPORT_QUEUES, concurrency=2)
    cookies = log_in(web)
    get_card(web, cookies)
    first = slow_count(wait_for_finished_card(web, cookies))
    wait_for(lambda: finished_runs(1), timeout=60, message="the first run row")

    redis_client.delete(ReportKeys(DEFAULTS).fresh)
    cards = burst(web, cookies, 50)

    assert [slow_count(html) for html in cards] == [first] * 50
    wait_for(lambda: finished_runs(2), timeout=60, message="the refresh run row")
    assert [run.status for run in runs()] == ["done", "done"]


def test_cli_waits_for_the_worker_and_prints_the_same_report(app, user, processes, runner):
    seed_views(20_000)
    processes.worker(queues=REPORT_QUEUES, concurrency=1)

    result = runner.invoke(args=["report", "slow-pageviews", "--timeout", "60"])

    assert result.exit_code == 0, result.output
    from_worker = json.loads(result.output)
    here = in_process_report(runner)
    assert from_worker["slow_views"] > 0
    for report in (from_worker, here):
        del report["window_start"], report["window_end"]
    assert from_worker == here
    assert len(runs()) == 1


# --- page-view ingest -------------------------------------------------------------


def test_posted_page_views_are_drained_into_rows_exactly_once(
    app, processes, api_headers, redis_client, redis_server
):
    web = processes.web(workers=2)
    processes.worker(queues="clicks,default", concurrency=2)
    processes.beat()
    batches = [
        [{"url": f"/ingest/{batch}/{index}", "response_time_ms": 100 + index} for index in range(200)]
        for batch in range(5)
    ]

    with ThreadPoolExecutor(max_workers=5) as pool:
        responses = list(
            pool.map(
                lambda views: requests.post(
                    web.url + "/api/pageviews", json=views, headers=api_headers, timeout=30
                ),
                batches,
            )
        )

    assert [response.status_code for response in responses] == [202] * 5
    assert all(response.json() == {"accepted": 200} for response in responses)

    def stored():
        db.session.rollback()
        return db.session.scalar(select(func.count()).select_from(PageView))

    wait_for(lambda: stored() >= 1000, timeout=60, message="1,000 page-view rows")
    wait_for_drain_runs(redis_server, 2, PAGEVIEW_BUFFER)  # a late duplicate would show
    assert stored() == 1000
    # Shipping is at least once (a spool ships again what it cannot tell Redis still has; event
    # ids make a repeat count once): the stream may hold a repeat for a drain or two.
    wait_for(lambda: redis_client.xlen(PAGEVIEW_BUFFER.stream) == 0, 60, 0.2, "the page-view stream drained")
    assert stored() == 1000
    distinct = db.session.scalar(select(func.count(func.distinct(PageView.url))))
    assert distinct == 1000
