"""GET /healthz and GET /metrics in-process, with Redis up and down.

Clicks reach the Redis counters when the click log is shipped; in-process
apps ship only when asked (``ship``).
"""

import re
import time

import pytest

from tests.processes import ClickLogWriter
from webapp.clicks import click_log
from webapp.clicks.buffer import CLICK_BUFFER
from webapp.clicks.click_log import app_click_log
from webapp.clicks.drain import CLICK_DRAIN
from webapp.extensions import db
from webapp.links import service
from webapp.pageviews.ingest import PAGEVIEW_BUFFER, PAGEVIEW_DRAIN


@pytest.fixture
def drained_just_now(redis_client):
    for drained in (CLICK_BUFFER, PAGEVIEW_BUFFER):
        redis_client.set(drained.last_drain_key, f"{time.time():.3f}")


@pytest.fixture
def redis_down_app(make_app, dead_redis_url, monkeypatch):
    monkeypatch.setenv("CELERY_BROKER_URL", dead_redis_url)  # Celery prefers it to its config
    return make_app(REDIS_URL=dead_redis_url, CELERY_BROKER_URL=dead_redis_url)


def ship(app):
    app_click_log(app).ship_own()


def metric(client, name):
    """The value of one unlabelled sample in the /metrics text."""
    match = re.search(rf"^{name} (\S+)$", client.get("/metrics").get_data(as_text=True), re.MULTILINE)
    assert match, f"{name} missing from /metrics"
    return float(match.group(1))


# --- /healthz ---------------------------------------------------------------


def test_healthz_tells_anyone_only_ok_or_not_per_dependency(redis_down_app):
    body = redis_down_app.test_client().get("/healthz").get_json()
    assert body["redis"] == {"ok": False}  # no error text naming hosts and ports
    assert body["db"] == {"ok": True} and body["status"] == "degraded"
    assert "click_log_files" not in body


def test_healthz_details_are_for_admins_not_for_other_users_tokens(client, api_headers, admin_headers):
    assert "click_backlog" not in client.get("/healthz", headers=api_headers).get_json()["redis"]
    assert "click_backlog" in client.get("/healthz", headers=admin_headers).get_json()["redis"]


def test_healthz_is_200_when_everything_is_up_and_the_drain_ran(client, drained_just_now, admin_headers):
    response = client.get("/healthz", headers=admin_headers)
    assert (response.status_code, response.get_json()["status"]) == (200, "ok")


def test_healthz_reports_each_dependency(client, drained_just_now, admin_headers):
    body = client.get("/healthz", headers=admin_headers).get_json()
    assert {name: body[name]["ok"] for name in ("db", "redis", "broker", "workers")} == {
        "db": True,
        "redis": True,
        "broker": True,
        "workers": True,
    }


def test_healthz_is_503_when_the_drain_never_ran(client, admin_headers):
    response = client.get("/healthz", headers=admin_headers)
    assert response.status_code == 503
    assert response.get_json()["workers"] == {
        "ok": False,
        "last_clicks_drain_seconds_ago": None,
        "last_pageviews_drain_seconds_ago": None,
        "last_drain_seconds_ago": None,
    }


def test_healthz_is_503_when_the_drain_stopped_long_ago(client, redis_client, admin_headers):
    redis_client.set(CLICK_BUFFER.last_drain_key, f"{time.time() - 3600:.3f}")
    body = client.get("/healthz", headers=admin_headers).get_json()
    assert (body["status"], body["workers"]["ok"]) == ("degraded", False)


def test_healthz_sees_workers_alive_once_both_drains_ran(app, client, redis_client, admin_headers):
    CLICK_DRAIN.drain(redis_client, db.engine, "tests", 100, 1, 60)
    assert (
        client.get("/healthz", headers=admin_headers).get_json()["workers"]["ok"] is False
    )  # page views are not drained
    PAGEVIEW_DRAIN.drain(redis_client, db.engine, "tests", 100, 1, 60)
    assert client.get("/healthz", headers=admin_headers).get_json()["workers"]["ok"] is True


def test_workers_alive_on_metrics_and_healthz_are_one_answer(
    client, redis_client, drained_just_now, admin_headers
):
    assert "clickboard_workers_alive 1.0" in client.get("/metrics").text
    assert client.get("/healthz", headers=admin_headers).get_json()["workers"]["ok"] is True
    redis_client.set(PAGEVIEW_BUFFER.last_drain_key, f"{time.time() - 3600:.3f}")
    metrics = client.get("/metrics").text
    assert "clickboard_workers_alive 0.0" in metrics
    assert re.search(r'clickboard_drain_last_run_age_seconds\{buffer="pageviews"\} 3\d{3}', metrics)
    assert client.get("/healthz", headers=admin_headers).get_json()["workers"]["ok"] is False


