"""GET /r/<slug> in-process: the Flask test client against the real embedded Redis.

A redirect resolves its slug (this process's link cache, then Redis, then
the database) and appends its click to this process's click log. In-process
apps have no background shipper (see conftest): ``shipped_clicks`` ships the
log to the stream, as the shipper thread would moments later.
"""

import os
import time
from urllib.parse import urlsplit

import pytest
import redis
from flask import request
from sqlalchemy.exc import OperationalError

from tests.broker import queued_tasks
from tests.processes import wait_for
from webapp.clicks import click_log
from webapp.clicks.buffer import CLICK_BUFFER
from webapp.clicks.capture import broker_breaker
from webapp.clicks.click_log import app_click_log
from webapp.clicks.events import click_row
from webapp.extensions import db
from webapp.links import cache, service
from webapp.links.cache import local_link_cache
from webapp.redirects import answer_headers
from webapp.redis_client import request_redis

FIREFOX = "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0"
GOOGLEBOT = "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)"
TARGET = "https://example.com/landing?ref=cb"


@pytest.fixture
def link(user):
    return service.create_link("HTTPS://Example.com:443/landing?ref=cb#top", user, slug="launch")[0]


FIELDS = ("event_id", "link_id", "time", "bot", "ip", "referrer", "user_agent")


def fields(line):
    return dict(zip(FIELDS, line.split("\t"), strict=True))


def ship(app):
    """Ship the app's click log now; an app that never logged a click has none."""
    log = app_click_log(app)
    if log.pid is not None:
        log.ship_own()


def shipped_clicks(app, redis_client):
    """The click lines in the stream once the app's log is shipped, each as its fields."""
    ship(app)
    return [fields(line) for line in CLICK_BUFFER.waiting_lines(redis_client)]


def logged_lines(app):
    """The click lines waiting in the app's click log directory, not yet shipped."""
    directory = app.config["CLICK_LOG_DIR"]
    if not os.path.isdir(directory):
        return []
    lines = []
    for name in sorted(name for name in os.listdir(directory) if name.endswith(".log")):
        with open(os.path.join(directory, name)) as log_file:
            lines.extend(line.rstrip("\n") for line in log_file)
    return lines


def follow(client, path="/r/launch", method="GET", **headers):
    headers.setdefault("User-Agent", FIREFOX)
    return client.open(path, method=method, headers=headers)


# --- the redirect -----------------------------------------------------------


def test_redirect_answers_302_to_the_normalised_target(client, link):
    response = follow(client)
    assert (response.status_code, response.headers["Location"]) == (302, TARGET)


def test_redirect_forbids_caching_by_browsers_and_proxies(client, link):
    assert "no-store" in follow(client).headers["Cache-Control"]


def test_redirect_from_the_cache_matches_the_first_one(client, link):
    first, second = follow(client), follow(client)
    assert (second.status_code, second.headers["Location"]) == (first.status_code, first.headers["Location"])


@pytest.mark.parametrize("code", [301, 302, 307, 308])
def test_link_redirect_code_is_honoured(client, user, code):
    service.create_link("https://example.com/coded", user, slug="coded", redirect_code=code)
    assert follow(client, "/r/coded").status_code == code


def test_deployment_default_redirect_code_applies_to_links_without_one(make_app, link):
    other = make_app(REDIRECT_STATUS_CODE=307)
    assert follow(other.test_client()).status_code == 307


def test_link_redirect_code_wins_over_the_deployment_default(make_app, user):
    service.create_link("https://example.com/moved", user, slug="moved", redirect_code=301)
    other = make_app(REDIRECT_STATUS_CODE=307)
    assert follow(other.test_client(), "/r/moved").status_code == 301


def test_slug_is_case_insensitive(client, link):
    response = follow(client, "/r/LaUnCh")
    assert (response.status_code, response.headers["Location"]) == (302, TARGET)


def test_head_request_redirects_too(client, link):
    response = follow(client, method="HEAD")
    assert (response.status_code, response.headers["Location"]) == (302, TARGET)


# --- cache hits, answered before Flask (webapp.redirects.CachedRedirects) -------


