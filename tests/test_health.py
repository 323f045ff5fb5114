"""GET /healthz and GET /metrics in-process, with Redis up and down."""

import re
import time

import pytest

from webapp.clicks.buffer import LAST_DRAIN_KEY
from webapp.links import service


@pytest.fixture
def drained_just_now(redis_client):
    redis_client.set(LAST_DRAIN_KEY, f"{time.time():.3f}")


@pytest.fixture
def redis_down_app(make_app, dead_redis_url):
    return make_app(REDIS_URL=dead_redis_url, CELERY_BROKER_URL=dead_redis_url)


def metric(client, name):
    """The value of one unlabelled sample in the /metrics text."""
    match = re.search(rf"^{name} (\S+)$", client.get("/metrics").get_data(as_text=True), re.MULTILINE)
    assert match, f"{name} missing from /metrics"
    return float(match.group(1))


# --- /healthz ---------------------------------------------------------------


def test_healthz_is_200_when_everything_is_up_and_the_drain_ran(client, drained_just_now):
    response = client.get("/healthz")
    assert (response.status_code, response.get_json()["status"]) == (200, "ok")


def test_healthz_reports_each_dependency(client, drained_just_now):
    body = client.get("/healthz").get_json()
    assert {name: body[name]["ok"] for name in ("db", "redis", "broker", "workers")} == {
        "db": True,
        "redis": True,
        "broker": True,
        "workers": True,
    }


def test_healthz_is_503_when_the_drain_never_ran(client):
    response = client.get("/healthz")
    assert response.status_code == 503
    assert response.get_json()["workers"] == {"ok": False, "last_drain_seconds_ago": None}


def test_healthz_is_503_when_the_drain_stopped_long_ago(client, redis_client):
    redis_client.set(LAST_DRAIN_KEY, f"{time.time() - 3600:.3f}")
    body = client.get("/healthz").get_json()
    assert (body["status"], body["workers"]["ok"]) == ("degraded", False)


def test_healthz_reports_the_click_backlog(client, drained_just_now, user):
    service.create_link("https://example.com/", user, slug="launch")
    client.get("/r/launch")
    client.get("/r/launch")
    assert client.get("/healthz").get_json()["redis"]["click_backlog"] == 2


def test_healthz_with_redis_down_is_a_quick_503(redis_down_app):
    started = time.monotonic()
    response = redis_down_app.test_client().get("/healthz")
    assert response.status_code == 503
    assert time.monotonic() - started < 5


def test_healthz_with_redis_down_names_the_failure(redis_down_app):
    body = redis_down_app.test_client().get("/healthz").get_json()
    assert (body["status"], body["redis"]["ok"], body["db"]["ok"]) == ("degraded", False, True)
    assert "ConnectionError" in body["redis"]["error"]


# --- /metrics ---------------------------------------------------------------


def test_metrics_is_prometheus_text(client):
    response = client.get("/metrics")
    assert response.status_code == 200
    assert response.mimetype == "text/plain"
    assert "# TYPE clickboard_redirects_total counter" in response.get_data(as_text=True)


@pytest.mark.parametrize(
    "name",
    [
        "clickboard_redirects_total",
        "clickboard_clicks_buffered_total",
        "clickboard_clicks_drained_total",
        "clickboard_click_backlog",
        "clickboard_click_lag_seconds",
        "clickboard_spool_files",
    ],
)
def test_metrics_include_each_pipeline_metric(client, name):
    assert metric(client, name) == 0


def test_redirect_counter_rises_with_each_redirect(client, user):
    service.create_link("https://example.com/", user, slug="launch")
    before = metric(client, "clickboard_redirects_total")
    client.get("/r/launch")  # cache miss
    client.get("/r/launch")  # cache hit
    assert metric(client, "clickboard_redirects_total") == before + 2


def test_redirect_counter_ignores_not_found(client, user):
    client.get("/r/nothing-here")
    assert metric(client, "clickboard_redirects_total") == 0


def test_click_backlog_counts_undrained_clicks(client, user):
    service.create_link("https://example.com/", user, slug="launch")
    for _ in range(3):
        client.get("/r/launch")
    assert metric(client, "clickboard_click_backlog") == 3


def test_metrics_with_redis_down_is_a_503_not_an_error(redis_down_app):
    response = redis_down_app.test_client().get("/metrics")
    assert response.status_code == 503
    assert response.get_data(as_text=True).startswith("# metrics unavailable")
