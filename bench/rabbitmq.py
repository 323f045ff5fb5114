"""The RabbitMQ broker of the benchmarks' task-mode runs on the PostgreSQL + RabbitMQ stack.

The broker: ``BENCH_BROKER_URL`` if set (``off`` skips RabbitMQ), else the
local one at ``amqp://guest:guest@127.0.0.1:5672//`` if it answers. The
bench publishes to Clickboard's queues there (``clicks``, ``default`` ...)
and purges them after each run, so it refuses a broker whose queues already
hold messages: give it a vhost of its own (``amqp://user:pass@host/bench``)
if anything else uses that broker.
"""

import os

import kombu
from kombu.exceptions import OperationalError

from webapp.config import TASK_QUEUES

ENV_VAR = "BENCH_BROKER_URL"
LOCAL_URL = "amqp://guest:guest@127.0.0.1:5672//"
OFF = "off"


def broker_url():
    """(broker URL or None, why it is None). Raises ValueError for a broker the bench must not use."""
    configured = os.environ.get(ENV_VAR, "").strip()
    if configured.lower() == OFF:
        return None, f"{ENV_VAR}=off"
    url = configured or LOCAL_URL
    if not url.startswith(("amqp://", "amqps://", "pyamqp://")):
        raise ValueError(f"{ENV_VAR} must be an amqp:// URL")
    try:
        busy = {queue: depth for queue, depth in depths(url).items() if depth}
    except (OSError, OperationalError) as exc:
        if configured:
            raise ValueError(f"{ENV_VAR}: cannot connect to {hidden(url)}: {exc}") from exc
        return None, f"no RabbitMQ answers at {hidden(LOCAL_URL)} (set {ENV_VAR} to use another broker)"
    if busy:
        raise ValueError(
            f"the broker at {hidden(url)} has messages waiting in {busy}: the bench purges these queues;"
            f" point {ENV_VAR} at a vhost of its own, or {ENV_VAR}=off"
        )
    return url, None


def depths(url):
    """Messages waiting per Clickboard queue (0 for a queue not declared yet)."""
    found = {}
    with kombu.Connection(url, connect_timeout=3) as conn:
        conn.ensure_connection(max_retries=1, interval_start=0, timeout=3)
        for queue in TASK_QUEUES:
            with conn.channel() as channel:
                try:
                    found[queue] = channel.queue_declare(queue=queue, passive=True).message_count
                except conn.channel_errors:
                    found[queue] = 0  # a fresh channel each time: RabbitMQ closes one on a 404
    return found


def hidden(url):
    """The URL without its password, for messages."""
    scheme, _, rest = url.partition("://")
    credentials, at, location = rest.rpartition("@")
    return f"{scheme}://{credentials.split(':')[0]}:***@{location}" if at else url
