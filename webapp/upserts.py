"""``INSERT ... ON CONFLICT DO UPDATE`` that adds counts: how every rollup and counter is kept."""

from operator import itemgetter

from sqlalchemy import case
from sqlalchemy.dialects import postgresql, sqlite


def upsert_sums(conn, model, keys, rows, latest=()):
    """One ``INSERT ... ON CONFLICT DO UPDATE`` per row: add the counts, keep the latest time.

    Rows go in key order. Concurrent drains on PostgreSQL lock the counter rows
    they touch until commit; taking those locks in one global order means two
    drains sharing links wait for each other briefly instead of deadlocking.
    """
    if not rows:
        return
    rows = sorted(rows, key=itemgetter(*keys))
    table = model.__table__
    dialect_insert = postgresql.insert if conn.dialect.name == "postgresql" else sqlite.insert
    stmt = dialect_insert(table)
    summed = [name for name in rows[0] if name not in keys and name not in latest]
    updates = {name: table.c[name] + stmt.excluded[name] for name in summed}
    for name in latest:
        newer = (table.c[name].is_(None)) | (stmt.excluded[name] > table.c[name])
        updates[name] = case((newer, stmt.excluded[name]), else_=table.c[name])
    conn.execute(stmt.on_conflict_do_update(index_elements=keys, set_=updates), rows)
