"""The report's status card and the worker-side protocol, in-process with the real Redis.

No worker runs here: a task sent by a request stays in the ``reports``
queue (kombu's Redis transport keeps each queue as a Redis list of that
name), and "the worker" is ``runner.run_report`` called in the test with
the real SQL engine, exactly as the task calls it.
"""

import json
import re
import threading
import time

import pytest
from sqlalchemy import func, select

from tests.broker import queue_depth, queued_tasks
from webapp.extensions import db
from webapp.models import ReportRun, utcnow
from webapp.pageviews import seed
from webapp.reports import coordinator, runner, slow_pageviews
from webapp.reports.params import SlowReportParams
from webapp.reports.report_keys import ReportKeys

EMAIL, PASSWORD = "owner@example.com", "correct horse battery"
STATUS_URL = "/reports/slow-pageviews/status"
PAGE_URL = "/reports/slow-pageviews"
DEFAULTS = SlowReportParams()
SENTINELS = ("sent", "working", "lock")


# --- helpers ----------------------------------------------------------------------


def log_in(client, csrf_token=None):
    data = {"email": EMAIL, "password": PASSWORD}
    if csrf_token is not None:
        data["csrf_token"] = csrf_token
    response = client.post("/login", data=data)
    assert response.status_code == 302, response.text


def hidden_csrf_token(html):
    return re.search(r'name="csrf_token"[^>]*value="([^"]+)"', html).group(1)


def header_csrf_token(html):
    """The token htmx sends: ``hx-headers`` on <body>."""
    headers = re.search(r"<body[^>]*hx-headers='([^']+)'", html).group(1)
    return json.loads(headers)["X-CSRFToken"]


def figures(html):
    """The card's figures: {"Slow views": "1,234", "All views": ..., "p50": ...}."""
    return dict(re.findall(r"<dt>([^<]+)</dt><dd[^>]*>([^<]*)</dd>", html))


def is_polling(html):
    return "hx-trigger=" in html or 'data-polling="true"' in html


def queued_reports(redis_client):
    return queue_depth("reports")


def run_count(status=None):
    db.session.rollback()
    query = select(func.count()).select_from(ReportRun)
    if status is not None:
        query = query.where(ReportRun.status == status)
    return db.session.scalar(query)


def compute_as_worker(params=DEFAULTS):
    """What the task does: the real engine under the runner's protocol."""

    def compute(on_progress):
        with db.engine.connect() as conn:
            return slow_pageviews.compute(conn, params, utcnow(), on_progress)

    return runner.run_report(params, compute)


def fail_as_worker(params=DEFAULTS, message="the database is on fire"):
    def compute(on_progress):
        raise RuntimeError(message)

    with pytest.raises(RuntimeError):
        runner.run_report(params, compute)


def key_exists(redis_client, params, name):
    return redis_client.exists(getattr(ReportKeys(params), name)) == 1


# --- fixtures ---------------------------------------------------------------------


@pytest.fixture
def seeded(app):
    """3,000 page views over the last 25 days: all inside the default 30-day window."""
    seed.bulk_insert(db.engine, seed.generate(3000, 25, 11))


@pytest.fixture
def logged_in(app, client, user):
    app.config["WTF_CSRF_ENABLED"] = False
    log_in(client)
    return client


@pytest.fixture
def report(seeded, logged_in):
    """A fresh result for the default parameters, computed as the worker would."""
    return compute_as_worker()


# --- login ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "url"), [("get", PAGE_URL), ("get", STATUS_URL), ("post", STATUS_URL)], ids=str
)
def test_anonymous_request_redirects_to_login(app, client, method, url):
    app.config["WTF_CSRF_ENABLED"] = False
    response = getattr(client, method)(url)
    assert response.status_code == 302
    assert response.headers["Location"].startswith("/login")


def test_anonymous_request_enqueues_nothing(app, client, redis_client):
    client.get(STATUS_URL)
    assert queued_reports(redis_client) == 0


# --- cold cache -------------------------------------------------------------------


def test_cold_status_get_starts_nothing_and_asks_for_a_post(logged_in, redis_client):
    response = logged_in.get(STATUS_URL)
    assert response.status_code == 200
    assert 'hx-trigger="load" data-wants-refresh="true"' in response.text and "hx-post=" in response.text
    assert queued_reports(redis_client) == 0


def test_cold_status_post_returns_polling_card(logged_in):
    response = logged_in.post(STATUS_URL)
    assert response.status_code == 200
    assert 'data-polling="true"' in response.text
    assert 'hx-trigger="cb:poll" data-live-seconds="1"' in response.text
    assert "Queued, waiting for a worker" in response.text


