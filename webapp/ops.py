"""What the ops panel and /healthz know about the workers, kept in Redis.

Workers announce themselves: each worker's main process writes a heartbeat
key every few seconds (a key that expires, so a killed worker disappears by
itself), and every task failure is pushed onto a short capped list. Reading
all of it is a few Redis calls, so the panel renders even with no worker
alive, without Celery's broadcast ``inspect`` and its timeouts.

Keys are the install's (``webapp.keys``), so a panel shows its own workers
only; a heartbeat carries the worker's pid beside its Celery hostname, as
two workers on one machine may share a hostname.
"""

import contextlib
import json
import logging
import os
import socket
import threading
import time

from amqp.exceptions import ChannelError
from celery import signals

from webapp.config import TASK_QUEUES
from webapp.keys import key
from webapp.redis_client import eviction_warning, worker_redis

log = logging.getLogger(__name__)

HEARTBEAT_SECONDS = 5
HEARTBEAT_TTL = 20
FAILURES_KEPT = 50


def heartbeat_key(namespace, name):
    """One worker's heartbeat: ``name`` is its Celery hostname and pid."""
    return key(namespace, "workers", name)


def failures_key(namespace):
    return key(namespace, "task-failures")


DRAIN_TASKS = ("tasks.clicks.drain_click_buffer", "tasks.pageviews.drain_pageview_buffer")


def drains_expired_key(namespace):
    """How many drain runs beat sent that expired before any worker took them."""
    return key(namespace, "metrics", "drains_expired")


def worker_name(hostname):
    """The name the ops panel shows: unique even for two workers with one hostname."""
    return f"{hostname} (pid {os.getpid()})"


def connect_worker_signals(app):
    """Hook the worker's lifecycle; ``app`` is the Flask app whose Redis to use."""

    def redis():
        return worker_redis(app)

    namespace = app.config["CLICKBOARD_NAMESPACE"]
    stop = threading.Event()

    def heartbeat_of(sender):
        return heartbeat_key(namespace, worker_name(sender.hostname if sender else socket.gethostname()))

    @signals.worker_ready.connect(weak=False)
    def start_heartbeat(sender, **_):
        name = worker_name(sender.hostname if sender else socket.gethostname())
        queues = (
            sorted(queue.alias or queue.name for queue in sender.app.amqp.queues.consume_from.values())
            if sender
            else []
        )
        args = (redis, heartbeat_of(sender), name, queues, stop)
        threading.Thread(target=beat, args=args, daemon=True).start()
        warn_if_evicting(redis())

    @signals.worker_shutdown.connect(weak=False)
    def stop_heartbeat(sender, **_):
        stop.set()
        with contextlib.suppress(Exception):  # shutting down anyway; the key expires
            redis().delete(heartbeat_of(sender))

    @signals.task_revoked.connect(weak=False)
    def count_expired_drain(request=None, expired=False, **_):
        # Beat's drains expire after one interval (a newer one is on its way), so an
        # expired drain means workers could not keep up: count it where it shows.
        if expired and getattr(request, "task", None) in DRAIN_TASKS:
            with contextlib.suppress(Exception):  # never let bookkeeping fail a worker
                redis().incr(drains_expired_key(namespace))

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
            pipe.lpush(failures_key(namespace), json.dumps(failure))
            pipe.ltrim(failures_key(namespace), 0, FAILURES_KEPT - 1)
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


def beat(redis, heartbeat, name, queues, stop):
    started = time.time()
    while not stop.is_set():
        state = {"name": name, "queues": queues, "started": started, "seen": time.time()}
        with contextlib.suppress(Exception):  # Redis down: try again next beat
            redis().set(heartbeat, json.dumps(state), ex=HEARTBEAT_TTL)
        stop.wait(HEARTBEAT_SECONDS)


def live_workers(client, namespace):
    """The install's workers whose heartbeat has not expired, by name."""
    keys = list(client.scan_iter(heartbeat_key(namespace, "*"), count=100))
    states = [json.loads(value) for value in client.mget(keys) if value] if keys else []
    return sorted(states, key=lambda state: state["name"])


def recent_failures(client, namespace, limit=20):
    return [json.loads(item) for item in client.lrange(failures_key(namespace), 0, limit - 1)]


def queue_depths(celery_app):
    """Messages waiting per queue, from the broker (Redis or RabbitMQ alike)."""
    depths = {}
    with celery_app.connection_for_read() as conn:
        # No pause before the retry: kombu's default sleeps 2 s, and the panel polls every 3 s.
        conn.ensure_connection(max_retries=1, interval_start=0, timeout=1)
        for queue in TASK_QUEUES:
            # The install's own queue (webapp.keys), found under its short name.
            name = celery_app.amqp.queues[queue].name
            # A fresh channel each time: RabbitMQ closes a channel on a 404.
            with conn.channel() as channel:
                try:
                    depths[queue] = channel.queue_declare(queue=name, passive=True).message_count
                except ChannelError:
                    depths[queue] = 0  # never declared: no worker has consumed it yet
    return depths


def drain_state(client, buffer, drain_interval):
    """(alive, seconds since the buffer's drain last ran, or None if never).

    The one answer to "is a worker alive" for /healthz, /metrics and the ops
    panel: what matters is that clicks are being counted, so a worker counts
    as alive when its periodic drain ran within a few intervals. A heartbeat
    says a worker process exists; only this says it does the work.
    """
    last = client.get(buffer.last_drain_key)
    age = max(0.0, time.time() - float(last)) if last else None
    return age is not None and age < 3 * drain_interval + 10, age
