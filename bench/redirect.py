"""Redirect throughput and tail latency: raw WSGI and Flask no-ops vs Clickboard batch vs task mode.

The servers run side by side (idle ones cost nothing) under the same gunicorn
settings and the same wrk load, measured interleaved: raw, rawh, noop, batch,
task, raw, rawh ... so a burst of load from elsewhere on a shared machine
lands on every config alike rather than on one. ``raw`` is the floor (a bare
WSGI callable sending ``Location`` only), ``rawh`` the same floor sending
every header Clickboard's redirect sends: the ratio batch ÷ rawh is what
Clickboard's own code costs, rawh ÷ raw what its security headers cost.

``batch`` and ``task`` run on SQLite with Redis as the broker. When the bench
found PostgreSQL and/or RabbitMQ, ``batch-pg-mq`` and ``task-pg-mq`` (or
``-pg`` / ``-mq`` when only one is there) run the same modes on that stack:
the batch redirect still appends to the Redis stream through the local click
log; the task redirect publishes to RabbitMQ.

After each batch run the bench waits for the workers' shippers to move every
logged click to the Redis stream, drains it into that config's database and
counts the link wrk hit against the 302s wrk saw: a redirect that "wins" by
dropping clicks shows up here.
"""

import os
import statistics
import time
from dataclasses import dataclass

import psutil

from bench import clicks, wrk
from bench.cpu import CpuMeter
from tests.broker import purge_queues
from webapp.celery_app import celery_of
from webapp.clicks import buffer
from webapp.extensions import db
from webapp.links.service import update_link
from webapp.models import Link
from webapp.ops import queue_depths
from webapp.redis_client import worker_redis

MODES = ("raw", "rawh", "noop", "batch", "task")
BASELINES = {
    "raw": "bench.noop_wsgi:app",
    "rawh": "bench.noop_wsgi:app_with_headers",
    "noop": "bench.noop_app:app",
}
LIMITS = "batch-limits"
TASK_QUEUE = "clicks"


@dataclass
class Config:
    """One server under test, and the in-process app that checks its clicks."""

    name: str
    mode: str  # raw, rawh, noop, batch or task
    database: str  # the name shown: SQLite or PostgreSQL
    broker: str  # Redis or RabbitMQ
    app: object
    slug: str
    link_id: int
    log_dir: str
    server: object = None

    @property
    def label(self):
        labels = {"raw": "no-op raw WSGI app", "rawh": "raw WSGI + our headers", "noop": "no-op Flask app"}
        return labels.get(self.mode, f"{self.database} + {self.broker}")


def plan(stack):
    """The configs to measure: SQLite + Redis always, then PostgreSQL and/or RabbitMQ if found."""
    stacks = [("", "sqlite", None)]
    if stack.postgres_url or stack.rabbitmq_url:
        suffix = ("-pg" if stack.postgres_url else "") + ("-mq" if stack.rabbitmq_url else "")
        stacks.append((suffix, "postgresql" if stack.postgres_url else "sqlite", stack.rabbitmq_url))
    configs = []
    for suffix, backend, broker_url in stacks:
        app = stack.app(stack.fresh_database(f"redirect{suffix}", backend), broker_url)
        with app.app_context():
            link_ids = clicks.create_links(3, "bench")
            limit_link(link_ids[2])
        database = "PostgreSQL" if backend == "postgresql" else "SQLite"
        broker = "RabbitMQ" if broker_url else "Redis"
        modes = MODES if not suffix else [mode for mode in MODES if mode not in BASELINES]
        for mode in modes:
            # batch and the no-ops hit bench-0; task its own link, whose tasks never run.
            slug, link_id = ("bench-1", link_ids[1]) if mode == "task" else ("bench-0", link_ids[0])
            name = f"{mode}{suffix}"
            log_dir = os.path.join(stack.root, "clicks", name)
            configs.append(Config(name, mode, database, broker, app, slug, link_id, log_dir))
        if not suffix:
            # The same batch server's settings on a link with an expiry and a click limit
            # (neither reached): what checking access limits on every redirect costs.
            log_dir = os.path.join(stack.root, "clicks", LIMITS)
            configs.append(Config(LIMITS, "batch", database, broker, app, "bench-2", link_ids[2], log_dir))
    return configs


def limit_link(link_id):
    link = db.session.get(Link, link_id)
    update_link(link, {"expires_at": "2999-01-01T00:00:00Z", "max_clicks": 10**12}, None)


