"""Click tasks: the batch drain, the per-click task (task mode), and orphaned log shipping.

The logic lives in ``webapp.clicks``; these wrappers only bind it to
Celery, the app's database and its Redis client.
"""

import logging

from celery import shared_task
from flask import current_app
from redis import RedisError
from sqlalchemy.exc import OperationalError

from webapp.clicks import click_log
from webapp.clicks.drain import CLICK_DRAIN
from webapp.clicks.events import click_row
from webapp.clicks.store import record_clicks
from webapp.extensions import db
from webapp.pageviews import ingest
from webapp.redis_client import click_redis, worker_redis

log = logging.getLogger(__name__)


@shared_task(name="tasks.clicks.drain_click_buffer", acks_late=True)
def drain_click_buffer(follow=True):
    """Drain the click buffer; then, as beat runs it, follow it for CLICK_DRAIN_FOLLOW_SECONDS."""
    config = current_app.config
    follow_seconds = config["CLICK_DRAIN_FOLLOW_SECONDS"] if follow else 0.0
    return CLICK_DRAIN.run(click_redis(), db.engine, config, follow_seconds=follow_seconds)


# max_retries comes from CLICK_TASK_MAX_RETRIES through task_annotations.
@shared_task(
    name="tasks.clicks.record_link_click",
    autoretry_for=(OperationalError,),
    retry_backoff=True,
    retry_backoff_max=600,
    retry_jitter=True,
    acks_late=True,
)
def record_link_click(line):
    """Record one click (task mode). A deleted link or a repeat returns 0, never raises."""
    row = click_row(line)
    if row is None:
        log.error("dropping malformed click %r", line)
        return 0
    with db.engine.begin() as conn:
        return record_clicks(conn, [row], check_duplicates=True)


@shared_task(
    name="tasks.clicks.ship_orphaned_clicks", autoretry_for=(RedisError,), retry_backoff=True, max_retries=3
)
def ship_orphaned_clicks():
    """Ship click and page-view spools left by processes that stopped (those on this host's
    disk), and settle the kept ones: confirmed by the drain, or lost by Redis and shipped again."""
    directory, keep_bytes = current_app.config["CLICK_LOG_DIR"], current_app.config["SPOOL_KEEP_MB"] << 20
    ingest.ship_orphans(directory, worker_redis(), keep_bytes=keep_bytes)
    return click_log.ship_orphans(directory, click_redis(), keep_bytes=keep_bytes)
