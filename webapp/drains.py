"""Draining a buffer (``webapp.streams``) into the database, exactly once.

A periodic task reads batches through the stream's consumer group, writes
each in one transaction and only after the commit acknowledges and deletes
it. A message whose consumer died stays pending and is taken over once idle
for ``reclaim_idle_seconds``; a batch whose write failed is handed back and
taken at once by the next drain.

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
import random
import socket
import time
from concurrent.futures import ThreadPoolExecutor

import redis
from sqlalchemy.exc import IntegrityError

from webapp import pipeline_counters
from webapp.streams import LINES_PER_ENTRY

log = logging.getLogger(__name__)


def consumer_name():
    """Unique per worker process, so a dead process's messages can be told apart."""
    return f"{socket.gethostname()}-{os.getpid()}"


# How long a following drain waits on the shards in all before it looks at the clock again.
FOLLOW_WAIT_MS = 100

# ``record`` may leave callables under this key of ``conn.info``: run once the batch committed.
AFTER_COMMIT = "clickboard.after_commit"


class StreamDrain:
    """Moves a buffer's lines into the database, shard by shard.

    ``to_row(line)`` turns a line into a row dict (None if malformed);
    ``record(conn, rows, check_duplicates)`` writes rows inside the given
    transaction and returns how many were new.
    """

    def __init__(self, buffer, to_row, record):
        self.buffer, self.to_row, self.record = buffer, to_row, record

    def run(self, client, engine, config, follow_seconds=0.0):
        """One periodic drain with the deployment's settings, as this process's consumer;
        with ``follow_seconds``, it then keeps taking lines as they arrive that long."""
        return self.drain(
            client,
            engine,
            consumer_name(),
            batch_size=config["CLICK_DRAIN_BATCH_SIZE"],
            max_batches=config["CLICK_DRAIN_MAX_BATCHES"],
            reclaim_idle_seconds=config["CLICK_RECLAIM_IDLE_SECONDS"],
            follow_seconds=follow_seconds,
        )

    def drain(
        self, client, engine, consumer, batch_size, max_batches, reclaim_idle_seconds, follow_seconds=0.0
    ):
        """Drain up to ``max_batches`` batches of each shard, then follow the shards for
        ``follow_seconds``; return the number of rows recorded."""
        started = time.monotonic()
        recorded, away = 0, []
        for shard in self.shards_in_turn():
            try:
                recorded += self.drain_one_shard(client, engine, shard, consumer, batch_size, max_batches,
                                                 reclaim_idle_seconds)  # fmt: skip
            except redis.RedisError as exc:
                if len(self.buffer.shards) == 1:
                    raise
                # The other shards' clicks must not wait for this one's Redis.
                log.warning("shard %s unreachable, draining the others: %s", shard.stream, exc)
                away.append(shard)
        if len(away) == len(self.buffer.shards) > 1:
            raise redis.ConnectionError("no shard of the buffer answers")
        if follow_seconds > 0:
            here = [shard for shard in self.buffer.shards if shard not in away]
            recorded += self.follow(client, engine, here, consumer, batch_size, started + follow_seconds)
        client.set(self.buffer.last_drain_key, f"{time.time():.3f}")
        return recorded

    def drain_one_shard(self, client, engine, shard, consumer, batch_size, max_batches, reclaim_idle_seconds):
        shard.ensure_group(client)
        recorded = self.drain_leftovers(client, engine, shard, consumer, batch_size, reclaim_idle_seconds)
        return recorded + self.drain_shard(client, engine, shard, consumer, batch_size, max_batches)

    def shards_in_turn(self):
        """The shards, starting at a random one: drains running at once start apart."""
        shards = self.buffer.shards
        first = random.randrange(len(shards))
        return shards[first:] + shards[:first]

    def follow(self, client, engine, shards, consumer, batch_size, deadline):
        """Until ``deadline``: wait on each shard in turn (XREADGROUP BLOCK) and write what
        arrives at once, so a click is counted moments after it is shipped, not at the next
        periodic drain. Lua cannot block, so this reads with XREADGROUP itself."""
        recorded = 0
        wait_ms = max(1, FOLLOW_WAIT_MS // max(1, len(shards)))
        while shards and time.monotonic() < deadline:
            for shard in shards:
                messages = shard.read_new(client, consumer, entries_for(batch_size), block_ms=wait_ms)
                if messages:
                    recorded += self.drain_batch(client, engine, shard, messages, check_duplicates=False)
        return recorded

    def drain_shard(self, client, engine, shard, consumer, batch_size, max_batches):
        """Up to ``max_batches`` batches of one shard; return the rows recorded."""
        count = entries_for(batch_size)
        recorded = 0
        # One helper thread, so its Redis calls keep their order: read N+1, ack N, read N+2 ...
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="drain-redis") as redis_io:
            acks = []
            next_read = redis_io.submit(shard.read_new, client, consumer, count)
            for number in range(1, max_batches + 1):
                messages = next_read.result()
                more = len(messages) == count and number < max_batches
                if more:
                    next_read = redis_io.submit(shard.read_new, client, consumer, count)
                if messages:
                    written, lines = self.write_or_hand_back(
                        client, engine, shard, messages, next_read if more else None, check_duplicates=False
                    )
                    recorded += written
                    acks.append(redis_io.submit(self.acknowledge, client, shard, messages, written, lines))
                if not more:
                    break
            for ack in acks:
                ack.result()  # an ack that failed leaves its messages pending: reclaimed, then skipped
        return recorded

    def drain_leftovers(self, client, engine, shard, consumer, batch_size, reclaim_idle_seconds):
        """Batches a failed drain handed back, then those of drains that died; return rows recorded."""
        recorded = 0
        count = entries_for(batch_size)
        failed = shard.claim_failed_batches(client, consumer, count)
        if failed:
            log.warning("retrying %d lines of %s a drain failed to write", line_count(failed), shard.stream)
            recorded += self.drain_batch(client, engine, shard, failed, check_duplicates=True)
        stale = shard.reclaim_stale(client, consumer, reclaim_idle_seconds, count)
        if stale:
            log.warning("reclaimed %d lines of %s from a dead drain", line_count(stale), shard.stream)
            recorded += self.drain_batch(client, engine, shard, stale, check_duplicates=True)
        return recorded

    def write_or_hand_back(self, client, engine, shard, messages, next_read, check_duplicates):
        """Write a batch, return (rows recorded, lines in it); if that fails (database
        locked, connection lost), hand it back, with the batch already read ahead, so the
        next drain retries them at once instead of after ``reclaim_idle_seconds``; then fail
        as before."""
        try:
            return self.write_batch(engine, shard, messages, check_duplicates)
        except Exception:
            unwritten = [message_id for message_id, _ in messages]
            if next_read is not None and next_read.exception() is None:
                unwritten += [message_id for message_id, _ in next_read.result()]
            try:
                shard.note_failed_batch(client, unwritten)
            except redis.RedisError:
                log.warning("could not hand back a failed batch; it is reclaimed once idle")
            raise

    def drain_batch(self, client, engine, shard, messages, check_duplicates):
        """Write one batch, then acknowledge it; return the rows recorded."""
        recorded, lines = self.write_or_hand_back(client, engine, shard, messages, None, check_duplicates)
        self.acknowledge(client, shard, messages, recorded, lines)
        return recorded

    def write_batch(self, engine, shard, messages, check_duplicates):
        """Write the lines of a batch's entries; return (rows recorded, lines in the batch)."""
        lines = [line for _, text in messages for line in lines_of(text)]
        rows = [row for row in map(self.to_row, lines) if row]
        dropped = len(lines) - len(rows)
        if dropped:
            log.error("dropping %d malformed lines from %s", dropped, shard.stream)
        try:
            return self.commit_rows(engine, rows, check_duplicates, dropped), len(lines)
        except IntegrityError:
            # Some line was recorded before (a replayed spool, a reclaim
            # from a drain that was only slow): write again, skipping those.
            return self.commit_rows(engine, rows, True, dropped), len(lines)

    def acknowledge(self, client, shard, messages, recorded, lines):
        """Acknowledge the batch; in Redis's counters every line is drained or dropped
        (malformed, or a repeat of one already recorded), so buffered = drained + dropped."""
        shard.acknowledge(client, [message_id for message_id, _ in messages], recorded, lines - recorded)

    def commit_rows(self, engine, rows, check_duplicates, dropped=0):
        with engine.begin() as conn:
            recorded = self.record(conn, rows, check_duplicates) if rows else 0
            metric = self.buffer.metric
            pipeline_counters.add_counts(conn, {f"{metric}_drained": recorded, f"{metric}_dropped": dropped})
            after_commit = conn.info.pop(AFTER_COMMIT, [])
        for action in after_commit:
            action()
        return recorded


def entries_for(batch_size):
    """Entries to read for a batch of about ``batch_size`` lines."""
    return max(1, batch_size // LINES_PER_ENTRY)


def lines_of(text):
    """An entry's lines; an entry without the field is one malformed line."""
    return text.split("\n") if text else [""]


def line_count(messages):
    return sum(len(lines_of(text)) for _, text in messages)
