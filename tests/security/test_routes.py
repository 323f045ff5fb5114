"""Every route, from the app's own route list, against who may use it.

A new route without an entry in ``ACCESS`` fails the first test: whoever
adds one decides who may call it. Then, for every route and method:
anonymous visitors get the login page (dashboard), a 401 (API) or the
public answer; a logged-in user who is not an admin gets a 404 from admin
routes; every dashboard mutation without its CSRF token is a 400; another
user's link is a 404 on every route that names one; and text anyone can
write (titles, targets, referrers, user agents) comes back escaped on every
page that shows it.
"""

import re

import pytest
from flask import request_started

from tests.dashboard_helpers import OTHER_EMAIL, OTHER_PASSWORD, csrf_token, logged_in, record, visitor
from webapp.auth.tokens import issue_token
from webapp.auth.users import create_user
from webapp.links import service

PUBLIC, TOKEN, LOGIN, ADMIN = "public", "token", "login", "admin"
ACCESS = {
    "redirects.follow_link": PUBLIC,
    "static": PUBLIC,
    "auth.login": PUBLIC,
    "health.healthz": PUBLIC,
    "health.metrics": PUBLIC,
    "api.api_docs": PUBLIC,
    "api.openapi_json": PUBLIC,
    "favicon": PUBLIC,
    "collect.collect": PUBLIC,  # the tracker's beacons: checked by Origin, tests/test_sites.py
    "api.list_links": TOKEN,
    "api.create_link": TOKEN,
    "api.show_link": TOKEN,
    "api.edit_link": TOKEN,
    "api.delete_link": TOKEN,
    "api.remove_alias": TOKEN,
    "api.link_clicks": TOKEN,
    "api.link_history": TOKEN,
    "api.link_qr": TOKEN,
    "api.link_stats": TOKEN,
    "api.bulk_create": TOKEN,
    "api.ingest_pageviews": TOKEN,
    "api.all_stats": TOKEN,
    "auth.logout": LOGIN,
    "dashboard.index": LOGIN,
    "dashboard.export_links": LOGIN,
    "dashboard.export_stats": LOGIN,
    "dashboard.clicks_chart_fragment": LOGIN,
    "dashboard.overview_fragment": LOGIN,
    "dashboard.tables_fragment": LOGIN,
    "dashboard.top_links_fragment": LOGIN,
    "dashboard.links_page": LOGIN,
    "dashboard.create_link": LOGIN,
    "dashboard.link_page": LOGIN,
    "dashboard.remove_alias": LOGIN,
    "dashboard.check_link": LOGIN,
    "dashboard.export_link_clicks": LOGIN,
    "dashboard.delete_link": LOGIN,
    "dashboard.edit_link_page": LOGIN,
    "dashboard.edit_link": LOGIN,
    "dashboard.set_link_enabled": LOGIN,
    "dashboard.link_qr": LOGIN,
    "dashboard.link_stats_fragment": LOGIN,
    "dashboard.bulk_create": LOGIN,
    "dashboard.import_page": LOGIN,
    "dashboard.import_preview": LOGIN,
    "dashboard.import_commit": LOGIN,
    "dashboard.validate_link": LOGIN,
    "dashboard.sites_page": LOGIN,
    "dashboard.create_site": LOGIN,
    "dashboard.delete_site": LOGIN,
    "dashboard.settings_page": LOGIN,
    "dashboard.save_settings": LOGIN,
    "dashboard.tokens_page": LOGIN,
    "dashboard.create_token": LOGIN,
    "dashboard.revoke": LOGIN,
    "reports.slow_pageviews_page": LOGIN,
    "reports.runs_fragment": LOGIN,
    "reports.slow_pageviews_status": LOGIN,
    "reports.slow_pageviews_csv": LOGIN,
    "dashboard.ops_page": ADMIN,
    "dashboard.ops_fragment": ADMIN,
}
# Public and cookie-free: nothing a CSRF token would protect (the Origin check is the defence).
CSRF_EXEMPT = {"collect.collect"}
SAMPLE_ARGUMENTS = {
    "slug": "launch",
    "alias": "old-launch",
    "export_format": "csv",
    "image_format": "svg",
    "filename": "clickboard.css",
}
PAYLOAD = "<script>alert('xss')</script>"
ATTRIBUTE_PAYLOAD = '"><img/src=x/onerror=alert(1)>'


