"""Drain the page-view buffer into the database (beat runs it like the click drain)."""

from celery import shared_task
from flask import current_app

from webapp.extensions import db
from webapp.pageviews.ingest import PAGEVIEW_DRAIN
from webapp.redis_client import worker_redis


@shared_task(name="tasks.pageviews.drain_pageview_buffer", acks_late=True)
def drain_pageview_buffer():
    return PAGEVIEW_DRAIN.run(worker_redis(), db.engine, current_app.config)
