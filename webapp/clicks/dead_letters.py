"""Clicks for link ids this install's database never had: kept aside, never dropped.

Such a click means something is shared that should not be: another install's
web processes feeding our Redis stream (one Redis, one namespace), or a
database restored from an older backup than the clicks. Dropping it would
lose a click silently, so the drain puts it in the install's dead-letter
stream instead (``cb:<ns>:clicks:dead-letters``, the click as JSON with its
event id), counts it (``clickboard_clicks_dead_lettered`` on /metrics), logs
it, and the ops panel warns while the stream holds any. Clicks of links that
were deleted (``DeletedLink``) are expected and dropped as before.

The drain writes dead letters before its commit, so a batch retried after a
failed commit may set a click aside twice; the event id tells.
"""

import json
import logging

from webapp.clicks.buffer import click_buffer, dead_letter_stream, dead_lettered_key
from webapp.redis_client import click_redis

log = logging.getLogger(__name__)

# Bounds Redis memory if a foreign install keeps feeding us; the counter keeps the total.
KEPT = 100_000


def keep_aside(rows):
    """Append the click rows to the dead-letter stream, count and log them."""
    buffer = click_buffer()
    stream = dead_letter_stream(buffer)
    pipe = click_redis().pipeline(transaction=False)
    for row in rows:
        fields = {
            "link_id": row["link_id"],
            "event_id": row["event_id"],
            "click": json.dumps(row, default=str),
        }
        pipe.xadd(stream, fields, maxlen=KEPT, approximate=True)
    pipe.incrby(dead_lettered_key(buffer), len(rows))
    pipe.execute()
    link_ids = sorted({row["link_id"] for row in rows})
    log.error(
        "kept aside %d clicks for link ids this database never had (%s) in %s: "
        "does another install share this Redis under the same CLICKBOARD_NAMESPACE?",
        len(rows),
        ", ".join(map(str, link_ids[:10])) + (" ..." if len(link_ids) > 10 else ""),
        stream,
    )


def waiting(client):
    """How many clicks the dead-letter stream holds (the ops panel warns while any)."""
    return client.xlen(dead_letter_stream(click_buffer()))
