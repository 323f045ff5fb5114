"""The worker's side of the report protocol (see ``coordinator`` for the keys).

``run_report`` takes the lock, swaps ``:sent`` for ``:working``, computes
with a heartbeat keeping the lock and ``:working`` alive, stores the result
and cleans up, whatever happens. The computation itself is passed in, so
this module knows nothing about what a report contains.
"""

import json
import logging
import socket
import threading
import time

from flask import current_app
from redis.exceptions import LockError

from webapp.redis_client import worker_redis
from webapp.reports.report_keys import ReportKeys

log = logging.getLogger(__name__)


class LostLock(RuntimeError):
    """Our lock expired mid-computation (a long stall): another run may have started."""


class Heartbeat:
    """Keeps the lock and the ``:working``/``:progress`` keys alive from a background thread."""

    def __init__(self, client, lock, keys, ttl):
        # The client is passed in: the thread has no app context, so worker_redis() fails there.
        self.client, self.lock, self.keys, self.ttl = client, lock, keys, ttl
        self.stopped = threading.Event()
        self.lost = False
        self.thread = threading.Thread(target=self.beat, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc_info):
        self.stopped.set()
        self.thread.join()

    def beat(self):
        while not self.stopped.wait(self.ttl / 3):
            try:
                self.lock.reacquire()
                pipe = self.client.pipeline()
                pipe.expire(self.keys.working, int(self.ttl) + 1)
                pipe.expire(self.keys.progress, int(self.ttl) + 1)
                pipe.execute()
            except LockError:
                self.lost = True
                return
            except Exception:  # noqa: BLE001 - a missed beat is retried on the next one
                log.warning("report heartbeat failed", exc_info=True)


def run_report(params, compute):
    """Run ``compute(on_progress)`` under the protocol; return the report, or None if skipped."""
    cfg = current_app.config
    client = worker_redis()
    keys = ReportKeys(params)
    ttl = cfg["REPORT_HEARTBEAT_TTL_SECONDS"]
    lock = client.lock(keys.lock, timeout=ttl, blocking=False, thread_local=False)
    if not lock.acquire():
        client.delete(keys.sent)  # the run holding the lock will produce the result
        return None
    try:
        mark_working(client, keys, ttl)
        with Heartbeat(client, lock, keys, ttl) as heartbeat:
            started = time.perf_counter()
            report = compute(progress_writer(client, keys, ttl, heartbeat))
            duration = time.perf_counter() - started
        store_result(client, keys, report, duration, cfg)
        return report
    except Exception as exc:
        store_error(client, keys, exc)
        raise
    finally:
        client.delete(keys.working, keys.progress)
        release(lock)


def mark_working(client, keys, ttl):
    working = json.dumps({"host": socket.gethostname(), "started": time.time()})
    pipe = client.pipeline()
    pipe.set(keys.working, working, ex=int(ttl) + 1)  # before clearing :sent: never neither
    pipe.delete(keys.sent, keys.error)
    pipe.set(keys.progress, json.dumps({"done": 0, "total": 1}), ex=int(ttl) + 1)
    pipe.execute()


def progress_writer(client, keys, ttl, heartbeat):
    def on_progress(done, total):
        if heartbeat.lost:
            raise LostLock("the report lock expired during the computation")
        client.set(keys.progress, json.dumps({"done": done, "total": total}), ex=int(ttl) + 1)

    return on_progress


def store_result(client, keys, report, duration, cfg):
    now = time.time()
    fresh_for = cfg["REPORT_FRESH_SECONDS"]
    cached = {"report": report, "computed_at": now, "duration": duration, "fresh_until": now + fresh_for}
    pipe = client.pipeline()
    pipe.set(keys.result, json.dumps(cached), ex=cfg["REPORT_RETENTION_SECONDS"])
    pipe.set(keys.fresh, "1", ex=fresh_for)
    pipe.delete(keys.error)
    pipe.execute()


def store_error(client, keys, exc):
    error = {"message": f"{type(exc).__name__}: {exc}"[:500], "at": time.time()}
    try:
        client.set(keys.error, json.dumps(error), ex=24 * 3600)
    except Exception:  # noqa: BLE001 - Redis may be the failure; the run row still records it
        log.warning("could not record report error in Redis", exc_info=True)


def release(lock):
    try:
        lock.release()
    except LockError:
        log.warning("report lock had already expired at release")
