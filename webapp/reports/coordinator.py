"""Who computes the slow-page report, when, and what everyone sees meanwhile.

A computation takes seconds to minutes, so requests never wait for one:
they read what these Redis keys say. Per parameter set there are these keys:

    :result    the last good report (kept for REPORT_RETENTION_SECONDS)
    :fresh     exists while the result is fresh (REPORT_FRESH_SECONDS)
    :sent      set atomically by the one request that enqueues a task
    :working   set by the task while it computes, heartbeated
    :lock      the task's lock: a token, owner-only release, heartbeated
    :progress  {"done", "total"} while computing
    :error     the last failure, until the next success

Only a POST starts a computation (a GET shows what there is; a card that
wants a fresh result posts for it when it loads), and each user may start
``REPORT_STARTS_PER_MINUTE`` a minute. A POST that finds no fresh result runs one Lua script: unless a task is
working or already sent, it sets ``:sent`` with ``SET NX`` and only then
enqueues. So a burst of a hundred requests enqueues one task. The task
sets ``:working`` before it clears ``:sent``, so there is never a moment
with neither. Every sentinel has a TTL and the task's heartbeat keeps the
short ones alive; a crashed worker's keys expire within seconds. The last
result is always served, with its age, while a fresh one computes; and
XFetch-style early refresh recomputes a little before expiry, so a busy
dashboard rarely sees a stale result at all.
"""

import json
import math
import random
import time
from dataclasses import dataclass

from flask import current_app
from redis import RedisError

from tasks.reports import compute_slow_pageviews, record_run_failure, record_run_success
from webapp.extensions import db
from webapp.keys import app_key
from webapp.models import ReportRun
from webapp.redis_client import cached_script, worker_redis
from webapp.reports.params import SlowReportParams
from webapp.reports.report_keys import REPORT_NAME, ReportKeys

# XFetch's beta: >1 refreshes earlier, <1 later.
EARLY_REFRESH_BETA = 1.0

# KEYS: fresh, sent, working, the user's starts this minute. ARGV: sent TTL, ignore fresh,
# sent value, the user's limit a minute (-1: none). 1: claimed; 0: not needed; -1: over budget.
CLAIM_REFRESH = """
if ARGV[2] ~= '1' and redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
if redis.call('EXISTS', KEYS[3]) == 1 then return 0 end
if redis.call('EXISTS', KEYS[2]) == 1 then return 0 end
local limit = tonumber(ARGV[4])
if limit >= 0 and tonumber(redis.call('GET', KEYS[4]) or '0') >= limit then return -1 end
redis.call('SET', KEYS[2], ARGV[3], 'EX', ARGV[1])
if redis.call('INCR', KEYS[4]) == 1 then redis.call('EXPIRE', KEYS[4], 60) end
return 1
"""


@dataclass
class ReportStatus:
    params: object
    result: dict | None  # {"report", "computed_at", "duration", "fresh_until"}
    fresh: bool
    sent: bool
    working: bool
    progress: dict | None
    error: dict | None
    enqueued: bool = False
    wants_refresh: bool = False  # missing or stale, nothing running: the card asks for one (POST)
    limited: bool = False  # this user started too many computations this minute

    @property
    def busy(self):
        return self.sent or self.working or self.enqueued

    @property
    def is_stale(self):
        return self.result is not None and not self.fresh

    @property
    def age_seconds(self):
        return None if self.result is None else max(0.0, time.time() - self.result["computed_at"])

    @property
    def failed(self):
        """The last attempt failed and nothing is running to fix it."""
        if self.error is None or self.busy:
            return False
        return self.result is None or self.error["at"] > self.result["computed_at"]


def read_status(params):
    keys = ReportKeys(params)
    values = worker_redis().mget(
        [keys.result, keys.fresh, keys.sent, keys.working, keys.progress, keys.error]
    )
    result, fresh, sent, working, progress, error = values
    return ReportStatus(
        params=params,
        result=json.loads(result) if result else None,
        fresh=fresh is not None,
        sent=sent is not None,
        working=working is not None,
        progress=json.loads(progress) if progress else None,
        error=json.loads(error) if error else None,
    )


