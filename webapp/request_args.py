"""Whole numbers from a dashboard query string, within what the database holds.

``request.args.get(name, type=int)`` takes any number of digits; past the
column's range the database refuses it (PostgreSQL) or its driver raises
(SQLite), which would be a 500. Here a number out of range is a 404 (an id
that cannot exist) or is clamped (a page number).
"""

from flask import abort, request

MAX_ID = 2**31 - 1  # link ids are INTEGER columns
MAX_PAGE = 100_000


def optional_id(name):
    """The id in ``name``, None if absent; a 404 if it is not one a row could have."""
    raw = request.args.get(name)
    if raw is None or raw == "":
        return None
    if not (raw.isascii() and raw.isdigit()) or len(raw) > 10 or not 0 < int(raw) <= MAX_ID:
        abort(404)
    return int(raw)


def page_number(name="page"):
    raw = request.args.get(name, "1")
    if not (raw.isascii() and raw.isdigit()) or len(raw) > 6:
        return 1
    return min(max(int(raw), 1), MAX_PAGE)
