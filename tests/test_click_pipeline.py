"""Clicks through real processes: gunicorn, a Celery worker, beat and Redis.

Counts are read from the database the processes write. "Exactly N" is
checked only once the pipeline is idle (no line waiting in any click log,
the buffer empty) and after two more drain runs, so a click counted twice
late would still show.

The helpers here are shared with ``test_outages.py``.
"""

import os
import re
import signal
from concurrent.futures import ThreadPoolExecutor
from typing import NamedTuple

import pytest
import requests
from sqlalchemy import func, select

from tasks.clicks import record_link_click, ship_orphaned_clicks
from tests.broker import queue_depth, queued_tasks
from tests.processes import wait_for
from webapp.clicks import buffer
from webapp.clicks.buffer import CLICK_BUFFER
from webapp.clicks.drain import CLICK_DRAIN
from webapp.clicks.events import click_row, encode_click
from webapp.extensions import db
from webapp.links import service
from webapp.models import Click, LinkCounter, LinkHourlyClicks

pytestmark = pytest.mark.integration

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


def click_log_files(app):
    """{file name: lines waiting in it} for this host's click logs (every process's)."""
    directory = app.config["CLICK_LOG_DIR"]
    try:
        names = [name for name in os.listdir(directory) if name.endswith(".log")]
    except FileNotFoundError:
        return {}
    waiting = {}
    for name in names:
        try:
            with open(os.path.join(directory, name), "rb") as log_file:
                waiting[name] = sum(1 for line in log_file if line.strip())
        except FileNotFoundError:
            continue  # shipped and deleted meanwhile
    return waiting


def unshipped_clicks(app):
    """Lines waiting in this host's click logs (a live process keeps an empty one)."""
    return sum(click_log_files(app).values())


def buffer_length(redis_server):
    """Lines still in the click stream (a fresh client: the server may have restarted)."""
    client = redis_server.client()
    try:
        return len(CLICK_BUFFER.waiting_lines(client))
    finally:
        client.close()


def assert_counted_exactly(app, redis_server, link_id, expected, timeout=60):
    """Wait until ``expected`` clicks are counted and the pipeline is idle; then none may be added."""
    try:
        wait_for(lambda: counter_of(link_id) >= expected, timeout, 0.2, f"{expected} clicks counted")
        wait_for(
            lambda: unshipped_clicks(app) == 0 and buffer_length(redis_server) == 0,
            timeout,
            0.2,
            "no click waiting in a click log or the buffer",
        )
    except AssertionError as exc:
        raise AssertionError(
            f"{exc}; now {click_totals(link_id)}, buffer {buffer_length(redis_server)}, "
            f"click logs {click_log_files(app)}"
        ) from None
    wait_for_drain_runs(redis_server, 2)
    assert click_totals(link_id) == Totals(expected, expected, expected)


def wait_for_drain_runs(redis_server, runs, buffer=CLICK_BUFFER):
    """Wait until the buffer's periodic drain completed ``runs`` more runs; at once if nothing drains.

    A late duplicate (a reclaimed batch, a log shipped twice) reaches the
    counters through a drain: the first run may have begun before the
    pipeline was idle, the second began after.
    """
    client = redis_server.client()
    try:
        for _ in range(runs):
            last = client.get(buffer.last_drain_key)
            if last is None:
                return  # no beat in this test: no drain can add anything
            wait_for(lambda last=last: client.get(buffer.last_drain_key) != last, 30, 0.05, "a drain run")
    finally:
        client.close()