@pytest.fixture
def flask_requests(app):
    """How many requests reached Flask's own request handling (its before_request hooks)."""
    seen = []
    app.before_request(lambda: seen.append(request.path))
    return seen


def test_a_cached_redirect_never_reaches_flask(client, link, flask_requests):
    first, second, third = follow(client), follow(client), follow(client)
    assert flask_requests == ["/r/launch"]  # the miss only
    assert [r.status_code for r in (first, second, third)] == [302] * 3


def test_a_cached_redirect_answers_exactly_as_the_first(client, link):
    first, cached = follow(client), follow(client)
    for response in (first, cached):
        assert response.headers["Location"] == TARGET
        assert response.headers["Cache-Control"] == first.headers["Cache-Control"]
        assert (response.status_code, response.data, response.headers["Content-Length"]) == (302, b"", "0")


@pytest.mark.parametrize("code", [301, 307, 308])
def test_a_cached_redirect_keeps_the_link_redirect_code(client, user, code):
    service.create_link("https://example.com/coded", user, slug="coded", redirect_code=code)
    assert [follow(client, "/r/coded").status_code for _ in range(2)] == [code, code]


def test_a_cached_head_request_redirects_and_counts_as_a_bot(app, client, redis_client, link):
    follow(client)
    response = follow(client, method="HEAD")
    assert (response.status_code, response.headers["Location"]) == (302, TARGET)
    assert [click["bot"] for click in shipped_clicks(app, redis_client)] == ["", "1"]


def test_a_cached_redirect_captures_the_same_click_fields(app, client, redis_client, link):
    for _ in range(2):
        client.get(
            "/r/LAUNCH",
            headers={"Referer": "https://news.example/item?id=1", "User-Agent": FIREFOX},
            environ_base={"REMOTE_ADDR": "203.0.113.77"},
        )
    first, cached = shipped_clicks(app, redis_client)
    same = ("link_id", "bot", "ip", "referrer", "user_agent")
    assert [first[key] for key in same] == [cached[key] for key in same]
    assert (cached["link_id"], cached["ip"]) == (str(link.id), "203.0.113.0")
    assert first["event_id"] != cached["event_id"]


def test_a_cached_redirect_believes_forwarded_for_only_from_a_trusted_proxy(make_app, redis_client, link):
    other = make_app(TRUSTED_PROXIES=["10.0.0.0/8"])
    client = other.test_client()
    for peer in ("10.1.2.3", "203.0.113.77", "10.1.2.3"):
        client.get(
            "/r/launch", headers={"X-Forwarded-For": "198.51.100.7"}, environ_base={"REMOTE_ADDR": peer}
        )
    ips = [click["ip"] for click in shipped_clicks(other, redis_client)]
    assert ips == ["198.51.100.0", "203.0.113.0", "198.51.100.0"]


def test_a_target_with_non_ascii_text_is_sent_percent_encoded(client, user):
    service.create_link("https://example.com/café?q=naïve", user, slug="cafe")
    locations = {follow(client, "/r/cafe").headers["Location"] for _ in range(2)}
    assert locations == {"https://example.com/caf%C3%A9?q=na%C3%AFve"}


def test_a_cached_slug_asked_for_under_a_forged_host_gets_flask_s_400(app, client, redis_client, link):
    follow(client)
    forged = client.get("/r/launch", headers={"Host": "evil.example"})
    assert (forged.status_code, forged.headers.get("Location")) == (400, None)
    assert follow(client).status_code == 302  # the cache entry still serves trusted hosts
    assert len(shipped_clicks(app, redis_client)) == 2  # the forged request captured no click


def test_a_cached_slug_answers_other_methods_through_flask(client, link, flask_requests):
    follow(client)
    assert follow(client, method="POST").status_code == 405
    assert flask_requests == ["/r/launch", "/r/launch"]


def test_a_cached_not_found_gets_flask_s_404_page(client, link, flask_requests):
    responses = [follow(client, "/r/nothing-here") for _ in range(2)]
    assert [r.status_code for r in responses] == [404, 404]
    assert b"Link not found" in responses[1].data
    assert len(flask_requests) == 2


