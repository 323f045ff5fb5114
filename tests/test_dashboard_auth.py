"""Who may see and change what in the dashboard, in-process with CSRF protection on.

Every dashboard page, fragment and mutation is behind the login; every
mutation needs the session's CSRF token; failed logins are throttled;
``next`` never leaves the site; users see their own links and tokens only,
admins all links; the redirect and the health check stay public.
"""

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any
from urllib.parse import urljoin, urlsplit

import pytest
from sqlalchemy import func, select

from tests.broker import queue_depth
from tests.dashboard_helpers import (
    ADMIN_EMAIL,
    ADMIN_PASSWORD,
    OTHER_EMAIL,
    OTHER_PASSWORD,
    OWNER_EMAIL,
    OWNER_PASSWORD,
    csrf_token,
    htmx_csrf_token,
    is_logged_in,
    location,
    log_in,
    logged_in,
    record,
    stat,
    visitor,
)
from webapp.auth import users
from webapp.auth.throttle import CLIENT_LIMIT, FREE_FAILURES, PAIR_LIMIT
from webapp.auth.tokens import issue_token
from webapp.auth.users import create_user
from webapp.auth.views import load_user
from webapp.config import load_config
from webapp.extensions import db
from webapp.links import service
from webapp.models import ApiToken, Link, ReportRun, User

WRONG_PASSWORD = "not the password"

PAGES = [
    "/",
    "/fragments/overview",
    "/fragments/clicks-chart",
    "/fragments/top-links",
    "/links",
    "/links/launch",
    "/links/launch/stats",
    "/ops",
    "/fragments/ops",
    "/tokens",
    "/reports/slow-pageviews",
    "/reports/slow-pageviews/status",
    "/reports/slow-pageviews/runs",
]
MUTATIONS = [
    "/links",
    "/links/validate",
    "/links/launch/enabled",
    "/links/launch/check",
    "/links/launch/delete",
    "/tokens",
    "/tokens/{token_id}/revoke",
    "/reports/slow-pageviews/status",
    "/logout",
]


@pytest.fixture
def link(user):
    return service.create_link("https://example.com/landing", user, slug="launch")[0]


@pytest.fixture
def token(user):
    """The owner's API token: (ApiToken, plaintext)."""
    return issue_token(user, "deploy")


@pytest.fixture
def other(app):
    return create_user(OTHER_EMAIL, OTHER_PASSWORD)


@pytest.fixture
def admin(app):
    return create_user(ADMIN_EMAIL, ADMIN_PASSWORD, is_admin=True)


@pytest.fixture
def anonymous(app, link, token):
    """A visitor who never logged in, with a link and a token in the database to aim at."""
    return visitor(app)


@pytest.fixture
def owner(app, user):
    return logged_in(app)


def fresh(model, ident):
    """The row as the database has it now, not as this test's session remembers it."""
    db.session.expire_all()
    return db.session.get(model, ident)


def link_count():
    return db.session.scalar(select(func.count()).select_from(Link))


# --- the login requirement ----------------------------------------------------


def test_csrf_protection_is_on_in_the_app_under_test(app):
    assert app.config.get("WTF_CSRF_ENABLED", True) is True


@pytest.mark.parametrize("path", PAGES)
def test_anonymous_get_is_redirected_to_login_with_next(anonymous, path):
    response = anonymous.get(path)
    assert response.status_code == 302
    login_path, query = location(response)
    assert login_path == "/login"
    assert query["next"][0].rstrip("?") == path


@pytest.mark.parametrize("path", MUTATIONS)
def test_anonymous_post_with_valid_csrf_token_is_redirected_to_login(anonymous, token, path):
    # The token comes from the login page, so the refusal is the login check, not CSRF.
    csrf = csrf_token(anonymous, "/login")
    response = anonymous.post(path.format(token_id=token[0].id), data={"csrf_token": csrf})
    assert response.status_code == 302
    assert location(response)[0] == "/login"


