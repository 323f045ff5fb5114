"""Durable buffers in Redis Streams: what the spools ship into and the drains read.

Clicks and page views take the same road: a spool appends messages
(``XADD``, many per call) and a drain (``webapp.drains``) reads batches
through a consumer group (``XREADGROUP``), writes them in one transaction and
only after the commit acknowledges and deletes them (``XACK`` + ``XDEL``).
The stream also carries what the spool needs to know whether Redis still
holds what it was given: an epoch set whenever the stream is created, and
the consumer group's delivered and pending ids (``Durability``).
"""

import itertools
import logging
import secrets
import time
import zlib
from typing import NamedTuple

from redis.cluster import RedisCluster
from redis.crc import REDIS_CLUSTER_HASH_SLOTS as SLOTS
from redis.crc import key_slot

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
# KEYS: stream, buffered counter, epoch. ARGV: field name, lines in all, a new
# epoch token, then the entries (each up to LINES_PER_ENTRY lines). Returns
# {lines added, the last entry's id, epoch}: the spool keeps the shipped lines
# under that epoch and id until the drain has committed them.
SHIP_ENTRIES = """
if redis.call('EXISTS', KEYS[1]) == 0 then redis.call('SET', KEYS[3], ARGV[3]) end
local last = false
for i = 4, #ARGV do
  last = redis.call('XADD', KEYS[1], '*', ARGV[1], ARGV[i])
end
redis.call('INCRBY', KEYS[2], ARGV[2])
local epoch = redis.call('GET', KEYS[3])
if not epoch then
  epoch = ARGV[3]
  redis.call('SET', KEYS[3], epoch)
end
return {tonumber(ARGV[2]), last, epoch}
"""
# Lines per stream entry. Redis's work, the drain's reads and its
# acknowledgements are per entry, so a hundred lines to an entry make them a
# hundredth of what they were at one line each (the figures are in
# the drain bench's breakdown); the drain splits an entry into its lines again.
LINES_PER_ENTRY = 100
# KEYS: stream, epoch. ARGV: group, a new epoch token. The drain's consumer group,
# and the stream with it if there is none. A stream created anew (Redis lost
# it, or evicted it) starts a new epoch wherever it is created: here or in
# SHIP_ENTRIES.
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


