"""Clicks through real processes: gunicorn, a Celery worker, beat and Redis.

Counts are read from the database the processes write. "Exactly N" is
checked only once the pipeline is idle (buffer and spool empty) and again a
few drain intervals later, so a click counted twice late would still show.

The helpers here are shared with ``test_outages.py``.
"""

import base64
import json
import os
import re
import time
from concurrent.futures import ThreadPoolExecutor
from typing import NamedTuple

import pytest
import requests
from sqlalchemy import func, select

from tasks.clicks import record_link_click
from tests.processes import wait_for
from webapp.clicks import buffer, drain
from webapp.clicks.events import click_row, make_click_event
from webapp.extensions import db
from webapp.links import service
from webapp.models import Click, LinkCounter, LinkHourlyClicks

pytestmark = pytest.mark.integration

# Four drain intervals of the test environment: long enough for a late
# duplicate (a reclaimed or replayed batch) to reach the counters.
SETTLE_SECONDS = 2.0
HUMAN_USER_AGENT = "Mozilla/5.0 (X11; Linux x86_64) clickboard-tests"


class Totals(NamedTuple):
    counter: int  # link_counter clicks + bot_clicks
    rows: int  # click rows
    hourly: int  # sum over link_hourly_clicks


def click_totals(link_id):
    """The link's three click counts, as committed by the other processes."""
    db.session.rollback()  # ends any open read transaction and expires cached objects
    counter = db.session.get(LinkCounter, link_id)
    rows = db.session.scalar(select(func.count()).select_from(Click).where(Click.link_id == link_id))
    hourly = db.session.scalar(
        select(func.coalesce(func.sum(LinkHourlyClicks.clicks + LinkHourlyClicks.bot_clicks), 0)).where(
            LinkHourlyClicks.link_id == link_id
        )
    )
    return Totals(counter.clicks + counter.bot_clicks if counter else 0, rows, int(hourly))


def counter_of(link_id):
    db.session.rollback()
    counter = db.session.get(LinkCounter, link_id)
    return counter.clicks + counter.bot_clicks if counter else 0


def spool_files(app):
    try:
        return [name for name in os.listdir(app.config["CLICK_SPOOL_DIR"]) if name.endswith(".jsonl")]
    except FileNotFoundError:
        return []


def buffer_length(redis_server):
    """Messages still in the click stream (a fresh client: the server may have restarted)."""
    client = redis_server.client()
    try:
        return client.xlen(buffer.CLICK_STREAM)
    finally:
        client.close()


def assert_counted_exactly(app, redis_server, link_id, expected, timeout=60):
    """Wait until ``expected`` clicks are counted and the pipeline is idle; then none may be added."""
    try:
        wait_for(lambda: counter_of(link_id) >= expected, timeout, 0.2, f"{expected} clicks counted")
        wait_for(
            lambda: buffer_length(redis_server) == 0 and not spool_files(app),
            timeout,
            0.2,
            "an empty click buffer and spool",
        )
    except AssertionError as exc:
        raise AssertionError(
            f"{exc}; now {click_totals(link_id)}, buffer {buffer_length(redis_server)}, "
            f"spool {spool_files(app)}"
        ) from None
    time.sleep(SETTLE_SECONDS)
    assert click_totals(link_id) == Totals(expected, expected, expected)