@pytest.mark.parametrize(
    ("method", "path"), [("GET", path) for path in PAGES] + [("POST", path) for path in MUTATIONS]
)
def test_anonymous_htmx_request_gets_401_with_hx_redirect_to_login(anonymous, token, method, path):
    csrf = csrf_token(anonymous, "/login")
    response = anonymous.open(
        path.format(token_id=token[0].id),
        method=method,
        headers={"HX-Request": "true", "X-CSRFToken": csrf},
    )
    assert response.status_code == 401
    assert response.headers["HX-Redirect"] == "/login"


def test_anonymous_posts_change_nothing(anonymous, link, token, redis_client):
    csrf = csrf_token(anonymous, "/login")
    data = {
        "csrf_token": csrf,
        "url": "https://example.com/new",
        "slug": "sneaky",
        "name": "x",
        "enabled": "0",
    }
    for path in MUTATIONS:
        anonymous.post(path.format(token_id=token[0].id), data=data)
    assert fresh(Link, link.id).enabled
    assert link_count() == 1
    assert fresh(ApiToken, token[0].id).revoked_at is None
    assert db.session.scalar(select(func.count()).select_from(ApiToken)) == 1
    assert db.session.scalar(select(func.count()).select_from(ReportRun)) == 0
    assert queue_depth("default") == 0  # no target check sent


def test_login_page_is_public(app):
    response = visitor(app).get("/login")
    assert response.status_code == 200
    assert 'name="password"' in response.text


def test_login_returns_to_the_page_first_asked_for(app, user, link):
    client = visitor(app)
    next_url = location(client.get("/links/launch"))[1]["next"][0]
    response = log_in(client, next_url=next_url)
    assert response.status_code == 302
    assert location(response)[0] == "/links/launch"
    assert client.get(response.headers["Location"]).status_code == 200


# --- CSRF ---------------------------------------------------------------------


@dataclass
class Mutation:
    path: str
    data: dict
    ok_status: int
    # Whether the mutation took effect: (client, fixtures) -> bool; None if it changes nothing.
    took_effect: Any = None


def created_link(client, fx):
    return service.get_link("fresh-link") is not None


def disabled(client, fx):
    return not fresh(Link, fx["link_id"]).enabled


def deleted(client, fx):
    return fresh(Link, fx["link_id"]) is None


def check_sent(client, fx):
    return queue_depth("default") == 1  # the check task, on its queue


def created_token(client, fx):
    return db.session.scalar(select(func.count()).where(ApiToken.name == "ci")) == 1


def revoked(client, fx):
    return fresh(ApiToken, fx["token_id"]).revoked_at is not None


def report_requested(client, fx):
    return db.session.scalar(select(func.count()).select_from(ReportRun)) > 0


def logged_out(client, fx):
    return not is_logged_in(client)


CSRF_MUTATIONS = {
    "create link": Mutation(
        "/links", {"url": "https://example.com/new", "slug": "fresh-link"}, 303, created_link
    ),
    "validate link": Mutation("/links/validate", {"url": "https://example.com/new", "slug": ""}, 200),
    "disable link": Mutation("/links/launch/enabled", {"enabled": "0"}, 303, disabled),
    "check link target": Mutation("/links/launch/check", {}, 303, check_sent),
    "delete link": Mutation("/links/launch/delete", {}, 303, deleted),
    "create token": Mutation("/tokens", {"name": "ci"}, 201, created_token),
    "revoke token": Mutation("/tokens/{token_id}/revoke", {}, 303, revoked),
    "refresh report": Mutation("/reports/slow-pageviews/status", {}, 200, report_requested),
    "log out": Mutation("/logout", {}, 302, logged_out),
}


@pytest.fixture
def fx(link, token, redis_client):
    return {"link_id": link.id, "token_id": token[0].id, "redis": redis_client}


def send(client, mutation, fx, csrf=None, csrf_header=None):
    data = dict(mutation.data)
    if csrf:
        data["csrf_token"] = csrf
    headers = {"X-CSRFToken": csrf_header} if csrf_header else {}
    return client.post(mutation.path.format(token_id=fx["token_id"]), data=data, headers=headers)


@pytest.mark.parametrize("name", CSRF_MUTATIONS)
def test_logged_in_post_without_csrf_token_is_refused_and_changes_nothing(owner, fx, name):
    mutation = CSRF_MUTATIONS[name]
    response = send(owner, mutation, fx)
    assert response.status_code == 400
    assert "CSRF" in response.text
    if mutation.took_effect:
        assert not mutation.took_effect(owner, fx)