def test_task_mode_sends_a_task_for_every_redirect_cached_or_not(make_app, redis_client, link):
    client = make_app(CLICK_CAPTURE_MODE="task").test_client()
    assert [follow(client).status_code for _ in range(3)] == [302] * 3
    assert [task.task for task in queued_click_tasks(redis_client)] == ["tasks.clicks.record_link_click"] * 3


def test_a_click_log_that_cannot_be_written_gets_the_error_page_not_a_bare_500(
    app, client, link, monkeypatch
):
    follow(client)  # cached

    def disk_full(line):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(app_click_log(app), "append", disk_full)
    monkeypatch.setitem(app.config, "PROPAGATE_EXCEPTIONS", False)  # as in production, not TESTING
    response = follow(client)
    assert response.status_code == 500
    assert response.mimetype == "text/html"
    assert b"Traceback" not in response.data


# --- not found --------------------------------------------------------------


def test_unknown_slug_is_a_404_html_page(client, link):
    response = follow(client, "/r/nothing-here")
    assert response.status_code == 404
    assert response.mimetype == "text/html"
    assert b"Link not found" in response.data
    assert b"Traceback" not in response.data


def test_not_found_page_forbids_caching(client, link):
    assert "no-store" in follow(client, "/r/nothing-here").headers["Cache-Control"]


@pytest.mark.parametrize(
    "path", ["/r/../etc", "/r/..%2Fetc", "/r/" + "a" * 200, "/r/a.b", "/r/%C3%A9t%C3%A9"]
)
def test_implausible_slug_is_a_404(client, link, path):
    assert follow(client, path).status_code == 404


@pytest.mark.parametrize(
    "path",
    ["/r/<script>alert(1)", "/r/%3Cscript%3Ealert(1)%3C%2Fscript%3E", "/r/x%22%3E%3Cscript%3Ealert(1)"],
)
def test_not_found_page_renders_a_script_slug_inert(client, path):
    response = follow(client, path)
    assert response.status_code == 404
    assert b"<script>alert(1)" not in response.data.lower()


def test_disabled_link_is_a_404(client, link):
    follow(client)  # cached as enabled
    service.set_enabled(link, False)
    assert follow(client).status_code == 404


def test_re_enabled_link_redirects_again(client, link):
    service.set_enabled(link, False)
    follow(client)  # cached as missing
    service.set_enabled(link, True)
    assert follow(client).status_code == 302


def test_deleted_link_is_a_404(client, link):
    follow(client)
    service.delete_link(link)
    assert follow(client).status_code == 404


def test_link_created_after_a_miss_redirects_at_once(client, user):
    assert follow(client, "/r/later").status_code == 404  # cached as missing
    service.create_link("https://example.com/later", user, slug="later")
    assert follow(client, "/r/later").status_code == 302


def test_redirect_is_served_from_the_cache_until_invalidated(client, link):
    follow(client)
    link.target_url = "https://example.org/elsewhere"
    db.session.commit()
    assert follow(client).headers["Location"] == TARGET


def test_changed_target_is_served_once_the_link_is_invalidated(client, link):
    # service has no "change target" yet; any change must be followed by this.
    follow(client)
    link.target_url = "https://example.org/elsewhere"
    db.session.commit()
    cache.invalidate(link.slug)
    assert follow(client).headers["Location"] == "https://example.org/elsewhere"


@pytest.mark.parametrize(
    "path",
    [
        "/r/https://evil.example",
        "/r/%2F%2Fevil.example",
        "/r//evil.example",
        "/r/%5C%5Cevil.example",
        "/r/https:%2F%2Fevil.example",
        "/r/evil.example",
    ],
)
def test_no_open_redirect_off_site(client, link, path):
    response = follow(client, path)
    location = response.headers.get("Location", "")
    assert "evil.example" not in urlsplit(location).netloc
    assert not location.startswith(("//", "/\\"))


@pytest.mark.parametrize("path", ["/r/https://evil.example", "/r/%2F%2Fevil.example", "/r//evil.example"])
def test_url_shaped_slug_ends_in_a_404(client, link, path):
    # Werkzeug may first redirect (on-site) to the path with merged slashes.
    response = client.get(path, follow_redirects=True)
    assert response.status_code == 404


