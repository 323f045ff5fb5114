"""Clicks per second into the database: the batch drain vs one Celery task per click.

Batch: N realistic click lines are pushed into the Redis stream first (not
timed), then ``CLICK_DRAIN.drain`` runs in this process, in an app context,
until the stream is empty. The clock covers the drain calls only, from the
first XREADGROUP to the last commit (and its XACK).

Task: M ``record_link_click`` tasks are queued on ``clicks`` while a real
worker (prefork, concurrency 2) listens only on ``default``; the clock starts
when the worker is told to consume ``clicks`` and stops when the counters
reach M. Neither side pays for queueing, both pay for the database.

Both run on SQLite, then, when ``BENCH_DATABASE_URL`` is set, on PostgreSQL.
"""

import contextlib
import time
from collections import defaultdict

from bench import clicks
from webapp.clicks import store
from webapp.clicks.buffer import CLICK_BUFFER
from webapp.clicks.drain import CLICK_DRAIN
from webapp.extensions import db
from webapp.redis_client import worker_redis

TASK_NAME = "tasks.clicks.record_link_click"
BACKENDS = {"sqlite": "SQLite", "postgresql": "PostgreSQL"}


def run_batch(stack, backend, count, batch_size=5000, links=50, log=print):
    app = stack.app(stack.fresh_database("drain-batch", backend))
    stack.flush_redis()
    with app.app_context():
        client, engine = worker_redis(), db.engine
        link_ids = clicks.create_links(links, "drain")
        started = time.perf_counter()
        pushed = clicks.push(client, clicks.click_lines(count, link_ids))
        push_s = time.perf_counter() - started
        log(f"  pushed {pushed} clicks over {links} links into the stream in {push_s:.1f}s; draining ...")
        with timed() as parts:
            started = time.perf_counter()
            recorded = clicks.drain_until_empty(client, engine, batch_size)
            elapsed = time.perf_counter() - started
        counted, rows = clicks.counted(engine), clicks.click_rows(engine)
        left = client.xlen(CLICK_BUFFER.stream)
    stack.release(app)
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
    """Time the drain's parts by wrapping what it looks up at call time.

    ``CLICK_BUFFER`` / ``CLICK_DRAIN`` methods get an instance attribute that
    shadows the class's; ``store`` functions are module globals, which
    ``record_clicks`` reads on each call.
    """
    totals = defaultdict(float)
    targets = [
        (CLICK_BUFFER, "read_new", "redis_read"),
        (store, "rows_for_existing_links", "db_link_check"),
        (store, "insert_click_rows", "db_click_insert"),
        (store, "upsert_sums", "db_counter_upserts"),
        (CLICK_DRAIN, "commit_rows", "db_transaction"),
        (CLICK_BUFFER, "acknowledge", "redis_ack"),
    ]
    for owner, name, key in targets:
        setattr(owner, name, stopwatch(getattr(owner, name), key, totals))
    try:
        yield totals
    finally:
        for owner, name, _ in targets:
            if owner is store:
                setattr(owner, name, getattr(owner, name).wrapped)
            else:
                delattr(owner, name)
        # The three db_ parts run inside the transaction: what is left of it is
        # BEGIN, COMMIT and record_clicks' own Python (row grouping for the upserts).
        inside = ("db_link_check", "db_click_insert", "db_counter_upserts")
        totals["db_transaction"] -= sum(totals[key] for key in inside)
        totals["db_begin_commit_grouping"] = totals.pop("db_transaction")


def stopwatch(function, key, totals):
    def wrapper(*args, **kwargs):
        started = time.perf_counter()
        try:
            return function(*args, **kwargs)
        finally:
            totals[key] += time.perf_counter() - started

    wrapper.wrapped = function
    return wrapper


def run_task(stack, backend, count, links=50, concurrency=2, log=print):
    database_url = stack.fresh_database("drain-task", backend)
    app = stack.app(database_url)
    stack.flush_redis()
    with app.app_context():
        link_ids = clicks.create_links(links, "task")
    log(f"  starting a Celery worker (prefork, concurrency {concurrency}) ...")
    worker = stack.worker(f"worker-task-{backend}", database_url, "default", concurrency)
    celery = app.extensions["celery"]
    task = celery.tasks[TASK_NAME]
    with app.app_context():
        client, engine = worker_redis(), db.engine
        started = time.perf_counter()
        for line in clicks.click_lines(count, link_ids, seed=2):
            task.apply_async(args=(line,))
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
    stack.release(app)
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


def run_backend(stack, backend, count, tasks, log=print):
    name = BACKENDS[backend]
    log(f"drain into {name}, batch mode: {count} clicks, batches of 5000")
    batch = run_batch(stack, backend, count, log=log)
    log(f"drain into {name}, task mode: {tasks} record_link_click tasks")
    task = run_task(stack, backend, tasks, log=log)
    ratio = batch["clicks_per_s"] / task["clicks_per_s"] if task["clicks_per_s"] else None
    return {"batch": batch, "task": task, "ratio": ratio}


def run(stack, count, tasks, log=print):
    """Per backend (``sqlite``, and ``postgresql`` if configured): batch, task and their ratio."""
    results = {"sqlite": run_backend(stack, "sqlite", count, tasks, log)}
    if stack.postgres_url:
        results["postgresql"] = run_backend(stack, "postgresql", count, tasks, log)
        results["postgresql"]["server_version"] = stack.scratch.version()
    return results