def test_cold_status_enqueues_exactly_one_task(logged_in, redis_client):
    logged_in.post(STATUS_URL)
    assert queued_reports(redis_client) == 1


def test_enqueued_message_is_the_report_task(logged_in, redis_client):
    logged_in.post(STATUS_URL)
    assert [task.task for task in queued_tasks("reports")] == ["tasks.reports.compute_slow_pageviews"]


def test_cold_status_records_one_queued_run(logged_in):
    logged_in.post(STATUS_URL)
    run = db.session.scalars(select(ReportRun)).one()
    assert (run.status, run.report, run.params) == ("queued", "slow_pageviews", DEFAULTS.as_dict())
    assert run.task_id


def test_burst_of_requests_on_cold_cache_enqueues_nothing_more(logged_in, redis_client):
    logged_in.post(STATUS_URL)
    responses = [logged_in.post(STATUS_URL) for _ in range(50)]
    assert all(is_polling(response.text) for response in responses)
    assert queued_reports(redis_client) == 1
    assert run_count() == 1


def test_cold_page_includes_a_card_that_asks_for_a_computation(logged_in, redis_client):
    response = logged_in.get(PAGE_URL)
    assert response.status_code == 200
    assert 'id="report-card"' in response.text
    assert 'data-wants-refresh="true"' in response.text
    assert queued_reports(redis_client) == 0


def test_different_params_get_their_own_task(logged_in, redis_client):
    logged_in.post(STATUS_URL)
    logged_in.post(STATUS_URL, query_string={"days": 7})
    assert queued_reports(redis_client) == 2


def test_card_shows_progress_while_computing(logged_in, redis_client):
    keys = ReportKeys(DEFAULTS)
    redis_client.set(keys.working, json.dumps({"host": "w", "started": time.time()}), ex=30)
    redis_client.set(keys.progress, json.dumps({"done": 2, "total": 5}), ex=30)
    response = logged_in.get(STATUS_URL)
    assert "Computing… 40%" in response.text
    assert '<progress max="5" value="2">' in response.text
    assert is_polling(response.text)
    assert queued_reports(redis_client) == 0


# --- with a result ----------------------------------------------------------------


def test_card_stops_polling_once_result_is_stored(logged_in, seeded):
    logged_in.post(STATUS_URL)
    compute_as_worker()
    response = logged_in.get(STATUS_URL)
    assert response.status_code == 200
    assert not is_polling(response.text)
    assert 'aria-busy="false"' in response.text


def test_card_shows_the_computed_numbers(logged_in, report):
    assert report["slow_views"] > 0  # the seeded data has slow blog views
    shown = figures(logged_in.get(STATUS_URL).text)
    assert shown["Slow views"] == f"{report['slow_views']:,}"
    assert shown["All views"] == f"{report['total_views']:,}"
    assert shown["p95"] == f"{report['percentiles_ms']['p95']:,} ms"


def test_card_lists_slowest_urls(logged_in, report):
    html = logged_in.get(STATUS_URL).text
    for row in report["slowest_urls"]:
        assert f'<td class="url">{row["url"]}</td>' in html


def test_fresh_result_enqueues_nothing(logged_in, report, redis_client):
    for _ in range(20):
        logged_in.get(STATUS_URL)
        logged_in.post(STATUS_URL)
    assert queued_reports(redis_client) == 0
    assert run_count() == 0


def test_post_forces_a_refresh_of_a_fresh_result(logged_in, report, redis_client):
    response = logged_in.post(STATUS_URL, data={"force": "1"})
    assert response.status_code == 200
    assert is_polling(response.text)
    assert figures(response.text)["Slow views"] == f"{report['slow_views']:,}"
    assert queued_reports(redis_client) == 1


def test_stale_result_is_shown_marked_stale(logged_in, report, redis_client):
    redis_client.delete(ReportKeys(DEFAULTS).fresh)
    response = logged_in.get(STATUS_URL)
    assert "<strong>stale</strong>" in response.text
    assert figures(response.text)["Slow views"] == f"{report['slow_views']:,}"


def test_stale_result_enqueues_exactly_one_refresh_while_numbers_show(logged_in, report, redis_client):
    redis_client.delete(ReportKeys(DEFAULTS).fresh)
    responses = [logged_in.post(STATUS_URL) for _ in range(50)]
    assert all(figures(r.text)["Slow views"] == f"{report['slow_views']:,}" for r in responses)
    assert all(is_polling(r.text) for r in responses)
    assert queued_reports(redis_client) == 1
    assert run_count() == 1