@pytest.mark.parametrize("name", CSRF_MUTATIONS)
def test_logged_in_post_with_another_sessions_csrf_token_is_refused(app, owner, fx, name):
    stranger_token = csrf_token(visitor(app), "/login")
    mutation = CSRF_MUTATIONS[name]
    response = send(owner, mutation, fx, csrf=stranger_token)
    assert response.status_code == 400
    if mutation.took_effect:
        assert not mutation.took_effect(owner, fx)


@pytest.mark.parametrize("name", CSRF_MUTATIONS)
def test_logged_in_post_with_csrf_form_field_from_the_page_works(owner, fx, name):
    mutation = CSRF_MUTATIONS[name]
    response = send(owner, mutation, fx, csrf=csrf_token(owner, "/tokens"))
    assert response.status_code == mutation.ok_status
    if mutation.took_effect:
        assert mutation.took_effect(owner, fx)


@pytest.mark.parametrize("name", CSRF_MUTATIONS)
def test_logged_in_post_with_htmx_csrf_header_from_the_page_works(owner, fx, name):
    mutation = CSRF_MUTATIONS[name]
    response = send(owner, mutation, fx, csrf_header=htmx_csrf_token(owner, "/tokens"))
    assert response.status_code == mutation.ok_status
    if mutation.took_effect:
        assert mutation.took_effect(owner, fx)


def test_login_post_without_csrf_token_is_refused(app, user):
    client = visitor(app)
    client.get("/login")
    response = client.post("/login", data={"email": OWNER_EMAIL, "password": OWNER_PASSWORD})
    assert response.status_code == 400
    assert not is_logged_in(client)


# --- logging in and out ---------------------------------------------------------


def test_login_with_the_right_password_redirects_to_the_dashboard(app, user):
    client = visitor(app)
    response = log_in(client)
    assert (response.status_code, location(response)[0]) == (302, "/")
    assert is_logged_in(client)


def test_login_with_a_wrong_password_is_refused(app, user):
    client = visitor(app)
    response = log_in(client, password=WRONG_PASSWORD)
    assert response.status_code == 401
    assert "Wrong email or password" in response.text
    assert not is_logged_in(client)


def test_login_for_an_unknown_email_says_the_same_as_a_wrong_password(app, user):
    response = log_in(visitor(app), email="nobody@example.com", password=OWNER_PASSWORD)
    assert response.status_code == 401
    assert "Wrong email or password" in response.text


def test_session_cookie_is_httponly_and_samesite_lax(app, user):
    response = log_in(visitor(app))
    cookies = [value for value in response.headers.getlist("Set-Cookie") if value.startswith("session=")]
    assert cookies, "login set no session cookie"
    attributes = [part.strip().lower() for part in cookies[-1].split(";")]
    assert "httponly" in attributes
    assert "samesite=lax" in attributes


def test_logout_ends_the_session(owner):
    response = owner.post("/logout", data={"csrf_token": csrf_token(owner, "/links")})
    assert (response.status_code, location(response)[0]) == (302, "/login")
    assert owner.get("/links").status_code == 302


def session_cookie(client):
    return client.get_cookie("session").value


def with_session_cookie(app, value):
    """Another browser holding a copy of a session cookie."""
    copy = visitor(app, address="198.51.100.20")
    copy.set_cookie("session", value)
    return copy


def log_out(client):
    return client.post("/logout", data={"csrf_token": csrf_token(client, "/links")})


def test_a_copied_session_cookie_works_until_logout(app, owner):
    copy = with_session_cookie(app, session_cookie(owner))
    assert is_logged_in(copy)
    log_out(owner)
    assert not is_logged_in(copy)


def test_logout_ends_the_user_s_sessions_in_every_browser(app, user, owner):
    laptop = logged_in(app)
    log_out(owner)
    assert not is_logged_in(laptop)
    assert is_logged_in(logged_in(app))  # logging in again works