# --- click capture ----------------------------------------------------------


def test_redirect_captures_exactly_one_click(app, client, redis_client, link):
    follow(client, Referer="https://news.example/item?id=1")
    assert len(shipped_clicks(app, redis_client)) == 1


def test_redirect_logs_its_click_locally_without_a_redis_call(app, client, redis_client, link):
    follow(client)
    assert redis_client.xlen(CLICK_BUFFER.stream) == 0  # not in Redis until shipped
    (line,) = logged_lines(app)
    assert fields(line)["link_id"] == str(link.id)


def test_captured_click_carries_link_referrer_agent_and_anonymised_ip(app, client, redis_client, link):
    client.get(
        "/r/launch",
        headers={"Referer": "https://news.example/item?id=1", "User-Agent": FIREFOX},
        environ_base={"REMOTE_ADDR": "203.0.113.77"},
    )
    (click,) = shipped_clicks(app, redis_client)
    assert {key: click[key] for key in ("link_id", "referrer", "user_agent", "ip", "bot")} == {
        "link_id": str(link.id),
        "referrer": "https://news.example/item?id=1",
        "user_agent": FIREFOX,
        "ip": "203.0.113.0",
        "bot": "",
    }


def test_captured_click_time_is_the_time_of_the_redirect(app, client, redis_client, link):
    before = time.time()
    follow(client)
    (click,) = shipped_clicks(app, redis_client)
    assert before - 0.01 <= float(click["time"]) <= time.time() + 0.01


def test_tab_in_a_header_cannot_break_the_click_line(app, client, redis_client, link):
    follow(client, Referer="https://news.example/\tforged", **{"User-Agent": "Agent\t1.0"})
    (click,) = shipped_clicks(app, redis_client)
    assert (click["link_id"], click["referrer"], click["user_agent"]) == (
        str(link.id),
        "https://news.example/ forged",
        "Agent 1.0",
    )


def test_cached_redirects_each_capture_one_click(app, client, redis_client, link):
    for _ in range(3):
        follow(client)
    clicks = shipped_clicks(app, redis_client)
    assert len(clicks) == 3
    assert len({click["event_id"] for click in clicks}) == 3


def test_head_request_click_is_flagged_bot(app, client, redis_client, link):
    follow(client, method="HEAD")
    (click,) = shipped_clicks(app, redis_client)
    assert click["bot"] == "1"


def test_bot_user_agent_click_is_told_a_bot_by_the_drain_not_the_redirect(app, client, redis_client, link):
    follow(client, **{"User-Agent": GOOGLEBOT})
    (click,) = shipped_clicks(app, redis_client)
    assert click["bot"] == ""  # no user-agent parsing on the request path
    (line,) = CLICK_BUFFER.waiting_lines(redis_client)
    assert click_row(line)["is_bot"] is True


def test_not_found_captures_no_click(app, client, redis_client, link):
    follow(client, "/r/nothing-here")
    follow(client, "/r/nothing-here")
    assert (logged_lines(app), shipped_clicks(app, redis_client)) == ([], [])


def test_disabled_link_captures_no_click(app, client, redis_client, link):
    service.set_enabled(link, False)
    follow(client)
    assert (logged_lines(app), shipped_clicks(app, redis_client)) == ([], [])


def test_forwarded_for_is_ignored_without_trusted_proxies(app, client, redis_client, link):
    client.get(
        "/r/launch", headers={"X-Forwarded-For": "198.51.100.7"}, environ_base={"REMOTE_ADDR": "203.0.113.77"}
    )
    assert shipped_clicks(app, redis_client)[0]["ip"] == "203.0.113.0"


def test_forwarded_for_from_a_trusted_proxy_gives_the_client_ip(make_app, redis_client, link):
    other = make_app(TRUSTED_PROXIES=["10.0.0.0/8"])
    other.test_client().get(
        "/r/launch", headers={"X-Forwarded-For": "198.51.100.7"}, environ_base={"REMOTE_ADDR": "10.1.2.3"}
    )
    assert shipped_clicks(other, redis_client)[0]["ip"] == "198.51.100.0"


