"""Retention: raw click and page-view rows older than ``RETENTION_DAYS`` are pruned.

Only the raw tables (``RAW_TABLES``) lose rows. The rollups the dashboard,
the API and the charts read (``link_counter``, ``link_hourly_clicks``,
``link_hourly_dimension``) are never touched here, so every count and chart
stays as it was; only the raw click list and CSV (and the slow-page report,
which reads raw page views) no longer reach back past the cutoff.

On PostgreSQL the raw tables are partitioned by month on ``created_at``
(migration 0012): a month entirely older than the cutoff is dropped whole
(``DROP TABLE`` of its partition: gone or not, never half), and the month the
cutoff falls in is pruned row by row like SQLite. The same run creates the
partitions of this month and the next ``MONTHS_AHEAD`` so inserts always find
theirs; a ``DEFAULT`` partition catches a row of a month not created yet (beat
stopped for months, a clock far off) instead of failing the whole drain batch,
and the run that creates that month moves such rows into it.

Every batch and every dropped partition is its own transaction, so a database
that goes away mid-run leaves whole batches done and the rest for the retry.
"""

import re
from datetime import datetime, timedelta

from sqlalchemy import text

from webapp.models import utcnow

RAW_TABLES = ("click", "page_view")
MONTHS_AHEAD = 2
# A drop takes a brief exclusive lock on the parent table; rather than queue the
# drains behind a long report holding it, give up and try again next run.
LOCK_TIMEOUT = "5s"
MONTH_SUFFIX = re.compile(r"_p(\d{4})_(\d{2})$")


def cutoff_for(days, now=None):
    """The oldest moment kept; None when ``days`` is 0 (keep for ever)."""
    return None if days <= 0 else (now or utcnow()) - timedelta(days=days)


def month_start(moment):
    return moment.replace(day=1, hour=0, minute=0, second=0, microsecond=0)


def next_month(start):
    return (start + timedelta(days=32)).replace(day=1)


def partition_name(table, start):
    return f"{table}_p{start:%Y_%m}"


def prune(engine, days, batch_size, now=None):
    """Create the coming partitions (PostgreSQL), then prune every raw table.

    Returns ``{table: {"partitions_dropped": [...], "rows_deleted": n}}``.
    """
    now = now or utcnow()
    partitioned = engine.dialect.name == "postgresql"
    if partitioned:
        for table in RAW_TABLES:
            create_coming_partitions(engine, table, now)
    cutoff = cutoff_for(days, now)
    if cutoff is None:
        return {}
    report = {}
    for table in RAW_TABLES:
        dropped = drop_partitions_before(engine, table, cutoff) if partitioned else []
        deleted = delete_rows_before(engine, table, cutoff, batch_size)
        report[table] = {"partitions_dropped": dropped, "rows_deleted": deleted}
    return report


def delete_rows_before(engine, table, cutoff, batch_size):
    """Delete ``table``'s rows created before ``cutoff``, ``batch_size`` per transaction, so
    a drain waits at most one batch for the table. In id order: ids grow with time, so old
    rows come first in the primary key and each batch finds its rows without a full scan."""
    statement = text(
        f"DELETE FROM {table} WHERE created_at < :cutoff AND id IN"
        f" (SELECT id FROM {table} WHERE created_at < :cutoff ORDER BY id LIMIT :batch)"
    )
    deleted = 0
    while True:
        with engine.begin() as conn:
            count = conn.execute(statement, {"cutoff": cutoff, "batch": batch_size}).rowcount
        deleted += count
        if count < batch_size:
            return deleted


def month_partitions(conn, table):
    """{month start: partition name} of ``table``'s monthly partitions (not the default)."""
    names = conn.scalars(
        text(
            "SELECT child.relname FROM pg_inherits"
            " JOIN pg_class child ON child.oid = pg_inherits.inhrelid"
            " WHERE pg_inherits.inhparent = CAST(:table AS regclass)"
        ),
        {"table": table},
    )
    months = {}
    for name in names:
        match = MONTH_SUFFIX.search(name)
        start = match and datetime(int(match[1]), int(match[2]), 1)
        if start and name == partition_name(table, start):
            months[start] = name
    return months


def drop_partitions_before(engine, table, cutoff):
    """Drop each monthly partition that ends at or before ``cutoff``; return their names."""
    with engine.connect() as conn:
        months = month_partitions(conn, table)
    dropped = []
    for start, name in sorted(months.items()):
        if next_month(start) > cutoff:
            continue
        with engine.begin() as conn:
            conn.execute(text(f"SET LOCAL lock_timeout = '{LOCK_TIMEOUT}'"))
            conn.execute(text(f"DROP TABLE {name}"))
        dropped.append(name)
    return dropped


def create_coming_partitions(engine, table, now):
    """This month's partition and the next ``MONTHS_AHEAD``, each created if missing."""
    start = month_start(now)
    wanted = [start]
    for _ in range(MONTHS_AHEAD):
        wanted.append(next_month(wanted[-1]))
    with engine.connect() as conn:
        existing = month_partitions(conn, table)
    for month in wanted:
        if month not in existing:
            with engine.begin() as conn:
                conn.execute(text(f"SET LOCAL lock_timeout = '{LOCK_TIMEOUT}'"))
                create_partition(conn, table, month)


def create_partition(conn, table, start):
    """Create the month's partition, moving into it the rows the DEFAULT partition caught for
    that month (ATTACH refuses while the default holds any), then attach it."""
    name, bounds = partition_name(table, start), {"start": start, "end": next_month(start)}
    conn.execute(text(f"CREATE TABLE {name} (LIKE {table} INCLUDING DEFAULTS)"))
    conn.execute(
        text(
            f"WITH moved AS (DELETE FROM {table}_default"
            f" WHERE created_at >= :start AND created_at < :end RETURNING *)"
            f" INSERT INTO {name} SELECT * FROM moved"
        ),
        bounds,
    )
    conn.execute(
        text(
            f"ALTER TABLE {table} ATTACH PARTITION {name}"
            f" FOR VALUES FROM ('{start:%Y-%m-%d}') TO ('{bounds['end']:%Y-%m-%d}')"
        )
    )
