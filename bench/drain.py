"""Clicks per second into the database: the batch drain vs one Celery task per click.

Batch: N realistic click lines are pushed into the Redis stream first (not
timed), then ``CLICK_DRAIN.drain`` runs in this process, in an app context,
until the stream is empty. The clock covers the drain calls only, from the
first XREADGROUP to the last commit (and its XACK).

Task: M ``record_link_click`` tasks are queued on ``clicks`` while a real
worker (prefork, concurrency 2) listens only on ``default``; the clock starts
when the worker is told to consume ``clicks`` and stops when the counters
reach M. Neither side pays for queueing, both pay for the database.

Both run on SQLite + Redis, then, when the bench found them, on PostgreSQL with
RabbitMQ as the task mode's broker (Redis if only PostgreSQL is there).

Concurrent drains (PostgreSQL only: SQLite lets one writer in at a time):
forked processes, each draining the same stream as a consumer of its own,
over clicks where one link takes 90 %, then over clicks spread across many
links. A hot link whose counter row serialised the drains would show as the
first falling well behind the second.
"""

import contextlib
import multiprocessing
import time
from collections import defaultdict

from bench import clicks
from bench.report import BACKENDS
from tests.broker import purge_queues
from webapp import create_app
from webapp.celery_app import celery_of
from webapp.clicks import store
from webapp.clicks.buffer import CLICK_BUFFER
from webapp.clicks.drain import CLICK_DRAIN
from webapp.config import TASK_QUEUES
from webapp.extensions import db
from webapp.keys import queue_name
from webapp.ops import queue_depths
from webapp.redis_client import worker_redis

TASK_NAME = "tasks.clicks.record_link_click"
HOT_SHARE = 0.9


def run_batch(stack, backend, count, batch_size=5000, links=50, log=print):
    app = stack.app(stack.fresh_database("drain-batch", backend))
    stack.flush_redis()
    with app.app_context():
        client, engine = worker_redis(), db.engine
        link_ids = clicks.create_links(links, "drain")
        commands_before = redis_commands(client)
        started = time.perf_counter()
        pushed = clicks.push(client, clicks.click_lines(count, link_ids))
        push_s = time.perf_counter() - started
        log(f"  pushed {pushed} clicks over {links} links into the stream in {push_s:.1f}s; draining ...")
        with timed() as parts:
            started = time.perf_counter()
            recorded = clicks.drain_until_empty(client, engine, batch_size)
            elapsed = time.perf_counter() - started
        commands = redis_commands(client) - commands_before - 1  # this INFO itself
        counted, rows = clicks.counted(engine), clicks.click_rows(engine)
        left = client.xlen(CLICK_BUFFER.stream)
    stack.release(app)
    ok = recorded == counted == rows == count and left == 0
    return {
        "redis_commands": commands,
        "redis_commands_per_click": commands / count,
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
        "breakdown_s": breakdown(parts, elapsed),
        "ok": ok,
    }


def redis_commands(client):
    """Commands Redis has run since it started (INFO commandstats; a Lua script's own
    XADDs and XACKs count one each, as they cost Redis one each)."""
    return sum(stats["calls"] for stats in client.info("commandstats").values())


