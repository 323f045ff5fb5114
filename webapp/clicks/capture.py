"""The redirect's hot path: resolve a slug, then capture its click.

``resolve`` answers from this process's link cache in the common case, so
a redirect normally makes no network call at all; on a miss it asks Redis,
then the database. ``capture`` writes the click's line to the local click
log (``batch`` mode: the shipper moves it to Redis moments later) or sends
one Celery task (``task`` mode, kept to compare against). Neither can fail the
redirect: with Redis down, resolution falls back to the database, and
clicks wait in the log; with the broker down, task-mode clicks go to the
log too, and reach the database through the batch drain instead.
"""

import logging

from celery.exceptions import CeleryError
from flask import current_app
from kombu.exceptions import KombuError
from redis import RedisError
from sqlalchemy.exc import SQLAlchemyError

from tasks.clicks import record_link_click
from webapp.breaker import Breaker
from webapp.clicks.click_log import app_click_log
from webapp.links import cache
from webapp.redis_client import request_redis

log = logging.getLogger(__name__)

BROKER_ERRORS = (KombuError, CeleryError, OSError)
BROKER_BREAKER = "clickboard.broker_breaker"


def resolve(slug):
    """The ``LinkEntry`` of an enabled link, or None. Never raises for an outage."""
    local = cache.local_link_cache()
    hit, entry = local.get(slug)
    if hit:
        return entry
    try:
        # Nested: the database read in the RedisError handler must reach the
        # SQLAlchemyError handler too (Redis and the database down together).
        try:
            entry = resolve_through_redis(slug)
        except RedisError as exc:
            log.warning("redis unavailable on redirect, reading the database: %s", exc)
            request_redis().mark_down()
            entry = cache.load_entry(slug)
    except SQLAlchemyError as exc:
        log.error("database unavailable on redirect, using the last known link: %s", exc)
        return local.last_known(slug)
    local.put(slug, entry)
    return entry


def resolve_through_redis(slug):
    guard = request_redis()
    if not guard.available:
        return cache.load_entry(slug)
    value = guard.client.get(cache.cache_key(slug))
    if value == cache.MISSING:
        return None
    if value is not None:
        entry = cache.LinkEntry.decode(value)
        if entry is not None:
            return entry
    entry = cache.load_entry(slug)
    cache.store(guard.client, slug, entry)
    return entry


def capture(line):
    """Keep one click (its line from ``events.encode_click``)."""
    if current_app.config["CLICK_CAPTURE_MODE"] == "task":
        send_click_task(line)
    else:
        app_click_log().append(line)


def send_click_task(line):
    """Task mode: one Celery task per click; a broker failure logs the click instead."""
    breaker = broker_breaker()
    if breaker.available:
        try:
            record_link_click.apply_async(args=(line,), retry=False)
            breaker.mark_up()
            return
        except BROKER_ERRORS as exc:
            log.warning("broker unavailable on redirect, logging the click for the drain: %s", exc)
            breaker.mark_down()
    app_click_log().append(line)


def broker_breaker(app=None):
    """Task mode's breaker for the broker: after a failed send, clicks go to the log for a while."""
    app = app or current_app
    return app.extensions.setdefault(BROKER_BREAKER, Breaker(app.config["REDIS_RETRY_AFTER"]))
