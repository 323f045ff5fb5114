"""Durable buffers in Redis Streams, drained into the database exactly once.

Clicks and page views take the same road: a request appends a message
(``XADD``) and returns; a periodic task reads batches through a consumer
group (``XREADGROUP``), writes them in one transaction and only after the
commit acknowledges and deletes them (``XACK`` + ``XDEL``). A message whose
consumer died stays pending and is taken over (``XAUTOCLAIM``) once idle
for ``reclaim_idle_seconds``.

Crash safety: a drain killed before its commit leaves messages pending for
another drain; one killed after the commit but before the acknowledgement
leaves messages whose event ids are already stored, and the duplicate check
drops them when they come round again. Every message counts exactly once.
"""

import logging
import os
import socket
import time

import redis
from sqlalchemy.exc import IntegrityError

from webapp.redis_client import cached_script

log = logging.getLogger(__name__)

# KEYS: stream, drained counter, dropped counter. ARGV: group, drained, dropped, ids...
ACK_AND_DELETE = """
redis.call('XACK', KEYS[1], ARGV[1], unpack(ARGV, 4))
redis.call('XDEL', KEYS[1], unpack(ARGV, 4))
redis.call('INCRBY', KEYS[2], ARGV[2])
if tonumber(ARGV[3]) > 0 then redis.call('INCRBY', KEYS[3], ARGV[3]) end
return 1
"""
# Lua's unpack() takes a few thousand values at most.
ACK_CHUNK = 5000
# KEYS: stream, buffered counter. ARGV: field name, lines. One XADD per non-empty
# line, split inside Redis: the sender passes one string, not one argument per
# message, which redis-py would spend microseconds each building.
APPEND_LINES = """
local added = 0
for value in string.gmatch(ARGV[2], '[^\\n]+') do
  redis.call('XADD', KEYS[1], '*', ARGV[1], value)
  added = added + 1
end
redis.call('INCRBY', KEYS[2], added)
return added
"""
# Small enough that one call never holds Redis for long (~500 click lines).
APPEND_CHUNK = 500


class StreamBuffer:
    """One stream, its consumer group, and the counters /metrics reports for it."""

    def __init__(self, stream, group, metric, field=None):
        # With ``field``, a message is one line of text (no newline in it)
        # stored under that field name; without, a dict of fields.
        self.field = field
        self.stream = stream
        self.group = group
        self.buffered_key = f"cb:metrics:{metric}_buffered"
        self.drained_key = f"cb:metrics:{metric}_drained"
        self.dropped_key = f"cb:metrics:{metric}_dropped"
        self.last_drain_key = f"cb:drain:{metric}:last_run"

    def ensure_group(self, client):
        try:
            client.xgroup_create(self.stream, self.group, id="0", mkstream=True)
        except redis.ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise

    def append(self, client, messages):
        """Append messages: one Lua call per chunk for one-field messages, else a pipeline."""
        if self.field:
            for start in range(0, len(messages), APPEND_CHUNK):
                self.append_lines(client, "\n".join(messages[start : start + APPEND_CHUNK]))
            return
        pipe = client.pipeline(transaction=False)
        for message in messages:
            pipe.xadd(self.stream, message)
        pipe.incrby(self.buffered_key, len(messages))
        pipe.execute()

    def append_lines(self, client, text):
        """One-field messages: each non-empty line of ``text`` becomes one; return how many."""
        script = cached_script(client, APPEND_LINES)
        return script(keys=[self.stream, self.buffered_key], args=[self.field, text])

    def read_new(self, client, consumer, count):
        """Up to ``count`` messages never delivered to any consumer."""
        reply = client.xreadgroup(self.group, consumer, {self.stream: ">"}, count=count)
        return reply[0][1] if reply else []

    def reclaim_stale(self, client, consumer, idle_seconds, count):
        """Messages delivered to a consumer that has not acknowledged them in time."""
        reply = client.xautoclaim(
            self.stream, self.group, consumer, min_idle_time=int(idle_seconds * 1000), count=count
        )
        return [(message_id, fields) for message_id, fields in reply[1] if fields]

    def acknowledge(self, client, message_ids, recorded):
        """XACK and XDEL the batch and count it, in one call (the ids are sent once)."""
        for start in range(0, len(message_ids), ACK_CHUNK):
            chunk = message_ids[start : start + ACK_CHUNK]
            counted = recorded if start == 0 else 0
            dropped = len(message_ids) - recorded if start == 0 else 0
            cached_script(client, ACK_AND_DELETE)(
                keys=[self.stream, self.drained_key, self.dropped_key],
                args=[self.group, counted, dropped, *chunk],
            )

    def backlog(self, client):
        """(messages waiting, age in seconds of the oldest one)."""
        length = client.xlen(self.stream)
        oldest = client.xrange(self.stream, count=1) if length else []
        if not oldest:
            return length, 0.0
        oldest_ms = int(oldest[0][0].split("-")[0])
        return length, max(0.0, time.time() - oldest_ms / 1000)


def consumer_name():
    """Unique per worker process, so a dead process's messages can be told apart."""
    return f"{socket.gethostname()}-{os.getpid()}"


class StreamDrain:
    """Moves a buffer's messages into the database.

    ``to_row(message)`` turns a message into a row dict (None if malformed);
    ``record(conn, rows, check_duplicates)`` writes rows inside the given
    transaction and returns how many were new.
    """

    def __init__(self, buffer, to_row, record):
        self.buffer, self.to_row, self.record = buffer, to_row, record

    def run(self, client, engine, config):
        """One periodic drain with the deployment's settings, as this process's consumer."""
        return self.drain(
            client,
            engine,
            consumer_name(),
            batch_size=config["CLICK_DRAIN_BATCH_SIZE"],
            max_batches=config["CLICK_DRAIN_MAX_BATCHES"],
            reclaim_idle_seconds=config["CLICK_RECLAIM_IDLE_SECONDS"],
        )

    def drain(self, client, engine, consumer, batch_size, max_batches, reclaim_idle_seconds):
        """Drain up to ``max_batches`` batches; return the number of rows recorded."""
        self.buffer.ensure_group(client)
        recorded = 0
        stale = self.buffer.reclaim_stale(client, consumer, reclaim_idle_seconds, batch_size)
        if stale:
            log.warning("reclaimed %d messages of %s from a dead drain", len(stale), self.buffer.stream)
            recorded += self.drain_batch(client, engine, stale, check_duplicates=True)
        for _ in range(max_batches):
            messages = self.buffer.read_new(client, consumer, batch_size)
            if messages:
                recorded += self.drain_batch(client, engine, messages, check_duplicates=False)
            if len(messages) < batch_size:
                break
        client.set(self.buffer.last_drain_key, f"{time.time():.3f}")
        return recorded

    def drain_batch(self, client, engine, messages, check_duplicates):
        rows = [row for row in (self.to_row(fields) for _, fields in messages) if row]
        if len(rows) < len(messages):
            log.error("dropping %d malformed messages from %s", len(messages) - len(rows), self.buffer.stream)
        recorded = 0
        if rows:
            try:
                recorded = self.commit_rows(engine, rows, check_duplicates)
            except IntegrityError:
                # Some message was recorded before (a replayed spool, a reclaim
                # from a drain that was only slow): write again, skipping those.
                recorded = self.commit_rows(engine, rows, check_duplicates=True)
        self.buffer.acknowledge(client, [message_id for message_id, _ in messages], recorded)
        return recorded

    def commit_rows(self, engine, rows, check_duplicates):
        with engine.begin() as conn:
            return self.record(conn, rows, check_duplicates)