# --- failure ----------------------------------------------------------------------


def test_failed_run_shows_message_and_retry_button(logged_in):
    logged_in.post(STATUS_URL)
    fail_as_worker(message="the database is on fire")
    response = logged_in.get(STATUS_URL)
    assert "The last computation failed: RuntimeError: the database is on fire" in response.text
    assert re.search(
        r'<button type="button" hx-post="[^"]+" hx-vals=\'\{"force": "1"\}\'>Retry</button>', response.text
    )
    assert not is_polling(response.text)


def test_card_after_failure_does_not_enqueue_again(logged_in, redis_client):
    """Else the polling card would re-run a failing report every second, forever."""
    logged_in.post(STATUS_URL)
    fail_as_worker()
    for _ in range(5):
        logged_in.get(STATUS_URL)
        logged_in.post(STATUS_URL)  # without force: a failed report waits for Retry
    assert queued_reports(redis_client) == 1
    assert run_count() == 1


def test_retry_after_failure_enqueues_one_run(logged_in, redis_client):
    logged_in.post(STATUS_URL)
    fail_as_worker()
    response = logged_in.post(STATUS_URL, data={"force": "1"})
    assert is_polling(response.text)
    assert queued_reports(redis_client) == 2
    assert run_count() == 2


def test_failure_after_a_result_still_shows_the_old_numbers(logged_in, report, redis_client):
    redis_client.delete(ReportKeys(DEFAULTS).fresh)
    fail_as_worker()
    html = logged_in.get(STATUS_URL).text
    assert "The last computation failed" in html
    assert figures(html)["Slow views"] == f"{report['slow_views']:,}"


def test_success_clears_the_failure(logged_in, seeded):
    fail_as_worker()
    compute_as_worker()
    assert "failed" not in logged_in.get(STATUS_URL).text


def test_the_reports_tables_download_as_csv_without_starting_anything(logged_in, report, redis_client):
    urls = logged_in.get("/reports/slow-pageviews.csv", query_string={"table": "urls"})
    assert urls.mimetype == "text/csv"
    lines = urls.text.splitlines()
    assert lines[0] == "url,slow_views,avg_ms,max_ms" and len(lines) == len(report["slowest_urls"]) + 1
    days = logged_in.get("/reports/slow-pageviews.csv", query_string={"table": "days"}).text.splitlines()
    assert (
        days[0] == "day,slow,views"
        and sum(int(line.split(",")[1]) for line in days[1:]) == report["slow_views"]
    )
    assert logged_in.get("/reports/slow-pageviews.csv", query_string={"table": "nope"}).status_code == 404
    assert (
        logged_in.get("/reports/slow-pageviews.csv", query_string={"days": 3}).status_code == 404
    )  # none yet
    assert queued_reports(redis_client) == 0


# --- per-user budget ---------------------------------------------------------------


def test_each_user_may_start_only_so_many_computations_a_minute(app, logged_in, redis_client):
    limit = app.config["REPORT_STARTS_PER_MINUTE"]
    for days in range(1, limit + 1):  # each its own parameter set, each wanting a computation
        assert logged_in.post(STATUS_URL, query_string={"days": days}).status_code == 200
    refused = logged_in.post(STATUS_URL, query_string={"days": limit + 1})
    assert refused.status_code == 429 and "data-limited" in refused.text
    as_htmx = logged_in.post(STATUS_URL, query_string={"days": limit + 2}, headers={"HX-Request": "true"})
    assert as_htmx.status_code == 200 and "data-limited" in as_htmx.text  # htmx swaps only 2xx
    assert queued_reports(redis_client) == limit


# --- CSRF -------------------------------------------------------------------------


@pytest.fixture
def csrf_client(app, client, user):
    """Logged in through the real form, CSRF protection on."""
    app.config["WTF_CSRF_ENABLED"] = True
    log_in(client, csrf_token=hidden_csrf_token(client.get("/login").text))
    return client


def test_post_without_csrf_token_is_rejected(csrf_client, redis_client):
    response = csrf_client.post(STATUS_URL)
    assert response.status_code == 400
    assert queued_reports(redis_client) == 0


def test_post_with_csrf_token_from_page_headers_is_accepted(csrf_client, redis_client):
    token = header_csrf_token(csrf_client.get(PAGE_URL).text)
    response = csrf_client.post(STATUS_URL, headers={"X-CSRFToken": token, "HX-Request": "true"})
    assert response.status_code == 200
    assert 'id="report-card"' in response.text
    assert queued_reports(redis_client) == 1


