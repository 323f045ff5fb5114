"""Polled fragments rendered once per interval and shared through Redis (webapp/dashboard/shared_fragments.py).

The real app on the test's real Redis: what one viewer's poll stored is
never served to a viewer who should see something else, concurrent misses
render once, the copy expires after the poll interval, and without Redis
every request renders for itself and still answers 200. One test runs
the same through a real gunicorn with several workers and threads.
"""

import re
import threading
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests
from flask_login import login_user

from tests.dashboard_helpers import (
    ADMIN_EMAIL,
    ADMIN_PASSWORD,
    OTHER_EMAIL,
    OTHER_PASSWORD,
    OWNER_EMAIL,
    OWNER_PASSWORD,
    logged_in,
    record,
    stat,
)
from tests.processes import wait_for
from webapp.auth.users import create_user
from webapp.dashboard import shared_fragments, stats
from webapp.dashboard.shared_fragments import fragment_key, render_counts
from webapp.extensions import db
from webapp.links import service
from webapp.redis_client import request_redis

FRAGMENTS = ("/fragments/overview", "/fragments/clicks-chart", "/fragments/top-links", "/fragments/tables")
NO_CLICKS = "No clicks in this period."


@pytest.fixture
def other(app):
    return create_user(OTHER_EMAIL, OTHER_PASSWORD, is_admin=False)


@pytest.fixture
def two_owners(user, other):
    """The owner's link with 3 clicks, the other user's with 5."""
    mine = service.create_link("https://example.com/mine", user, slug="mine")[0]
    theirs = service.create_link("https://example.org/theirs", other, slug="theirs")[0]
    record(mine, 3)
    record(theirs, 5)
    return mine, theirs


def shared_copies(redis_client):
    """Every fragment copy stored in Redis (locks and the render counts left out)."""
    keys = [key for key in redis_client.scan_iter("cb:*:fragment:*") if not key.endswith(":render")]
    return {key: redis_client.get(key) for key in keys}


# --- whose copy -------------------------------------------------------------------------


@pytest.mark.parametrize("first", ["owner", "other"])
def test_two_owners_never_see_each_others_totals_or_top_links(app, two_owners, redis_client, first):
    clients = {"owner": logged_in(app), "other": logged_in(app, OTHER_EMAIL, OTHER_PASSWORD)}
    order = [first, *(name for name in clients if name != first)]
    pages = {name: {path: clients[name].get(path).text for path in FRAGMENTS} for name in order}
    assert stat(pages["owner"]["/fragments/overview"], "clicks") == 3
    assert stat(pages["other"]["/fragments/overview"], "clicks") == 5
    assert "/r/mine" in pages["owner"]["/fragments/top-links"]
    assert "/r/theirs" not in pages["owner"]["/fragments/top-links"]
    assert "/r/theirs" in pages["other"]["/fragments/top-links"]
    assert "/r/mine" not in pages["other"]["/fragments/top-links"]
    assert len(shared_copies(redis_client)) == 2 * len(FRAGMENTS)  # one copy per viewer and fragment


@pytest.mark.parametrize("first", ["owner", "other"])
def test_the_same_link_id_and_arguments_give_each_user_their_own_chart(app, two_owners, first):
    mine, _ = two_owners
    clients = {"owner": logged_in(app), "other": logged_in(app, OTHER_EMAIL, OTHER_PASSWORD)}
    query = {"link": mine.id, "range": "7d"}
    order = [first, *(name for name in clients if name != first)]
    charts = {name: clients[name].get("/fragments/clicks-chart", query_string=query).text for name in order}
    assert NO_CLICKS not in charts["owner"]
    assert re.search(r'data-range="clicks">3<', charts["owner"])
    assert NO_CLICKS in charts["other"]  # the owner's copy was stored first or after: never served here


def test_admins_share_a_copy_that_owners_never_get(app, two_owners, redis_client):
    create_user(ADMIN_EMAIL, ADMIN_PASSWORD, is_admin=True)
    create_user("second-admin@example.com", ADMIN_PASSWORD, is_admin=True)
    admin = logged_in(app, ADMIN_EMAIL, ADMIN_PASSWORD).get("/fragments/overview").text
    second = logged_in(app, "second-admin@example.com", ADMIN_PASSWORD).get("/fragments/overview").text
    owner = logged_in(app).get("/fragments/overview").text
    assert stat(admin, "clicks") == stat(second, "clicks") == 8
    assert second == admin  # the shared copy, "Counted at" included
    assert render_counts(redis_client)["overview"] == 2  # the admins' one, the owner's one
    assert stat(owner, "clicks") == 3