def send_redirects(url, count, threads=4):
    """GET ``url`` ``count`` times from ``threads`` threads; return each response's (status, seconds)."""

    def send(share):
        results = []
        with requests.Session() as session:
            for _ in range(share):
                started = time.monotonic()
                response = session.get(url, allow_redirects=False, timeout=5)
                results.append((response.status_code, time.monotonic() - started))
        return results

    shares = [count // threads + (1 if index < count % threads else 0) for index in range(threads)]
    with ThreadPoolExecutor(threads) as pool:
        return [result for part in pool.map(send, shares) for result in part]


def click_events(link_id, count):
    return [
        {**make_click_event("GET", None, HUMAN_USER_AGENT, "192.0.2.10"), "l": str(link_id)}
        for _ in range(count)
    ]


def buffer_clicks(client, link_id, count, chunk=1000):
    """Append ``count`` clicks to the stream as the redirect would, ``chunk`` per round trip."""
    for start in range(0, count, chunk):
        buffer.append(client, click_events(link_id, min(chunk, count - start)))


def task_outcomes(worker, task_name):
    """{task id: return value} of the tasks named ``task_name`` the worker logged as succeeded."""
    pattern = re.compile(rf"Task {re.escape(task_name)}\[([0-9a-f-]+)\] succeeded in [0-9.e-]+s: (\S+)")
    return dict(pattern.findall(worker.log_text()))


def link_clicks(app, slug):
    db.session.expire_all()
    link = service.get_link(slug)
    return link.counter.clicks if link.counter else 0


def test_every_redirect_is_counted_once_in_batch_mode(app, user, processes):
    service.create_link("https://example.com/landing", user, slug="launch")
    web = processes.web()
    processes.worker()
    processes.beat()
    session = requests.Session()
    for _ in range(300):
        response = session.get(f"{web.url}/r/launch", allow_redirects=False, timeout=5)
        assert response.status_code == 302
    wait_for(lambda: link_clicks(app, "launch") == 300, timeout=30, message="300 clicks counted")


def test_concurrent_redirects_in_batch_mode_make_one_row_and_one_hourly_click_each(
    app, user, processes, redis_server
):
    link, _ = service.create_link("https://example.com/sale", user, slug="sale")
    web = processes.web()
    processes.worker()
    processes.beat()

    results = send_redirects(f"{web.url}/r/sale", 500, threads=4)

    assert [status for status, _ in results] == [302] * 500
    assert_counted_exactly(app, redis_server, link.id, 500)


def test_every_redirect_is_counted_once_through_per_click_tasks_in_task_mode(
    app, user, processes, redis_client, redis_server
):
    link, _ = service.create_link("https://example.com/tasked", user, slug="tasked")
    web = processes.web(CLICK_CAPTURE_MODE="task")
    worker = processes.worker(CLICK_CAPTURE_MODE="task", queues="clicks", concurrency=2)

    results = send_redirects(f"{web.url}/r/tasked", 200, threads=4)

    assert [status for status, _ in results] == [302] * 200
    assert_counted_exactly(app, redis_server, link.id, 200)
    # Each click was its own task, and none went through the batch buffer.
    outcomes = task_outcomes(worker, "tasks.clicks.record_link_click")
    assert list(outcomes.values()) == ["1"] * 200
    assert buffer.counters(redis_client)["clicks_buffered"] == 0
    assert "Traceback" not in worker.log_text()


def test_record_link_click_task_records_one_click_row_for_an_existing_link(
    app, user, processes, redis_server
):
    link, _ = service.create_link("https://example.com/one", user, slug="one")
    worker = processes.worker(queues="clicks")
    event = {
        **make_click_event("GET", "https://news.example/", HUMAN_USER_AGENT, "198.51.100.77"),
        "l": str(link.id),
    }

    sent = record_link_click.apply_async(kwargs={"event": event})

    wait_for(lambda: sent.id in task_outcomes(worker, "tasks.clicks.record_link_click"), timeout=30)
    assert task_outcomes(worker, "tasks.clicks.record_link_click")[sent.id] == "1"
    assert click_totals(link.id) == Totals(1, 1, 1)
    row = db.session.scalars(select(Click)).one()
    assert (row.event_id, row.referrer, row.ip_anonymised) == (
        event["e"],
        "https://news.example/",
        "198.51.100.0",
    )


def test_record_link_click_task_for_a_missing_link_succeeds_and_records_nothing(
    app, user, processes, redis_server
):
    worker = processes.worker(queues="clicks")
    event = {**make_click_event("GET", None, HUMAN_USER_AGENT, "198.51.100.77"), "l": "987654"}

    sent = record_link_click.apply_async(kwargs={"event": event})

    wait_for(lambda: sent.id in task_outcomes(worker, "tasks.clicks.record_link_click"), timeout=30)
    assert task_outcomes(worker, "tasks.clicks.record_link_click")[sent.id] == "0"
    assert "Traceback" not in worker.log_text()
    db.session.rollback()
    assert db.session.scalar(select(func.count()).select_from(Click)) == 0
    assert db.session.scalar(select(func.count()).select_from(LinkCounter)) == 0


def test_redirect_in_task_mode_queues_one_record_link_click_task_for_the_worker(
    app, user, processes, redis_client, redis_server
):
    link, _ = service.create_link("https://example.com/queued", user, slug="queued")
    web = processes.web(workers=1, CLICK_CAPTURE_MODE="task")

    response = requests.get(f"{web.url}/r/queued", allow_redirects=False, timeout=5)

    assert response.status_code == 302
    queued = redis_client.lrange("clicks", 0, -1)
    assert len(queued) == 1
    message = json.loads(queued[0])
    assert message["headers"]["task"] == "tasks.clicks.record_link_click"
    _, kwargs, _ = json.loads(base64.b64decode(message["body"]))
    assert kwargs["event"]["l"] == str(link.id)
    assert counter_of(link.id) == 0  # nothing records it without a worker

    processes.worker(queues="clicks")

    assert_counted_exactly(app, redis_server, link.id, 1)
    assert redis_client.llen("clicks") == 0


def test_no_click_is_lost_or_counted_twice_when_a_draining_worker_is_killed(
    app, user, processes, redis_client, redis_server
):
    total = 20_000
    link, _ = service.create_link("https://example.com/crash", user, slug="crash")
    buffer_clicks(redis_client, link.id, total)
    doomed = processes.worker(name="doomed", CLICK_DRAIN_BATCH_SIZE=500)
    processes.beat()

    wait_for(lambda: counter_of(link.id) > 0, timeout=60, interval=0.05, message="the drain to start")
    doomed.kill()

    counted_at_kill = counter_of(link.id)
    assert counted_at_kill < total, "the drain finished before the kill, so no crash was tested"
    processes.worker(name="survivor", CLICK_DRAIN_BATCH_SIZE=500)
    assert_counted_exactly(app, redis_server, link.id, total, timeout=120)


def test_clicks_committed_by_a_drain_that_died_before_acknowledging_are_counted_once(
    app, user, processes, redis_client, redis_server
):
    total = 2_000
    link, _ = service.create_link("https://example.com/acked", user, slug="acked")
    buffer_clicks(redis_client, link.id, total)
    # A drain's first two steps, then death: read (now pending), commit, no XACK.
    buffer.ensure_group(redis_client)
    messages = buffer.read_new(redis_client, "dead-consumer", total)
    drain.commit_rows(db.engine, [click_row(fields) for _, fields in messages], check_duplicates=False)
    assert click_totals(link.id) == Totals(total, total, total)
    assert redis_client.xpending(buffer.CLICK_STREAM, buffer.DRAIN_GROUP)["pending"] == total

    worker = processes.worker()
    processes.beat()

    wait_for(
        lambda: redis_client.xpending(buffer.CLICK_STREAM, buffer.DRAIN_GROUP)["pending"] == 0,
        timeout=60,
        message="the dead consumer's messages reclaimed and acknowledged",
    )
    assert f"reclaimed {total} click messages from a dead drain" in worker.log_text()
    assert_counted_exactly(app, redis_server, link.id, total)