def test_the_shipper_thread_moves_a_click_to_the_stream_by_itself(make_app, redis_client, link):
    other = make_app(CLICK_SHIP_INTERVAL=0.05)
    follow(other.test_client())
    # Nothing here ships: only the app's own shipper thread can fill the stream.
    wait_for(
        lambda: redis_client.xlen(CLICK_BUFFER.stream) == 1, timeout=5, interval=0.01, message="the click"
    )
    assert logged_lines(other) == []


# --- this process's link cache ------------------------------------------------


def local_cache(app):
    return local_link_cache(app)


def follower_in_contact(app):
    """Start the link-change follower and wait for its first contact with Redis.

    The first contact forgets every entry (changes may have been missed
    before it): a test that needs an entry to stay must add it after.
    """
    local = local_cache(app)
    local.put("warm-up", None)
    wait_for(lambda: "warm-up" not in local.entries, timeout=5, interval=0.02, message="the change follower")


def change_target_unannounced(link, target="https://example.org/elsewhere"):
    """Change the link in the database only: no cache hears of it."""
    link.target_url = target
    db.session.commit()


def test_redirect_from_this_process_cache_needs_no_redis(app, client, link, dead_redis_url, monkeypatch):
    follower_in_contact(app)
    follow(client)  # now in this process's cache
    change_target_unannounced(link)  # the database and Redis would both answer otherwise
    guard = request_redis()
    monkeypatch.setattr(guard, "client", redis.Redis.from_url(dead_redis_url, socket_connect_timeout=0.2))

    response = follow(client)

    assert response.headers["Location"] == TARGET
    assert guard.available, "the redirect tried Redis"


def test_redirect_after_the_local_entry_expired_reads_redis_again(make_app, redis_client, link):
    other = make_app(LINK_LOCAL_CACHE_SECONDS=0.5)
    follower_in_contact(other)
    client = other.test_client()
    follow(client)
    change_target_unannounced(service.get_link("launch"))
    redis_client.delete(cache.cache_key("launch"))  # as if only Redis had heard of the change

    assert follow(client).headers["Location"] == TARGET  # still this process's copy
    wait_for(
        lambda: follow(client).headers["Location"] == "https://example.org/elsewhere",
        timeout=5,
        interval=0.05,
        message="the copy to expire and Redis's answer to be served",
    )


def test_invalidation_from_another_process_reaches_this_one_before_its_copy_expires(
    app, client, make_app, link
):
    assert app.config["LINK_LOCAL_CACHE_SECONDS"] >= 30  # only the announcement can evict it in time
    follower_in_contact(app)
    follow(client)
    assert local_cache(app).get("launch") == (True, cache.entry_for(link))
    make_app()  # another app, with its own link cache: "another process"
    service.set_enabled(service.get_link("launch"), False)  # announced through the change stream

    wait_for(lambda: follow(client).status_code == 404, timeout=5, interval=0.02, message="the eviction")


def test_change_follower_forgets_every_entry_after_losing_redis(
    app, client, user, link, redis_server, monkeypatch
):
    service.create_link("https://example.com/other", user, slug="other")
    follower_in_contact(app)
    follow(client)
    follow(client, "/r/other")
    local = local_cache(app)
    follower_failures = []

    def apply_changes(last_id, apply=local.apply_changes):
        try:
            return apply(last_id)
        except redis.RedisError as exc:
            follower_failures.append(exc)
            raise

    monkeypatch.setattr(local, "apply_changes", apply_changes)
    redis_server.stop()
    try:
        # The follower notices; changes announced from now on would be missed.
        wait_for(lambda: follower_failures, timeout=5, interval=0.02, message="the follower to lose Redis")
        assert follow(client).headers["Location"] == TARGET  # entries still serve meanwhile
        assert {"launch", "other"} <= set(local.entries)
    finally:
        redis_server.start()
    wait_for(lambda: not local.entries, timeout=5, interval=0.02, message="the entries forgotten")


def test_not_found_is_cached_in_this_process_and_dropped_when_the_link_is_created(
    app, client, user, redis_client
):
    follower_in_contact(app)
    assert follow(client, "/r/later").status_code == 404
    assert local_cache(app).get("later") == (True, None)
    service.create_link("https://example.com/later", user, slug="later")
    assert follow(client, "/r/later").status_code == 302


