"""The REST API beyond creating a link: list, edit, delete, aliases, history, clicks,
statistics, bulk and QR, through the Flask test client on the real Redis and database."""

import time
from datetime import datetime, timedelta

import pytest

from tests.dashboard_helpers import at, record
from webapp.auth.tokens import issue_token
from webapp.auth.users import create_user
from webapp.links import service
from webapp.links.qr import qr_code
from webapp.models import utcnow

URL = "https://example.com/launch"


@pytest.fixture
def link(user):
    return service.create_link(URL, user, slug="launch", title="Launch", tags=["spring"])[0]


@pytest.fixture
def other_headers(app):
    other = create_user("other@example.com", "another long password")
    return {"Authorization": f"Bearer {issue_token(other, 'other')[1]}"}


def assert_error(response, status, message=""):
    assert response.status_code == status, response.text
    assert message in response.get_json()["error"]


# --- list ---------------------------------------------------------------------------


@pytest.fixture
def many(user):
    links = [service.create_link(f"https://example.com/{n}", user, slug=f"link-{n:02}")[0] for n in range(7)]
    for index, link in enumerate(links):
        record(link, count=index)
    service.update_link(links[3], {"tags": ["news"], "title": "Big news"}, user)
    service.update_link(links[5], {"enabled": False}, user)
    return links


def slugs(response):
    assert response.status_code == 200, response.text
    return [link["slug"] for link in response.get_json()["links"]]


def test_list_is_newest_first_and_pages_with_a_cursor_until_none(client, api_headers, many):
    first = client.get("/api/links?limit=3", headers=api_headers).get_json()
    assert [link["slug"] for link in first["links"]] == ["link-06", "link-05", "link-04"]
    seen = [link["slug"] for link in first["links"]]
    cursor = first["next_cursor"]
    while cursor:
        page = client.get(f"/api/links?limit=3&cursor={cursor}", headers=api_headers).get_json()
        seen += [link["slug"] for link in page["links"]]
        cursor = page["next_cursor"]
    assert seen == [f"link-{n:02}" for n in reversed(range(7))]


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("sort=slug&limit=2", ["link-00", "link-01"]),
        ("sort=-clicks&limit=3", ["link-06", "link-05", "link-04"]),
        ("sort=clicks&limit=2", ["link-00", "link-01"]),
        ("tag=NEWS", ["link-03"]),
        ("q=big%20news", ["link-03"]),
        ("q=example.com/6", ["link-06"]),
        ("enabled=false", ["link-05"]),
    ],
)
def test_list_filters_and_sorts(client, api_headers, many, query, expected):
    assert slugs(client.get(f"/api/links?{query}", headers=api_headers)) == expected


def test_pages_sorted_by_clicks_cover_every_link_once(client, api_headers, many):
    seen, cursor = [], ""
    while True:
        page = client.get(f"/api/links?sort=-clicks&limit=2&cursor={cursor}", headers=api_headers).get_json()
        seen += [link["slug"] for link in page["links"]]
        if not (cursor := page["next_cursor"]):
            break
    assert sorted(seen) == sorted(f"link-{n:02}" for n in range(7))


def test_list_shows_only_the_callers_links(client, other_headers, many):
    assert slugs(client.get("/api/links", headers=other_headers)) == []


@pytest.mark.parametrize(
    "query", ["sort=colour", "limit=0", "limit=201", "limit=ten", "enabled=yes", "cursor=not-ours", "tag=a/b"]
)
def test_bad_list_parameters_are_400_naming_the_parameter(client, api_headers, query):
    response = client.get(f"/api/links?{query}", headers=api_headers)
    assert_error(response, 400)
    assert response.get_json()["details"]["parameter"] == query.split("=")[0]


# --- read, edit, delete ---------------------------------------------------------------


def test_a_link_reads_with_every_contract_field_and_an_etag(client, api_headers, link):
    response = client.get("/api/links/launch", headers=api_headers)
    body = response.get_json()
    for field in ("slug", "url", "short_url", "title", "tags", "redirect_code", "enabled", "expires_at"):
        assert field in body
    assert (body["title"], body["tags"], body["max_clicks"], body["clicks"]) == (
        "Launch",
        ["spring"],
        None,
        0,
    )
    assert response.headers["ETag"]


def test_patch_changes_the_link_and_keeps_its_clicks(client, api_headers, link):
    record(link, count=3)
    response = client.patch(
        "/api/links/launch",
        json={"url": "https://example.com/new", "max_clicks": 100, "expires_at": "2031-01-01T00:00:00Z"},
        headers=api_headers,
    )
    body = response.get_json()
    assert response.status_code == 200
    assert (body["url"], body["max_clicks"], body["expires_at"], body["clicks"]) == (
        "https://example.com/new",
        100,
        "2031-01-01T00:00:00Z",
        3,
    )
    history = client.get("/api/links/launch/history", headers=api_headers).get_json()["history"]
    assert history[0]["by"] == "owner@example.com"
    assert history[0]["changes"]["url"] == [URL, "https://example.com/new"]