def start_server(stack, config, workers):
    database_url = config.app.config["SQLALCHEMY_DATABASE_URI"]
    broker_url = config.app.config["CELERY_BROKER_URL"]
    if config.mode in BASELINES:
        return stack.web(f"web-{config.mode}", database_url, app=BASELINES[config.mode], workers=workers)
    return stack.web(
        f"web-{config.name}",
        database_url,
        workers=workers,
        broker_url=broker_url,
        CLICK_CAPTURE_MODE=config.mode,
        CLICK_LOG_DIR=config.log_dir,  # its own, so the batch check waits on this server's files only
    )


def run(stack, duration, warmup, rounds=3, workers=2, threads=2, connections=16, log=print):
    configs = plan(stack)
    log(f"starting {len(configs)} gunicorns ({workers} sync workers each) ...")
    for config in configs:
        config.server = start_server(stack, config, workers)
        log(f"  {config.name:<12} {config.label}")
    load = {"threads": threads, "connections": connections}
    runs, checks = [], []
    for round_number in range(1, rounds + 1):
        for config in configs:
            runs.append(run_one(stack, config, round_number, duration, warmup, load, checks, log))
    for config in configs:
        config.server.stop()  # free the memory before the next phase; close() covers errors
    settings = {"duration_s": duration, "warmup_s": warmup, "rounds": rounds, "gunicorn_workers": workers}
    settings.update(load, summary="best of rounds: max req/s and min p99, each over the rounds")
    labels = {config.name: config.label for config in configs}
    return {"settings": settings, "configs": labels, "runs": runs, "summary": summarise(runs),
            "click_checks": checks}  # fmt: skip


def run_one(stack, config, round_number, duration, warmup, load, checks, log):
    """One measured run of one config (with its click check or queue count); return its record."""
    url = f"{config.server.url}/r/{config.slug}"
    if warmup:
        wrk.run(url, warmup, **load)
    with config.app.app_context():
        client, engine = worker_redis(), db.engine
        if config.mode == "batch":
            time.sleep(0.5)  # requests still in flight from the warm-up
            before = snapshot(client, engine, config)
        result, record = measure(stack, config, url, duration, load)
        record = {"config": config.name, "round": round_number, **record}
        log(f"  round {round_number} {config.name:<12}{describe(record)}")
        if config.mode == "batch":
            time.sleep(0.5)  # let gunicorn finish what wrk left in flight
            after = snapshot(client, engine, config)
            checks.append(click_check(config.name, round_number, result, before, after, load["connections"]))
            log("    " + checks[-1]["line"])
        if config.mode == "task":
            # No worker in this phase: count what was published, then empty the queue.
            celery = celery_of(config.app)
            record["tasks_enqueued"] = queue_depths(celery)[TASK_QUEUE]
            purge_queues(celery, [TASK_QUEUE])
    return record


def measure(stack, config, url, duration, load):
    """One measured wrk run, with the CPU the server, redis-server and a local RabbitMQ spent on it."""
    pids = {"web": config.server.process.pid, "redis": stack.redis.process.pid}
    if config.broker == "RabbitMQ" and (broker_pid := local_rabbitmq_pid()):
        pids["rabbitmq"] = broker_pid
    meter = CpuMeter(**pids)
    meter.start()
    result = wrk.run(url, duration, **load)
    cpu = meter.stop()
    requests = max(result.requests, 1)
    server_cpu = sum(seconds for name, seconds in cpu.items() if name != "wrk")
    figures = {"cpu_s": cpu, "server_cpu_us_per_request": server_cpu / requests * 1e6}
    figures["wrk_cpu_us_per_request"] = cpu["wrk"] / requests * 1e6
    return result, {**result.as_dict(), **figures}


def describe(record):
    errors = sum(record["socket_errors"].values())
    return (
        f"{record['requests_per_sec']:>9.1f} req/s  p99 {record['p99_ms']:>8.2f} ms"
        f"  {record['server_cpu_us_per_request']:>6.0f} CPU us/req  ({record['requests']} requests,"
        f" non-2xx/3xx {record['non_2xx_3xx']}, socket errors {errors})"
    )


def local_rabbitmq_pid():
    """The Erlang VM of a RabbitMQ on this machine, if there is one (a remote broker's CPU is not ours to see)."""
    for process in psutil.process_iter(["name", "cmdline"]):
        if process.info["name"] == "beam.smp" and "rabbit" in " ".join(process.info["cmdline"] or ()):
            return process.pid
    return None


