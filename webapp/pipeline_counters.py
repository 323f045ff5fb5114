"""Drained and dropped totals of the buffers, kept in the database by the drain itself.

They are written in the drain's own transaction, so they are exact (a batch
counts when its rows commit, never twice) and outlive Redis: ``/metrics``
reports them after a Redis that restarted empty as before it.
"""

import os

from sqlalchemy import func, select

from webapp.models import PipelineCounter
from webapp.upserts import upsert_sums

# Rows per name: drains in different processes mostly add to different rows,
# so concurrent drains on PostgreSQL do not queue for one row lock.
SHARDS = 8


def add_counts(conn, counts):
    """Add ``{name: amount}`` inside the caller's transaction."""
    shard = os.getpid() % SHARDS
    rows = [{"name": name, "shard": shard, "value": amount} for name, amount in counts.items() if amount]
    upsert_sums(conn, PipelineCounter, ["name", "shard"], rows)


def totals(session):
    """``{name: total}`` over every shard."""
    query = select(PipelineCounter.name, func.sum(PipelineCounter.value)).group_by(PipelineCounter.name)
    return {name: int(total) for name, total in session.execute(query)}
