"""Skipping rows whose event id is already stored: what makes redelivery harmless."""

from sqlalchemy import select

# Keeps every IN (...) list well under SQLite's bound-parameter limit.
LOOKUP_CHUNK = 900


def chunks(items, size=LOOKUP_CHUNK):
    items = list(items)
    for start in range(0, len(items), size):
        yield items[start : start + size]


def rows_not_yet_recorded(conn, event_id_column, rows):
    """The rows whose ``event_id`` is not in ``event_id_column`` yet, each event once."""
    unique = {row["event_id"]: row for row in rows}
    seen = set()
    for chunk in chunks(unique):
        seen.update(conn.scalars(select(event_id_column).where(event_id_column.in_(chunk))))
    return [row for event_id, row in unique.items() if event_id not in seen]
