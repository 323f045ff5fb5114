"""The click buffer: a Redis Stream read through one consumer group.

The redirect appends with ``XADD`` (inside the link-cache script, so a click
costs no extra round trip); the drain reads with ``XREADGROUP``, and only
after its database commit acknowledges and deletes with ``XACK`` + ``XDEL``.
A message whose consumer died stays pending and is taken over with
``XAUTOCLAIM`` once it has been idle for ``CLICK_RECLAIM_IDLE_SECONDS``.
"""

import time

import redis

CLICK_STREAM = "cb:clicks"
DRAIN_GROUP = "drain"
# Written by every drain run: how health checks know workers are alive.
LAST_DRAIN_KEY = "cb:drain:last_run"
METRIC_KEYS = {
    "redirects": "cb:metrics:redirects",
    "clicks_buffered": "cb:metrics:clicks_buffered",
    "clicks_drained": "cb:metrics:clicks_drained",
    "clicks_replayed": "cb:metrics:clicks_replayed",
    "clicks_dropped": "cb:metrics:clicks_dropped",
}


def ensure_group(client):
    try:
        client.xgroup_create(CLICK_STREAM, DRAIN_GROUP, id="0", mkstream=True)
    except redis.ResponseError as exc:
        if "BUSYGROUP" not in str(exc):
            raise


def append(client, events):
    """Append click messages (each with its link id) in one round trip."""
    pipe = client.pipeline(transaction=False)
    for event in events:
        pipe.xadd(CLICK_STREAM, event)
    pipe.incrby(METRIC_KEYS["clicks_buffered"], len(events))
    pipe.execute()


def read_new(client, consumer, count):
    """Up to ``count`` messages never delivered to any consumer."""
    reply = client.xreadgroup(DRAIN_GROUP, consumer, {CLICK_STREAM: ">"}, count=count)
    return reply[0][1] if reply else []


def reclaim_stale(client, consumer, idle_seconds, count):
    """Messages delivered to a consumer that has not acknowledged them in time."""
    reply = client.xautoclaim(
        CLICK_STREAM, DRAIN_GROUP, consumer, min_idle_time=int(idle_seconds * 1000), count=count
    )
    return [(message_id, fields) for message_id, fields in reply[1] if fields]


def acknowledge(client, message_ids, drained):
    pipe = client.pipeline(transaction=False)
    pipe.xack(CLICK_STREAM, DRAIN_GROUP, *message_ids)
    pipe.xdel(CLICK_STREAM, *message_ids)
    pipe.incrby(METRIC_KEYS["clicks_drained"], drained)
    dropped = len(message_ids) - drained
    if dropped:
        pipe.incrby(METRIC_KEYS["clicks_dropped"], dropped)
    pipe.execute()


def backlog(client):
    """(messages waiting, age in seconds of the oldest one) for health and metrics."""
    length = client.xlen(CLICK_STREAM)
    if not length:
        return 0, 0.0
    oldest = client.xrange(CLICK_STREAM, count=1)
    if not oldest:
        return length, 0.0
    oldest_ms = int(oldest[0][0].split("-")[0])
    return length, max(0.0, time.time() - oldest_ms / 1000)


def counters(client):
    values = client.mget(list(METRIC_KEYS.values()))
    return {name: int(value or 0) for name, value in zip(METRIC_KEYS, values, strict=True)}
