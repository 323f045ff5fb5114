"""The door before Flask for the home page's regions (webapp/dashboard/fragment_door.py).

The real app on the test's real Redis. A request Flask handled is one that
sent Flask's ``request_started``; the door sends nothing. A poll the door
answers is the one Flask answered, byte for byte and header for header;
everything the door must not answer (no session, a bad one, a user whose
epoch, zone or admin flag changed, no copy, no Redis, an untrusted host, a
session Flask would send again) reaches Flask, which answers as before.
"""

import html
import re
import time
from urllib.parse import urlsplit

import pytest
from flask import request, request_started
from flask_login.utils import _create_identifier
from itsdangerous import TimestampSigner

from tests.dashboard_helpers import (
    ADMIN_EMAIL,
    ADMIN_PASSWORD,
    OTHER_EMAIL,
    OTHER_PASSWORD,
    Visitor,
    htmx_csrf_token,
    logged_in,
    record,
    stat,
    visitor,
)
from webapp.auth.users import create_user
from webapp.dashboard import viewers
from webapp.dashboard.fragment_door import REFRESH_AGE, FragmentDoor, login_identifier
from webapp.dashboard.shared_fragments import render_counts
from webapp.extensions import db
from webapp.links import service
from webapp.models import User
from webapp.redis_client import request_redis

FRAGMENTS = ("/fragments/overview", "/fragments/clicks-chart", "/fragments/top-links", "/fragments/tables")
HTMX = {"HX-Request": "true"}
LIVE_REGION = re.compile(r'hx-get="([^"]+)" hx-trigger="cb:poll" data-live-seconds=')


@pytest.fixture
def flask_requests(app):
    """The paths of the requests Flask itself handled, in order (the door's answers are not here)."""
    paths = []

    def count(sender, **extra):
        paths.append(request.path)  # sent inside the request's context

    request_started.connect(count, weak=False)
    yield paths
    request_started.disconnect(count)


@pytest.fixture
def clicks(user):
    link = service.create_link("https://example.com/mine", user, slug="mine")[0]
    record(link, 3)
    return link


def poll(client, path="/fragments/overview", headers=None):
    return client.get(path, headers={**HTMX, **(headers or {})})


def cookie_of(client, app):
    return client.get_cookie(app.config["SESSION_COOKIE_NAME"]).value


def session_data(client, app):
    return app.session_interface.get_signing_serializer(app).loads(cookie_of(client, app))


def signed_cookie(app, data, monkeypatch, age=0):
    """A session cookie holding ``data`` as ``app`` signs it, signed ``age`` seconds ago."""
    with monkeypatch.context() as patch:
        patch.setattr(TimestampSigner, "get_timestamp", lambda signer: int(time.time() - age))
        return app.session_interface.get_signing_serializer(app).dumps(data)


def with_cookie(app, cookie):
    """A new visitor carrying ``cookie`` as its session (a second browser, a stolen copy)."""
    client = visitor(app)
    client.set_cookie(app.config["SESSION_COOKIE_NAME"], cookie)
    return client


def answer_of(response):
    return response.status_code, list(response.headers.items()), response.data


# --- served by the door -----------------------------------------------------------------


@pytest.mark.parametrize("path", [*FRAGMENTS, "/fragments/clicks-chart?range=7d"])
def test_a_hit_is_served_by_the_door_as_flask_served_it(app, clicks, flask_requests, redis_client, path):
    owner = logged_in(app)
    rendered = poll(owner, path)  # Flask: renders, stores the copy and the viewer's record
    user_id = session_data(owner, app)["_user_id"].partition(":")[0]
    redis_client.delete(viewers.record_key(app.config["CLICKBOARD_NAMESPACE"], user_id))
    flask_hit = poll(owner, path)  # Flask again (no record): the stored copy, the record again
    before = len(flask_requests)
    door_hit = poll(owner, path)
    assert len(flask_requests) == before  # Flask never saw it
    assert answer_of(door_hit) == answer_of(flask_hit) == answer_of(rendered)
    assert door_hit.status_code == 200 and "Set-Cookie" not in door_hit.headers
    assert door_hit.headers["Content-Security-Policy"] and door_hit.headers["Vary"] == "Cookie"