def test_each_time_zone_gets_its_own_chart(app, user, two_owners):
    create_user(ADMIN_EMAIL, ADMIN_PASSWORD, is_admin=True)
    tokyo = create_user("tokyo-admin@example.com", ADMIN_PASSWORD, is_admin=True)
    tokyo.time_zone = "Asia/Tokyo"
    db.session.commit()
    utc_chart = logged_in(app, ADMIN_EMAIL, ADMIN_PASSWORD).get("/fragments/clicks-chart").text
    tokyo_chart = (
        logged_in(app, "tokyo-admin@example.com", ADMIN_PASSWORD).get("/fragments/clicks-chart").text
    )
    assert "(UTC)" in utc_chart and "Asia/Tokyo" not in utc_chart
    assert "(Asia/Tokyo)" in tokyo_chart


def test_shared_copies_hold_no_csrf_token(app, two_owners, redis_client):
    owner = logged_in(app)
    for path in FRAGMENTS:
        assert owner.get(path).status_code == 200
    copies = shared_copies(redis_client)
    assert len(copies) == len(FRAGMENTS)
    for key, html in copies.items():
        assert "csrf" not in html.lower(), key
    assert "X-CSRFToken" in owner.get("/").text  # the page carries the token, outside the fragments


def test_a_link_pages_stats_are_shared_by_its_viewers_and_refused_to_others(
    make_app, user, two_owners, redis_client
):
    app = make_app(DASHBOARD_POLL_SECONDS=600)
    first = logged_in(app).get("/links/mine/stats")
    second = logged_in(app).get("/links/mine/stats")  # the owner's other tab: the stored copy
    assert first.status_code == second.status_code == 200
    assert 'data-total="clicks">3<' in second.text
    assert render_counts(redis_client) == {"link-stats": 1}
    assert logged_in(app, OTHER_EMAIL, OTHER_PASSWORD).get("/links/mine/stats").status_code == 404
    theirs = logged_in(app, OTHER_EMAIL, OTHER_PASSWORD).get("/links/theirs/stats").text
    assert 'data-total="clicks">5<' in theirs


# --- once per interval ------------------------------------------------------------------


def test_a_second_poller_within_the_interval_gets_the_copy_without_a_render(
    make_app, user, two_owners, redis_client
):
    app = make_app(DASHBOARD_POLL_SECONDS=600)
    mine, _ = two_owners
    first = logged_in(app).get("/fragments/overview").text
    record(mine, 4)
    second = logged_in(app).get("/fragments/overview").text  # another tab of the same owner
    assert stat(first, "clicks") == stat(second, "clicks") == 3
    assert render_counts(redis_client) == {"overview": 1}


def test_the_copy_expires_after_the_interval_and_new_clicks_show(make_app, user, two_owners, redis_client):
    app = make_app(DASHBOARD_POLL_SECONDS=1)
    mine, _ = two_owners
    owner = logged_in(app)
    assert stat(owner.get("/fragments/overview").text, "clicks") == 3
    (key,) = shared_copies(redis_client)
    assert 0 < redis_client.pttl(key) <= 1000  # kept for the poll interval, no longer
    record(mine, 4)
    wait_for(lambda: stat(owner.get("/fragments/overview").text, "clicks") == 7, message="the new clicks")
    assert render_counts(redis_client)["overview"] >= 2


def test_the_region_polls_at_the_interval_its_copy_is_kept(make_app, user, two_owners, redis_client):
    owner = logged_in(make_app(DASHBOARD_POLL_SECONDS=7))
    html = owner.get("/fragments/top-links").text
    assert 'data-live-seconds="7"' in html
    (key,) = shared_copies(redis_client)
    assert 5000 < redis_client.pttl(key) <= 7000