def routes(app):
    """(endpoint, method, path) of every route, with sample arguments filled in."""
    for rule in sorted(app.url_map.iter_rules(), key=lambda rule: rule.rule):
        path = re.sub(r"<(?:[^:>]+:)?([^>]+)>", sample_argument, rule.rule)
        for method in sorted(rule.methods - {"HEAD", "OPTIONS"}):
            yield rule.endpoint, method, path


def sample_argument(match):
    return str(SAMPLE_ARGUMENTS.get(match.group(1), 1))


@pytest.fixture
def link(user):
    link = service.create_link("https://example.com/landing", user, slug="old-launch", title="Launch")[0]
    service.update_link(link, {"slug": "launch"}, user)  # old-launch is now its alias
    return link


def test_every_route_has_an_access_decision(app):
    undecided = sorted({endpoint for endpoint, _, _ in routes(app)} - set(ACCESS))
    assert undecided == [], (
        f"decide who may call these routes (tests/security/test_routes.py ACCESS): {undecided}"
    )


def test_anonymous_visitors_get_the_login_page_a_401_or_the_public_answer(app, link):
    client = visitor(app)
    for endpoint, method, path in routes(app):
        response = client.open(path, method=method)
        response.close()  # a static file is streamed from disk
        access = ACCESS[endpoint]
        where = f"{method} {path} ({access})"
        assert response.status_code < 500 or endpoint == "health.healthz", where  # no worker: 503
        if access == TOKEN:
            assert response.status_code == 401 and "error" in response.get_json(), where
        elif access in (LOGIN, ADMIN):
            # A form post without a session has no CSRF token either: refused before the login check.
            assert response.status_code in ((302,) if method == "GET" else (302, 400)), where
            if response.status_code == 302:
                assert response.location.startswith("/login"), where


def test_admin_routes_are_a_404_for_other_users(app, user, link):
    owner = logged_in(app)
    for endpoint, method, path in routes(app):
        if ACCESS[endpoint] == ADMIN:
            assert owner.open(path, method=method).status_code == 404, f"{method} {path}"


def test_every_dashboard_mutation_without_its_csrf_token_is_a_400(app, user, link):
    owner = logged_in(app)
    for endpoint, method, path in routes(app):
        if method in ("GET", "OPTIONS") or endpoint.startswith("api.") or endpoint in CSRF_EXEMPT:
            continue
        if ACCESS[endpoint] in (LOGIN, ADMIN, PUBLIC):
            response = owner.open(path, method=method, data={"url": "https://example.com/x"})
            assert response.status_code == 400, f"{method} {path} answered {response.status_code}"
    assert service.get_link("launch") is not None  # nothing was deleted on the way


def link_routes(app):
    return [(endpoint, method, path) for endpoint, method, path in routes(app) if "/launch" in path]


@pytest.fixture
def other(app):
    return create_user(OTHER_EMAIL, OTHER_PASSWORD)


def test_another_users_link_is_a_404_on_every_dashboard_route_that_names_it(app, link, other):
    client = logged_in(app, OTHER_EMAIL, OTHER_PASSWORD)
    token = csrf_token(client, "/links")
    for endpoint, method, path in link_routes(app):
        if ACCESS[endpoint] in (LOGIN, ADMIN):
            response = client.open(
                path, method=method, data={"csrf_token": token} if method != "GET" else None
            )
            assert response.status_code == 404, f"{method} {path} answered {response.status_code}"
    assert service.get_link("launch").enabled and service.get_link("launch").aliases  # untouched


def test_another_users_link_is_a_404_on_every_api_route_that_names_it(app, client, link, other):
    _, token = issue_token(other, "theirs")
    for endpoint, method, path in link_routes(app):
        if ACCESS[endpoint] == TOKEN:
            response = client.open(path, method=method, json={}, headers={"Authorization": f"Bearer {token}"})
            assert response.status_code == 404, f"{method} {path} answered {response.status_code}"
    assert service.get_link("launch") is not None