def test_the_door_serves_every_browser_of_the_user_with_one_copy(app, clicks, flask_requests, redis_client):
    poll(logged_in(app))
    second_browser = logged_in(app)
    flask_requests.clear()
    answer = poll(second_browser)
    assert stat(answer.text, "clicks") == 3 and flask_requests == []
    assert render_counts(redis_client) == {"overview": 1}


def test_the_door_serves_a_session_signed_with_a_fallback_key(make_app, user, clicks, flask_requests):
    before = make_app(SECRET_KEY="the key before")
    cookie = cookie_of(logged_in(before), before)
    rotated = make_app(SECRET_KEY="the new key", SECRET_KEY_FALLBACKS=["the key before"])
    browser = with_cookie(rotated, cookie)
    assert poll(browser).status_code == 200  # Flask takes the old key's cookie
    flask_requests.clear()
    answer = poll(browser)
    assert answer.status_code == 200 and stat(answer.text, "clicks") == 3
    assert flask_requests == []


def test_an_old_session_flask_never_refreshes_is_served_without_a_cookie(
    app, clicks, flask_requests, monkeypatch
):
    owner = logged_in(app)
    data = session_data(owner, app)
    assert not data.get("_permanent")  # Flask sends such a cookie again only when it changes
    old = with_cookie(app, signed_cookie(app, data, monkeypatch, age=REFRESH_AGE + 60))
    poll(old)
    flask_requests.clear()
    answer = poll(old)
    assert answer.status_code == 200 and flask_requests == []
    assert "Set-Cookie" not in answer.headers


def test_the_door_knows_every_live_region_of_the_home_page(app, clicks):
    page = logged_in(app).get("/").text
    polled = {urlsplit(html.unescape(url)).path for url in LIVE_REGION.findall(page)}
    door = app.wsgi_app.wsgi_app  # under the redirect's fast path
    assert isinstance(door, FragmentDoor)
    assert set(door.regions) == polled


# --- handed to Flask --------------------------------------------------------------------


def test_a_refreshed_session_older_than_the_refresh_age_goes_to_flask_which_sends_it_again(
    app, clicks, flask_requests, monkeypatch
):
    owner = logged_in(app)
    data = {**session_data(owner, app), "_permanent": True}
    poll(owner)  # the record and the copy are there
    old = with_cookie(app, signed_cookie(app, data, monkeypatch, age=REFRESH_AGE + 5))
    flask_requests.clear()
    answer = poll(old)
    assert answer.status_code == 200 and flask_requests == ["/fragments/overview"]
    assert "Set-Cookie" in answer.headers  # SESSION_REFRESH_EACH_REQUEST: a fresh signature
    flask_requests.clear()
    assert poll(old).status_code == 200 and flask_requests == []  # the refreshed cookie: the door


def test_a_refreshed_session_signed_just_now_is_served_by_the_door(app, clicks, flask_requests, monkeypatch):
    owner = logged_in(app)
    poll(owner)
    fresh = with_cookie(
        app, signed_cookie(app, {**session_data(owner, app), "_permanent": True}, monkeypatch)
    )
    flask_requests.clear()
    assert poll(fresh).status_code == 200 and flask_requests == []


def test_a_session_seen_from_another_agent_goes_to_flask_once_which_marks_it_not_fresh(
    app, clicks, flask_requests
):
    owner = logged_in(app)
    poll(owner)
    elsewhere = {"User-Agent": "another browser"}
    flask_requests.clear()
    answer = poll(owner, headers=elsewhere)
    assert answer.status_code == 200 and flask_requests == ["/fragments/overview"]
    assert "Set-Cookie" in answer.headers and session_data(owner, app)["_fresh"] is False
    flask_requests.clear()
    assert poll(owner, headers=elsewhere).status_code == 200 and flask_requests == []


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"User-Agent": "Mozilla/5.0 (X11; Linux x86_64)"},
        {"X-Forwarded-For": "203.0.113.7, 10.0.0.1", "User-Agent": "curl/8.0"},
        {"X-Forwarded-For": "2001:db8::1"},
        {"User-Agent": "caf\u00e9"},
    ],
)
def test_the_doors_session_identifier_is_flask_logins(app, headers):
    with app.test_request_context("/fragments/overview", headers=headers) as context:
        assert login_identifier(context.request) == _create_identifier()