class Shard:
    """One stream of a buffer, its consumer group, and the counters /metrics adds up.

    Every key a Lua call touches together (the stream, its epoch, its
    counters) carries the shard's hash tag when it has one, so on a Redis
    Cluster they live in one slot (see ``StreamBuffer``).
    """

    def __init__(self, namespace, name, group, field, tag=None):
        self.field, self.group = field, group
        scoped = (
            (lambda *parts: key(namespace, *parts, f"{{{tag}}}"))
            if tag
            else (lambda *parts: key(namespace, *parts))
        )
        self.stream = scoped(name)
        self.buffered_key, self.drained_key, self.dropped_key = (
            scoped("metrics", f"{name}_{metric}") for metric in ("buffered", "drained", "dropped")
        )
        # Names this Redis's copy of the stream: gone or new after Redis lost its data.
        self.epoch_key = scoped(name, "epoch")
        # Ids of batches whose write failed before the commit, for the next drain.
        self.retry_key = scoped(name, "retry")

    def ensure_group(self, client):
        cached_script(client, ENSURE_GROUP)(
            keys=[self.stream, self.epoch_key], args=[self.group, secrets.token_hex(8)]
        )

    def ship_lines(self, client, lines):
        """Append ``lines`` (non-empty, no newline in them), ``LINES_PER_ENTRY`` to an entry;
        return (lines added, the last entry's id or None, the epoch)."""
        if not lines:
            return 0, None, None
        entries = [
            "\n".join(lines[start : start + LINES_PER_ENTRY])
            for start in range(0, len(lines), LINES_PER_ENTRY)
        ]
        added, last_id, epoch = cached_script(client, SHIP_ENTRIES)(
            keys=[self.stream, self.buffered_key, self.epoch_key],
            args=[self.field, len(lines), secrets.token_hex(8), *entries],
        )
        return added, last_id or None, epoch

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
        """(id, entry text) pairs of batches whose drain failed before its commit."""
        pipe = client.pipeline()
        pipe.lrange(self.retry_key, 0, count - 1)
        pipe.ltrim(self.retry_key, count, -1)
        message_ids = pipe.execute()[0]
        if not message_ids:
            return []
        claimed = client.xclaim(self.stream, self.group, consumer, min_idle_time=0, message_ids=message_ids)
        return self.values(claimed)

    def read_new(self, client, consumer, count, block_ms=None):
        """Up to ``count`` (id, entry text) pairs never delivered to any consumer; with
        ``block_ms``, wait that long for the first if there is none yet."""
        args = ["XREADGROUP", "GROUP", self.group, consumer, "COUNT", count]
        if block_ms is not None:
            args += ["BLOCK", block_ms]
        args += ["STREAMS", self.stream, ">"]
        if isinstance(client, RedisCluster):
            # XREADGROUP's keys move with its options, so a cluster client asks some node
            # (COMMAND GETKEYS) where to send it: a master that is away would stall every
            # shard's reads. The shard's own node is known from its stream's slot.
            reply = client.execute_command(*args, target_nodes=client.get_node_from_key(self.stream))
        else:
            reply = client.execute_command(*args)
        return self.values(reply[0][1]) if reply else []

    def reclaim_stale(self, client, consumer, idle_seconds, count):
        """(id, entry text) pairs delivered to a consumer that has not acknowledged them in time."""
        reply = client.xautoclaim(
            self.stream, self.group, consumer, min_idle_time=int(idle_seconds * 1000), count=count
        )
        return self.values(reply[1])

    def values(self, messages):
        """(id, text) of each message still there (None for one without the field)."""
        return [(message_id, fields.get(self.field)) for message_id, fields in messages if fields]

    def acknowledge(self, client, message_ids, recorded, dropped):
        """XACK and XDEL the batch and count its lines, in one call (the ids are sent once)."""
        for start in range(0, len(message_ids), ACK_CHUNK):
            first = start == 0
            cached_script(client, ACK_AND_DELETE)(
                keys=[self.stream, self.drained_key, self.dropped_key],
                args=[self.group, recorded if first else 0, dropped if first else 0,
                      *message_ids[start : start + ACK_CHUNK]],
            )  # fmt: skip

    def backlog(self, client):
        """(lines waiting, time.time() of the oldest entry or None). Lines, not entries:
        the counters say how many lines went in and came out; XLEN counts entries."""
        pipe = client.pipeline(transaction=False)
        pipe.xrange(self.stream, count=1)
        pipe.xlen(self.stream)
        pipe.mget(self.buffered_key, self.drained_key, self.dropped_key)
        oldest, entries, (buffered, drained, dropped) = pipe.execute()
        if not oldest:
            return 0, None
        # Each entry holds a line at least (counters reset by a Redis that lost them say less).
        waiting = max(int(buffered or 0) - int(drained or 0) - int(dropped or 0), entries)
        return waiting, int(oldest[0][0].split("-")[0]) / 1000


def slot_spread_tags(name, count):
    """Hash tags for ``count`` shards, the i-th one's slot in the i-th of ``count`` equal
    ranges of Redis Cluster's 16,384 slots. ``redis-cli --cluster create`` gives each
    master one contiguous range, so N shards on a cluster of N masters land one per
    master, and on more masters still spread (a tag of plain numbers would hash wherever)."""
    tags = []
    for index in range(count):
        low, high = index * SLOTS // count, (index + 1) * SLOTS // count
        tag = next(
            candidate
            for candidate in (f"{name}.{index}.{attempt}" for attempt in itertools.count())
            if low <= key_slot(f"{{{candidate}}}".encode()) < high
        )
        tags.append(tag)
    return tags