def send_redirects(url, count, threads=4):
    """GET ``url`` ``count`` times from ``threads`` threads; return each response's (status, Location)."""

    def send(share):
        results = []
        with requests.Session() as session:
            for _ in range(share):
                response = session.get(url, allow_redirects=False, timeout=5)
                results.append((response.status_code, response.headers.get("Location")))
        return results

    shares = [count // threads + (1 if index < count % threads else 0) for index in range(threads)]
    with ThreadPoolExecutor(threads) as pool:
        return [result for part in pool.map(send, shares) for result in part]


def click_lines(link_id, count):
    return [encode_click(link_id, "GET", None, HUMAN_USER_AGENT, "192.0.2.10") for _ in range(count)]


def buffer_clicks(client, link_id, count, chunk=1000):
    """Append ``count`` clicks to the stream as a shipper would, ``chunk`` per round trip."""
    for start in range(0, count, chunk):
        CLICK_BUFFER.append(client, click_lines(link_id, min(chunk, count - start)))


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
    line = encode_click(link.id, "GET", "https://news.example/", HUMAN_USER_AGENT, "198.51.100.77")

    sent = record_link_click.apply_async(args=(line,))

    wait_for(lambda: sent.id in task_outcomes(worker, "tasks.clicks.record_link_click"), timeout=30)
    assert task_outcomes(worker, "tasks.clicks.record_link_click")[sent.id] == "1"
    assert click_totals(link.id) == Totals(1, 1, 1)
    row = db.session.scalars(select(Click)).one()
    assert (row.event_id, row.referrer, row.ip_anonymised) == (
        line.split("\t")[0],
        "https://news.example/",
        "198.51.100.0",
    )


def test_record_link_click_task_for_a_missing_link_succeeds_and_records_nothing(
    app, user, processes, redis_server
):
    worker = processes.worker(queues="clicks")
    line = encode_click(987654, "GET", None, HUMAN_USER_AGENT, "198.51.100.77")

    sent = record_link_click.apply_async(args=(line,))

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
    queued = queued_tasks("clicks")
    assert [task.task for task in queued] == ["tasks.clicks.record_link_click"]
    assert queued[0].args[0].split("\t")[1] == str(link.id)
    assert counter_of(link.id) == 0  # nothing records it without a worker

    processes.worker(queues="clicks")

    assert_counted_exactly(app, redis_server, link.id, 1)
    assert queue_depth("clicks") == 0


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
    CLICK_BUFFER.ensure_group(redis_client)
    messages = CLICK_BUFFER.shards[0].read_new(redis_client, "dead-consumer", total)
    rows = [click_row(line) for _, text in messages for line in text.split("\n")]
    CLICK_DRAIN.commit_rows(db.engine, rows, check_duplicates=False)
    assert click_totals(link.id) == Totals(total, total, total)
    assert redis_client.xpending(CLICK_BUFFER.stream, CLICK_BUFFER.group)["pending"] == len(messages)

    worker = processes.worker()
    processes.beat()

    wait_for(
        lambda: redis_client.xpending(CLICK_BUFFER.stream, CLICK_BUFFER.group)["pending"] == 0,
        timeout=60,
        message="the dead consumer's messages reclaimed and acknowledged",
    )
    # Reclaimed by one drain or over a few (XAUTOCLAIM may hand them out in parts), each once.
    reclaimed = re.findall(
        rf"reclaimed (\d+) lines of {re.escape(CLICK_BUFFER.stream)} from a dead drain", worker.log_text()
    )
    assert sum(map(int, reclaimed)) == total, reclaimed
    assert_counted_exactly(app, redis_server, link.id, total)


# --- web processes that die, and links that change ------------------------------


def test_clicks_of_a_sigkilled_web_worker_are_shipped_by_the_periodic_task_and_counted_once(
    app, user, processes, redis_client, redis_server
):
    link, _ = service.create_link("https://example.com/killed", user, slug="killed")
    # No shipper ships on its own: every click waits in its worker's log.
    web = processes.web(workers=2, CLICK_SHIP_INTERVAL=3600)
    results = send_redirects(f"{web.url}/r/killed", 200, threads=4)
    assert [status for status, _ in results] == [302] * 200
    logs = click_log_files(app)
    assert (sum(logs.values()), buffer_length(redis_server)) == (200, 0)
    name, orphaned = max(logs.items(), key=lambda item: item[1])
    pid = int(name.rsplit("-", 1)[1].removesuffix(".log"))
    assert pid in web.worker_pids()

    os.kill(pid, signal.SIGKILL)  # gunicorn starts another worker; the file stays
    wait_for(lambda: pid not in web.worker_pids(), timeout=10, message="the worker gone")
    worker = processes.worker(queues="clicks")
    processes.beat()  # drains what the task ships
    sent = ship_orphaned_clicks.apply_async()

    wait_for(lambda: sent.id in task_outcomes(worker, "tasks.clicks.ship_orphaned_clicks"), timeout=30)
    # Exactly the dead worker's lines: the live worker's log was left alone.
    assert task_outcomes(worker, "tasks.clicks.ship_orphaned_clicks")[sent.id] == str(orphaned)
    assert name not in click_log_files(app)
    assert unshipped_clicks(app) == 200 - orphaned
    wait_for(lambda: counter_of(link.id) == orphaned, timeout=30, message="the orphaned clicks counted")

    web.stop()  # a clean shutdown: the live worker ships the rest on its way out
    assert unshipped_clicks(app) == 0, "the live worker did not ship its lines as it stopped"
    assert_counted_exactly(app, redis_server, link.id, 200)
    assert buffer.counters(redis_client)["clicks_shipped_late"] == orphaned


def test_a_link_changed_elsewhere_takes_effect_in_every_web_worker_before_their_copies_expire(
    app, user, processes, redis_client
):
    link, _ = service.create_link("https://example.com/before", user, slug="moving")
    web = processes.web(workers=2, LINK_LOCAL_CACHE_SECONDS=3600)
    url = f"{web.url}/r/moving"

    def served_from_local_copies():
        """Each new connection may land on either worker; none of 20 may read Redis."""
        redis_client.delete("cb:link:moving")
        results = send_redirects(url, 20, threads=4)
        assert set(results) == {(302, "https://example.com/before")}
        return not redis_client.exists("cb:link:moving")

    # A worker's change follower forgets all at its first contact: warm until the copies stay.
    wait_for(served_from_local_copies, timeout=20, message="every worker to serve its own copy")

    def all_answer(status, count=20):
        return all(code == status for code, _ in send_redirects(url, count, threads=4))

    # The copies would live an hour: only the announcement can reach the workers.
    service.set_enabled(link, False)  # this process announces the change
    wait_for(
        lambda: all_answer(404), timeout=10, interval=0.05, message="every worker to see the link disabled"
    )

    service.set_enabled(service.get_link("moving"), True)  # forget the cached "no such link" too
    wait_for(lambda: all_answer(302), timeout=10, interval=0.05, message="every worker to see it enabled")