def test_patch_with_a_stale_etag_is_412_and_changes_nothing(client, api_headers, link):
    etag = client.get("/api/links/launch", headers=api_headers).headers["ETag"]
    client.patch("/api/links/launch", json={"title": "First editor"}, headers=api_headers)

    response = client.patch(
        "/api/links/launch", json={"title": "Second editor"}, headers={**api_headers, "If-Match": etag}
    )

    assert_error(response, 412, "changed since you read it")
    assert client.get("/api/links/launch", headers=api_headers).get_json()["title"] == "First editor"


def test_patch_with_the_current_etag_succeeds(client, api_headers, link):
    etag = client.get("/api/links/launch", headers=api_headers).headers["ETag"]
    response = client.patch(
        "/api/links/launch", json={"title": "Mine"}, headers={**api_headers, "If-Match": etag}
    )
    assert response.status_code == 200
    assert response.headers["ETag"] != etag


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"max_clicks": 10**400}, "max_clicks"),
        ({"max_clicks": "many"}, "max_clicks"),
        ({"title": "\ud800"}, "title"),
        ({"url": "https://example.com/\ud800"}, "url"),
        ({"tags": {"a": 1}}, "tags"),
        ({"clicks": 5}, "unknown fields: clicks"),
        ([], "JSON object"),
    ],
)
def test_bad_edits_are_400_with_the_reason(client, api_headers, link, body, message):
    assert_error(client.patch("/api/links/launch", json=body, headers=api_headers), 400, message)


def test_an_edit_to_a_slug_another_link_has_is_409(client, api_headers, link, user):
    service.create_link("https://example.org/", user, slug="taken")
    assert_error(client.patch("/api/links/launch", json={"slug": "taken"}, headers=api_headers), 409)


def test_another_users_link_is_404_for_read_edit_delete_and_stats(client, other_headers, link):
    for method, path in [
        ("get", "/api/links/launch"),
        ("patch", "/api/links/launch"),
        ("delete", "/api/links/launch"),
        ("get", "/api/links/launch/clicks"),
        ("get", "/api/links/launch/stats"),
        ("get", "/api/links/launch/qr"),
        ("get", "/api/links/launch/history"),
    ]:
        assert_error(getattr(client, method)(path, json={}, headers=other_headers), 404, "no link")


def test_delete_is_204_and_the_link_is_gone(client, api_headers, link):
    assert client.delete("/api/links/launch", headers=api_headers).status_code == 204
    assert_error(client.get("/api/links/launch", headers=api_headers), 404)
    assert client.get("/r/launch").status_code == 404


def test_renamed_links_alias_is_listed_and_can_be_removed(client, api_headers, link):
    client.patch("/api/links/launch", json={"slug": "liftoff"}, headers=api_headers)
    assert client.get("/api/links/liftoff", headers=api_headers).get_json()["aliases"] == ["launch"]
    assert client.get("/r/launch").status_code == 302

    assert client.delete("/api/links/liftoff/aliases/launch", headers=api_headers).status_code == 204

    assert client.get("/r/launch").status_code == 404
    assert_error(client.delete("/api/links/liftoff/aliases/launch", headers=api_headers), 404, "not an alias")


# --- clicks and statistics --------------------------------------------------------------


def test_clicks_page_newest_first_with_a_cursor(client, api_headers, link):
    record(link, count=5, referrer="https://news.example/a")
    first = client.get("/api/links/launch/clicks?limit=3", headers=api_headers).get_json()
    second = client.get(
        f"/api/links/launch/clicks?cursor={first['next_cursor']}", headers=api_headers
    ).get_json()
    assert len(first["clicks"]) == 3 and len(second["clicks"]) == 2 and second["next_cursor"] is None
    assert first["clicks"][0]["referrer"] == "https://news.example/a"
    assert first["clicks"][0]["ip"] == "203.0.113.0"


def test_link_stats_give_a_series_per_bucket_and_the_tables(client, api_headers, link):
    now = time.time()
    record(link, count=2, at=now - 2 * 86400, referrer="https://news.example/")
    record(link, count=3, at=now - 3600)
    start = (utcnow() - timedelta(days=6)).date().isoformat()

    body = client.get(f"/api/links/launch/stats?from={start}&bucket=day", headers=api_headers).get_json()

    assert body["range_clicks"] == 5
    assert len(body["series"]) == 7
    assert sum(point["clicks"] for point in body["series"]) == 5
    assert body["referrers"] == [{"host": "", "clicks": 3}, {"host": "news.example", "clicks": 2}]
    assert body["browsers"][0]["clicks"] == 5


@pytest.mark.parametrize(
    "query",
    [
        "from=yesterday",
        "bucket=minute",
        "from=2030-01-02&to=2030-01-01",
        "from=2000-01-01&bucket=hour",
        "top=0",
        "tz=Mars/Olympus",
        "range=decade",
        "range=custom&from=2026-03-05&to=2026-03-01",
        "bucket=year",
    ],
)
def test_bad_ranges_are_400(client, api_headers, link, query):
    assert_error(client.get(f"/api/links/launch/stats?{query}", headers=api_headers), 400)


