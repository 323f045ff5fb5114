"""What the ops panel and /healthz know about the workers, kept in Redis.

Workers announce themselves: each worker's main process writes a heartbeat
key every few seconds (a key that expires, so a killed worker disappears by
itself), and every task failure is pushed onto a short capped list. Reading
all of it is a few Redis calls, so the panel renders even with no worker
alive, without Celery's broadcast ``inspect`` and its timeouts.
"""

import contextlib
import json
import logging
import socket
import threading
import time

from amqp.exceptions import ChannelError
from celery import signals

from webapp.config import TASK_QUEUES
from webapp.redis_client import eviction_warning

log = logging.getLogger(__name__)

HEARTBEAT_KEY = "cb:workers:{}"
HEARTBEAT_PATTERN = "cb:workers:*"
HEARTBEAT_SECONDS = 5
HEARTBEAT_TTL = 20
FAILURES_KEY = "cb:task-failures"
FAILURES_KEPT = 50


def connect_worker_signals(app):
    """Hook the worker's lifecycle; ``app`` is the Flask app whose Redis to use."""

    def redis():
        return app.extensions["clickboard.redis.worker"]

    stop = threading.Event()

    @signals.worker_ready.connect(weak=False)
    def start_heartbeat(sender, **_):
        name = sender.hostname if sender else socket.gethostname()
        queues = (
            sorted(queue.name for queue in sender.app.amqp.queues.consume_from.values()) if sender else []
        )
        threading.Thread(target=beat, args=(redis, name, queues, stop), daemon=True).start()
        warn_if_evicting(redis())

    @signals.worker_shutdown.connect(weak=False)
    def stop_heartbeat(sender, **_):
        stop.set()
        with contextlib.suppress(Exception):  # shutting down anyway; the key expires
            redis().delete(HEARTBEAT_KEY.format(sender.hostname if sender else socket.gethostname()))

    @signals.task_failure.connect(weak=False)
    def record_failure(sender=None, task_id=None, exception=None, **_):
        failure = {
            "task": getattr(sender, "name", "?"),
            "id": task_id,
            "error": f"{type(exception).__name__}: {exception}"[:300],
            "at": time.time(),
        }
        try:
            pipe = redis().pipeline()
            pipe.lpush(FAILURES_KEY, json.dumps(failure))
            pipe.ltrim(FAILURES_KEY, 0, FAILURES_KEPT - 1)
            pipe.execute()
        except Exception:  # noqa: BLE001 - never let bookkeeping fail a worker
            pass


def warn_if_evicting(client):
    """Say at start-up, in the worker's log, if Redis may evict buffered clicks."""
    try:
        warning = eviction_warning(client)
    except Exception as exc:  # noqa: BLE001 - Redis down or CONFIG disabled: the check waits for /healthz
        log.info("could not read Redis's maxmemory-policy: %s", exc)
        return
    if warning:
        log.warning(warning)


def beat(redis, name, queues, stop):
    started = time.time()
    while not stop.is_set():
        state = {"name": name, "queues": queues, "started": started, "seen": time.time()}
        with contextlib.suppress(Exception):  # Redis down: try again next beat
            redis().set(HEARTBEAT_KEY.format(name), json.dumps(state), ex=HEARTBEAT_TTL)
        stop.wait(HEARTBEAT_SECONDS)


def live_workers(client):
    """Workers whose heartbeat has not expired, newest first."""
    keys = list(client.scan_iter(HEARTBEAT_PATTERN, count=100))
    states = [json.loads(value) for value in client.mget(keys) if value] if keys else []
    return sorted(states, key=lambda state: state["name"])


def recent_failures(client, limit=20):
    return [json.loads(item) for item in client.lrange(FAILURES_KEY, 0, limit - 1)]


def queue_depths(celery_app):
    """Messages waiting per queue, from the broker (Redis or RabbitMQ alike)."""
    depths = {}
    with celery_app.connection_for_read() as conn:
        # No pause before the retry: kombu's default sleeps 2 s, and the panel polls every 3 s.
        conn.ensure_connection(max_retries=1, interval_start=0, timeout=1)
        for queue in TASK_QUEUES:
            # A fresh channel each time: RabbitMQ closes a channel on a 404.
            with conn.channel() as channel:
                try:
                    depths[queue] = channel.queue_declare(queue=queue, passive=True).message_count
                except ChannelError:
                    depths[queue] = 0  # never declared: no worker has consumed it yet
    return depths
