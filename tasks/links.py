"""Link target checks: a quota-bound task, rate-limited per worker, with callbacks.

Checking a target is an outbound HTTP request, the kind of work that is
paid for or throttled per server: ``LINK_CHECK_RATE_LIMIT`` is
applied per worker process by Celery, and each host's workers can be given
their own value. A check can also be sent to one host's queue
(``host.<name>``), e.g. the one whose address a site has allow-listed.
The result is written by the ``link`` / ``link_error`` callbacks, so the check
itself only fetches.
"""

import contextlib
from datetime import timedelta

from celery import shared_task
from flask import current_app
from redis import RedisError

from webapp.extensions import db
from webapp.links import check_requests
from webapp.links.checker import check_url
from webapp.models import Link, utcnow
from webapp.redis_client import worker_redis

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
    release_claim(link_id)
    link = db.session.get(Link, link_id)
    if link is None or result is None:
        return
    link.target_ok, link.target_status = result["ok"], result["status"]
    link.target_title, link.target_error = result["title"], result["error"]
    link.checked_at = utcnow()
    db.session.commit()


@shared_task(name="tasks.links.record_link_check_failure", ignore_result=True)
def record_link_check_failure(request, exc, traceback, link_id):
    release_claim(link_id)
    link = db.session.get(Link, link_id)
    if link is None:
        return
    link.target_ok, link.target_status, link.target_title = None, None, None
    link.target_error = f"check failed: {type(exc).__name__}: {exc}"[:300]
    link.checked_at = utcnow()
    db.session.commit()


def release_claim(link_id):
    with contextlib.suppress(RedisError):  # the claim expires by itself
        check_requests.release(worker_redis(), link_id)


def request_link_check(link_id, user_id):
    """A "Check now" press: 'queued', 'pending' (one is already queued or running for this
    link) or 'limited' (the user pressed too often); see ``webapp.links.check_requests``.
    With Redis down, the check is sent as it always was."""
    try:
        outcome = check_requests.claim(worker_redis(), link_id, user_id)
    except RedisError:
        outcome = "claimed"
    if outcome != "claimed":
        return outcome
    try:
        send_link_check(link_id)
    except Exception:
        release_claim(link_id)
        raise
    return "queued"


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