def test_stats_in_a_time_zone_with_the_period_before_and_every_table(client, api_headers, link):
    iphone = "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko)"
    record(
        link, count=2, at=at(datetime(2026, 3, 2, 3)), user_agent=iphone + " Mobile/15E148", ip="81.2.69.160"
    )
    record(link, count=5, at=at(datetime(2026, 2, 27, 12)))
    query = "range=custom&from=2026-03-01&to=2026-03-03&tz=America/New_York"
    body = client.get(f"/api/links/launch/stats?{query}", headers=api_headers).get_json()
    assert (body["tz"], body["bucket"], body["from"]) == (
        "America/New_York",
        "day",
        "2026-03-01T00:00:00-05:00",
    )
    # 03:00 UTC on March 2 is 22:00 on March 1 in New York.
    assert [point["clicks"] for point in body["series"]] == [2, 0, 0]
    assert body["series"][0]["start"] == "2026-03-01T00:00:00-05:00"
    assert body["previous"]["clicks"] == 5 and body["previous"]["change_percent"] == -60.0
    assert body["countries"] == [{"code": "GB", "clicks": 2}]
    assert body["devices"] == [{"name": "mobile", "clicks": 2}]
    assert body["os"] == [{"name": "iOS", "clicks": 2}]


def test_a_preset_range_is_answered_in_its_zone(client, api_headers, link):
    record(link, count=3)
    body = client.get("/api/links/launch/stats?range=today&tz=Asia/Kolkata", headers=api_headers).get_json()
    assert body["bucket"] == "hour" and body["range_clicks"] == 3 and body["from"].endswith("+05:30")


def test_global_stats_total_the_callers_links(client, api_headers, link, user, other_headers):
    record(link, count=4)
    record(service.create_link("https://example.org/", user)[0], count=1)
    body = client.get("/api/stats", headers=api_headers).get_json()
    assert (body["links"], body["clicks"], body["range_clicks"]) == (2, 5, 5)
    assert client.get("/api/stats", headers=other_headers).get_json()["clicks"] == 0


# --- bulk ------------------------------------------------------------------------------------


def test_bulk_creates_each_item_alone_and_says_what_happened(client, api_headers, link):
    items = [
        {"url": "https://example.com/a", "slug": "alpha", "tags": ["bulk"]},
        {"url": URL},  # the same URL without a slug: the existing link
        {"url": "ftp://nope"},
        {"url": "https://example.com/b", "slug": "launch"},  # taken
        "not an object",
    ]
    results = client.post("/api/links/bulk", json=items, headers=api_headers).get_json()["results"]

    assert [(result["index"], result["status"]) for result in results] == [
        (0, "created"),
        (1, "existing"),
        (2, "error"),
        (3, "error"),
        (4, "error"),
    ]
    assert results[0]["link"]["tags"] == ["bulk"]
    assert "http" in results[2]["error"] and "taken" in results[3]["error"]
    assert slugs(client.get("/api/links?tag=bulk", headers=api_headers)) == ["alpha"]


def test_bulk_accepts_a_links_object_and_refuses_too_many(client, api_headers):
    body = {"links": [{"url": f"https://example.com/{n}"} for n in range(3)]}
    assert len(client.post("/api/links/bulk", json=body, headers=api_headers).get_json()["results"]) == 3
    too_many = [{"url": "https://example.com/"}] * 1001
    assert_error(client.post("/api/links/bulk", json=too_many, headers=api_headers), 400, "at most 1000")


# --- QR ----------------------------------------------------------------------------------------


def test_qr_svg_and_png_encode_the_short_url(client, api_headers, link):
    svg = client.get("/api/links/launch/qr?format=svg", headers=api_headers)
    png = client.get("/api/links/launch/qr?format=png&size=4", headers=api_headers)
    assert svg.mimetype == "image/svg+xml" and svg.data.startswith(b"<?xml")
    assert png.mimetype == "image/png" and png.data.startswith(b"\x89PNG")
    # segno draws the same text the same way every time: the image is that of the short URL.
    assert png.data == qr_code("http://localhost/r/launch", "png", 4)[0]
    assert svg.data == qr_code("http://localhost/r/launch", "svg", 8)[0]


@pytest.mark.parametrize("query", ["format=gif", "size=0", "size=41", "size=big"])
def test_bad_qr_requests_are_400(client, api_headers, link, query):
    assert_error(client.get(f"/api/links/launch/qr?{query}", headers=api_headers), 400)


def test_a_link_created_with_limits_answers_410_after_its_expiry(client, api_headers):
    past = (datetime.now() - timedelta(days=1)).strftime("%Y-%m-%dT%H:%M:%S+00:00")
    created = client.post(
        "/api/links", json={"url": URL, "slug": "gone", "expires_at": past}, headers=api_headers
    ).get_json()
    assert created["expires_at"].startswith(past[:10])
    assert client.get("/r/gone").status_code == 410