class StreamBuffer:
    """A buffer of lines: one stream, or ``shards`` of them, each line in the shard its
    event id hashes to (``shard_of``), and the counters /metrics reports for it all.

    One shard on one Redis keeps the names it always had. Several shards, or
    any number on a Redis Cluster (``tagged``), give each shard a hash tag, so
    a Lua call's keys share a slot and the shards spread over the masters.
    Its keys belong to one install (``namespace``, see ``webapp.keys``), so
    each app builds its own buffers when it is created.
    """

    def __init__(self, namespace, name, group, field, shards=1, tagged=False):
        # A message is one field, ``field``: up to LINES_PER_ENTRY lines of text.
        self.field = field
        self.namespace, self.name = namespace, name
        self.group = group
        tags = slot_spread_tags(name, shards) if shards > 1 or tagged else [None]
        self.shards = [Shard(namespace, name, group, field, tag) for tag in tags]
        # The first shard's keys, the only shard unless CLICK_STREAMS says otherwise.
        first = self.shards[0]
        self.stream, self.epoch_key, self.retry_key = first.stream, first.epoch_key, first.retry_key
        self.buffered_key, self.drained_key, self.dropped_key = (
            first.buffered_key,
            first.drained_key,
            first.dropped_key,
        )
        # The buffer's name is also what its metrics are called ("clicks", "pageviews").
        self.metric = name
        self.shipped_late_key = self.metric_key("shipped_late")
        self.last_drain_key = key(namespace, "drain", name, "last_run")

    def metric_key(self, metric):
        """A counter of ``metric`` kept once for all shards: ``cb:<ns>:metrics:clicks_<metric>``."""
        return key(self.namespace, "metrics", f"{self.name}_{metric}")

    def shard_of(self, line):
        """The shard a line goes to: by a hash of its event id (its first field), so a
        line shipped again goes where it went the first time."""
        if len(self.shards) == 1:
            return self.shards[0]
        return self.shards[zlib.crc32(line.partition("\t")[0].encode()) % len(self.shards)]

    def by_shard(self, text):
        """The non-empty lines of ``text``, grouped by shard: [(shard, lines)]."""
        lines = [line for line in text.split("\n") if line]
        if len(self.shards) == 1:
            return [(self.shards[0], lines)] if lines else []
        grouped = {}
        for line in lines:
            grouped.setdefault(self.shard_of(line), []).append(line)
        return list(grouped.items())

    def waiting_lines(self, client):
        """Every line in the buffer, shard by shard, in stream order (tests, the bench)."""
        return [
            line
            for shard in self.shards
            for _, fields in client.xrange(shard.stream)
            for line in fields[self.field].split("\n")
        ]

    def ensure_group(self, client):
        for shard in self.shards:
            shard.ensure_group(client)

    def append(self, client, messages):
        """Append lines (no newline in them) to their shards; return how many."""
        return self.append_lines(client, "\n".join(messages))

    def append_lines(self, client, text):
        """Each non-empty line of ``text`` into its shard; return how many."""
        return sum(shard.ship_lines(client, lines)[0] for shard, lines in self.by_shard(text))

    def totals(self, client):
        """buffered, drained and dropped lines, summed over the shards."""
        pipe = client.pipeline(transaction=False)
        for shard in self.shards:
            pipe.get(shard.buffered_key)
            pipe.get(shard.drained_key)
            pipe.get(shard.dropped_key)
        values = [int(value or 0) for value in pipe.execute()]
        return {
            name: sum(values[offset::3]) for offset, name in enumerate(("buffered", "drained", "dropped"))
        }

    def backlog(self, client):
        """(lines waiting in all shards, age in seconds of the oldest one)."""
        waiting = [shard.backlog(client) for shard in self.shards]
        oldest = min((since for _, since in waiting if since is not None), default=None)
        length = sum(length for length, _ in waiting)
        return length, 0.0 if oldest is None else max(0.0, time.time() - oldest)