def test_post_with_wrong_csrf_token_is_rejected(csrf_client, redis_client):
    response = csrf_client.post(STATUS_URL, headers={"X-CSRFToken": "not-the-token"})
    assert response.status_code == 400
    assert queued_reports(redis_client) == 0


# --- parameters -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ({"days": "-1"}, "days must be between 1 and 365"),
        ({"days": "abc"}, "days must be a whole number"),
        ({"min_ms": "1e3"}, "min_ms must be a whole number"),
        ({"url_contains": "x" * 200}, "url_contains must be at most 100 characters"),
        ({"url_contains": "a\x00b"}, "url_contains must not contain control characters"),
    ],
    ids=["negative_days", "days_abc", "min_ms_float", "long_filter", "nul_in_filter"],
)
def test_invalid_params_give_400_fragment_with_message(logged_in, redis_client, query, message):
    response = logged_in.get(STATUS_URL, query_string=query)
    assert response.status_code == 400
    assert message in response.text
    assert 'role="alert"' in response.text
    assert "<html" not in response.text  # a fragment for htmx to swap in, not a page
    assert queued_reports(redis_client) == 0


def test_invalid_params_on_page_give_400_with_message(logged_in):
    response = logged_in.get(PAGE_URL, query_string={"days": "0"})
    assert response.status_code == 400
    assert "days must be between 1 and 365" in response.text


def test_sql_injection_text_is_a_literal_filter_matching_nothing(logged_in, seeded, redis_client):
    query = {"url_contains": "' OR 1=1 --"}
    assert logged_in.get(STATUS_URL, query_string=query).status_code == 200
    compute_as_worker(SlowReportParams.parse(query))
    response = logged_in.get(STATUS_URL, query_string=query)
    assert response.status_code == 200
    shown = figures(response.text)
    assert (shown["Slow views"], shown["All views"]) == ("0", "0")


def test_script_in_filter_is_escaped_in_card(logged_in):
    html = logged_in.get(STATUS_URL, query_string={"url_contains": "<script>alert(1)</script>"}).text
    assert "<script>alert(1)" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html


def test_script_in_filter_is_escaped_in_page(logged_in):
    html = logged_in.get(PAGE_URL, query_string={"url_contains": "<script>alert(1)</script>"}).text
    assert "<script>alert(1)" not in html


# --- the runner protocol ----------------------------------------------------------


def test_failing_compute_propagates_its_exception(app):
    def compute(on_progress):
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        runner.run_report(DEFAULTS, compute)


def test_failing_compute_records_the_error(app, redis_client):
    fail_as_worker(message="boom")
    error = json.loads(redis_client.get(ReportKeys(DEFAULTS).error))
    assert error["message"] == "RuntimeError: boom"
    assert error["at"] == pytest.approx(time.time(), abs=10)


def test_failing_compute_leaves_no_sentinels(app, redis_client):
    redis_client.set(ReportKeys(DEFAULTS).sent, "1", ex=60)
    fail_as_worker()
    assert [name for name in (*SENTINELS, "progress") if key_exists(redis_client, DEFAULTS, name)] == []


def test_successful_compute_leaves_no_sentinels(app, redis_client):
    redis_client.set(ReportKeys(DEFAULTS).sent, "1", ex=60)
    compute_as_worker()
    assert [name for name in (*SENTINELS, "progress") if key_exists(redis_client, DEFAULTS, name)] == []


def test_compute_sees_working_set_and_sent_cleared(app, redis_client):
    redis_client.set(ReportKeys(DEFAULTS).sent, "1", ex=60)
    seen = {}

    def compute(on_progress):
        seen.update({name: key_exists(redis_client, DEFAULTS, name) for name in (*SENTINELS, "progress")})
        return {}

    runner.run_report(DEFAULTS, compute)
    assert seen == {"sent": False, "working": True, "lock": True, "progress": True}


def test_progress_is_written_while_computing(app, redis_client):
    seen = []

    def compute(on_progress):
        on_progress(3, 7)
        seen.append(json.loads(redis_client.get(ReportKeys(DEFAULTS).progress)))
        return {}

    runner.run_report(DEFAULTS, compute)
    assert seen == [{"done": 3, "total": 7}]


def test_run_skips_without_computing_when_lock_is_held(app, redis_client):
    redis_client.set(ReportKeys(DEFAULTS).lock, "another-token", ex=30)
    calls = []
    assert runner.run_report(DEFAULTS, lambda on_progress: calls.append(1) or {}) is None
    assert calls == []