def request_report(params, force=False, start=False, user_id=None):
    """Return the report's status. With ``start`` (a POST), enqueue one computation if it
    needs one (``force``: even if fresh), within the user's budget of starts a minute."""
    status = read_status(params)
    wants_refresh = force or needs_refresh(status)
    status.wants_refresh = wants_refresh and not status.busy
    if not (start and status.wants_refresh):
        return status
    claimed = claim_refresh(params, force or status.fresh, user_id)
    if claimed == 0:
        return read_status(params)  # another request's computation is on its way: show that one
    if claimed == 1:
        status.enqueued = True
        enqueue(params)
    status.limited = claimed == -1
    return status


def needs_refresh(status):
    """Whether a request should start a computation without being asked to.

    Not after a failure: the polling card would otherwise re-run a failing
    report every second and never show the error. The card offers Retry
    (a forced refresh) instead.
    """
    if status.failed:
        return False
    return not status.fresh or early_refresh_due(status.result)


def early_refresh_due(result, now=None):
    """XFetch: refresh early with a probability that rises as expiry nears."""
    if result is None:
        return False
    now = now or time.time()
    jitter = -math.log(1.0 - random.random())  # exponential(1): 0 .. ~7
    return now + result["duration"] * EARLY_REFRESH_BETA * jitter >= result["fresh_until"]


def claim_refresh(params, ignore_fresh, user_id=None):
    """1 if this request may enqueue (it set ``:sent``), 0 if none is needed or one is already
    on its way, -1 if the user started ``REPORT_STARTS_PER_MINUTE`` this minute (the CLI,
    ``user_id`` None, has no budget). One script: claim and count are one step."""
    keys = ReportKeys(params)
    client = worker_redis()
    script = cached_script(client, CLAIM_REFRESH)
    sent_ttl = current_app.config["REPORT_SENT_TTL_SECONDS"]
    limit = -1 if user_id is None else current_app.config["REPORT_STARTS_PER_MINUTE"]
    budget = app_key("report-starts", str(user_id))
    return script(
        keys=[keys.fresh, keys.sent, keys.working, budget],
        args=[sent_ttl, "1" if ignore_fresh else "0", "1", limit],
    )


def enqueue(params):
    """Record the run and send the task with its callbacks; undo the claim if the broker fails."""
    run = ReportRun(report=REPORT_NAME, params=params.as_dict(), status="queued")
    db.session.add(run)
    db.session.commit()
    signature = compute_slow_pageviews.s(params.as_dict(), run.id)
    try:
        async_result = signature.apply_async(
            link=record_run_success.s(run.id), link_error=record_run_failure.s(run.id), retry=False
        )
    except Exception as exc:  # noqa: BLE001 - any broker failure is reported the same way
        forget_claim(params, f"could not reach the task queue: {type(exc).__name__}")
        run.status, run.error = "failed", f"not enqueued: {exc}"
        db.session.commit()
        return
    run.task_id = async_result.id
    db.session.commit()


def forget_claim(params, message):
    keys = ReportKeys(params)
    try:
        pipe = worker_redis().pipeline()
        pipe.delete(keys.sent)
        pipe.set(keys.error, json.dumps({"message": message, "at": time.time()}), ex=3600)
        pipe.execute()
    except RedisError:
        pass  # the sentinel expires by itself


def report_card_context(source, force=False, start=False, user_id=None):
    """Template variables for the status card; never raises for Redis trouble."""
    params = SlowReportParams.parse(source)
    try:
        status = request_report(params, force=force, start=start, user_id=user_id)
    except RedisError as exc:
        return {"params": params, "status": None, "unavailable": f"Redis is unavailable: {exc}"}
    return {"params": params, "status": status, "unavailable": None}