def snapshot(client, engine, config):
    """Wait until every logged click is shipped, drain them all, then read the counts."""
    waited, unshipped = clicks.settle(client, engine, config.log_dir)
    metrics = buffer.counters(client)
    return {
        "recorded": clicks.counted(engine, [config.link_id]),
        "buffered": metrics["clicks_buffered"],
        "shipped_late": metrics["clicks_shipped_late"],
        "ship_wait_s": waited,
        "unshipped_bytes": unshipped,
    }


def click_check(name, round_number, result, before, after, connections):
    """Compare clicks recorded during one batch run with the 302s wrk received.

    wrk stops on a clock, so requests gunicorn had already read (at most one per
    connection, plus any wrk gave up on with a socket error) are served and
    counted but never reach wrk's total: recorded may exceed wrk's count by that
    much, and must never fall below it. Separately, every click the server
    captured must have been recorded: that one is exact.
    """
    delta = {name: after[name] - before[name] for name in ("recorded", "buffered", "shipped_late")}
    delta["ship_wait_s"], delta["unshipped_bytes"] = after["ship_wait_s"], after["unshipped_bytes"]
    wrk_302 = result.ok_responses
    slack = connections + sum(result.socket_errors.values())
    excess = delta["recorded"] - wrk_302
    ok = 0 <= excess <= slack and delta["recorded"] == delta["buffered"] and result.non_2xx_3xx == 0
    ok = ok and not after["unshipped_bytes"]
    unshipped = f", {after['unshipped_bytes']} bytes NOT SHIPPED" if after["unshipped_bytes"] else ""
    line = (
        f"clicks: wrk 302s {wrk_302}, captured {delta['buffered']} (shipped late {delta['shipped_late']}),"
        f" recorded {delta['recorded']} -> {'OK' if ok else 'MISMATCH'} (recorded - wrk = {excess:+d},"
        f" allowed 0..{slack} in flight; shipping settled in {after['ship_wait_s']:.2f}s{unshipped})"
    )
    return {"config": name, "round": round_number, "wrk_302": wrk_302, **delta, "excess": excess, "slack": slack, "ok": ok,
            "line": line}  # fmt: skip


def summarise(runs):
    """Per config: best req/s and best p99 over the rounds, and their ratios to each no-op."""
    summary = {}
    for config in dict.fromkeys(run["config"] for run in runs):
        mine = [run for run in runs if run["config"] == config]
        summary[config] = {
            "rps_each": [run["requests_per_sec"] for run in mine],
            "p99_ms_each": [run["p99_ms"] for run in mine],
            "cpu_us_each": [run["server_cpu_us_per_request"] for run in mine],
            "rps": max(run["requests_per_sec"] for run in mine),
            "p99_ms": min(run["p99_ms"] for run in mine),
            "cpu_us": min(run["server_cpu_us_per_request"] for run in mine),
            "wrk_cpu_us": min(run["wrk_cpu_us_per_request"] for run in mine),
        }
    # "noop" keeps its unsuffixed field names (rps_ratio ...), which earlier results use.
    for base_name, suffix in (("noop", ""), ("raw", "_raw"), ("rawh", "_rawh")):
        base = summary.get(base_name)
        if base:
            for figures in summary.values():
                figures.update({f"{name}{suffix}": value for name, value in ratios(figures, base).items()})
    return summary


def ratios(figures, base):
    """``figures`` against one baseline's: best to best, round by round, and CPU-bound."""
    # The same ratio round by round (runs seconds apart): how steady it was.
    each = [mine / other for mine, other in zip(figures["rps_each"], base["rps_each"], strict=False) if other]
    return {
        "rps_ratio": figures["rps"] / base["rps"] if base["rps"] else None,
        "p99_ratio": figures["p99_ms"] / base["p99_ms"] if base["p99_ms"] else None,
        "rps_ratio_each": each,
        "rps_ratio_median": statistics.median(each) if each else None,
        # All of it (wrk, gunicorn, redis) shares the same cores: were CPU the only limit,
        # req/s would scale with 1 / (CPU per request). A ratio the machine's noise barely moves.
        "cpu_bound_rps_ratio": (base["cpu_us"] + base["wrk_cpu_us"])
        / (figures["cpu_us"] + figures["wrk_cpu_us"]),
    }
