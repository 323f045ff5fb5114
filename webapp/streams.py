"""Durable buffers in Redis Streams, drained into the database exactly once.

Clicks and page views take the same road: a request appends a message
(``XADD``) and returns; a periodic task reads batches through a consumer
group (``XREADGROUP``), writes them in one transaction and only after the
commit acknowledges and deletes them (``XACK`` + ``XDEL``). A message whose
consumer died stays pending and is taken over (``XAUTOCLAIM``) once idle
for ``reclaim_idle_seconds``.

Redis and the database take turns less than they would: while a batch is
written, a helper thread already reads the next one and acknowledges the one
before, so Redis's share of the time mostly overlaps the database's.

Crash safety: a drain killed before its commit leaves messages pending for
another drain; one killed after the commit but before the acknowledgement
leaves messages whose event ids are already stored, and the duplicate check
drops them when they come round again. Every message counts exactly once.
"""

import logging
import os
import socket
import time
from concurrent.futures import ThreadPoolExecutor

import redis
from sqlalchemy.exc import IntegrityError

from webapp.keys import key
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
# KEYS: stream. ARGV: group, consumer, count, field. XREADGROUP for one-field
# messages, answered flat (id, value, id, value ...): redis-py would build a
# dict per message, which cost the drain more than Redis's own work.
READ_VALUES = """
local reply = redis.call('XREADGROUP', 'GROUP', ARGV[1], ARGV[2], 'COUNT', ARGV[3], 'STREAMS', KEYS[1], '>')
if not reply then return {} end
local flat = {}
for i, entry in ipairs(reply[1][2]) do
  local fields, value = entry[2], false
  for j = 1, #fields, 2 do
    if fields[j] == ARGV[4] then value = fields[j + 1] end
  end
  flat[2 * i - 1] = entry[1]
  flat[2 * i] = value
end
return flat
"""


class StreamBuffer:
    """One stream, its consumer group, and the counters /metrics reports for it.

    Its keys belong to one install (``namespace``, see ``webapp.keys``), so
    each app builds its own buffers when it is created.
    """

    def __init__(self, namespace, name, group, field=None):
        # With ``field``, a message is one line of text (no newline in it)
        # stored under that field name, and read back as that text (None if
        # the message lacks the field); without, a dict of fields.
        self.field = field
        self.namespace, self.name = namespace, name
        self.stream = key(namespace, name)
        self.group = group
        self.buffered_key = self.metric_key("buffered")
        self.drained_key = self.metric_key("drained")
        self.dropped_key = self.metric_key("dropped")
        self.last_drain_key = key(namespace, "drain", name, "last_run")

    def metric_key(self, metric):
        """The counter of ``metric`` for this buffer: ``cb:<ns>:metrics:clicks_<metric>``."""
        return key(self.namespace, "metrics", f"{self.name}_{metric}")

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
        """Up to ``count`` (id, message) pairs never delivered to any consumer."""
        if self.field:
            flat = cached_script(client, READ_VALUES)(
                keys=[self.stream], args=[self.group, consumer, count, self.field]
            )
            pairs = iter(flat)
            return list(zip(pairs, pairs, strict=True))
        reply = client.xreadgroup(self.group, consumer, {self.stream: ">"}, count=count)
        return reply[0][1] if reply else []

    def reclaim_stale(self, client, consumer, idle_seconds, count):
        """(id, message) pairs delivered to a consumer that has not acknowledged them in time."""
        reply = client.xautoclaim(
            self.stream, self.group, consumer, min_idle_time=int(idle_seconds * 1000), count=count
        )
        claimed = [(message_id, fields) for message_id, fields in reply[1] if fields]
        if self.field:
            return [(message_id, fields.get(self.field)) for message_id, fields in claimed]
        return claimed

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

    ``to_row(message)`` turns a message (its text, for a one-field buffer) into
    a row dict (None if malformed);
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
        # One helper thread, so its Redis calls keep their order: read N+1, ack N, read N+2 ...
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="drain-redis") as redis_io:
            acks = []
            next_read = redis_io.submit(self.buffer.read_new, client, consumer, batch_size)
            for number in range(1, max_batches + 1):
                messages = next_read.result()
                more = len(messages) == batch_size and number < max_batches
                if more:
                    next_read = redis_io.submit(self.buffer.read_new, client, consumer, batch_size)
                if messages:
                    written = self.write_batch(engine, messages, check_duplicates=False)
                    recorded += written
                    acks.append(redis_io.submit(self.acknowledge, client, messages, written))
                if not more:
                    break
            for ack in acks:
                ack.result()  # an ack that failed leaves its messages pending: reclaimed, then skipped
        client.set(self.buffer.last_drain_key, f"{time.time():.3f}")
        return recorded

    def drain_batch(self, client, engine, messages, check_duplicates):
        """Write one batch, then acknowledge it; return the rows recorded."""
        recorded = self.write_batch(engine, messages, check_duplicates)
        self.acknowledge(client, messages, recorded)
        return recorded

    def write_batch(self, engine, messages, check_duplicates):
        rows = [row for row in (self.to_row(fields) for _, fields in messages) if row]
        if len(rows) < len(messages):
            log.error("dropping %d malformed messages from %s", len(messages) - len(rows), self.buffer.stream)
        if not rows:
            return 0
        try:
            return self.commit_rows(engine, rows, check_duplicates)
        except IntegrityError:
            # Some message was recorded before (a replayed spool, a reclaim
            # from a drain that was only slow): write again, skipping those.
            return self.commit_rows(engine, rows, check_duplicates=True)

    def acknowledge(self, client, messages, recorded):
        self.buffer.acknowledge(client, [message_id for message_id, _ in messages], recorded)

    def commit_rows(self, engine, rows, check_duplicates):
        with engine.begin() as conn:
            return self.record(conn, rows, check_duplicates)
