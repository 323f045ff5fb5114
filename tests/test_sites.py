"""The page-view tracker: sites (CLI and dashboard) and the public collect endpoint, in-process
with the real Redis; views go through the spool and the drain into ``page_view``."""

import json

import pytest
from sqlalchemy import select

from tests.dashboard_helpers import OTHER_EMAIL, OTHER_PASSWORD, csrf_token, logged_in
from webapp import sites
from webapp.auth.users import create_user
from webapp.extensions import db
from webapp.models import PageView, Site
from webapp.pageviews.ingest import PAGEVIEW_DRAIN, app_pageview_log
from webapp.redis_client import worker_redis

ORIGIN = "https://www.example.com"
FIREFOX = "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0"
GOOD = {"u": f"{ORIGIN}/blog/post", "r": "https://news.example/item", "s": 180, "l": 1450}


@pytest.fixture
def site(user):
    return sites.create_site("Example", [ORIGIN], user)


def beacon(client, site, body=None, origin=ORIGIN, **headers):
    data = body if isinstance(body, bytes | str) else json.dumps(GOOD if body is None else body)
    headers = {"Origin": origin, "User-Agent": FIREFOX, "Content-Type": "text/plain;charset=UTF-8", **headers}
    return client.post(
        f"/collect/{site.public_key}", data=data, headers={k: v for k, v in headers.items() if v}
    )


def drained_views(app):
    app_pageview_log(app).ship_own()
    PAGEVIEW_DRAIN.run(worker_redis(app), db.engine, app.config)
    return db.session.scalars(select(PageView).order_by(PageView.id)).all()


# --- sites --------------------------------------------------------------------------------


def test_flask_sites_create_prints_the_key_and_last_the_exact_tag(runner, app):
    result = runner.invoke(args=["sites", "create", "My blog", "--origin", "https://Blog.Example.com:443/"])
    assert result.exit_code == 0, result.output
    site = db.session.scalars(select(Site)).one()
    assert site.origins == ["https://blog.example.com"]
    lines = result.output.strip().splitlines()
    assert lines[0] == f"site key: {site.public_key}"
    assert (
        lines[-1]
        == f'<script defer src="http://127.0.0.1:8000/static/js/cb-1.js" data-site="{site.public_key}"></script>'
    )
    assert site.public_key in runner.invoke(args=["sites", "list"]).output


@pytest.mark.parametrize(
    "origin", ["ftp://example.com", "https://example.com/blog", "example.com", "https://user@example.com"]
)
def test_flask_sites_create_refuses_what_is_not_an_origin(runner, app, origin):
    result = runner.invoke(args=["sites", "create", "x", "--origin", origin])
    assert result.exit_code == 1 and "Error:" in result.output
    assert db.session.scalars(select(Site)).all() == []


def test_the_sites_page_creates_a_site_and_shows_its_tag(app, user):
    owner = logged_in(app)
    data = {
        "name": "Docs",
        "origins": "https://docs.example.com\nhttp://localhost:8080",
        "csrf_token": csrf_token(owner, "/sites"),
    }
    assert owner.post("/sites", data=data).status_code == 303
    site = db.session.scalars(select(Site)).one()
    page = owner.get("/sites").text
    assert f"data-site=&#34;{site.public_key}&#34;&gt;&lt;/script&gt;" in page  # shown as text, escaped
    assert site.origins == ["http://localhost:8080", "https://docs.example.com"]


def test_the_sites_page_says_what_is_wrong_beside_the_field(app, user):
    owner = logged_in(app)
    data = {"name": "Docs", "origins": "not an origin", "csrf_token": csrf_token(owner, "/sites")}
    response = owner.post("/sites", data=data)
    assert response.status_code == 400 and 'aria-describedby="site-error"' in response.text


def test_only_its_owner_sees_and_deletes_a_site(app, user, site):
    create_user(OTHER_EMAIL, OTHER_PASSWORD)
    other = logged_in(app, OTHER_EMAIL, OTHER_PASSWORD)
    assert site.public_key not in other.get("/sites").text
    assert (
        other.post(f"/sites/{site.id}/delete", data={"csrf_token": csrf_token(other, "/sites")}).status_code
        == 404
    )
    owner = logged_in(app)
    assert (
        owner.post(f"/sites/{site.id}/delete", data={"csrf_token": csrf_token(owner, "/sites")}).status_code
        == 303
    )
    assert db.session.scalars(select(Site)).all() == []


# --- the collect endpoint -------------------------------------------------------------------


def test_a_view_from_an_allowed_origin_is_kept_with_its_site_and_timings(app, client, site):
    response = beacon(client, site)
    assert response.status_code == 202
    assert response.headers["Access-Control-Allow-Origin"] == ORIGIN and "Origin" in response.headers["Vary"]
    assert "Set-Cookie" not in response.headers
    (view,) = drained_views(app)
    assert (view.site_id, view.url, view.response_time_ms, view.load_time_ms, view.referrer) == (
        site.id, GOOD["u"], 180, 1450, "https://news.example/item",
    )  # fmt: skip


