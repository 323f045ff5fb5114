"""Report tasks (``reports`` queue) and the callbacks that record each run.

The computation is linked to a success and an error
callback, and those write the ``ReportRun`` row, so the task itself stays
about computing.
"""

import logging

from celery import shared_task
from sqlalchemy.exc import OperationalError

from webapp.extensions import db
from webapp.models import ReportRun, utcnow
from webapp.redis_client import worker_redis
from webapp.reports import slow_pageviews
from webapp.reports.params import SlowReportParams
from webapp.reports.report_keys import ReportKeys
from webapp.reports.runner import run_report

log = logging.getLogger(__name__)
TRANSIENT_RETRIES = 3


@shared_task(bind=True, name="tasks.reports.compute_slow_pageviews", max_retries=TRANSIENT_RETRIES)
def compute_slow_pageviews(self, params, run_id):
    report_params = SlowReportParams(**params)
    mark_run_started(run_id, self.request.id)

    def compute(on_progress):
        with db.engine.connect() as conn:
            return slow_pageviews.compute(conn, report_params, utcnow(), on_progress)

    try:
        report = run_report(report_params, compute)
    except OperationalError as exc:
        if self.request.retries >= self.max_retries:
            raise
        countdown = 2 ** (self.request.retries + 1)
        # Keep requests from enqueueing a second run while this one waits to retry.
        worker_redis().set(ReportKeys(report_params).sent, "retrying", ex=countdown + 60)
        raise self.retry(exc=exc, countdown=countdown) from exc
    return {"run_id": run_id, "skipped": report is None, "report": report}


def mark_run_started(run_id, task_id):
    run = db.session.get(ReportRun, run_id)
    if run is not None:
        run.status, run.started_at, run.task_id = "running", utcnow(), task_id
        db.session.commit()


@shared_task(name="tasks.reports.record_run_success", ignore_result=True)
def record_run_success(outcome, run_id):
    run = db.session.get(ReportRun, run_id)
    if run is None:
        return
    finish(run, "skipped" if outcome["skipped"] else "done")
    run.result = outcome["report"]
    db.session.commit()


@shared_task(name="tasks.reports.record_run_failure", ignore_result=True)
def record_run_failure(request, exc, traceback, run_id):
    run = db.session.get(ReportRun, run_id)
    if run is None:
        return
    finish(run, "failed")
    run.error = f"{type(exc).__name__}: {exc}"[:2000]
    db.session.commit()


def finish(run, status):
    run.status = status
    run.finished_at = utcnow()
    if run.started_at is not None:
        run.duration_ms = int((run.finished_at - run.started_at).total_seconds() * 1000)