def test_logout_leaves_other_users_logged_in(app, owner, other):
    someone_else = logged_in(app, OTHER_EMAIL, OTHER_PASSWORD)
    log_out(owner)
    assert is_logged_in(someone_else)


def test_a_new_password_ends_the_sessions_opened_with_the_old_one(app, user, owner):
    fresh(User, user.id).set_password("a brand new password")
    db.session.commit()
    assert not is_logged_in(owner)
    assert is_logged_in(logged_in(app, password="a brand new password"))


@pytest.mark.parametrize("session_id", ["1", "1:", ":0", "1:x", "x:0", "1:0:0", ""])
def test_a_session_id_that_is_not_user_and_epoch_logs_nobody_in(app, user, session_id):
    with app.test_request_context():
        assert load_user(session_id) is None


def test_logout_by_get_is_not_allowed_and_keeps_the_session(owner):
    assert owner.get("/logout").status_code == 405
    assert is_logged_in(owner)


def test_login_page_of_a_logged_in_user_redirects_to_the_dashboard(owner):
    response = owner.get("/login")
    assert (response.status_code, location(response)[0]) == (302, "/")


# --- throttling -------------------------------------------------------------------


def fail_logins(client, times, email=OWNER_EMAIL):
    for _ in range(times):
        assert log_in(client, email=email, password=WRONG_PASSWORD).status_code == 401


def test_sixth_attempt_after_five_failures_is_refused_even_with_the_right_password(app, user):
    client = visitor(app)
    fail_logins(client, PAIR_LIMIT)
    response = log_in(client)
    assert response.status_code == 429
    assert "Too many failed attempts" in response.text and int(response.headers["Retry-After"]) > 0
    assert not is_logged_in(client)


def test_four_failures_still_let_the_right_password_in(app, user):
    client = visitor(app)
    fail_logins(client, PAIR_LIMIT - 1)
    assert log_in(client).status_code == 302


def test_failures_elsewhere_never_lock_out_the_right_password_from_a_new_address(app, user):
    # Five wrong passwords used to lock the account for everyone for 15 minutes.
    fail_logins(visitor(app, address="198.51.100.9"), PAIR_LIMIT)
    for index in range(FREE_FAILURES):
        fail_logins(visitor(app, address=f"198.51.101.{index + 1}"), 1)
    assert log_in(visitor(app, address="203.0.113.77")).status_code == 302


def test_guessing_one_account_from_many_addresses_is_slowed_with_a_growing_delay(app, user):
    guessers = [visitor(app, address=f"198.51.100.{index + 1}") for index in range(FREE_FAILURES + 3)]
    for guesser in guessers:
        fail_logins(guesser, 1)
    # Past the free failures, each guesser that already failed must wait before its next try.
    waits = [log_in(guesser, password=WRONG_PASSWORD) for guesser in guessers[:2]]
    assert [response.status_code for response in waits] == [429, 429]
    assert int(waits[0].headers["Retry-After"]) >= 2**2  # three failures over: 1 s doubled twice


def test_failures_on_many_emails_from_one_address_block_that_address(app, user):
    client = visitor(app, address="198.51.100.9")
    for index in range(CLIENT_LIMIT):
        fail_logins(client, 1, email=f"guess{index}@example.com")
    assert log_in(client).status_code == 429


def test_failures_of_one_address_do_not_block_another_address_for_another_email(app, user, other):
    fail_logins(visitor(app, address="198.51.100.9"), PAIR_LIMIT, email=OTHER_EMAIL)
    assert log_in(visitor(app, address="203.0.113.77")).status_code == 302


def test_a_success_forgets_that_clients_failures_on_the_account(app, user):
    client = visitor(app, address="198.51.100.9")
    fail_logins(client, PAIR_LIMIT - 1)
    assert log_in(client).status_code == 302
    client = visitor(app, address="198.51.100.9")  # logged out: a new session from the same place
    fail_logins(client, PAIR_LIMIT - 1)
    assert log_in(client).status_code == 302


