"""Drain the page-view buffer into the database (beat runs it like the click drain)."""

from celery import shared_task
from flask import current_app

from tasks.clicks import consumer_name
from webapp.extensions import db
from webapp.pageviews.ingest import PAGEVIEW_DRAIN
from webapp.redis_client import worker_redis


@shared_task(name="tasks.pageviews.drain_pageview_buffer", acks_late=True)
def drain_pageview_buffer():
    cfg = current_app.config
    return PAGEVIEW_DRAIN.drain(
        worker_redis(),
        db.engine,
        consumer_name(),
        batch_size=cfg["CLICK_DRAIN_BATCH_SIZE"],
        max_batches=cfg["CLICK_DRAIN_MAX_BATCHES"],
        reclaim_idle_seconds=cfg["CLICK_RECLAIM_IDLE_SECONDS"],
    )