# --- Redis down -------------------------------------------------------------


@pytest.fixture
def redis_down_app(make_app, dead_redis_url, link, monkeypatch):
    """The app with Redis (and the broker) unreachable; the link exists already."""
    monkeypatch.setenv("CELERY_BROKER_URL", dead_redis_url)  # Celery prefers it to its config
    return make_app(REDIS_URL=dead_redis_url, CELERY_BROKER_URL=dead_redis_url)


def test_redirect_answers_from_the_database_while_redis_is_down(redis_down_app):
    response = follow(redis_down_app.test_client())
    assert (response.status_code, response.headers["Location"]) == (302, TARGET)


def test_unknown_slug_is_a_404_while_redis_is_down(redis_down_app):
    assert follow(redis_down_app.test_client(), "/r/nothing-here").status_code == 404


def test_link_disabled_while_redis_is_down_is_a_404(redis_down_app):
    client = redis_down_app.test_client()
    follow(client)  # cached in this process
    service.set_enabled(service.get_link("launch"), False)  # cannot be announced, but is evicted here
    assert follow(client).status_code == 404


def test_click_waits_in_the_click_log_while_redis_is_down(redis_down_app, link):
    follow(redis_down_app.test_client(), Referer="https://news.example/")
    with pytest.raises(redis.ConnectionError):
        app_click_log(redis_down_app).ship_own()
    (line,) = logged_lines(redis_down_app)
    click = fields(line)
    assert (click["link_id"], click["referrer"], click["user_agent"]) == (
        str(link.id),
        "https://news.example/",
        FIREFOX,
    )


def test_click_logged_while_redis_was_down_is_shipped_once_it_is_back(
    redis_down_app, redis_client, monkeypatch
):
    follow(redis_down_app.test_client())
    log = app_click_log(redis_down_app)
    with pytest.raises(redis.ConnectionError):
        log.ship_own()
    (line,) = logged_lines(redis_down_app)

    monkeypatch.setattr(log, "client", redis_client)  # Redis is back
    log.ship_own()

    assert CLICK_BUFFER.waiting_lines(redis_client) == [line]
    assert logged_lines(redis_down_app) == []


def test_healthz_counts_the_click_logs_waiting_while_redis_is_down(redis_down_app, admin_headers):
    client = redis_down_app.test_client()
    follow(client)
    with pytest.raises(redis.ConnectionError):
        app_click_log(redis_down_app).ship_own()
    # The live log and the file set aside for the failed shipment.
    assert client.get("/healthz", headers=admin_headers).get_json()["click_log_files"] == 2
    assert click_log.pending_files(redis_down_app.config["CLICK_LOG_DIR"]) == 2


# --- Redis and the database down ---------------------------------------------


@pytest.fixture
def database_down(monkeypatch):
    def fail(slug):
        raise OperationalError("SELECT link", {}, Exception("database unavailable"))

    monkeypatch.setattr(cache, "load_entry", fail)


@pytest.fixture
def short_lived_cache_app(make_app, link):
    """An app whose local entries expire at once, with ``launch`` seen once."""
    other = make_app(LINK_LOCAL_CACHE_SECONDS=0.05)
    follower_in_contact(other)
    follow(other.test_client())
    wait_for(lambda: local_cache(other).get("launch") == (False, None), 5, 0.01, "the entry to expire")
    return other


def test_with_redis_failing_and_the_database_down_the_last_known_target_is_served(
    short_lived_cache_app, database_down, dead_redis_url, monkeypatch
):
    guard = request_redis(short_lived_cache_app)
    monkeypatch.setattr(guard, "client", redis.Redis.from_url(dead_redis_url, socket_connect_timeout=0.2))
    response = follow(short_lived_cache_app.test_client())
    assert (response.status_code, response.headers["Location"]) == (302, TARGET)


def test_with_redis_known_down_and_the_database_down_the_last_known_target_is_served(
    short_lived_cache_app, database_down
):
    request_redis(short_lived_cache_app).mark_down()
    response = follow(short_lived_cache_app.test_client())
    assert (response.status_code, response.headers["Location"]) == (302, TARGET)