def test_concurrent_tries_cannot_pass_the_limit_between_check_and_count(app, user):
    client_address = "198.51.100.44"

    def wrong_try(_):
        return log_in(visitor(app, address=client_address), password=WRONG_PASSWORD).status_code

    with ThreadPoolExecutor(max_workers=16) as pool:
        statuses = list(pool.map(wrong_try, range(16)))
    assert statuses.count(401) == PAIR_LIMIT  # the password was checked five times, no more
    assert statuses.count(429) == 16 - PAIR_LIMIT


def test_an_unknown_email_costs_a_password_check_too(app, user, monkeypatch):
    checked = []
    original = users.check_password_hash
    monkeypatch.setattr(users, "check_password_hash", lambda *args: checked.append(1) or original(*args))
    assert log_in(visitor(app), email="nobody@example.com", password=WRONG_PASSWORD).status_code == 401
    assert checked == [1]


def test_throttle_counts_the_client_address_behind_a_trusted_proxy(make_app, user):
    # Behind a reverse proxy every request comes from the proxy's address:
    # one person's failures must not lock everyone else out.
    behind_proxy = make_app(TRUSTED_PROXIES=["127.0.0.1"])
    attacker = visitor(behind_proxy)
    for index in range(CLIENT_LIMIT):
        response = log_in(
            attacker,
            email=f"guess{index}@example.com",
            password=WRONG_PASSWORD,
            headers={"X-Forwarded-For": "198.51.100.9"},
        )
        assert response.status_code == 401
    response = log_in(visitor(behind_proxy), headers={"X-Forwarded-For": "203.0.113.77"})
    assert response.status_code == 302
    blocked = log_in(attacker, headers={"X-Forwarded-For": "198.51.100.9"})
    assert blocked.status_code == 429


# --- next -----------------------------------------------------------------------


def resolve_like_a_browser(location_header, page="http://localhost/login"):
    """Where a browser goes: the WHATWG URL parser reads "\\" as "/" in http URLs."""
    return urlsplit(urljoin(page, location_header.replace("\\", "/")))


@pytest.mark.parametrize(
    "next_url",
    [
        "https://evil.example",
        "https://evil.example/links",
        "//evil.example",
        "//evil.example/links",
        "///evil.example",
        "http:/evil.example",
        "javascript:alert(1)",
        "evil.example",
    ],
)
def test_login_next_pointing_off_site_goes_to_the_dashboard(app, user, next_url):
    response = log_in(visitor(app), next_url=next_url)
    assert response.status_code == 302
    assert response.headers["Location"] == "/"


@pytest.mark.parametrize(
    "next_url", ["/\\evil.example", "/\\/evil.example", "\\\\evil.example", "/\\\\evil.example"]
)
def test_login_next_with_backslashes_stays_on_site(app, user, next_url):
    response = log_in(visitor(app), next_url=next_url)
    assert response.status_code == 302
    assert resolve_like_a_browser(response.headers["Location"]).netloc == "localhost"


@pytest.mark.parametrize("next_url", ["/links", "/links?q=launch&sort=clicks", "/ops"])
def test_login_next_on_site_is_followed(app, user, next_url):
    response = log_in(visitor(app), next_url=next_url)
    assert response.headers["Location"] == next_url


# --- whose links --------------------------------------------------------------------


@pytest.fixture
def two_owners(user, other):
    """The owner's link with 3 clicks, the other user's with 5."""
    mine = service.create_link("https://example.com/mine", user, slug="mine")[0]
    theirs = service.create_link("https://example.org/theirs", other, slug="theirs")[0]
    record(mine, 3)
    record(theirs, 5)
    return mine, theirs


@pytest.mark.parametrize("path", ["/links/theirs", "/links/theirs/stats"])
def test_another_users_link_page_is_404(owner, two_owners, path):
    assert owner.get(path).status_code == 404


@pytest.mark.parametrize(
    ("path", "data"),
    [("/links/theirs/enabled", {"enabled": "0"}), ("/links/theirs/check", {}), ("/links/theirs/delete", {})],
)
def test_another_users_link_cannot_be_changed(owner, two_owners, path, data):
    _, theirs = two_owners
    response = owner.post(path, data={**data, "csrf_token": csrf_token(owner, "/links")})
    assert response.status_code == 404
    assert fresh(Link, theirs.id).enabled


