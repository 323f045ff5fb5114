"""Tables, target lines and ``bench/results/latest.json``. A MISS is reported, never raised."""

import json
import os

from bench import tables

RESULTS_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results")
REDIRECT_RPS_TARGET = 0.85
REDIRECT_RAW_RPS_TARGET = 0.9
REDIRECT_P99_TARGET = 1.5
# Issue 14's targets: each database's own, since PostgreSQL's COPY crosses a socket.
DRAIN_RATE_TARGETS = {"sqlite": 100_000, "postgresql": 60_000}
LAG_P95_TARGET_S = 1.0
LAG_RECOVERY_TARGET_S = 10.0
DRAIN_RATIO_TARGET = 25
BACKENDS = {"sqlite": "SQLite", "postgresql": "PostgreSQL"}


def redirect_lines(result):
    cfg = result["settings"]
    summary = result["summary"]
    lines = [
        f"Redirect: wrk -t{cfg['threads']} -c{cfg['connections']} -d{cfg['duration_s']}s --latency,"
        f" gunicorn --workers {cfg['gunicorn_workers']} (sync); best of {cfg['rounds']} interleaved rounds"
        " (best req/s and best p99 taken separately)",
        f"  {'config':<13}{'stack':<23}{'req/s':>7}{'p99 ms':>9}{'req/s÷noop':>12}{'p99÷noop':>10}"
        f"{'req/s÷raw':>11}{'÷raw+hdrs':>11}{'CPU us/req':>12}   each round: req/s | p99 ms | req/s÷noop",
    ]
    labels = result.get("configs", {})
    for config, fig in summary.items():
        each = ", ".join(f"{value:.0f}" for value in fig["rps_each"])
        each_p99 = ", ".join(f"{value:.1f}" for value in fig["p99_ms_each"])
        each_ratio = ", ".join(ratio(value) for value in fig["rps_ratio_each"])
        lines.append(
            f"  {config:<13}{labels.get(config, ''):<23}{fig['rps']:>7.0f}{fig['p99_ms']:>9.2f}{ratio(fig['rps_ratio']):>12}"
            f"{ratio(fig['p99_ratio']):>10}{ratio(fig.get('rps_ratio_raw')):>11}"
            f"{ratio(fig.get('rps_ratio_rawh')):>11}{fig['cpu_us']:>12.0f}"
            f"   {each} | {each_p99} | {each_ratio}"
        )
    lines.append(
        "  CPU us/req: CPU time of that server's gunicorn processes + redis-server (+ a local RabbitMQ for its"
        " task config) per request (lowest round)"
    )
    estimate = ", ".join(f"{config} {ratio(fig['cpu_bound_rps_ratio'])}" for config, fig in summary.items())
    lines.append(f"  req/s÷noop if CPU (server + redis + wrk, per request) were the only limit: {estimate}")
    for config, fig in summary.items():
        spread = max(fig["rps_each"]) / min(fig["rps_each"]) if min(fig["rps_each"]) else None
        if spread is None or spread > 1.25:
            lines.append(
                f"  NOISY: {config} req/s varied {ratio(spread)} between rounds: the machine was busy;"
                " trust the ratios less (or re-run, or raise --rounds)"
            )
    if "batch-limits" in summary and "batch" in summary:
        limited, plain = summary["batch-limits"], summary["batch"]
        lines.append(
            f"  access limits on the link (expiry + click limit): req/s {ratio(limited['rps'] / plain['rps'])}"
            f" of the same link without, CPU us/req {ratio(limited['cpu_us'] / plain['cpu_us'])}"
        )
    for check in result["click_checks"]:
        lines.append(f"  {check.get('config', 'batch')} round {check['round']} {check['line']}")
    return lines