def test_with_the_database_down_a_slug_never_seen_is_a_404(redis_down_app, database_down):
    assert follow(redis_down_app.test_client()).status_code == 404


# --- task mode --------------------------------------------------------------


def queued_click_tasks(redis_client):
    """Tasks waiting on the broker's ``clicks`` queue (Redis or RabbitMQ), left there."""
    return queued_tasks("clicks")


def test_redirect_in_task_mode_queues_a_record_task(make_app, redis_client, link):
    follow(make_app(CLICK_CAPTURE_MODE="task").test_client())
    assert [message.task for message in queued_click_tasks(redis_client)] == [
        "tasks.clicks.record_link_click"
    ]


def test_task_mode_task_carries_the_click_line(make_app, redis_client, link):
    follow(make_app(CLICK_CAPTURE_MODE="task").test_client(), Referer="https://news.example/")
    (message,) = queued_click_tasks(redis_client)
    (line,) = message.args
    click = fields(line)
    assert (click["link_id"], click["referrer"], click["user_agent"]) == (
        str(link.id),
        "https://news.example/",
        FIREFOX,
    )


def test_task_mode_buffers_nothing_in_the_stream(make_app, redis_client, link):
    other = make_app(CLICK_CAPTURE_MODE="task")
    follow(other.test_client())
    assert (logged_lines(other), shipped_clicks(other, redis_client)) == ([], [])


def test_task_mode_with_the_broker_down_logs_the_click_for_the_batch_drain(
    make_app, redis_client, dead_redis_url, link, monkeypatch
):
    monkeypatch.setenv("CELERY_BROKER_URL", dead_redis_url)  # Celery prefers it to its config
    # The breaker stays open for the whole test: the later redirects must skip the broker.
    other = make_app(CLICK_CAPTURE_MODE="task", CELERY_BROKER_URL=dead_redis_url, REDIS_RETRY_AFTER=600)
    client = other.test_client()
    responses = [follow(client, Referer="https://news.example/") for _ in range(3)]
    assert [response.status_code for response in responses] == [302] * 3
    assert not broker_breaker(other).available, "the dead broker was not marked down"
    clicks = shipped_clicks(other, redis_client)
    assert [(click["link_id"], click["referrer"]) for click in clicks] == [
        (str(link.id), "https://news.example/")
    ] * 3
    # Celery takes the (dead) broker from the environment for every app in this
    # process now, so look at the test Redis's list directly: no task reached it.
    assert redis_client.llen("clicks") == 0


def test_task_mode_queues_nothing_for_an_unknown_slug(make_app, redis_client, link):
    follow(make_app(CLICK_CAPTURE_MODE="task").test_client(), "/r/nothing-here")
    assert queued_click_tasks(redis_client) == []


def test_the_fast_path_and_the_flask_view_answer_with_the_same_headers(app, client, link, monkeypatch):
    flask_answers = []
    flask_app = app.wsgi_app.wsgi_app  # what the fast path hands a request it does not answer
    monkeypatch.setattr(app.wsgi_app, "wsgi_app", lambda *args: flask_answers.append(1) or flask_app(*args))
    missed = follow(client)  # a cache miss: the Flask view (it fills this process's cache)
    hit = follow(client)  # a hit: the WSGI fast path
    assert len(flask_answers) == 1, "the second redirect did not come from the fast path"
    ignored = {"Date", "Content-Length"}
    assert missed.status_code == hit.status_code == 302
    assert {name for name, _ in missed.headers} - ignored == {name for name, _ in hit.headers} - ignored
    assert missed.headers["Location"] == hit.headers["Location"]


@pytest.mark.parametrize("slug, status", [("nothing-here", 404), ("old", 410)])
def test_the_404_and_410_pages_carry_every_answer_header(client, user, slug, status):
    service.create_link("https://example.com/old", user, slug="old", expires_at="2000-01-01T00:00:00Z")
    response = follow(client, f"/r/{slug}")
    assert response.status_code == status
    assert [(name, response.headers.get(name)) for name, _ in answer_headers()] == answer_headers()
