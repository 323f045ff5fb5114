"""Substring search in SQL: user text inside a LIKE pattern, taken literally."""

LIKE_ESCAPE = "\\"


def contains_pattern(text):
    """A LIKE pattern matching ``text`` anywhere, its ``%``, ``_`` and ``\\`` escaped (ESCAPE '\\')."""
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"
