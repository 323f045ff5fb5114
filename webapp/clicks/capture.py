"""The redirect's hot path: resolve a slug and capture its click.

In the common case this is one Redis round trip: a Lua script reads the
cached link and, in ``batch`` mode, appends the click to the buffer in the
same call. The database is read only on a cache miss. When Redis (or, in
``task`` mode, the broker) fails, the redirect is still answered, from the
database or the last known entry, and the click goes to the local spool,
to be replayed when the service is back.
"""

import logging

from celery.exceptions import CeleryError
from flask import current_app
from kombu.exceptions import KombuError
from redis import RedisError
from sqlalchemy.exc import SQLAlchemyError

from webapp.breaker import Breaker
from webapp.clicks import buffer, spool
from webapp.links import cache
from webapp.redis_client import request_redis

log = logging.getLogger(__name__)

# KEYS: link cache key, click stream, redirect counter, buffered counter.
# ARGV: "1" to append the click, then the click's fields as name, value pairs.
RESOLVE_AND_BUFFER = """
local entry = redis.call('GET', KEYS[1])
if (not entry) or entry == '-' then return entry end
redis.call('INCR', KEYS[3])
if ARGV[1] == '1' then
  local tab = string.find(entry, '\\t', 1, true)
  redis.call('XADD', KEYS[2], '*', 'l', string.sub(entry, 1, tab - 1), unpack(ARGV, 2))
  redis.call('INCR', KEYS[4])
end
return entry
"""
SCRIPT_KEYS = (buffer.CLICK_STREAM, buffer.METRIC_KEYS["redirects"], buffer.METRIC_KEYS["clicks_buffered"])
SCRIPT_EXTENSION = "clickboard.resolve_script"
BROKER_ERRORS = (KombuError, CeleryError, OSError)
BROKER_BREAKER = "clickboard.broker_breaker"


def follow(slug, event):
    """Return the ``LinkEntry`` for an enabled slug (capturing the click) or None."""
    guard = request_redis()
    batch_mode = current_app.config["CLICK_CAPTURE_MODE"] == "batch"
    if guard.available:
        try:
            entry = resolve_through_redis(guard.client, slug, event, batch_mode)
            guard.mark_up()
        except RedisError as exc:
            log.warning("redis unavailable on redirect, spooling clicks: %s", exc)
            guard.mark_down()
        else:
            if entry is not None and not batch_mode:
                send_click_task(entry, event)
            spool.replay_soon_if_pending()
            return entry
    entry = resolve_without_redis(slug)
    if entry is not None:
        spool.append({**event, "l": str(entry.link_id)})
    return entry


def resolve_through_redis(client, slug, event, capture):
    script = current_app.extensions.get(SCRIPT_EXTENSION)
    if script is None:
        script = current_app.extensions[SCRIPT_EXTENSION] = client.register_script(RESOLVE_AND_BUFFER)
    fields = [item for pair in event.items() for item in pair]
    value = script(keys=[cache.cache_key(slug), *SCRIPT_KEYS], args=["1" if capture else "0", *fields])
    if value == cache.MISSING:
        return None
    if value is not None:
        entry = cache.LinkEntry.decode(value)
        cache.remember(slug, entry)
        return entry
    entry = cache.load_entry(slug)
    cache.store(client, slug, entry)
    if entry is not None:
        client.incr(buffer.METRIC_KEYS["redirects"])
        if capture:
            buffer.append(client, [{**event, "l": str(entry.link_id)}])
        cache.remember(slug, entry)
    return entry


def resolve_without_redis(slug):
    try:
        entry = cache.load_entry(slug)
    except SQLAlchemyError as exc:
        log.error("database unavailable on redirect, using last known link: %s", exc)
        return cache.last_known.get(slug)
    cache.remember(slug, entry)
    return entry


def send_click_task(entry, event):
    """Task mode: one Celery task per click; a broker failure spools the click."""
    from tasks.clicks import record_link_click

    message = {**event, "l": str(entry.link_id)}
    breaker = current_app.extensions.setdefault(
        BROKER_BREAKER, Breaker(current_app.config["REDIS_RETRY_AFTER"])
    )
    if breaker.available:
        try:
            record_link_click.apply_async(kwargs={"event": message}, retry=False)
            breaker.mark_up()
            return
        except BROKER_ERRORS as exc:
            log.warning("broker unavailable on redirect, spooling click: %s", exc)
            breaker.mark_down()
    spool.append(message)
