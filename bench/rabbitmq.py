"""The RabbitMQ broker of the benchmarks' task-mode runs on the PostgreSQL + RabbitMQ stack.

The broker: ``BENCH_BROKER_URL`` if set (``off`` skips RabbitMQ), else the
local one at ``amqp://guest:guest@127.0.0.1:5672//`` if it answers. The
bench publishes to Clickboard's queues there (``clicks``, ``default`` ...)
and purges them after each run, so it refuses a broker whose queues already
hold messages: give it a vhost of its own (``amqp://user:pass@host/bench``)
if anything else uses that broker.
"""

from celery import Celery
from kombu.exceptions import OperationalError

from bench.servers import Unreachable, find_server, hidden
from webapp.ops import queue_depths

ENV_VAR = "BENCH_BROKER_URL"
LOCAL_URL = "amqp://guest:guest@127.0.0.1:5672//"


def broker_url():
    """(broker URL or None, why it is None); see ``bench.servers``."""
    return find_server(ENV_VAR, LOCAL_URL, "RabbitMQ", probe)


def probe(url):
    if not url.startswith(("amqp://", "amqps://", "pyamqp://")):
        raise ValueError(f"{ENV_VAR} must be an amqp:// URL")
    try:
        busy = {queue: depth for queue, depth in queue_depths(Celery(broker=url)).items() if depth}
    except (OSError, OperationalError) as exc:
        raise Unreachable(exc) from exc
    if busy:
        raise ValueError(
            f"the broker at {hidden(url)} has messages waiting in {busy}: the bench purges these queues;"
            f" point {ENV_VAR} at a vhost of its own, or {ENV_VAR}=off"
        )
