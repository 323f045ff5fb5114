"""Redirect throughput and tail latency: no-op Flask vs Clickboard batch vs task mode.

The three servers run side by side (idle ones cost nothing) under the same
gunicorn settings and the same wrk load, measured interleaved: noop, batch,
task, noop, batch, task ... so a burst of load from elsewhere on a shared
machine lands on every config alike rather than on one.

After each batch run the bench waits for the workers' shippers to move every
logged click to the Redis stream, drains it into the database and counts the
link wrk hit against the 302s wrk saw: a redirect that "wins" by dropping
clicks shows up here.
"""

import os
import statistics
import time

from bench import clicks, wrk
from bench.cpu import CpuMeter
from webapp.clicks import buffer
from webapp.extensions import db
from webapp.redis_client import worker_redis

CONFIGS = ("noop", "batch", "task")
TASK_QUEUE_KEY = "clicks"  # kombu's Redis list for the "clicks" queue


def run(stack, duration, warmup, rounds=3, workers=2, threads=2, connections=16, log=print):
    database_url = stack.fresh_database("redirect")
    app = stack.app(database_url)
    with app.app_context():
        link_ids = dict(zip(CONFIGS[1:], clicks.create_links(2, "bench"), strict=True))
    slugs = {"noop": "bench-0", "batch": "bench-0", "task": "bench-1"}
    log(f"starting 3 gunicorns ({workers} sync workers each) ...")
    # Each server logs clicks in a directory of its own: the batch check waits on its files only.
    log_dirs = {config: os.path.join(stack.root, "clicks", config) for config in CONFIGS[1:]}
    servers = {"noop": stack.web("web-noop", database_url, app="bench.noop_app:app", workers=workers)}
    for mode in CONFIGS[1:]:
        servers[mode] = stack.web(
            f"web-{mode}",
            database_url,
            workers=workers,
            CLICK_CAPTURE_MODE=mode,
            CLICK_LOG_DIR=log_dirs[mode],
        )
    load = {"threads": threads, "connections": connections}
    runs, checks = [], []
    with app.app_context():
        client, engine = worker_redis(), db.engine
        for round_number in range(1, rounds + 1):
            for config in CONFIGS:
                url = f"{servers[config].url}/r/{slugs[config]}"
                if warmup:
                    wrk.run(url, warmup, **load)
                if config == "batch":
                    time.sleep(0.5)  # requests still in flight from the warm-up
                    before = snapshot(client, engine, link_ids["batch"], log_dirs["batch"])
                result, record = measure(stack, servers[config], url, duration, load)
                runs.append({"config": config, "round": round_number, **record})
                log(f"  round {round_number} {config:<5} {describe(record)}")
                if config == "batch":
                    time.sleep(0.5)  # let gunicorn finish what wrk left in flight
                    after = snapshot(client, engine, link_ids["batch"], log_dirs["batch"])
                    checks.append(click_check(round_number, result, before, after, connections))
                    log("    " + checks[-1]["line"])
                if config == "task":
                    runs[-1]["tasks_enqueued"] = client.llen(TASK_QUEUE_KEY)
                    client.delete(TASK_QUEUE_KEY)  # no worker in this phase: keep Redis small
    for server in servers.values():
        server.stop()  # free the memory before the next phase; close() covers errors
    settings = {"duration_s": duration, "warmup_s": warmup, "rounds": rounds, "gunicorn_workers": workers}
    settings.update(load, summary="best of rounds: max req/s and min p99, each over the rounds")
    return {"settings": settings, "runs": runs, "summary": summarise(runs), "click_checks": checks}


def measure(stack, server, url, duration, load):
    """One measured wrk run, with the CPU the server and redis-server spent on it."""
    meter = CpuMeter(web=server.process.pid, redis=stack.redis.process.pid)
    meter.start()
    result = wrk.run(url, duration, **load)
    cpu = meter.stop()
    requests = max(result.requests, 1)
    figures = {"cpu_s": cpu, "server_cpu_us_per_request": (cpu["web"] + cpu["redis"]) / requests * 1e6}
    figures["wrk_cpu_us_per_request"] = cpu["wrk"] / requests * 1e6
    return result, {**result.as_dict(), **figures}


def describe(record):
    errors = sum(record["socket_errors"].values())
    return (
        f"{record['requests_per_sec']:>9.1f} req/s  p99 {record['p99_ms']:>8.2f} ms"
        f"  {record['server_cpu_us_per_request']:>6.0f} CPU us/req  ({record['requests']} requests,"
        f" non-2xx/3xx {record['non_2xx_3xx']}, socket errors {errors})"
    )


def snapshot(client, engine, link_id, log_dir):
    """Wait until every logged click is shipped, drain them all, then read the counts."""
    waited, unshipped = clicks.settle(client, engine, log_dir)
    metrics = buffer.counters(client)
    return {
        "recorded": clicks.counted(engine, [link_id]),
        "buffered": metrics["clicks_buffered"],
        "shipped_late": metrics["clicks_shipped_late"],
        "ship_wait_s": waited,
        "unshipped_bytes": unshipped,
    }


def click_check(round_number, result, before, after, connections):
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
    return {"round": round_number, "wrk_302": wrk_302, **delta, "excess": excess, "slack": slack, "ok": ok,
            "line": line}  # fmt: skip


def summarise(runs):
    """Per config: best req/s and best p99 over the rounds, and their ratios to the no-op."""
    summary = {}
    for config in CONFIGS:
        mine = [run for run in runs if run["config"] == config]
        if not mine:
            continue
        summary[config] = {
            "rps_each": [run["requests_per_sec"] for run in mine],
            "p99_ms_each": [run["p99_ms"] for run in mine],
            "cpu_us_each": [run["server_cpu_us_per_request"] for run in mine],
            "rps": max(run["requests_per_sec"] for run in mine),
            "p99_ms": min(run["p99_ms"] for run in mine),
            "cpu_us": min(run["server_cpu_us_per_request"] for run in mine),
            "wrk_cpu_us": min(run["wrk_cpu_us_per_request"] for run in mine),
        }
    base = summary.get("noop")
    noop_each = base["rps_each"] if base else []
    for figures in summary.values():
        figures["rps_ratio"] = figures["rps"] / base["rps"] if base and base["rps"] else None
        figures["p99_ratio"] = figures["p99_ms"] / base["p99_ms"] if base and base["p99_ms"] else None
        # The same ratio round by round (runs seconds apart): how steady it was.
        pairs = zip(figures["rps_each"], noop_each, strict=False)
        figures["rps_ratio_each"] = [mine / noop for mine, noop in pairs if noop]
        figures["rps_ratio_median"] = statistics.median(figures["rps_ratio_each"])
        # All of it (wrk, gunicorn, redis) shares the same cores: were CPU the only limit,
        # req/s would scale with 1 / (CPU per request). A ratio the machine's noise barely moves.
        figures["cpu_bound_rps_ratio"] = (base["cpu_us"] + base["wrk_cpu_us"]) / (
            figures["cpu_us"] + figures["wrk_cpu_us"]
        )
    return summary