def test_text_anyone_can_write_comes_back_escaped_on_every_page(app, user, link):
    service.update_link(link, {"title": PAYLOAD, "url": f"https://example.com/{ATTRIBUTE_PAYLOAD}"}, user)
    record(link, 2, referrer=f"https://news.example/{PAYLOAD}", user_agent=ATTRIBUTE_PAYLOAD)
    owner = logged_in(app)
    pages = [path for endpoint, method, path in routes(app) if method == "GET" and ACCESS[endpoint] == LOGIN]
    for path in pages:
        response = owner.get(path)
        if response.mimetype != "text/html":
            continue
        assert PAYLOAD not in response.text, path
        assert "<img/src=x" not in response.text, path


SECURITY_HEADERS = ("Content-Security-Policy", "X-Frame-Options", "X-Content-Type-Options", "Referrer-Policy")


def test_every_answer_carries_the_security_headers(app, user, link):
    owner = logged_in(app)
    answers = [(f"GET {path}", owner.get(path)) for endpoint, method, path in routes(app) if method == "GET"]
    answers.append(("404 page", owner.get("/no/such/page")))
    answers.append(("API error", owner.get("/api/links")))
    for label, response in answers:
        response.close()
        missing = [name for name in SECURITY_HEADERS if name not in response.headers]
        assert missing == [], f"{label}: no {missing}"
        assert "'unsafe-eval'" not in response.headers["Content-Security-Policy"], label
        if not label.startswith("GET /api/docs"):
            assert "'unsafe-inline'" not in response.headers["Content-Security-Policy"], label


def test_the_redirects_fast_path_carries_them_too(app, client, link):
    first, second = client.get("/r/launch"), client.get("/r/launch")  # the second from the cache
    for response in (first, second):
        assert response.status_code == 302
        assert all(name in response.headers for name in SECURITY_HEADERS)


def test_the_fragment_doors_answers_carry_them_too_with_hsts(make_app, user):
    app = make_app(PUBLIC_BASE_URL="https://s.example.com")
    session = {"_user_id": user.get_id(), "_fresh": False}  # not fresh: the door may take it anywhere
    cookie = app.session_interface.get_signing_serializer(app).dumps(session)
    client = app.test_client(use_cookies=False)
    flask_requests = []
    request_started.connect(flask_requests.append, app, weak=False)
    try:
        first, second = (
            client.get(
                "/fragments/overview",
                base_url="https://s.example.com",
                headers={"Cookie": f"session={cookie}", "HX-Request": "true"},
            )
            for _ in range(2)
        )
    finally:
        request_started.disconnect(flask_requests.append, app)
    assert len(flask_requests) == 1  # the second answer came from the door
    assert first.status_code == second.status_code == 200
    assert list(second.headers.items()) == list(first.headers.items())
    assert all(name in second.headers for name in (*SECURITY_HEADERS, "Strict-Transport-Security"))


def test_hsts_and_secure_cookies_once_the_public_address_is_https(make_app, user):
    app = make_app(PUBLIC_BASE_URL="https://s.example.com")
    response = app.test_client().get("/login", headers={"Host": "s.example.com"})
    assert response.headers["Strict-Transport-Security"].startswith("max-age=")
    assert app.config["SESSION_COOKIE_SECURE"] and app.config["REMEMBER_COOKIE_SECURE"]
    plain = make_app()
    assert "Strict-Transport-Security" not in plain.test_client().get("/login").headers
    assert not plain.config["SESSION_COOKIE_SECURE"]


def test_no_page_has_an_inline_script_or_style(app, user, link):
    owner = logged_in(app)
    for endpoint, method, path in routes(app):
        if method == "GET" and ACCESS[endpoint] in (LOGIN, PUBLIC) and endpoint != "static":
            response = owner.get(path)
            response.close()
            if response.mimetype == "text/html":
                assert not re.search(r"<script(?![^>]*\bsrc=)[^>]*>", response.text), path
                assert " style=" not in response.text and "<style" not in response.text, path
                assert not re.search(r"\son[a-z]+=", response.text), path  # inline event handlers
