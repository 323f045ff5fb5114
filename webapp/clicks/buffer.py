"""The click buffer: a Redis Stream of click lines, drained by ``CLICK_DRAIN``.

Each message has one field, ``c``: the click's line (see ``events``).
"""

from webapp.streams import StreamBuffer

CLICK_BUFFER = StreamBuffer("cb:clicks", "drain", metric="clicks", field="c")
# Clicks shipped by another process than the one that captured them (it died).
CLICKS_SHIPPED_LATE_KEY = CLICK_BUFFER.shipped_late_key


def counters(client):
    """Totals for /metrics."""
    keys = {
        "clicks_buffered": CLICK_BUFFER.buffered_key,
        "clicks_drained": CLICK_BUFFER.drained_key,
        "clicks_dropped": CLICK_BUFFER.dropped_key,
        "clicks_shipped_late": CLICKS_SHIPPED_LATE_KEY,
    }
    values = client.mget(list(keys.values()))
    return {name: int(value or 0) for name, value in zip(keys, values, strict=True)}