def drain_lines(result):
    backends = [backend for backend in BACKENDS if backend in result]
    names = [f"{BACKENDS[b]} + {result[b]['task'].get('broker', 'Redis')}" for b in backends]
    first = result[backends[0]]
    width = max(22, *(len(name) + 2 for name in names))
    lines = [
        f"Drain: {first['batch']['clicks']} clicks through CLICK_DRAIN.drain ({first['batch']['batch_size']}/batch);"
        f" {first['task']['tasks']} record_link_click tasks (prefork, concurrency {first['task']['concurrency']})",
        f"  {'clicks/s, first read to last commit':<38}" + "".join(f"{name:>{width}}" for name in names),
        f"  {'batch drain':<38}"
        + "".join(f"{result[b]['batch']['clicks_per_s']:>{width},.0f}" for b in backends),
        f"  {'task mode':<38}"
        + "".join(f"{result[b]['task']['clicks_per_s']:>{width},.0f}" for b in backends),
        f"  {'batch ÷ task':<38}" + "".join(f"{ratio(result[b]['ratio']):>{width}}" for b in backends),
        "  (the broker carries the task mode's tasks only; the batch drain reads the Redis stream)",
    ]
    for backend, name in zip(backends, names, strict=True):
        batch, task = result[backend]["batch"], result[backend]["task"]
        version = f" {result[backend]['server_version']}" if "server_version" in result[backend] else ""
        lines.append(
            f"  {name}{version}: batch {batch['clicks']} clicks in {batch['drain_s']:.2f}s"
            f" {'OK' if batch['ok'] else 'FAIL'} (recorded {batch['recorded']}, counter sum {batch['counter_sum']},"
            f" click rows {batch['click_rows']}; Redis commands per click, shipped to drained:"
            f" {batch.get('redis_commands_per_click', float('nan')):.3f}); task {task['tasks']} in {task['elapsed_s']:.2f}s"
            f" {'OK' if task['ok'] else 'FAIL'} (queued {task['queued']}, counter sum {task['counted']})"
        )
        for thread, parts in batch["breakdown_s"].items():
            shown = ", ".join(f"{part} {seconds:.2f}s" for part, seconds in parts.items())
            lines.append(f"    batch time, {thread.replace('_', ' ')}: {shown}")
    for backend in backends:
        if "parallel" in result[backend]:
            lines += parallel_lines(BACKENDS[backend], result[backend]["parallel"])
    return lines


def lag_lines(result):
    def shown(figures):
        if not figures["count"]:
            return "no probe click counted"
        return (f"p50 {figures['p50_s']:.2f}s  p95 {figures['p95_s']:.2f}s  p99 {figures['p99_s']:.2f}s"
                f"  max {figures['max_s']:.2f}s  ({figures['count']} probe clicks)")  # fmt: skip

    recovery = result["recovery_s"]
    return [
        "Click-to-count lag: a redirect's 302 to its click in GET /api/links/<slug> (SQLite; one worker, beat)",
        f"  steady {result['steady_rate']:,} clicks/s ({result['steady_load']['requests_per_sec']:,.0f}/s reached):  {shown(result['steady'])}",
        f"  spike: wrk {result['spike_s']:.0f}s at {result['spike_rps']:,.0f} clicks/s, then steady again:  {shown(result['spike'])}",
        "  after the spike, lag back under 1 s for good after "
        + ("more than the phase lasted" if recovery is None else f"{recovery:.1f}s"),
        f"  probes: {result['probes']} answered 302, {result['probes_counted']} counted, {result['probe_errors']} errors",
    ]


def parallel_lines(name, parallel):
    runs = parallel["runs"]
    lines = [f"  Drain processes at once on {name}, {runs[0]['clicks']} clicks each run:"]
    for run in runs:
        spread = f"{run['hot_share']:.0%} of clicks on one link" if run["hot"] else "clicks spread evenly"
        lines.append(
            f"    {run['drains']} drain{'s' if run['drains'] > 1 else ' '}, {spread:<28}"
            f"{run['clicks_per_s']:>10,.0f} clicks/s  {'OK' if run['ok'] else 'FAIL'}"
            f" (recorded by each: {', '.join(str(n) for n in run['recorded_each'])})"
        )
    lines.append(
        f"    two drains, hot link ÷ spread: {ratio(parallel['hot_vs_spread'])}"
        " (near 1x: the hot link's counter row does not serialise the drains)"
    )
    return lines


def ratio(value):
    return "n/a" if value is None else f"{value:.2f}x"


