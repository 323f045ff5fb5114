"""GET /r/<slug> in-process: the Flask test client against the real embedded Redis."""

import base64
import json
import os
from urllib.parse import urlsplit

import pytest

from webapp.clicks import spool
from webapp.clicks.buffer import CLICK_STREAM
from webapp.extensions import db
from webapp.links import cache, service

FIREFOX = "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0"
GOOGLEBOT = "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)"
TARGET = "https://example.com/landing?ref=cb"


@pytest.fixture
def link(user):
    return service.create_link("HTTPS://Example.com:443/landing?ref=cb#top", user, slug="launch")[0]


def stream_messages(redis_client):
    return [fields for _, fields in redis_client.xrange(CLICK_STREAM)]


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


def test_redirect_captures_exactly_one_click(client, redis_client, link):
    follow(client, Referer="https://news.example/item?id=1")
    assert len(stream_messages(redis_client)) == 1


def test_captured_click_carries_link_referrer_agent_and_anonymised_ip(client, redis_client, link):
    client.get(
        "/r/launch",
        headers={"Referer": "https://news.example/item?id=1", "User-Agent": FIREFOX},
        environ_base={"REMOTE_ADDR": "203.0.113.77"},
    )
    (message,) = stream_messages(redis_client)
    assert {key: message[key] for key in ("l", "r", "u", "i")} == {
        "l": str(link.id),
        "r": "https://news.example/item?id=1",
        "u": FIREFOX,
        "i": "203.0.113.0",
    }
    assert "b" not in message


def test_cached_redirects_each_capture_one_click(client, redis_client, link):
    for _ in range(3):
        follow(client)
    messages = stream_messages(redis_client)
    assert len(messages) == 3
    assert len({message["e"] for message in messages}) == 3


def test_head_request_click_is_flagged_bot(client, redis_client, link):
    follow(client, method="HEAD")
    (message,) = stream_messages(redis_client)
    assert message["b"] == "1"


def test_bot_user_agent_click_is_flagged_bot(client, redis_client, link):
    follow(client, **{"User-Agent": GOOGLEBOT})
    (message,) = stream_messages(redis_client)
    assert message["b"] == "1"


def test_not_found_captures_no_click(client, redis_client, link):
    follow(client, "/r/nothing-here")
    follow(client, "/r/nothing-here")
    assert stream_messages(redis_client) == []


def test_disabled_link_captures_no_click(client, redis_client, link):
    service.set_enabled(link, False)
    follow(client)
    assert stream_messages(redis_client) == []


def test_forwarded_for_is_ignored_without_trusted_proxies(client, redis_client, link):
    client.get(
        "/r/launch", headers={"X-Forwarded-For": "198.51.100.7"}, environ_base={"REMOTE_ADDR": "203.0.113.77"}
    )
    assert stream_messages(redis_client)[0]["i"] == "203.0.113.0"


def test_forwarded_for_from_a_trusted_proxy_gives_the_client_ip(make_app, redis_client, link):
    other = make_app(TRUSTED_PROXIES=["10.0.0.0/8"])
    other.test_client().get(
        "/r/launch", headers={"X-Forwarded-For": "198.51.100.7"}, environ_base={"REMOTE_ADDR": "10.1.2.3"}
    )
    assert stream_messages(redis_client)[0]["i"] == "198.51.100.0"


# --- Redis down -------------------------------------------------------------


@pytest.fixture
def redis_down_app(make_app, dead_redis_url, link, monkeypatch):
    """The app with Redis (and the broker) unreachable; the link exists already."""
    # Spool state is per process: restore it so no later test starts a replay.
    monkeypatch.setitem(spool.state, "spooled", False)
    monkeypatch.setitem(spool.state, "next_replay_at", 0.0)
    return make_app(REDIS_URL=dead_redis_url, CELERY_BROKER_URL=dead_redis_url)


def spooled_messages(app):
    directory = app.config["CLICK_SPOOL_DIR"]
    if not os.path.isdir(directory):
        return []
    messages = []
    for name in sorted(os.listdir(directory)):
        with open(os.path.join(directory, name)) as spool_file:
            messages.extend(json.loads(line) for line in spool_file)
    return messages


def test_redirect_answers_from_the_database_while_redis_is_down(redis_down_app):
    response = follow(redis_down_app.test_client())
    assert (response.status_code, response.headers["Location"]) == (302, TARGET)


def test_unknown_slug_is_a_404_while_redis_is_down(redis_down_app):
    assert follow(redis_down_app.test_client(), "/r/nothing-here").status_code == 404


def test_link_disabled_while_redis_is_down_is_a_404(redis_down_app):
    service.set_enabled(service.get_link("launch"), False)  # its cache entry cannot be dropped
    assert follow(redis_down_app.test_client()).status_code == 404


def test_click_is_spooled_while_redis_is_down(redis_down_app, link):
    follow(redis_down_app.test_client(), Referer="https://news.example/")
    (message,) = spooled_messages(redis_down_app)
    assert (message["l"], message["r"], message["u"]) == (str(link.id), "https://news.example/", FIREFOX)


def test_spooled_click_is_replayed_into_the_stream(app, redis_down_app, redis_client):
    follow(redis_down_app.test_client())
    (spooled,) = spooled_messages(redis_down_app)
    with app.app_context():  # Redis is reachable through this app
        assert spool.replay_all() == 1
    assert stream_messages(redis_client) == [spooled]
    assert spooled_messages(redis_down_app) == []


# --- task mode --------------------------------------------------------------


def queued_tasks(redis_client, queue="clicks"):
    """Celery messages waiting in a Redis-broker queue (a list named after it)."""
    return [json.loads(raw) for raw in redis_client.lrange(queue, 0, -1)]


def task_kwargs(message):
    _args, kwargs, _embed = json.loads(base64.b64decode(message["body"]))
    return kwargs


def test_redirect_in_task_mode_queues_a_record_task(make_app, redis_client, link):
    follow(make_app(CLICK_CAPTURE_MODE="task").test_client())
    assert [message["headers"]["task"] for message in queued_tasks(redis_client)] == [
        "tasks.clicks.record_link_click"
    ]


def test_task_mode_task_carries_the_click(make_app, redis_client, link):
    follow(make_app(CLICK_CAPTURE_MODE="task").test_client(), Referer="https://news.example/")
    (message,) = queued_tasks(redis_client)
    event = task_kwargs(message)["event"]
    assert (event["l"], event["r"], event["u"]) == (str(link.id), "https://news.example/", FIREFOX)


def test_task_mode_buffers_nothing_in_the_stream(make_app, redis_client, link):
    follow(make_app(CLICK_CAPTURE_MODE="task").test_client())
    assert stream_messages(redis_client) == []


def test_task_mode_queues_nothing_for_an_unknown_slug(make_app, redis_client, link):
    follow(make_app(CLICK_CAPTURE_MODE="task").test_client(), "/r/nothing-here")
    assert queued_tasks(redis_client) == []
