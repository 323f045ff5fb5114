"""Housekeeping of the database: retention of raw rows (``webapp.retention`` has the rule)."""

from celery import shared_task
from flask import current_app
from sqlalchemy.exc import OperationalError

from webapp import retention
from webapp.extensions import db


# The database down or a partition drop that could not get its lock: retried, starting
# over is harmless (every batch and drop committed is done, the rest is still there).
@shared_task(
    name="tasks.maintenance.prune_raw_rows",
    autoretry_for=(OperationalError,),
    retry_backoff=True,
    retry_backoff_max=600,
    retry_jitter=True,
    max_retries=8,
    acks_late=True,
)
def prune_raw_rows():
    """Prune raw click and page-view rows past ``RETENTION_DAYS``; return what went, per table."""
    cfg = current_app.config
    return retention.prune(db.engine, cfg["RETENTION_DAYS"], cfg["RETENTION_BATCH_SIZE"])
