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
import socket
import time
from concurrent.futures import ThreadPoolExecutor

import redis
from sqlalchemy.exc import IntegrityError

from webapp import pipeline_counters

log = logging.getLogger(__name__)


def consumer_name():
    """Unique per worker process, so a dead process's messages can be told apart."""
    return f"{socket.gethostname()}-{os.getpid()}"


# ``record`` may leave callables under this key of ``conn.info``: run once the batch committed.
AFTER_COMMIT = "clickboard.after_commit"


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
        recorded = self.drain_leftovers(client, engine, consumer, batch_size, reclaim_idle_seconds)
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
                    written = self.write_or_hand_back(
                        client, engine, messages, next_read if more else None, check_duplicates=False
                    )
                    recorded += written
                    acks.append(redis_io.submit(self.acknowledge, client, messages, written))
                if not more:
                    break
            for ack in acks:
                ack.result()  # an ack that failed leaves its messages pending: reclaimed, then skipped
        client.set(self.buffer.last_drain_key, f"{time.time():.3f}")
        return recorded

    def drain_leftovers(self, client, engine, consumer, batch_size, reclaim_idle_seconds):
        """Batches a failed drain handed back, then those of drains that died; return rows recorded."""
        recorded = 0
        failed = self.buffer.claim_failed_batches(client, consumer, batch_size)
        if failed:
            log.warning("retrying %d messages of %s a drain failed to write", len(failed), self.buffer.stream)
            recorded += self.drain_batch(client, engine, failed, check_duplicates=True)
        stale = self.buffer.reclaim_stale(client, consumer, reclaim_idle_seconds, batch_size)
        if stale:
            log.warning("reclaimed %d messages of %s from a dead drain", len(stale), self.buffer.stream)
            recorded += self.drain_batch(client, engine, stale, check_duplicates=True)
        return recorded

    def write_or_hand_back(self, client, engine, messages, next_read, check_duplicates):
        """Write a batch; if that fails (database locked, connection lost), hand it back, with
        the batch already read ahead, so the next drain retries them at once instead of
        after ``reclaim_idle_seconds``; then fail as before."""
        try:
            return self.write_batch(engine, messages, check_duplicates)
        except Exception:
            unwritten = [message_id for message_id, _ in messages]
            if next_read is not None and next_read.exception() is None:
                unwritten += [message_id for message_id, _ in next_read.result()]
            try:
                self.buffer.note_failed_batch(client, unwritten)
            except redis.RedisError:
                log.warning("could not hand back a failed batch; it is reclaimed once idle")
            raise

    def drain_batch(self, client, engine, messages, check_duplicates):
        """Write one batch, then acknowledge it; return the rows recorded."""
        recorded = self.write_or_hand_back(client, engine, messages, None, check_duplicates)
        self.acknowledge(client, messages, recorded)
        return recorded

    def write_batch(self, engine, messages, check_duplicates):
        rows = [row for row in (self.to_row(fields) for _, fields in messages) if row]
        dropped = len(messages) - len(rows)
        if dropped:
            log.error("dropping %d malformed messages from %s", dropped, self.buffer.stream)
        try:
            return self.commit_rows(engine, rows, check_duplicates, dropped)
        except IntegrityError:
            # Some message was recorded before (a replayed spool, a reclaim
            # from a drain that was only slow): write again, skipping those.
            return self.commit_rows(engine, rows, True, dropped)

    def acknowledge(self, client, messages, recorded):
        self.buffer.acknowledge(client, [message_id for message_id, _ in messages], recorded)

    def commit_rows(self, engine, rows, check_duplicates, dropped=0):
        with engine.begin() as conn:
            recorded = self.record(conn, rows, check_duplicates) if rows else 0
            metric = self.buffer.metric
            pipeline_counters.add_counts(conn, {f"{metric}_drained": recorded, f"{metric}_dropped": dropped})
            after_commit = conn.info.pop(AFTER_COMMIT, [])
        for action in after_commit:
            action()
        return recorded