def test_healthz_reports_the_click_backlog(app, client, drained_just_now, user, admin_headers):
    service.create_link("https://example.com/", user, slug="launch")
    client.get("/r/launch")
    client.get("/r/launch")
    ship(app)
    assert client.get("/healthz", headers=admin_headers).get_json()["redis"]["click_backlog"] == 2


def test_healthz_counts_the_click_log_files_on_this_host(app, client, drained_just_now, user, admin_headers):
    assert client.get("/healthz", headers=admin_headers).get_json()["click_log_files"] == 0
    service.create_link("https://example.com/", user, slug="launch")
    client.get("/r/launch")
    ship(app)
    assert (
        client.get("/healthz", headers=admin_headers).get_json()["click_log_files"] == 1
    )  # this process's live log
    ClickLogWriter(app.config["CLICK_LOG_DIR"], ["an orphaned click"]).exit()
    assert client.get("/healthz", headers=admin_headers).get_json()["click_log_files"] == 2


def test_healthz_with_redis_down_is_a_503_saying_so(redis_down_app, admin_headers):
    response = redis_down_app.test_client().get("/healthz", headers=admin_headers)
    assert response.status_code == 503
    assert response.get_json()["status"] == "degraded"
    assert response.get_json()["redis"]["ok"] is False


def test_healthz_with_redis_down_names_the_failure(redis_down_app, admin_headers):
    body = redis_down_app.test_client().get("/healthz", headers=admin_headers).get_json()
    assert (body["status"], body["redis"]["ok"], body["db"]["ok"]) == ("degraded", False, True)
    assert "ConnectionError" in body["redis"]["error"]


# --- /metrics ---------------------------------------------------------------


def test_metrics_is_prometheus_text(client):
    response = client.get("/metrics")
    assert response.status_code == 200
    assert response.mimetype == "text/plain"
    assert "# TYPE clickboard_clicks_buffered_total counter" in response.get_data(as_text=True)


@pytest.mark.parametrize(
    "name",
    [
        "clickboard_clicks_buffered_total",
        "clickboard_clicks_drained_total",
        "clickboard_clicks_dropped_total",
        "clickboard_clicks_shipped_late_total",
        "clickboard_click_backlog",
        "clickboard_click_lag_seconds",
        "clickboard_click_log_files",
    ],
)
def test_metrics_include_each_pipeline_metric(client, name):
    assert metric(client, name) == 0


def test_buffered_counter_rises_with_each_redirect_once_shipped(app, client, user):
    service.create_link("https://example.com/", user, slug="launch")
    before = metric(client, "clickboard_clicks_buffered_total")
    client.get("/r/launch")  # cache miss
    client.get("/r/launch")  # cache hit
    ship(app)
    assert metric(client, "clickboard_clicks_buffered_total") == before + 2


def test_buffered_counter_ignores_not_found(app, client, user):
    client.get("/r/nothing-here")
    assert app_click_log(app).pid is None  # nothing was ever logged
    assert metric(client, "clickboard_clicks_buffered_total") == 0


def test_drained_counter_rises_with_each_drained_click(app, client, user, redis_client):
    service.create_link("https://example.com/", user, slug="launch")
    for _ in range(3):
        client.get("/r/launch")
    ship(app)
    CLICK_DRAIN.drain(redis_client, db.engine, "tests", 100, 1, 60)
    assert (
        metric(client, "clickboard_clicks_drained_total"),
        metric(client, "clickboard_click_backlog"),
    ) == (
        3,
        0,
    )


def test_shipped_late_counter_counts_clicks_of_dead_processes(app, client, redis_client):
    ClickLogWriter(app.config["CLICK_LOG_DIR"], ["one", "two"]).exit()
    click_log.ship_orphans(app.config["CLICK_LOG_DIR"], redis_client)
    assert metric(client, "clickboard_clicks_shipped_late_total") == 2


def test_click_backlog_counts_undrained_clicks(app, client, user):
    service.create_link("https://example.com/", user, slug="launch")
    for _ in range(3):
        client.get("/r/launch")
    ship(app)
    assert metric(client, "clickboard_click_backlog") == 3


def test_click_lag_is_the_age_of_the_oldest_undrained_click(app, client, user, redis_client):
    service.create_link("https://example.com/", user, slug="launch")
    # A stream id is its message's time in ms: this one was buffered 90 s ago, then a fresh one.
    redis_client.xadd(CLICK_BUFFER.stream, {"c": "an old click"}, id=f"{int(time.time() * 1000) - 90_000}-0")
    client.get("/r/launch")
    ship(app)
    assert 90 <= metric(client, "clickboard_click_lag_seconds") < 3600


def test_click_log_files_metric_counts_this_host_files(app, client, user):
    service.create_link("https://example.com/", user, slug="launch")
    client.get("/r/launch")
    assert metric(client, "clickboard_click_log_files") == 1


def test_metrics_with_redis_down_is_a_503_not_an_error(redis_down_app):
    response = redis_down_app.test_client().get("/metrics")
    assert response.status_code == 503
    assert response.get_data(as_text=True).startswith("# metrics unavailable")
