"""Drain the click buffer into the database, acknowledging only after commit.

Crash safety, step by step: messages are read (they become pending), rows
and counters are written in one transaction, and only then acknowledged.
A drain killed before the commit leaves its messages pending for another
drain to reclaim; one killed after the commit but before the acknowledgement
leaves messages whose event ids are already stored, and the duplicate check
drops them on redelivery. Either way every click is counted exactly once.
"""

import logging

from sqlalchemy.exc import IntegrityError

from webapp.clicks import buffer
from webapp.clicks.events import click_row
from webapp.clicks.store import record_clicks

log = logging.getLogger(__name__)


def drain_click_buffer(client, engine, consumer, batch_size, max_batches, reclaim_idle_seconds):
    """Drain up to ``max_batches`` batches; return the number of clicks recorded."""
    buffer.ensure_group(client)
    recorded = 0
    stale = buffer.reclaim_stale(client, consumer, reclaim_idle_seconds, batch_size)
    if stale:
        log.warning("reclaimed %d click messages from a dead drain", len(stale))
        recorded += drain_batch(client, engine, stale, check_duplicates=True)
    for _ in range(max_batches):
        messages = buffer.read_new(client, consumer, batch_size)
        if messages:
            recorded += drain_batch(client, engine, messages, check_duplicates=False)
        if len(messages) < batch_size:
            break
    return recorded


def drain_batch(client, engine, messages, check_duplicates):
    rows = [row for row in (click_row(fields) for _, fields in messages) if row]
    if len(rows) < len(messages):
        log.error("dropping %d malformed click messages", len(messages) - len(rows))
    recorded = 0
    if rows:
        try:
            recorded = commit_rows(engine, rows, check_duplicates)
        except IntegrityError:
            # A message recorded before (replayed spool, reclaimed from a drain
            # that was only slow): write the batch again, skipping those.
            recorded = commit_rows(engine, rows, check_duplicates=True)
    buffer.acknowledge(client, [message_id for message_id, _ in messages], recorded)
    return recorded


def commit_rows(engine, rows, check_duplicates):
    with engine.begin() as conn:
        return record_clicks(conn, rows, check_duplicates)
