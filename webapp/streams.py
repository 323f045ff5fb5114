"""Durable buffers in Redis Streams: what the spools ship into and the drains read.

Clicks and page views take the same road: a spool appends messages
(``XADD``, many per call) and a drain (``webapp.drains``) reads batches
through a consumer group (``XREADGROUP``), writes them in one transaction and
only after the commit acknowledges and deletes them (``XACK`` + ``XDEL``).
The stream also carries what the spool needs to know whether Redis still
holds what it was given: an epoch set whenever the stream is created, and
the consumer group's delivered and pending ids (``Durability``).
"""

import logging
import secrets
import time
from typing import NamedTuple

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
# KEYS: stream, buffered counter, epoch. ARGV: field name, lines, a new epoch
# token. One XADD per non-empty line, split inside Redis: the sender passes one
# string, not one argument per message, which redis-py would spend
# microseconds each building. Returns {added, last id, epoch}: the spool keeps
# the shipped lines under that epoch and id until the drain has committed them.
SHIP_LINES = """
if redis.call('EXISTS', KEYS[1]) == 0 then redis.call('SET', KEYS[3], ARGV[3]) end
local added, last = 0, false
for value in string.gmatch(ARGV[2], '[^\\n]+') do
  last = redis.call('XADD', KEYS[1], '*', ARGV[1], value)
  added = added + 1
end
redis.call('INCRBY', KEYS[2], added)
local epoch = redis.call('GET', KEYS[3])
if not epoch then
  epoch = ARGV[3]
  redis.call('SET', KEYS[3], epoch)
end
return {added, last, epoch}
"""
# KEYS: stream, epoch. ARGV: group, a new epoch token. The drain's consumer group,
# and the stream with it if there is none. A stream created anew (Redis lost
# it, or evicted it) starts a new epoch wherever it is created: here or in
# SHIP_LINES.
ENSURE_GROUP = """
if redis.call('EXISTS', KEYS[1]) == 0 then redis.call('SET', KEYS[2], ARGV[2]) end
redis.pcall('XGROUP', 'CREATE', KEYS[1], ARGV[1], '0', 'MKSTREAM')
return 1
"""
# KEYS: stream, epoch. ARGV: group, a new epoch token. What the spool needs to
# know whether Redis still holds what it was given, and what the drain has
# committed: {epoch, the stream's last id, the group's last delivered id, the
# smallest pending id}, false where there is none.
DURABILITY_STATE = """
local epoch = redis.call('GET', KEYS[2])
if not epoch then
  epoch = ARGV[2]
  redis.call('SET', KEYS[2], epoch)
end
if redis.call('EXISTS', KEYS[1]) == 0 then return {epoch, false, false, false} end
local function field(reply, name)
  for i = 1, #reply, 2 do
    if reply[i] == name then return reply[i + 1] end
  end
end
local last = field(redis.call('XINFO', 'STREAM', KEYS[1]), 'last-generated-id')
for _, group in ipairs(redis.call('XINFO', 'GROUPS', KEYS[1])) do
  if field(group, 'name') == ARGV[1] then
    local smallest = false
    if field(group, 'pending') > 0 then smallest = redis.call('XPENDING', KEYS[1], ARGV[1])[2] end
    return {epoch, last, field(group, 'last-delivered-id'), smallest}
  end
end
return {epoch, last, false, false}
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


def stream_id(value):
    """A stream id as an (ms, seq) tuple that compares in stream order; None stays None."""
    if not value:
        return None
    ms, _, seq = value.partition("-")
    return int(ms), int(seq or 0)


class Durability(NamedTuple):
    """A buffer's state as the spool sees it (ids as ``stream_id`` tuples, None if absent)."""

    epoch: str
    last_id: tuple | None  # the last id the stream ever gave out
    delivered: tuple | None  # the drain group's last delivered id
    smallest_pending: tuple | None  # delivered, not yet acknowledged

    def lost(self, epoch, last_id):
        """Whether Redis lost lines shipped under ``epoch`` up to ``last_id``."""
        return epoch != self.epoch or self.last_id is None or last_id > self.last_id

    def committed(self, last_id):
        """Whether every line up to ``last_id`` was committed (acknowledged after the commit)."""
        if self.delivered is None or last_id > self.delivered:
            return False
        return self.smallest_pending is None or last_id < self.smallest_pending


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
        # The buffer's name is also what its metrics are called ("clicks", "pageviews").
        self.metric = name
        self.buffered_key = self.metric_key("buffered")
        self.drained_key = self.metric_key("drained")
        self.dropped_key = self.metric_key("dropped")
        self.shipped_late_key = self.metric_key("shipped_late")
        self.last_drain_key = key(namespace, "drain", name, "last_run")
        # Names this Redis's copy of the stream: gone or new after Redis lost its data.
        self.epoch_key = key(namespace, name, "epoch")
        # Ids of batches whose write failed before the commit, for the next drain.
        self.retry_key = key(namespace, name, "retry")

    def metric_key(self, metric):
        """The counter of ``metric`` for this buffer: ``cb:<ns>:metrics:clicks_<metric>``."""
        return key(self.namespace, "metrics", f"{self.name}_{metric}")

    def ensure_group(self, client):
        cached_script(client, ENSURE_GROUP)(
            keys=[self.stream, self.epoch_key], args=[self.group, secrets.token_hex(8)]
        )

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
        return self.ship_block(client, text)[0]

    def ship_block(self, client, text):
        """Like ``append_lines``; return (messages added, the last one's id or None, the epoch)."""
        added, last_id, epoch = cached_script(client, SHIP_LINES)(
            keys=[self.stream, self.buffered_key, self.epoch_key],
            args=[self.field, text, secrets.token_hex(8)],
        )
        return added, last_id, epoch

    def durability_state(self, client, new_epoch):
        """What Redis holds of the stream now, and what the drain has committed (``Durability``)."""
        reply = cached_script(client, DURABILITY_STATE)(
            keys=[self.stream, self.epoch_key], args=[self.group, new_epoch]
        )
        return Durability(*(reply[0], *(stream_id(value) for value in reply[1:])))

    def note_failed_batch(self, client, message_ids):
        """A batch was read but not committed: the next drain takes it back at once."""
        if message_ids:
            client.rpush(self.retry_key, *message_ids)

    def claim_failed_batches(self, client, consumer, count):
        """(id, message) pairs of batches whose drain failed before its commit."""
        pipe = client.pipeline()
        pipe.lrange(self.retry_key, 0, count - 1)
        pipe.ltrim(self.retry_key, count, -1)
        message_ids = pipe.execute()[0]
        if not message_ids:
            return []
        claimed = client.xclaim(self.stream, self.group, consumer, min_idle_time=0, message_ids=message_ids)
        claimed = [(message_id, fields) for message_id, fields in claimed if fields]
        if self.field:
            return [(message_id, fields.get(self.field)) for message_id, fields in claimed]
        return claimed

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