def test_links_list_shows_only_own_links(owner, two_owners):
    page = owner.get("/links").text
    assert "/r/mine" in page
    assert "/r/theirs" not in page


def test_links_search_does_not_find_another_users_link(owner, two_owners):
    page = owner.get("/links", query_string={"q": "theirs"}).text
    assert "/r/theirs" not in page


def test_top_links_show_only_own_links(owner, two_owners):
    page = owner.get("/fragments/top-links").text
    assert "/r/mine" in page
    assert "/r/theirs" not in page


def test_totals_count_only_own_links_and_clicks(owner, two_owners):
    page = owner.get("/fragments/overview").text
    assert (stat(page, "links"), stat(page, "clicks"), stat(page, "clicks-24h")) == (1, 3, 3)


def test_chart_of_another_users_link_shows_no_clicks(owner, two_owners):
    _, theirs = two_owners
    page = owner.get("/fragments/clicks-chart", query_string={"link": theirs.id}).text
    assert "No clicks in this period." in page


def test_admin_sees_every_link(app, admin, two_owners):
    client = logged_in(app, ADMIN_EMAIL, ADMIN_PASSWORD)
    page = client.get("/links").text
    assert "/r/mine" in page and "/r/theirs" in page
    assert client.get("/links/theirs").status_code == 200
    overview = client.get("/fragments/overview").text
    assert (stat(overview, "links"), stat(overview, "clicks")) == (2, 8)


def test_admin_top_links_include_every_owner(app, admin, two_owners):
    page = logged_in(app, ADMIN_EMAIL, ADMIN_PASSWORD).get("/fragments/top-links").text
    assert page.index("/r/theirs") < page.index("/r/mine")  # 5 clicks before 3


# --- whose tokens --------------------------------------------------------------------


def api_status(client, plaintext, slug="launch"):
    return client.get(f"/api/links/{slug}", headers={"Authorization": f"Bearer {plaintext}"}).status_code


def test_revoking_another_users_token_is_404_and_the_token_keeps_working(app, owner, link, other):
    their_token, plaintext = issue_token(other, "theirs")
    response = owner.post(
        f"/tokens/{their_token.id}/revoke", data={"csrf_token": csrf_token(owner, "/tokens")}
    )
    assert response.status_code == 404
    assert fresh(ApiToken, their_token.id).revoked_at is None
    assert api_status(visitor(app), plaintext) == 404  # authenticated; the link is not theirs


def test_tokens_page_lists_only_own_tokens(owner, token, other):
    issue_token(other, "someone-elses-token")
    page = owner.get("/tokens").text
    assert "deploy" in page
    assert "someone-elses-token" not in page


def test_revoked_token_gets_401_on_the_api(app, owner, link, token):
    api_token, plaintext = token
    assert api_status(visitor(app), plaintext) == 200
    owner.post(f"/tokens/{api_token.id}/revoke", data={"csrf_token": csrf_token(owner, "/tokens")})
    assert api_status(visitor(app), plaintext) == 401


# --- what stays public ----------------------------------------------------------------


def test_redirect_stays_public(anonymous, link):
    response = anonymous.get("/r/launch")
    assert (response.status_code, response.headers["Location"]) == (302, "https://example.com/landing")


def test_healthz_stays_public(anonymous):
    response = anonymous.get("/healthz")
    assert response.status_code in (200, 503)  # 503: no worker in this test; still not a login
    assert response.is_json and "status" in response.get_json()


def test_passwords_are_hashed_with_scrypt_unless_configured_otherwise(make_app):
    make_app(PASSWORD_HASH_METHOD=load_config({})["PASSWORD_HASH_METHOD"])
    scrypt_user = create_user("scrypt@example.com", OTHER_PASSWORD)
    make_app(PASSWORD_HASH_METHOD="pbkdf2:sha256:1")
    cheap_user = create_user("cheap@example.com", OTHER_PASSWORD)

    assert scrypt_user.password_hash.startswith("scrypt:")
    assert cheap_user.password_hash.startswith("pbkdf2:sha256:1$")
    # A hash names its own method: changing the setting keeps old passwords working.
    assert scrypt_user.check_password(OTHER_PASSWORD) and cheap_user.check_password(OTHER_PASSWORD)