def test_no_cookie_goes_to_flask_and_gets_its_401(app, clicks, flask_requests):
    poll(logged_in(app))
    flask_requests.clear()
    answer = poll(visitor(app))
    assert answer.status_code == 401 and flask_requests == ["/fragments/overview"]


def tampered(cookie):
    payload, _, signature = cookie.rpartition(".")
    return f"{payload}.{'A' if signature[0] != 'A' else 'B'}{signature[1:]}"


@pytest.mark.parametrize("forge", ["tampered", "another key", "expired"])
def test_a_cookie_flask_would_refuse_goes_to_flask_and_gets_its_401(
    app, make_app, clicks, flask_requests, monkeypatch, forge
):
    owner = logged_in(app)
    poll(owner)
    data = session_data(owner, app)
    lifetime = app.permanent_session_lifetime.total_seconds()
    cookies = {
        "tampered": lambda: tampered(cookie_of(owner, app)),
        "another key": lambda: signed_cookie(make_app(SECRET_KEY="not this app's key"), data, monkeypatch),
        "expired": lambda: signed_cookie(app, data, monkeypatch, age=lifetime + 60),
    }
    stranger = with_cookie(app, cookies[forge]())
    flask_requests.clear()
    answer = poll(stranger)
    assert answer.status_code == 401 and flask_requests == ["/fragments/overview"]


def test_a_copy_of_the_cookie_stops_at_the_door_once_its_user_logs_out(app, clicks, flask_requests):
    owner = logged_in(app)
    poll(owner)
    stolen = with_cookie(app, cookie_of(owner, app))
    assert poll(stolen).status_code == 200
    assert owner.post("/logout", headers={"X-CSRFToken": htmx_csrf_token(owner)}).status_code == 302
    flask_requests.clear()
    answer = poll(stolen)
    assert answer.status_code == 401 and flask_requests == ["/fragments/overview"]


def test_an_old_sessions_cookie_stops_at_the_door_once_its_user_is_back_with_a_new_one(
    app, user, clicks, flask_requests, redis_client
):
    owner = logged_in(app)
    poll(owner)
    stolen = with_cookie(app, cookie_of(owner, app))
    owner.post("/logout", headers={"X-CSRFToken": htmx_csrf_token(owner)})
    redis_client.delete(viewers.record_key(app.config["CLICKBOARD_NAMESPACE"], user.id))  # its time is up
    poll(logged_in(app))  # the owner again: a record of the new epoch
    flask_requests.clear()
    assert poll(stolen).status_code == 401 and flask_requests == ["/fragments/overview"]


def test_a_new_password_ends_the_door_for_the_old_sessions(app, user, clicks, flask_requests):
    owner = logged_in(app)
    poll(owner)
    db.session.get(User, user.id).set_password("a brand new password")
    db.session.commit()
    flask_requests.clear()
    assert poll(owner).status_code == 401 and flask_requests == ["/fragments/overview"]


def test_a_new_time_zone_is_shown_at_the_next_poll(app, user, clicks, flask_requests, redis_client):
    owner = logged_in(app)
    assert "(UTC)" in poll(owner, "/fragments/clicks-chart").text
    assert "(UTC)" in poll(owner, "/fragments/clicks-chart").text  # the door, on the old record
    db.session.get(User, user.id).time_zone = "Asia/Tokyo"
    db.session.commit()
    flask_requests.clear()
    chart = poll(owner, "/fragments/clicks-chart").text
    assert "(Asia/Tokyo)" in chart and flask_requests == ["/fragments/clicks-chart"]
    redis_client.delete(viewers.record_key(app.config["CLICKBOARD_NAMESPACE"], user.id))  # time is up
    poll(owner, "/fragments/clicks-chart")  # Flask: the new record
    flask_requests.clear()
    assert poll(owner, "/fragments/clicks-chart").text == chart  # the door, on the new record
    assert flask_requests == []


