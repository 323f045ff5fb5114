"""``python -m bench [--only redirect|drain|lag|seed|report|export|collect|fragments] [--duration S] [--quick]``: run, print, save.

Exits 0 whatever the figures (a MISS is a report, not a failure); non-zero
only when something crashed, the run was interrupted, or a configured server
could not be used. Beside SQLite + Redis, the redirect and drain benchmarks run
on PostgreSQL + RabbitMQ when those answer (``bench.postgres``,
``bench.rabbitmq``): ``BENCH_DATABASE_URL`` / ``BENCH_BROKER_URL`` name other
servers, ``off`` skips one.
"""

import argparse
import os
import platform
import resource
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime

from bench import report

BENCHMARKS = ("redirect", "drain", "lag", "seed", "report", "export", "collect", "fragments")


def parse_args(argv):
    parser = argparse.ArgumentParser(
        prog="python -m bench",
        description=__doc__.splitlines()[0],
        epilog="PostgreSQL and RabbitMQ: the local servers (127.0.0.1:5432, :5672) when they answer;"
        " BENCH_DATABASE_URL=postgresql://user@host:5432/postgres (scratch database clickboard_bench,"
        " created and dropped) and BENCH_BROKER_URL=amqp://user:pass@host/vhost name others, =off skips one.",
    )
    parser.add_argument("--only", choices=BENCHMARKS, help="run one benchmark only")
    parser.add_argument("--duration", type=int, help="seconds per measured wrk run (default 10; quick 2)")
    parser.add_argument("--warmup", type=int, help="wrk warm-up seconds before each run (default 2; quick 1)")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds per config (default 3)")
    parser.add_argument("--workers", type=int, default=2, help="gunicorn sync workers per server (default 2)")
    parser.add_argument("--threads", type=int, default=2, help="wrk threads (default 2)")
    parser.add_argument("--connections", type=int, default=16, help="wrk connections (default 16)")
    parser.add_argument("--clicks", type=int, help="clicks for the batch drain (default 200000; quick 20000)")
    parser.add_argument("--tasks", type=int, help="tasks for the task-mode drain (default 5000; quick 1000)")
    parser.add_argument("--seed-count", type=int, help="page views for seed (default 1000000; quick 100000)")
    parser.add_argument(
        "--report-sizes",
        help="page views for report, comma-separated (default 1000000,10000000; quick 100000,1000000)",
    )
    parser.add_argument(
        "--report-huge",
        type=int,
        metavar="ROWS",
        help="also the report over ROWS page views on PostgreSQL, seeded by the server (e.g. 100000000;"
        " default: not run). --report-sizes '' skips the SQLite sizes",
    )
    parser.add_argument(
        "--export-sizes", help="clicks per exported link (default 100000,1000000; quick 10000,100000)"
    )
    parser.add_argument(
        "--pollers", type=int, default=100, help="wrk connections for fragments (default 100)"
    )
    parser.add_argument("--quick", action="store_true", help="short runs: a smoke test, not a measurement")
    parser.add_argument("--keep", action="store_true", help="keep the temp dir (databases, process logs)")
    parser.add_argument("--output", help="JSON results path (default bench/results/latest.json)")
    args = parser.parse_args(argv)
    quick = args.quick
    args.duration = args.duration or (2 if quick else 10)
    args.warmup = args.warmup if args.warmup is not None else (1 if quick else 2)
    args.clicks = args.clicks or (20_000 if quick else 200_000)
    args.tasks = args.tasks or (1_000 if quick else 5_000)
    args.seed_count = args.seed_count or (100_000 if quick else 1_000_000)
    sizes = (
        args.report_sizes
        if args.report_sizes is not None
        else ("100000,1000000" if quick else "1000000,10000000")
    )
    args.report_sizes = [int(size.replace("_", "")) for size in sizes.split(",") if size.strip()]
    export_sizes = args.export_sizes or ("10000,100000" if quick else "100000,1000000")
    args.export_sizes = [int(size.replace("_", "")) for size in export_sizes.split(",") if size.strip()]
    args.fragment_pageviews = 20_000 if quick else 200_000
    args.fragment_clicks = 10_000 if quick else 100_000
    return args


def git(*args):
    try:
        return subprocess.run(["git", *args], capture_output=True, text=True, check=False).stdout.strip()
    except OSError:
        return ""