@contextlib.contextmanager
def timed():
    """Time the drain's parts by wrapping what it looks up at call time.

    The click buffer's shard / ``CLICK_DRAIN`` methods get an instance attribute that
    shadows the class's; ``store`` functions are module globals, which
    ``record_clicks`` reads on each call.
    """
    totals = defaultdict(float)
    (shard,) = CLICK_BUFFER.shards  # the bench runs the default: one stream
    targets = [
        (shard, "read_new", "redis_read"),
        (store, "rows_for_existing_links", "db_link_check"),
        (store, "insert_click_rows", "db_click_insert"),
        (store, "upsert_sums", "db_counter_upserts"),
        (store, "dimension_rows", "db_dimension_rows"),  # agents, countries, referrers: cached parses
        (CLICK_DRAIN, "commit_rows", "db_transaction"),
        (shard, "acknowledge", "redis_ack"),
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
        inside = ("db_link_check", "db_click_insert", "db_counter_upserts", "db_dimension_rows")
        totals["db_transaction"] -= sum(totals[key] for key in inside)
        totals["db_begin_commit_grouping"] = totals.pop("db_transaction")


def breakdown(parts, elapsed):
    """The parts by thread: the main thread's add up to ``elapsed``; the helper's overlap them."""
    main = {key: seconds for key, seconds in parts.items() if key.startswith("db_")}
    main["other"] = elapsed - sum(main.values())  # parsing lines, waiting for a read, the loop
    helper = {key: seconds for key, seconds in parts.items() if key.startswith("redis_")}
    return {"main_thread": main, "redis_helper_thread": helper}


def stopwatch(function, key, totals):
    def wrapper(*args, **kwargs):
        started = time.perf_counter()
        try:
            return function(*args, **kwargs)
        finally:
            totals[key] += time.perf_counter() - started

    wrapper.wrapped = function
    return wrapper


def run_task(stack, backend, count, links=50, concurrency=2, broker_url=None, log=print):
    """``broker_url``: the stack's Redis when None."""
    database_url = stack.fresh_database("drain-task", backend)
    app = stack.app(database_url, broker_url)
    stack.flush_redis()
    celery = celery_of(app)
    purge_queues(celery, TASK_QUEUES)  # what an interrupted run left on RabbitMQ
    with app.app_context():
        link_ids = clicks.create_links(links, "task")
    log(f"  starting a Celery worker (prefork, concurrency {concurrency}) ...")
    worker = stack.worker(f"worker-task-{backend}", database_url, "default", concurrency, broker_url)
    task = celery.tasks[TASK_NAME]
    with app.app_context():
        engine = db.engine
        started = time.perf_counter()
        for line in clicks.click_lines(count, link_ids, seed=2):
            task.apply_async(args=(line,))
        enqueue_s = time.perf_counter() - started
        queued = queue_depths(celery)["clicks"]
        log(f"  queued {queued} tasks in {enqueue_s:.1f}s; worker now consumes 'clicks' ...")
        started = time.perf_counter()
        # limit=1: return on the worker's reply instead of collecting replies for the whole timeout.
        clicks_queue = queue_name(
            app.config["CLICKBOARD_NAMESPACE"], "clicks"
        )  # the install's, as the tasks'
        if not celery.control.add_consumer(clicks_queue, reply=True, timeout=10, limit=1):
            raise RuntimeError(f"the worker did not answer add_consumer (log: {worker.log_path})")
        deadline = started + max(60.0, count / 25)
        done = 0
        while done < count and time.perf_counter() < deadline:
            time.sleep(0.05)
            done = clicks.counted(engine)
        elapsed = time.perf_counter() - started
    worker.stop()
    purge_queues(celery, TASK_QUEUES)  # tasks left by a run that timed out
    stack.release(app)
    return {
        "broker": "RabbitMQ" if broker_url else "Redis",
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


def run_concurrent(stack, backend, count, drains, hot, batch_size=5000, links=50, log=print):
    """``drains`` processes draining ``count`` clicks at once; ``hot``: 90 % of them on one link."""
    app = stack.app(stack.fresh_database(f"drain-{drains}", backend))
    stack.flush_redis()
    with app.app_context():
        client, engine = worker_redis(), db.engine
        link_ids = clicks.create_links(links, "parallel")
        rest = (1 - HOT_SHARE) / (links - 1)
        weights = [HOT_SHARE, *[rest] * (links - 1)] if hot else [1] * links
        clicks.push(client, clicks.click_lines(count, link_ids, seed=3, weights=weights))
        CLICK_BUFFER.ensure_group(client)
        engine.dispose()  # the children must not share the parent's connections
        elapsed, recorded = drain_in_processes(app.config, drains, batch_size)
        counted, rows = clicks.counted(engine), clicks.click_rows(engine)
        left = client.xlen(CLICK_BUFFER.stream)
    stack.release(app)
    return {
        "drains": drains,
        "clicks": count,
        "hot_share": HOT_SHARE if hot else 1 / links,
        "drain_s": elapsed,
        "clicks_per_s": count / elapsed,
        "recorded_each": recorded,
        "ok": sum(recorded) == counted == rows == count and left == 0,
    }


def drain_in_processes(config, drains, batch_size):
    """Fork ``drains`` processes, start them together; return (seconds until all finished, recorded each)."""
    context = multiprocessing.get_context("fork")
    start, results = context.Event(), context.Queue()
    children = [
        context.Process(target=drain_child, args=(config, f"bench-drain-{n}", batch_size, start, results))
        for n in range(drains)
    ]
    for child in children:
        child.start()
    time.sleep(1.0)  # every child has built its app and is waiting on ``start``
    started = time.perf_counter()
    start.set()
    recorded = [results.get(timeout=600) for _ in children]
    elapsed = time.perf_counter() - started
    for child in children:
        child.join(timeout=30)
    if any(isinstance(value, str) for value in recorded):
        raise RuntimeError(f"a drain process failed: {recorded}")
    return elapsed, recorded


def drain_child(config, consumer, batch_size, start, results):
    """One drain process: a consumer of its own, draining until no new message is left for it."""
    try:
        app = create_app(
            {key: config[key] for key in ("SQLALCHEMY_DATABASE_URI", "REDIS_URL", "CELERY_BROKER_URL")}
        )
        with app.app_context():
            client, engine = worker_redis(), db.engine
            with engine.connect():
                pass  # connect before the clock starts
            start.wait()
            recorded = 0
            while batch := CLICK_DRAIN.drain(client, engine, consumer, batch_size, 1, 60):
                recorded += batch
            results.put(recorded)
    except Exception as exc:  # noqa: BLE001 -- any failure goes to the parent, which raises it
        results.put(f"{consumer}: {exc!r}")


def run_backend(stack, backend, count, tasks, log=print):
    name = BACKENDS[backend]
    broker_url = stack.rabbitmq_url if backend == "postgresql" else None
    log(f"drain into {name}, batch mode: {count} clicks, batches of 5000")
    batch = run_batch(stack, backend, count, log=log)
    broker = "RabbitMQ" if broker_url else "Redis"
    log(f"drain into {name}, task mode: {tasks} record_link_click tasks through {broker}")
    task = run_task(stack, backend, tasks, broker_url=broker_url, log=log)
    ratio = batch["clicks_per_s"] / task["clicks_per_s"] if task["clicks_per_s"] else None
    return {"batch": batch, "task": task, "ratio": ratio}


def run_parallel(stack, backend, count, log=print):
    """One drain and two on a hot link, then two on spread clicks."""
    runs = []
    for drains, hot in ((1, True), (2, True), (2, False)):
        spread = f"{HOT_SHARE:.0%} on one link" if hot else "spread evenly"
        log(
            f"drain into {BACKENDS[backend]}, {drains} drain process{'es' if drains > 1 else ''} at once: {count} clicks, {spread}"
        )
        runs.append({"hot": hot, **run_concurrent(stack, backend, count, drains, hot, log=log)})
    hot, spread = runs[1]["clicks_per_s"], runs[2]["clicks_per_s"]
    return {"runs": runs, "hot_vs_spread": hot / spread if spread else None}


def run(stack, count, tasks, log=print):
    """Per backend (``sqlite``, and ``postgresql`` if found): batch, task and their ratio."""
    results = {"sqlite": run_backend(stack, "sqlite", count, tasks, log)}
    if stack.postgres_url:
        results["postgresql"] = run_backend(stack, "postgresql", count, tasks, log)
        results["postgresql"]["server_version"] = stack.scratch.version()
        results["postgresql"]["parallel"] = run_parallel(stack, "postgresql", count, log)
    return results