def test_a_stale_request_cannot_bring_a_forgotten_record_back(app, user, clicks, flask_requests):
    owner = logged_in(app)
    poll(owner)
    db.session.get(User, user.id).end_sessions()
    db.session.commit()
    # What a request that loaded the user before that commit would store after it.
    with request_redis(app).client.pipeline() as pipe:
        viewers.remember(pipe, app.config["CLICKBOARD_NAMESPACE"], user.id, 0, f"owner:{user.id}", "UTC")
        assert pipe.execute() == [None]  # refused: the tombstone is there
    flask_requests.clear()
    assert poll(owner).status_code == 401 and flask_requests == ["/fragments/overview"]


@pytest.mark.parametrize("promoted", [True, False])
def test_a_changed_admin_flag_never_gets_the_other_scopes_copy(app, user, clicks, flask_requests, promoted):
    other = create_user(OTHER_EMAIL, OTHER_PASSWORD, is_admin=False)
    record(service.create_link("https://example.org/theirs", other, slug="theirs")[0], 5)
    create_user(ADMIN_EMAIL, ADMIN_PASSWORD, is_admin=True)
    poll(logged_in(app, ADMIN_EMAIL, ADMIN_PASSWORD))  # the admins' copy: 8 clicks
    db.session.get(User, user.id).is_admin = not promoted
    db.session.commit()
    owner = logged_in(app)
    assert stat(poll(owner).text, "clicks") == (3 if promoted else 8)
    db.session.get(User, user.id).is_admin = promoted
    db.session.commit()
    flask_requests.clear()
    assert stat(poll(owner).text, "clicks") == (8 if promoted else 3)
    assert flask_requests == ["/fragments/overview"]


def test_an_owner_without_a_record_is_not_served_though_an_admin_has_one(app, user, clicks, flask_requests):
    create_user(ADMIN_EMAIL, ADMIN_PASSWORD, is_admin=True)
    admin = logged_in(app, ADMIN_EMAIL, ADMIN_PASSWORD)
    poll(admin)
    owner = logged_in(app)
    flask_requests.clear()
    assert stat(poll(owner).text, "clicks") == 3 and flask_requests == ["/fragments/overview"]


def test_no_copy_yet_goes_to_flask_which_renders_and_stores_it(app, clicks, flask_requests, redis_client):
    owner = logged_in(app)
    poll(owner)  # the record is there; the chart's copy is not
    flask_requests.clear()
    assert poll(owner, "/fragments/clicks-chart").status_code == 200
    assert flask_requests == ["/fragments/clicks-chart"]
    assert render_counts(redis_client) == {"overview": 1, "clicks-chart": 1}


def test_redis_stopped_goes_to_flask_which_answers_200(app, clicks, flask_requests, redis_server):
    owner = logged_in(app)
    poll(owner)
    redis_server.stop()
    try:
        flask_requests.clear()
        answer = poll(owner)
        assert not request_redis(app).available  # the fault happened: Redis did not answer the door
    finally:
        redis_server.start()
    assert answer.status_code == 200 and stat(answer.text, "clicks") == 3
    assert flask_requests == ["/fragments/overview"]


def test_an_untrusted_host_goes_to_flask_and_gets_its_400(app, clicks, flask_requests):
    owner = logged_in(app)
    poll(owner)
    elsewhere = Visitor(app, app.response_class, use_cookies=False)  # sends the cookie to any host
    flask_requests.clear()
    cookie = f"{app.config['SESSION_COOKIE_NAME']}={cookie_of(owner, app)}"
    answer = poll(elsewhere, headers={"Host": "evil.example", "Cookie": cookie})
    assert answer.status_code == 400 and flask_requests == ["/fragments/overview"]


@pytest.mark.parametrize("method", ["HEAD", "POST"])
def test_other_methods_go_to_flask(app, clicks, flask_requests, method):
    owner = logged_in(app)
    poll(owner)
    flask_requests.clear()
    owner.open("/fragments/overview", method=method, headers=HTMX)
    assert flask_requests == ["/fragments/overview"]


def test_a_link_pages_stats_stay_with_flask(app, clicks, flask_requests):
    owner = logged_in(app)
    poll(owner, "/links/mine/stats")
    flask_requests.clear()
    assert poll(owner, "/links/mine/stats").status_code == 200
    assert flask_requests == ["/links/mine/stats"]
