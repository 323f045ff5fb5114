"""Installs never share by accident: namespaced keys and queues, dead letters, deleted links.

Two installs may meet in one Redis or one broker. Each names everything it
keeps there under its namespace (a hash of its database URL by default),
and a drain that still meets a click for a link id its database never had
keeps it aside, visibly, instead of dropping it.
"""

import json
import os

import pytest
from flask import current_app
from flask_migrate import upgrade

from tests.processes import celery_beat, wait_for
from webapp import create_app
from webapp.celery_app import celery_of
from webapp.clicks import buffer
from webapp.clicks.buffer import CLICK_BUFFER, dead_letter_stream
from webapp.clicks.click_log import app_click_log
from webapp.clicks.drain import CLICK_DRAIN
from webapp.clicks.events import encode_click
from webapp.config import environment_namespace
from webapp.extensions import db
from webapp.keys import namespace_for
from webapp.links import service
from webapp.models import LinkCounter

FIREFOX = "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0"


def click_lines(link_id, count):
    return [encode_click(link_id, "GET", None, FIREFOX, "203.0.113.9") for _ in range(count)]


def drain(redis_client):
    return CLICK_DRAIN.drain(redis_client, db.engine, "test-drain", 1000, 10, 60)


def dead_letters(redis_client):
    return redis_client.xrange(dead_letter_stream(CLICK_BUFFER))


def counted(link_id):
    counter = db.session.get(LinkCounter, link_id)
    return counter.clicks if counter else 0


@pytest.fixture
def link(user):
    return service.create_link("https://example.com/landing", user, slug="launch")[0]


def test_the_default_namespace_follows_the_database_but_not_its_password():
    one = namespace_for("postgresql+psycopg://clicks:secret@db.internal/clickboard")
    assert one == namespace_for("postgresql+psycopg://clicks:rotated@db.internal/clickboard")
    assert one != namespace_for("postgresql+psycopg://clicks:secret@db.internal/other")
    assert one != namespace_for("sqlite:////srv/clickboard/instance/clickboard.sqlite3")


def test_an_explicit_namespace_wins(app, make_app):
    make_app(CLICKBOARD_NAMESPACE="shop")
    assert current_app.config["CLICKBOARD_NAMESPACE"] == "shop"
    assert CLICK_BUFFER.stream == "cb:shop:clicks"


def test_code_without_an_app_names_the_same_install_as_the_app(app):
    assert environment_namespace() == app.config["CLICKBOARD_NAMESPACE"]


def test_every_redis_key_an_install_writes_carries_its_namespace(app, client, link, redis_client):
    client.get("/r/launch")
    app_click_log(app).ship_own()
    drain(redis_client)
    client.post("/login", data={"email": "owner@example.com", "password": "wrong"})
    service.set_enabled(link, False)
    client.get("/api/links/launch")
    namespace = app.config["CLICKBOARD_NAMESPACE"]
    written = sorted(redis_client.scan_iter("*"))
    assert written, "the steps above wrote nothing to Redis"
    assert [name for name in written if not name.startswith(f"cb:{namespace}:")] == []


def test_celery_queues_carry_the_namespace_and_answer_to_their_short_names(app):
    celery = celery_of(app)
    namespace = app.config["CLICKBOARD_NAMESPACE"]
    assert celery.amqp.queues["clicks"].name == f"cb.{namespace}.clicks"
    route = celery.amqp.router.route({}, "tasks.clicks.drain_click_buffer")
    assert route["queue"].name == f"cb.{namespace}.clicks"
    assert celery.amqp.router.route({}, "tasks.links.check_stale_links")["queue"].name.endswith(".default")


def test_a_click_for_a_link_this_database_never_had_is_kept_aside(app, link, redis_client, caplog):
    CLICK_BUFFER.append(redis_client, click_lines(link.id, 2) + click_lines(987654, 3))
    assert drain(redis_client) == 2
    kept = dead_letters(redis_client)
    assert [fields["link_id"] for _, fields in kept] == ["987654"] * 3
    assert json.loads(kept[0][1]["click"])["link_id"] == 987654
    assert buffer.counters(redis_client)["clicks_dead_lettered"] == 3
    assert "kept aside 3 clicks for link ids this database never had (987654)" in caplog.text
    assert counted(link.id) == 2


def test_dead_letters_show_on_metrics(app, client, redis_client):
    CLICK_BUFFER.append(redis_client, click_lines(987654, 4))
    drain(redis_client)
    assert "clickboard_clicks_dead_lettered_total 4.0" in client.get("/metrics").text


def test_the_ops_panel_warns_while_dead_letters_wait(app, user, redis_client, operator):
    assert 'data-ops="dead-letters"' not in operator.get("/fragments/ops").text
    CLICK_BUFFER.append(redis_client, click_lines(987654, 1))
    drain(redis_client)
    assert "1 click for links this database never had is kept aside" in operator.get("/fragments/ops").text


def test_clicks_of_a_deleted_link_are_dropped_quietly(app, link, redis_client):
    link_id = link.id
    service.delete_link(link)
    CLICK_BUFFER.append(redis_client, click_lines(link_id, 3))
    assert drain(redis_client) == 0
    assert dead_letters(redis_client) == []
    assert redis_client.xlen(CLICK_BUFFER.stream) == 0
    assert buffer.counters(redis_client)["clicks_dead_lettered"] == 0


@pytest.fixture
def second_install(app, tmp_path):
    """Another install's settings: the same Redis and broker, a database of its own."""
    url = f"sqlite:///{tmp_path / 'second.sqlite3'}"
    second = create_app({"TESTING": True, "SQLALCHEMY_DATABASE_URI": url})
    with second.app_context():
        upgrade()
        db.engine.dispose()
    instance = tmp_path / "second-instance"
    instance.mkdir()
    return {"DATABASE_URL": url, "CLICKBOARD_INSTANCE_PATH": str(instance)}


@pytest.fixture
def second_beat(app_env, second_install, tmp_path):
    """Beat of the second install (its own schedule file and log)."""
    log_dir = tmp_path / "second-beat"
    log_dir.mkdir()
    beat = celery_beat({**os.environ, **app_env, **second_install}, str(log_dir)).start()
    yield beat
    beat.stop()


@pytest.mark.integration
def test_two_installs_sharing_one_redis_each_count_their_own_clicks(
    app, link, redis_client, make_app, processes, second_install, second_beat
):
    namespace, link_id = app.config["CLICKBOARD_NAMESPACE"], link.id
    CLICK_BUFFER.append(redis_client, click_lines(link_id, 300))
    other = make_app(SQLALCHEMY_DATABASE_URI=second_install["DATABASE_URL"])
    assert other.config["CLICKBOARD_NAMESPACE"] != namespace
    their_link = service.create_link("https://example.org/", None, slug="theirs")[0]
    assert their_link.id == link_id, "both databases hand out the same first link id"
    CLICK_BUFFER.append(redis_client, click_lines(their_link.id, 200))
    processes.worker(name="worker")
    processes.worker(name="second-worker", **second_install)
    processes.beat()

    def counts():
        with app.app_context():
            mine = counted(link_id)
            db.session.remove()
        theirs = counted(link_id)
        db.session.remove()
        return mine, theirs

    wait_for(
        lambda: counts() == (300, 200), timeout=60, message="300 clicks here and 200 in the other install"
    )
    for install in (other, app):
        with install.app_context():
            assert redis_client.xlen(CLICK_BUFFER.stream) == 0
            assert dead_letters(redis_client) == []
    assert counts() == (300, 200)
