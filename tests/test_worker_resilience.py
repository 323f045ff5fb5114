"""Workers outlive Redis, and nothing else a worker does can starve the click drain.

Real processes: a Celery worker and beat over the test's own redis-server
(also the broker, as in ``make run``), killed and restarted under them.
"""

import contextlib
import os
import signal
from datetime import UTC, datetime, timedelta

import pytest
import redis

from tasks.clicks import drain_click_buffer
from tests.processes import wait_for
from tests.test_click_pipeline import assert_counted_exactly, buffer_clicks, buffer_length
from webapp.links import service
from webapp.ops import drains_expired_key

pytestmark = pytest.mark.integration


def kill_and_restart(redis_server):
    """SIGKILL redis-server and start it again on its port with its data (the AOF), every
    write synced (clicks go straight into the stream here, not through a spool: the kills
    test the worker, not Redis's last second)."""
    redis_server.process.send_signal(signal.SIGKILL)
    redis_server.process.wait()
    redis_server.process = None
    redis_server.start()
    redis_server.client().config_set("appendfsync", "always")


def test_a_worker_outlives_three_redis_restarts_during_drains_and_counts_exactly(
    app, user, processes, redis_server
):
    link, _ = service.create_link("https://example.com/restarts", user, slug="restarts")
    redis_server.client().config_set("appendfsync", "always")  # see kill_and_restart
    worker = processes.worker(queues="clicks", concurrency=2)
    processes.beat()
    sent = 0
    for _ in range(3):
        buffer_clicks(redis_server.client(), link.id, 40_000)
        sent += 40_000
        # Kill Redis while a drain holds a batch (its acks-late task unacknowledged).
        wait_for(lambda total=sent: 0 < buffer_length(redis_server) < total, 60, 0.01, "a drain under way")
        kill_and_restart(redis_server)
        assert worker.running, f"the worker exited when Redis restarted:\n{worker.log_text()[-3000:]}"
    buffer_clicks(redis_server.client(), link.id, 500)
    sent += 500

    assert_counted_exactly(app, redis_server, link.id, sent, timeout=120)
    assert worker.running, f"the worker exited:\n{worker.log_text()[-3000:]}"


def test_a_worker_started_while_redis_is_full_keeps_running_and_drains_once_there_is_room(
    app, user, processes, redis_server
):
    link, _ = service.create_link("https://example.com/full", user, slug="full")
    client = redis_server.client()
    buffer_clicks(client, link.id, 200)
    used = int(client.info("memory")["used_memory"])
    client.config_set("maxmemory-policy", "noeviction")
    client.config_set("maxmemory", str(used + 64 * 1024))
    with contextlib.suppress(redis.exceptions.OutOfMemoryError):  # fill it to the brim
        for number in range(10_000):
            client.set(f"ballast:{number}", "x" * 4096)
    with pytest.raises(redis.exceptions.OutOfMemoryError):
        # The fault is there before the worker starts. A megabyte: more than any key expiring
        # meanwhile (other tests' short-lived keys on this Redis) could have freed.
        client.set("one-more", "x" * 1024 * 1024)
    try:
        worker = processes.worker(queues="clicks")
        processes.beat()
        wait_for(
            lambda: "OOM" in worker.log_text() or "maxmemory" in worker.log_text(),
            60,
            0.2,
            "the worker meeting the full Redis",
        )
        assert worker.running, f"the worker exited on a full Redis:\n{worker.log_text()[-3000:]}"
    finally:
        client.config_set("maxmemory", "0")
    assert_counted_exactly(app, redis_server, link.id, 200, timeout=120)
    assert worker.running


@pytest.mark.skipif(
    (os.environ.get("TEST_BROKER_URL") or "").startswith("amqp"),
    reason="RabbitMQ discards an expired message itself (a per-message TTL), so no worker ever sees it;"
    " there clickboard_drain_last_run_age_seconds is the signal (README, Running in production)",
)
def test_a_drain_that_expired_unrun_is_counted_where_operators_look(app, client, processes, redis_client):
    # What beat's drains meet when workers are too busy: an expiry that passed in the queue.
    drain_click_buffer.apply_async(expires=datetime.now(UTC) - timedelta(seconds=1))
    processes.worker(queues="clicks")

    key = drains_expired_key(app.config["CLICKBOARD_NAMESPACE"])
    wait_for(lambda: redis_client.get(key) == "1", 120, 0.2, "the expired drain counted")
    assert "clickboard_drains_expired_total 1.0" in client.get("/metrics").text
