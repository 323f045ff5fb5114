"""Outages with real processes: Redis or the broker stops while redirects keep coming.

The promise under test: every redirect is answered, with its link's target,
while the service is down (the click waits in the process's local click
log), and once the service is back every click is counted exactly once.
How fast they are answered is ``make bench``'s business. Worker and beat log connection errors during an
outage; that is expected.
"""

import os
import threading
from typing import NamedTuple

import pytest
import redis
import requests

from tasks.clicks import ship_orphaned_clicks
from tests.processes import ClickLogWriter, RedisServer, wait_for
from tests.test_click_pipeline import (
    assert_counted_exactly,
    buffer_length,
    click_lines,
    task_outcomes,
    unshipped_clicks,
)
from webapp.clicks import buffer
from webapp.clicks.buffer import CLICK_BUFFER
from webapp.links import service

pytestmark = pytest.mark.integration


class Sent(NamedTuple):
    phase: str
    status: int | str  # the HTTP status, or the name of the exception raised (a hang: ReadTimeout)
    location: str | None


class RedirectSender:
    """Sends redirects back to back from a thread, recording each one's phase, status and target."""

    def __init__(self, url):
        self.url = url
        self.phase = "before"
        self.sent = []
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc_info):
        self.stopping.set()
        self.thread.join(10)

    def run(self):
        with requests.Session() as session:
            while not self.stopping.is_set():
                phase = self.phase
                try:
                    response = session.get(self.url, allow_redirects=False, timeout=5)
                except requests.RequestException as exc:
                    self.sent.append(Sent(phase, type(exc).__name__, None))
                else:
                    self.sent.append(Sent(phase, response.status_code, response.headers.get("Location")))
                self.stopping.wait(0.005)

    def count(self, phase):
        return sum(1 for sent in self.sent if sent.phase == phase)

    def send_in_phase(self, phase, count, timeout=30):
        """Switch to ``phase`` and return once ``count`` redirects were sent in it."""
        self.phase = phase
        wait_for(lambda: self.count(phase) >= count, timeout, 0.05, f"{count} redirects sent {phase}")


def clicks_buffered(redis_server):
    client = redis_server.client()
    try:
        return buffer.counters(client)["clicks_buffered"]
    finally:
        client.close()


def assert_all_redirected_to(target, sent):
    wrong = [item for item in sent if (item.status, item.location) != (302, target)]
    assert wrong == [], f"{len(wrong)} of {len(sent)} redirects not answered with {target}: {wrong[:3]}"


def test_redirects_are_answered_through_a_redis_outage_and_every_click_is_counted_once(
    app, user, processes, redis_server
):
    link, _ = service.create_link("https://example.com/outage", user, slug="outage")
    web = processes.web()
    processes.worker()
    processes.beat()

    with RedirectSender(f"{web.url}/r/outage") as sender:
        sender.send_in_phase("before", 50)
        redis_server.stop()
        sender.send_in_phase("during", 150)
        waiting_during_outage = unshipped_clicks(app)
        answered_so_far = len(sender.sent)
        redis_server.start()  # same port and data directory: the stream survives
        # The shippers resume: what waited reaches the stream within moments.
        wait_for(
            lambda: clicks_buffered(redis_server) >= answered_so_far,
            timeout=10,
            message="the clicks of the outage shipped",
        )
        sender.send_in_phase("after", 100)

    assert waiting_during_outage >= 100, "the click logs did not hold the outage's clicks"
    assert sender.count("during") >= 150
    assert_all_redirected_to("https://example.com/outage", sender.sent)
    assert_counted_exactly(app, redis_server, link.id, len(sender.sent), timeout=90)


def broker_answers(server):
    client = server.client()
    try:
        return client.ping()
    except redis.ConnectionError:
        return False
    finally:
        client.close()


@pytest.fixture
def broker(tmp_path):
    """A second redis-server, used only as the Celery broker."""
    server = RedisServer(str(tmp_path / "broker")).start()
    yield server
    server.stop()


def test_task_mode_redirects_are_answered_through_a_broker_outage_and_every_click_is_counted_once(
    broker, app, user, processes, redis_client, redis_server
):
    # ``broker`` comes first: set up before the processes, stopped after them.
    link, _ = service.create_link("https://example.com/brokered", user, slug="brokered")
    env = {"CLICK_CAPTURE_MODE": "task", "CELERY_BROKER_URL": broker.url}
    web = processes.web(**env)
    processes.worker(**env)
    processes.beat(**env)

    with RedirectSender(f"{web.url}/r/brokered") as sender:
        sender.send_in_phase("before", 50)
        broker.stop()
        sender.send_in_phase("during", 150)
        broker_was_down = broker.process is None and not broker_answers(broker)
        broker.start()
        sender.send_in_phase("after", 100)

    assert broker_was_down, "the broker answered during the outage"
    assert_all_redirected_to("https://example.com/brokered", sender.sent)
    assert_counted_exactly(app, redis_server, link.id, len(sender.sent), timeout=90)
    # The clicks of the outage went through the click log, the stream and the
    # batch drain instead of lost tasks; the others were tasks.
    totals = buffer.counters(redis_client)
    assert totals["clicks_buffered"] > 0
    assert totals["clicks_drained"] + totals["clicks_dropped"] == totals["clicks_buffered"]
    assert totals["clicks_buffered"] < len(sender.sent), "no click went as a task"
    client = broker.client()
    try:
        assert client.llen("clicks") == 0
    finally:
        client.close()


def test_click_log_left_by_a_dead_process_is_shipped_by_the_periodic_task_and_counted_once(
    app, user, processes, redis_client, redis_server
):
    link, _ = service.create_link("https://example.com/orphaned", user, slug="orphaned")
    lines = click_lines(link.id, 300)
    dead = ClickLogWriter(app.config["CLICK_LOG_DIR"], lines).exit()
    # A shipper killed after its XADD but before deleting the file ships the
    # same clicks again later: those must count once too.
    CLICK_BUFFER.append(redis_client, lines[:50])
    assert unshipped_clicks(app) == 300
    worker = processes.worker(queues="clicks")
    processes.beat()  # drains the buffer the shipment fills

    sent = ship_orphaned_clicks.apply_async()

    wait_for(lambda: sent.id in task_outcomes(worker, "tasks.clicks.ship_orphaned_clicks"), timeout=30)
    assert task_outcomes(worker, "tasks.clicks.ship_orphaned_clicks")[sent.id] == "300"
    assert not os.path.exists(dead.path)
    assert_counted_exactly(app, redis_server, link.id, 300)
    assert buffer.counters(redis_client)["clicks_shipped_late"] == 300
    assert buffer_length(redis_server) == 0