def test_concurrent_misses_for_one_key_render_once(app, user, two_owners, redis_client, monkeypatch):
    pollers = 16
    clients = [logged_in(app) for _ in range(pollers)]
    renders = []
    totals = stats.totals
    everyone_asked = threading.Barrier(pollers)

    def slow_totals(viewer):
        renders.append(viewer.id)
        threading.Event().wait(0.3)  # a slow query: the others miss meanwhile
        return totals(viewer)

    monkeypatch.setattr(stats, "totals", slow_totals)

    def poll(client):
        everyone_asked.wait()
        return client.get("/fragments/overview")

    with ThreadPoolExecutor(pollers) as pool:
        answers = list(pool.map(poll, clients))
    assert [answer.status_code for answer in answers] == [200] * pollers
    assert len({answer.text for answer in answers}) == 1
    assert stat(answers[0].text, "clicks") == 3
    assert len(renders) == 1
    assert render_counts(redis_client) == {"overview": 1}


def test_a_renderer_that_never_finishes_delays_the_others_only_briefly(
    app, user, two_owners, redis_client, monkeypatch
):
    monkeypatch.setattr(shared_fragments, "RENDER_WAIT_SECONDS", 0.2)
    with app.test_request_context("/fragments/overview"):
        login_user(user)
        key = fragment_key("overview")
    redis_client.set(key + ":render", "a renderer that died", ex=60)
    answer = logged_in(app).get("/fragments/overview")
    assert answer.status_code == 200
    assert stat(answer.text, "clicks") == 3
    assert redis_client.get(key + ":render") == "a renderer that died"  # not ours to release


# --- without Redis ----------------------------------------------------------------------


def test_redis_dead_from_the_start_still_answers_every_fragment(
    make_app, monkeypatch, user, two_owners, dead_redis_url
):
    monkeypatch.setenv("CELERY_BROKER_URL", dead_redis_url)
    app = make_app(REDIS_URL=dead_redis_url, CELERY_BROKER_URL=dead_redis_url)
    owner = logged_in(app)
    for path in FRAGMENTS:
        assert owner.get(path).status_code == 200
    assert not request_redis(app).available  # the fault happened: the request client gave up on Redis
    assert stat(owner.get("/fragments/overview").text, "clicks") == 3


def test_redis_stopping_after_a_copy_was_stored_serves_fresh_counts(
    app, user, two_owners, redis_server, redis_client
):
    mine, _ = two_owners
    owner = logged_in(app)
    assert stat(owner.get("/fragments/overview").text, "clicks") == 3
    record(mine, 2)
    redis_server.stop()
    try:
        answer = owner.get("/fragments/overview")
        assert not request_redis(app).available  # Redis was really asked and did not answer
    finally:
        redis_server.start()
    assert answer.status_code == 200
    assert stat(answer.text, "clicks") == 5  # rendered here: not the stored copy, not an error


# --- through gunicorn -------------------------------------------------------------------


def log_in_over_http(base_url, email, password):
    session = requests.Session()
    page = session.get(base_url + "/login", timeout=10).text
    token = re.search(r'name="csrf_token"[^>]*value="([^"]+)"', page).group(1)
    form = {"email": email, "password": password, "csrf_token": token}
    answer = session.post(base_url + "/login", data=form, allow_redirects=False, timeout=10)
    assert answer.status_code == 302
    return session


def test_gunicorn_workers_and_threads_render_a_polled_fragment_once(
    processes, user, other, two_owners, redis_client
):
    server = processes.web(workers=2, GUNICORN_THREADS=8, DASHBOARD_POLL_SECONDS=600)
    owners = [log_in_over_http(server.url, OWNER_EMAIL, OWNER_PASSWORD) for _ in range(24)]
    others = [log_in_over_http(server.url, OTHER_EMAIL, OTHER_PASSWORD) for _ in range(8)]
    sessions = owners + others
    start = threading.Barrier(len(sessions))

    def poll(session):
        start.wait()
        return session.get(server.url + "/fragments/overview", headers={"HX-Request": "true"}, timeout=30)

    with ThreadPoolExecutor(len(sessions)) as pool:
        answers = list(pool.map(poll, sessions))
    assert [answer.status_code for answer in answers] == [200] * len(sessions)
    assert {stat(answer.text, "clicks") for answer in answers[: len(owners)]} == {3}
    assert {stat(answer.text, "clicks") for answer in answers[len(owners) :]} == {5}
    assert render_counts(redis_client) == {"overview": 2}  # one per owner, for 32 requests on 2 processes