def meta(args):
    return {
        "started_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "argv": sys.argv[1:],
        "options": {key: value for key, value in vars(args).items()},
        "cpus": os.cpu_count(),
        "load_average_before": os.getloadavg(),
        "python": platform.python_version(),
        "git_commit": git("rev-parse", "--short", "HEAD"),
        # The figures belong to the working tree, not only to the commit.
        "git_uncommitted": git("status", "--porcelain", "--", "webapp", "tasks", "migrations").splitlines(),
    }


def on_sigterm(signum, _frame):
    raise SystemExit(128 + signum)  # unwinds like Ctrl-C, so every process is stopped


def main(argv=None):
    args = parse_args(argv)
    signal.signal(signal.SIGTERM, on_sigterm)
    # Ctrl-C must unwind even when started with SIGINT ignored (e.g. as a background job).
    signal.signal(signal.SIGINT, signal.default_int_handler)
    # Imported late: importing the app is slow and --help should not wait for it.
    from bench import collect, drain, export, fragments, lag, redirect, seed, slowreport
    from bench.stack import Stack

    results = {"meta": meta(args)}
    if results["meta"]["git_uncommitted"]:
        print("bench: warning: uncommitted changes in webapp/, tasks/ or migrations/ are being measured:")
        print("\n".join(f"  {line}" for line in results["meta"]["git_uncommitted"]))
    started = time.monotonic()
    try:
        stack = Stack(keep=args.keep)
    except ValueError as exc:  # a configured PostgreSQL or RabbitMQ the bench cannot use
        print(f"bench: {exc}", file=sys.stderr)
        return 2
    try:
        with stack:
            print(f"bench: temp dir {stack.root}, redis on port {stack.redis.port}", flush=True)
            results["meta"]["services"] = list(stack.describe_services())
            print("\n".join(f"bench: {line}" for line in results["meta"]["services"]), flush=True)
            if args.only in (None, "redirect"):
                print("redirect benchmark:", flush=True)
                results["redirect"] = redirect.run(
                    stack, args.duration, args.warmup, args.rounds, args.workers, args.threads,
                    args.connections, log=lambda line: print(line, flush=True),
                )  # fmt: skip
            if args.only in (None, "drain"):
                results["drain"] = drain.run(
                    stack, args.clicks, args.tasks, log=lambda line: print(line, flush=True)
                )
            if args.only in (None, "lag"):
                print("click-to-count lag benchmark:", flush=True)
                results["lag"] = lag.run(stack, 2 * args.duration, log=lambda line: print(line, flush=True))
            if args.only in (None, "seed"):
                results["seed"] = seed.run(stack, args.seed_count, log=lambda line: print(line, flush=True))
            if args.only in (None, "report"):
                results["report"] = slowreport.run(
                    stack, args.report_sizes, args.rounds, log=lambda line: print(line, flush=True),
                    huge=args.report_huge,
                )  # fmt: skip
            if args.only in (None, "export"):
                results["export"] = export.run(
                    stack, args.export_sizes, log=lambda line: print(line, flush=True)
                )
            if args.only in (None, "collect"):
                results["collect"] = collect.run(
                    stack, args.duration, args.warmup, args.workers, args.connections,
                    log=lambda line: print(line, flush=True),
                )  # fmt: skip
            if args.only in (None, "fragments"):
                results["fragments"] = fragments.run(
                    stack, args.duration, args.warmup, args.rounds, args.workers, args.pollers,
                    args.fragment_pageviews, args.fragment_clicks, log=lambda line: print(line, flush=True),
                )  # fmt: skip
    except KeyboardInterrupt:
        print("\ninterrupted: every process stopped, temp dir removed", file=sys.stderr)
        return 130
    results["meta"]["load_average_after"] = os.getloadavg()
    results["meta"]["total_s"] = round(time.monotonic() - started, 1)
    # This process's own peak (the seeds and report computations run in subprocesses of their own).
    results["meta"]["bench_peak_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
    results["targets"] = report.targets(results)
    results["checks"] = report.checks(results)
    report.print_report(results)
    path = report.write_json(results, args.output)
    print(
        f"\nraw figures: {os.path.relpath(path)}  (total {results['meta']['total_s']}s,"
        f" bench process peak RSS {results['meta']['bench_peak_rss_mb']} MB)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
