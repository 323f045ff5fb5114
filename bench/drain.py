"""Clicks per second into the database: the batch drain vs one Celery task per click.

Batch: N realistic clicks are pushed into the Redis stream first (not timed),
then ``webapp.clicks.drain.drain_click_buffer`` runs in this process, in an
app context, until the stream is empty. The clock covers the drain calls
only, from the first XREADGROUP to the last commit (and its XACK).

Task: M ``record_link_click`` tasks are queued on ``clicks`` while a real
worker (prefork, concurrency 2) listens only on ``default``; the clock starts
when the worker is told to consume ``clicks`` and stops when the counters
reach M. Neither side pays for queueing, both pay for the database.
"""

import contextlib
import time
from collections import defaultdict

from bench import clicks
from webapp.clicks import buffer, store
from webapp.clicks import drain as app_drain
from webapp.extensions import db
from webapp.redis_client import worker_redis

TASK_NAME = "tasks.clicks.record_link_click"


def run_batch(stack, count, batch_size=5000, links=50, log=print):
    app = stack.app(stack.fresh_database("drain-batch"))
    stack.flush_redis()
    with app.app_context():
        client, engine = worker_redis(), db.engine
        link_ids = clicks.create_links(links, "drain")
        started = time.perf_counter()
        pushed = clicks.push(client, clicks.click_events(count, link_ids))
        push_s = time.perf_counter() - started
        log(f"  pushed {pushed} clicks over {links} links into the stream in {push_s:.1f}s; draining ...")
        with timed() as parts:
            started = time.perf_counter()
            recorded = clicks.drain_until_empty(client, engine, batch_size)
            elapsed = time.perf_counter() - started
        counted, rows = clicks.counted(engine), clicks.click_rows(engine)
        left = client.xlen(buffer.CLICK_STREAM)
    ok = recorded == counted == rows == count and left == 0
    return {
        "clicks": count,
        "batch_size": batch_size,
        "links": links,
        "push_s": push_s,
        "drain_s": elapsed,
        "clicks_per_s": count / elapsed,
        "recorded": recorded,
        "counter_sum": counted,
        "click_rows": rows,
        "left_in_stream": left,
        "breakdown_s": {**parts, "other": elapsed - sum(parts.values())},
        "ok": ok,
    }


@contextlib.contextmanager
def timed():
    """Time the drain's parts by wrapping the functions it looks up at call time."""
    totals = defaultdict(float)
    targets = [
        (buffer, "read_new", "redis_read"),
        (buffer, "acknowledge", "redis_ack"),
        (app_drain, "commit_rows", "db_transaction"),
        (store, "upsert_sums", "db_counter_upserts"),
    ]
    originals = [(module, name, getattr(module, name)) for module, name, _ in targets]
    for (module, name, original), (_, _, key) in zip(originals, targets, strict=True):
        setattr(module, name, stopwatch(original, key, totals))
    try:
        yield totals
    finally:
        for module, name, original in originals:
            setattr(module, name, original)
        # The upserts happen inside the transaction: report the rest of it apart.
        totals["db_transaction"] -= totals["db_counter_upserts"]


def stopwatch(function, key, totals):
    def wrapper(*args, **kwargs):
        started = time.perf_counter()
        try:
            return function(*args, **kwargs)
        finally:
            totals[key] += time.perf_counter() - started

    return wrapper


def run_task(stack, count, links=50, concurrency=2, log=print):
    database_url = stack.fresh_database("drain-task")
    app = stack.app(database_url)
    stack.flush_redis()
    with app.app_context():
        link_ids = clicks.create_links(links, "task")
    log(f"  starting a Celery worker (prefork, concurrency {concurrency}) ...")
    worker = stack.worker("worker-task", database_url, "default", concurrency)
    celery = app.extensions["celery"]
    task = celery.tasks[TASK_NAME]
    with app.app_context():
        client, engine = worker_redis(), db.engine
        started = time.perf_counter()
        for event in clicks.click_events(count, link_ids, seed=2):
            task.apply_async(kwargs={"event": event})
        enqueue_s = time.perf_counter() - started
        queued = client.llen("clicks")
        log(f"  queued {queued} tasks in {enqueue_s:.1f}s; worker now consumes 'clicks' ...")
        started = time.perf_counter()
        # limit=1: return on the worker's reply instead of collecting replies for the whole timeout.
        if not celery.control.add_consumer("clicks", reply=True, timeout=10, limit=1):
            raise RuntimeError(f"the worker did not answer add_consumer (log: {worker.log_path})")
        deadline = started + max(60.0, count / 25)
        done = 0
        while done < count and time.perf_counter() < deadline:
            time.sleep(0.05)
            done = clicks.counted(engine)
        elapsed = time.perf_counter() - started
    worker.stop()
    return {
        "tasks": count,
        "queued": queued,
        "links": links,
        "concurrency": concurrency,
        "enqueue_s": enqueue_s,
        "elapsed_s": elapsed,
        "counted": done,
        "clicks_per_s": done / elapsed,
        "complete": done == count,
        "ok": done == count == queued,
    }


def run(stack, count, tasks, log=print):
    log(f"drain, batch mode: {count} clicks, batches of 5000")
    batch = run_batch(stack, count, log=log)
    log(f"drain, task mode: {tasks} record_link_click tasks")
    task = run_task(stack, tasks, log=log)
    ratio = batch["clicks_per_s"] / task["clicks_per_s"] if task["clicks_per_s"] else None
    return {"batch": batch, "task": task, "ratio": ratio}
