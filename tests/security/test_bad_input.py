"""Hostile numbers and text in every request shape that takes them: a clear 4xx, never a 500.

Huge integers overflow the database's integer columns (PostgreSQL refuses,
SQLite's driver raises) and Python's float conversion; lone UTF-16
surrogates cannot be encoded for the database. Each shape here was a 500.
"""

import base64
import json

import pytest

from tests.dashboard_helpers import logged_in
from tests.test_redirect import logged_lines
from webapp.clicks.events import clean, click_row
from webapp.links import service

HUGE = 10**30
HUGER = 10**400
LONE_SURROGATE = "\ud800"


def cursor(values):
    return base64.urlsafe_b64encode(json.dumps(values).encode()).decode().rstrip("=")


@pytest.fixture
def link(user):
    return service.create_link("https://example.com/x", user, slug="launch")[0]


@pytest.mark.parametrize(
    "body",
    [
        {"url": "https://example.com/", "response_time_ms": HUGER},
        {"url": "https://example.com/", "response_time_ms": 10, "ts": HUGER},
        {"url": "https://example.com/", "response_time_ms": 10, "ts": -HUGER},
    ],
)
def test_page_views_with_numbers_too_large_for_a_float_are_a_400(client, api_headers, body):
    response = client.post(
        "/api/pageviews", data=json.dumps(body), headers={**api_headers, "Content-Type": "application/json"}
    )
    assert response.status_code == 400 and "error" in response.get_json()


@pytest.mark.parametrize(
    "path",
    [
        f"/api/links?cursor={cursor([HUGE])}",
        "/api/links?sort=slug&cursor=" + cursor([LONE_SURROGATE, 1]),
        f"/api/links/launch/clicks?cursor={cursor([HUGE])}",
        f"/api/links/launch/clicks?cursor={cursor([-HUGE])}",
    ],
)
def test_cursors_carrying_huge_numbers_or_lone_surrogates_are_a_400(client, api_headers, link, path):
    response = client.get(path, headers=api_headers)
    assert response.status_code == 400 and "cursor" in response.get_json()["error"]


@pytest.mark.parametrize(
    "path",
    [
        f"/fragments/clicks-chart?link={HUGE}",
        f"/export/stats.csv?table=country&link={HUGE}",
        f"/links?page={HUGE}",
        f"/links/launch/stats?link={HUGE}",
    ],
)
def test_dashboard_numbers_too_large_for_the_database_are_not_a_500(app, user, link, path):
    response = logged_in(app).get(path)
    assert response.status_code in (200, 400, 404), response.status_code


def test_utf8_user_agents_and_referrers_are_stored_as_sent_not_garbled(app, client, user, link):
    # What WSGI hands over for the UTF-8 bytes of these headers: each byte as a Latin-1 character.
    as_wsgi_gives = {
        "User-Agent": "Mozilla/5.0 Café".encode().decode("latin-1"),
        "Referer": "https://exemple.fr/été".encode().decode("latin-1"),
    }
    assert client.get("/r/launch", headers=as_wsgi_gives).status_code == 302
    (line,) = logged_lines(app)
    row = click_row(line)
    assert (row["user_agent"], row["referrer"]) == ("Mozilla/5.0 Café", "https://exemple.fr/été")


def test_latin1_header_bytes_that_are_not_utf8_are_kept_as_they_came():
    assert clean("Caf\xe9", 100) == "Caf\xe9"  # one byte 0xE9: not UTF-8, so Latin-1 it stays


@pytest.mark.parametrize("path", ["/r/launch", "/links", "/login", "//evil.example/x", "/api/links/launch"])
def test_a_forged_host_is_refused_before_any_page_short_url_or_redirect_uses_it(client, link, path):
    response = client.get(path, headers={"Host": "evil.example"})
    assert response.status_code == 400
    assert "evil.example" not in response.headers.get("Location", "")


def test_the_configured_public_host_is_accepted_and_used_for_short_urls(make_app, user, api_headers):
    app = make_app(PUBLIC_BASE_URL="https://s.example.com")
    client = app.test_client()
    response = client.post(
        "/api/links", json={"url": "https://example.com/p"}, headers={**api_headers, "Host": "s.example.com"}
    )
    assert response.status_code == 201 and response.get_json()["short_url"].startswith(
        "https://s.example.com/r/"
    )
    assert client.get("/healthz", headers={"Host": "localhost:8000"}).status_code in (200, 503)  # probes
