"""The click buffer: a Redis Stream of click lines, drained by ``CLICK_DRAIN``.

Each message has one field, ``c``: the click's line (see ``events``).

Each app builds its own buffer in ``init_app``, named in its install's
namespace (``webapp.keys``). Code running in an app context reaches it as
``CLICK_BUFFER``, a proxy to the current app's buffer in the manner of
Flask's ``current_app``; threads that run outside any context (the click
shipper) are handed the buffer itself. Code with no app at all (a bare log
writer, a script) gets the buffer of the install its environment names, the
one ``create_app`` would build.
"""

from flask import current_app, has_app_context
from werkzeug.local import LocalProxy

from webapp.config import environment_namespace, load_config
from webapp.keys import key
from webapp.streams import StreamBuffer

EXTENSION = "clickboard.click_buffer"


def click_buffer_for(namespace, cfg):
    """The install's click buffer as ``cfg`` shapes it: CLICK_STREAMS shards, tagged for a cluster."""
    return StreamBuffer(
        namespace,
        "clicks",
        "drain",
        field="c",
        shards=cfg["CLICK_STREAMS"],
        tagged=cfg["CLICK_REDIS_CLUSTER"],
    )


def click_buffer():
    """The current app's click buffer (without an app, the environment's install's)."""
    if has_app_context():
        return current_app.extensions[EXTENSION]
    return click_buffer_for(environment_namespace(), load_config())


CLICK_BUFFER = LocalProxy(click_buffer)


def shipped_late_key(buffer):
    """Clicks shipped by another process than the one that captured them (it died)."""
    return buffer.shipped_late_key


def dead_letter_stream(buffer):
    """Where clicks for link ids this install's database never had are kept (see ``dead_letters``)."""
    return key(buffer.namespace, buffer.name, "dead-letters")


def dead_lettered_key(buffer):
    return buffer.metric_key("dead_lettered")


def counters(client):
    """Totals for /metrics (``client``: the click buffer's Redis, ``click_redis``)."""
    buffer = click_buffer()
    totals = buffer.totals(client)
    late, dead = client.get(shipped_late_key(buffer)), client.get(dead_lettered_key(buffer))
    return {
        "clicks_buffered": totals["buffered"],
        "clicks_drained": totals["drained"],
        "clicks_dropped": totals["dropped"],
        "clicks_shipped_late": int(late or 0),
        "clicks_dead_lettered": int(dead or 0),
    }