def test_a_preflight_is_answered_for_allowed_origins_only(client, site):
    allowed = client.options(f"/collect/{site.public_key}", headers={"Origin": ORIGIN})
    assert allowed.status_code == 204 and allowed.headers["Access-Control-Allow-Methods"] == "POST"
    refused = client.options(f"/collect/{site.public_key}", headers={"Origin": "https://evil.example"})
    assert refused.status_code == 403 and "Access-Control-Allow-Origin" not in refused.headers


@pytest.mark.parametrize(
    ("body", "origin", "status"),
    [
        (GOOD, "https://evil.example", 403),
        (GOOD, None, 403),
        ({**GOOD, "u": "https://evil.example/page"}, ORIGIN, 400),  # a page of another origin
        ({**GOOD, "s": -5}, ORIGIN, 400),
        ({**GOOD, "l": 10**12}, ORIGIN, 400),
        ({**GOOD, "s": "fast"}, ORIGIN, 400),
        ({**GOOD, "l": 10**400}, ORIGIN, 400),
        ({**GOOD, "r": "\ud800"}, ORIGIN, 400),
        ({**GOOD, "u": "\ud800"}, ORIGIN, 400),
        ({k: v for k, v in GOOD.items() if k != "u"}, ORIGIN, 400),
        ("{not json", ORIGIN, 400),
        ("[1, 2]", ORIGIN, 400),
        (b"\xff\xfe", ORIGIN, 400),
        ("[" * 100_000, ORIGIN, 413),
        (json.dumps({**GOOD, "pad": "x" * 5000}), ORIGIN, 413),
    ],
)
def test_bad_views_are_refused_and_nothing_is_stored(app, client, site, body, origin, status):
    assert beacon(client, site, body, origin=origin).status_code == status
    assert drained_views(app) == []


def test_an_unknown_key_is_a_404(client, site):
    response = client.post("/collect/no-such-key", data=json.dumps(GOOD), headers={"Origin": ORIGIN})
    assert response.status_code == 404 and "error" in response.get_json()


@pytest.mark.parametrize(
    "headers",
    [
        {"DNT": "1"},
        {"Sec-GPC": "1"},
        {"User-Agent": "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)"},
    ],
)
def test_visitors_who_opt_out_and_bots_get_a_204_and_are_not_kept(app, client, site, headers):
    assert beacon(client, site, **headers).status_code == 204
    assert drained_views(app) == []


def test_a_flood_from_one_client_is_cut_at_the_limit(make_app, site):
    # Redis that cannot answer within the request timeout lets views through (they are
    # small, and kept): on a loaded machine 0.1 s is too short to count on, so wait longer.
    app = make_app(REDIS_SOCKET_TIMEOUT=5)
    client = app.test_client()
    limit = app.config["COLLECT_CLIENT_PER_MINUTE"]
    statuses = [beacon(client, site).status_code for _ in range(limit + 5)]
    assert statuses.count(202) == limit and statuses[-1] == 429
    assert len(drained_views(app)) == limit


def test_a_site_limit_holds_across_clients(make_app, site):
    app = make_app(COLLECT_SITE_PER_MINUTE=3)
    statuses = []
    for index in range(5):
        client = app.test_client()
        client.environ_base["REMOTE_ADDR"] = f"198.51.100.{index + 1}"
        statuses.append(beacon(client, site).status_code)
    assert statuses == [202, 202, 202, 429, 429]


def test_the_slow_page_report_can_be_limited_to_a_site(app, client, site, runner):
    beacon(client, site, {**GOOD, "u": f"{ORIGIN}/blog/slow", "s": 2500})
    drained_views(app)
    db.session.add(
        PageView(
            url="https://elsewhere.example/blog/x",
            created_at=db.session.scalar(select(PageView.created_at)),
            response_time_ms=3000,
        )
    )
    db.session.commit()
    everything = json.loads(runner.invoke(args=["report", "slow-pageviews", "--now"]).output)
    only_site = json.loads(
        runner.invoke(args=["report", "slow-pageviews", "--now", "--site", site.public_key]).output
    )
    assert (everything["slow_views"], only_site["slow_views"]) == (2, 1)
    assert only_site["slowest_urls"][0]["url"] == f"{ORIGIN}/blog/slow"


def test_a_view_of_a_site_deleted_before_the_drain_is_kept_without_it(app, client, site):
    assert beacon(client, site).status_code == 202
    sites.delete_site(site)  # between the 202 and the drain
    (view,) = drained_views(app)
    assert view.site_id is None and view.url == GOOD["u"]


def test_a_pages_query_and_fragment_are_not_kept(app, client, site):
    assert (
        beacon(client, site, {**GOOD, "u": f"{ORIGIN}/reset?token=secret&email=a@b.example#top"}).status_code
        == 202
    )
    (view,) = drained_views(app)
    assert view.url == f"{ORIGIN}/reset"


def test_the_rate_limit_keys_do_not_name_the_client(app, client, site, redis_client):
    beacon(client, site)
    keys = [key for key in redis_client.keys("*collect*client*")]
    assert keys and not any("127.0.0.1" in key for key in keys)
