"""Link target checks: a quota-bound task, rate-limited per worker, with callbacks.

Checking a target is an outbound HTTP request, the kind of work that is
paid for or throttled per server (seed 002): ``LINK_CHECK_RATE_LIMIT`` is
applied per worker process by Celery, and each host's workers can be given
their own value. A check can also be sent to one host's queue
(``host.<name>``), e.g. the one whose address a site has allow-listed.
The result is written by the ``link`` / ``link_error`` callbacks (seed 004).
"""

from datetime import timedelta

from celery import shared_task
from flask import current_app

from webapp.extensions import db
from webapp.links.checker import check_url
from webapp.models import Link, utcnow

STALE_AFTER = timedelta(hours=24)
# Per sweep (every STALE_SWEEP_MINUTES): about 500 links an hour, a few at a time.
STALE_BATCH = 40


@shared_task(name="tasks.links.check_link_target")
def check_link_target(link_id):
    """Fetch the link's target (see ``webapp.links.checker``); return the result as a dict."""
    link = db.session.get(Link, link_id)
    if link is None:
        return None
    cfg = current_app.config
    return check_url(link.target_url, cfg["LINK_CHECK_ALLOWED_HOSTS"], cfg["LINK_CHECK_TIMEOUT"]).as_dict()


@shared_task(name="tasks.links.record_link_check", ignore_result=True)
def record_link_check(result, link_id):
    link = db.session.get(Link, link_id)
    if link is None or result is None:
        return
    link.target_ok, link.target_status = result["ok"], result["status"]
    link.target_title, link.target_error = result["title"], result["error"]
    link.checked_at = utcnow()
    db.session.commit()


@shared_task(name="tasks.links.record_link_check_failure", ignore_result=True)
def record_link_check_failure(request, exc, traceback, link_id):
    link = db.session.get(Link, link_id)
    if link is None:
        return
    link.target_ok, link.target_status, link.target_title = None, None, None
    link.target_error = f"check failed: {type(exc).__name__}: {exc}"[:300]
    link.checked_at = utcnow()
    db.session.commit()


def send_link_check(link_id, host=None):
    """Enqueue a check with its callbacks; ``host`` sends it to that host's queue only."""
    options = {"queue": f"host.{host}"} if host else {}
    return check_link_target.apply_async(
        (link_id,),
        link=record_link_check.s(link_id),
        link_error=record_link_check_failure.s(link_id),
        **options,
    )


@shared_task(name="tasks.links.check_stale_links", ignore_result=True)
def check_stale_links():
    """Beat's sweep, every few minutes: enqueue checks for a few links not checked for a day."""
    cutoff = utcnow() - STALE_AFTER
    query = (
        db.select(Link.id)
        .where(Link.enabled.is_(True), (Link.checked_at.is_(None)) | (Link.checked_at < cutoff))
        .order_by(Link.checked_at.is_not(None), Link.checked_at)
        .limit(STALE_BATCH)
    )
    link_ids = db.session.scalars(query).all()
    for link_id in link_ids:
        send_link_check(link_id)
    return len(link_ids)