def targets(results):
    """Each target as a dict with its measured value and whether it was met."""
    found = []
    redirect = results.get("redirect")
    summary = redirect["summary"] if redirect and "noop" in redirect["summary"] else {}
    for config in (name for name in summary if name.startswith("batch")):
        batch, stack = summary[config], redirect.get("configs", {}).get(config, config)
        rps, p99 = batch["rps_ratio"], batch["p99_ratio"]
        found.append(
            target(f"{config} redirect req/s >= 0.85x no-op ({stack})", rps, REDIRECT_RPS_TARGET, ">=")
        )
        found[-1]["shown"] += (
            f" (median of per-round ratios {ratio(batch['rps_ratio_median'])},"
            f" CPU-bound estimate {ratio(batch['cpu_bound_rps_ratio'])})"
        )
        found.append(target(f"{config} redirect p99 <= 1.5x no-op ({stack})", p99, REDIRECT_P99_TARGET, "<="))
        if "rps_ratio_raw" in batch:
            name = f"{config} redirect req/s >= 0.9x raw-WSGI no-op ({stack})"
            found.append(target(name, batch["rps_ratio_raw"], REDIRECT_RAW_RPS_TARGET, ">="))
            found[-1]["shown"] += f" (CPU-bound estimate {ratio(batch['cpu_bound_rps_ratio_raw'])})"
            if "rps_ratio_rawh" in batch:
                found[-1]["shown"] += (
                    f"; {ratio(batch['rps_ratio_rawh'])} of the raw no-op sending the same headers"
                    f" (CPU-bound {ratio(batch['cpu_bound_rps_ratio_rawh'])})"
                )
    for backend, name in BACKENDS.items():
        drain = results.get("drain", {}).get(backend)
        if drain:
            rate = drain["batch"]["clicks_per_s"]
            found.append(
                target(
                    f"batch drain >= {DRAIN_RATE_TARGETS[backend]:,} clicks/s ({name})",
                    rate,
                    DRAIN_RATE_TARGETS[backend],
                    ">=",
                    "{:,.0f}/s",
                )
            )
            found.append(
                target(f"batch drain >= 25x task mode ({name})", drain["ratio"], DRAIN_RATIO_TARGET, ">=")
            )
    lag = results.get("lag")
    if lag:
        name = f"click-to-count lag p95 <= 1 s at {lag['steady_rate']:,} clicks/s"
        found.append(target(name, lag["steady"]["p95_s"], LAG_P95_TARGET_S, "<=", "{:.2f}s"))
        name = f"lag back under 1 s within {LAG_RECOVERY_TARGET_S:.0f} s of a {lag['spike_s']:.0f} s spike"
        found.append(target(name, lag["recovery_s"], LAG_RECOVERY_TARGET_S, "<=", "{:.1f}s"))
    return found + tables.targets(results)


def target(name, value, limit, op, fmt="{:.3f}x"):
    passed = value is not None and (value >= limit if op == ">=" else value <= limit)
    return {"name": name, "value": value, "limit": limit, "op": op, "passed": passed,
            "shown": "n/a" if value is None else fmt.format(value)}  # fmt: skip


def checks(results):
    """Correctness checks: (name, ok). A failed check means the figures cannot be trusted."""
    found = []
    redirect = results.get("redirect")
    if redirect:
        for check in redirect["click_checks"]:
            name = check.get("config", "batch")
            found.append((f"{name} redirect round {check['round']}: every 302 recorded once", check["ok"]))
    for backend, name in BACKENDS.items():
        drain = results.get("drain", {}).get(backend)
        if drain:
            found.append(
                (f"batch drain ({name}): counter sum == click rows == clicks pushed", drain["batch"]["ok"])
            )
            found.append((f"task mode ({name}): counter sum == tasks queued", drain["task"]["ok"]))
            for run in drain.get("parallel", {}).get("runs", []):
                found.append(
                    (f"{run['drains']} drains at once ({name}, hot={run['hot']}): every click counted once",
                     run["ok"])
                )  # fmt: skip
    if "lag" in results:
        found.append(("lag: every probe redirect answered 302 and counted", results["lag"]["ok"]))
    return found + tables.checks(results)


def print_report(results, out=print):
    out("")
    if "redirect" in results:
        out("\n".join(redirect_lines(results["redirect"])))
        out("")
    if "drain" in results:
        out("\n".join(drain_lines(results["drain"])))
        out("")
    if "lag" in results:
        out("\n".join(lag_lines(results["lag"])))
        out("")
    for name, lines in (("seed", tables.seed_lines), ("report", tables.report_lines),
                        ("export", tables.export_lines), ("collect", tables.collect_lines),
                        ("fragments", tables.fragments_lines)):  # fmt: skip
        if name in results:
            out("\n".join(lines(results[name])))
            out("")
    out("Targets:")
    for item in results["targets"]:
        verdict = "INVALID" if item.get("invalid") else "PASS" if item["passed"] else "MISS"
        out(f"  {verdict:<7} {item['name']}: {item['shown']}")
    out("Checks:")
    for name, ok in results["checks"]:
        out(f"  {'OK  ' if ok else 'FAIL'}  {name}")


def write_json(results, path=None):
    path = path or os.path.join(RESULTS_DIR, "latest.json")
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as out:
        json.dump(results, out, indent=2, default=str)
        out.write("\n")
    return path