def test_skipped_run_clears_sent_and_keeps_the_other_lock(app, redis_client):
    keys = ReportKeys(DEFAULTS)
    redis_client.set(keys.lock, "another-token", ex=30)
    redis_client.set(keys.sent, "1", ex=60)
    runner.run_report(DEFAULTS, lambda on_progress: {})
    assert not key_exists(redis_client, DEFAULTS, "sent")
    assert redis_client.get(keys.lock) == "another-token"


def test_heartbeat_keeps_lock_and_working_alive_through_long_compute(app, redis_client):
    app.config["REPORT_HEARTBEAT_TTL_SECONDS"] = 1
    samples = []

    def slow_compute(on_progress):
        deadline = time.monotonic() + 3.5  # 3.5 lock TTLs
        while time.monotonic() < deadline:
            samples.append(
                (key_exists(redis_client, DEFAULTS, "lock"), key_exists(redis_client, DEFAULTS, "working"))
            )
            on_progress(len(samples), 1000)  # raises LostLock if the heartbeat lost the lock
            time.sleep(0.1)
        return {"ok": True}

    assert runner.run_report(DEFAULTS, slow_compute) == {"ok": True}
    assert len(samples) > 20
    assert all(lock and working for lock, working in samples)


def test_keys_are_gone_after_long_compute(app, redis_client):
    app.config["REPORT_HEARTBEAT_TTL_SECONDS"] = 1

    def slow_compute(on_progress):
        time.sleep(2.5)
        return {}

    runner.run_report(DEFAULTS, slow_compute)
    assert [name for name in (*SENTINELS, "progress") if key_exists(redis_client, DEFAULTS, name)] == []
    assert key_exists(redis_client, DEFAULTS, "result")


def test_second_run_while_first_computes_is_skipped(app, redis_client):
    """Two tasks for the same report (e.g. a redelivery): only one computes."""
    started, release = threading.Event(), threading.Event()
    calls = []

    def blocking_compute(on_progress):
        calls.append("first")
        started.set()
        release.wait(10)
        return {"first": True}

    def first_run():
        with app.app_context():
            runner.run_report(DEFAULTS, blocking_compute)

    thread = threading.Thread(target=first_run)
    thread.start()
    try:
        assert started.wait(10)
        assert runner.run_report(DEFAULTS, lambda on_progress: calls.append("second") or {}) is None
    finally:
        release.set()
        thread.join()
    assert calls == ["first"]


# --- XFetch early refresh (pure logic) --------------------------------------------


@pytest.fixture
def fixed_random(monkeypatch):
    def fix(value):
        monkeypatch.setattr(coordinator.random, "random", lambda: value)

    return fix


RESULT = {"duration": 2.0, "fresh_until": 1000.0}


@pytest.mark.parametrize("draw", [0.0, 0.5, 0.999999])
def test_early_refresh_not_due_far_from_expiry(fixed_random, draw):
    fixed_random(draw)
    assert coordinator.early_refresh_due(RESULT, now=700.0) is False


@pytest.mark.parametrize("draw", [0.0, 0.5, 0.999999])
def test_early_refresh_due_past_expiry(fixed_random, draw):
    fixed_random(draw)
    assert coordinator.early_refresh_due(RESULT, now=1000.5) is True


def test_early_refresh_due_near_expiry_on_a_high_draw(fixed_random):
    fixed_random(0.9)  # jitter ln(10) ≈ 2.3: 999 + 2 × 2.3 passes 1000
    assert coordinator.early_refresh_due(RESULT, now=999.0) is True


def test_early_refresh_not_due_near_expiry_on_a_low_draw(fixed_random):
    fixed_random(0.1)  # jitter ≈ 0.105: 999 + 0.21 stays before 1000
    assert coordinator.early_refresh_due(RESULT, now=999.0) is False


def test_early_refresh_not_due_without_a_result(fixed_random):
    fixed_random(0.999999)
    assert coordinator.early_refresh_due(None, now=999.0) is False


# --- the CLI after a failure ------------------------------------------------------


def test_cli_retries_after_a_failure_instead_of_repeating_it(app, runner, redis_client):
    fail_as_worker(message="old failure")
    result = runner.invoke(args=["report", "slow-pageviews", "--timeout", "1"])
    assert result.exit_code != 0
    assert "old failure" not in result.output
    assert "no worker answered in time" in result.output
    assert queued_reports(redis_client) == 1
