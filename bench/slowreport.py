"""The slow-page report over 1M and 10M seeded page views: the SQL engine vs a row-by-row Python loop.

Per size, one database seeded by ``flask seed pageviews`` (``bench.seed``;
reused from the seed benchmark when it made one of that size, so the 10M
seed, which dominates the run, happens once). Then, each in a fresh
``python -m bench.slowreport_child`` process (see there), so the peak RSS
is the computation's process's own, nothing subtracted:

- ``engine``: ``slow_pageviews.compute`` with the default parameters, run
  ``rounds`` times; the time is the best round, the peak RSS the highest;
- ``python``: every row streamed into Python and filtered there, once.

Both use the same ``now``, so they must agree on the slow and total counts.
"""

import json
import os
import sys

from bench import measure, seed
from webapp.models import utcnow


def child(stack, mode, database_url, now, name):
    command = [sys.executable, "-m", "bench.slowreport_child", mode, database_url, now.isoformat()]
    figures = measure.run(command, stack.env(database_url), os.path.join(stack.log_dir("report"), name))
    lines = figures.pop("output").strip().splitlines()
    own = json.loads(lines[-1])
    # The process's peak as the kernel saw it at exit (wait4), beside the child's own reading.
    return {**own, "process_peak_rss_mb": figures["peak_rss_mb"], "process_wall_s": figures["wall_s"]}


def run_size(stack, count, rounds, log=print):
    database_url, seeded = seed.seeded_database(stack, count, log)
    now = utcnow()
    engine_runs = []
    for round_number in range(1, rounds + 1):
        engine_runs.append(child(stack, "engine", database_url, now, f"engine-{count}-{round_number}.log"))
        log(f"  {count:>10,} rows  engine round {round_number}: {describe(engine_runs[-1])}")
    python = child(stack, "python", database_url, now, f"python-{count}.log")
    log(f"  {count:>10,} rows  python loop:     {describe(python)}")
    best = min(run["compute_s"] for run in engine_runs)
    agree = all(
        (run["slow_views"], run["total_views"]) == (python["slow_views"], python["total_views"])
        for run in engine_runs
    )
    return {
        "rows": count,
        "now": now.isoformat(),
        "seed": seeded,
        "engine": {
            "compute_s": best,
            "compute_s_each": [run["compute_s"] for run in engine_runs],
            "peak_rss_mb": max(run["process_peak_rss_mb"] for run in engine_runs),
            "rss_before_mb": max(run["rss_before_mb"] for run in engine_runs),
            "slow_views": engine_runs[0]["slow_views"],
            "total_views": engine_runs[0]["total_views"],
            "runs": engine_runs,
        },
        "python": python,
        "python_over_engine": python["compute_s"] / best if best else None,
        "same_counts": agree,
    }


def describe(figures):
    return (
        f"{figures['compute_s']:7.2f}s, peak RSS {figures['process_peak_rss_mb']:4.0f} MB"
        f" (before computing {figures['rss_before_mb']:.0f} MB), slow {figures['slow_views']:,}"
        f" of {figures['total_views']:,}"
    )


def run(stack, sizes, rounds, log=print):
    log(f"slow-page report benchmark: {', '.join(f'{size:,}' for size in sizes)} page views")
    return {"rounds": rounds, "sizes": [run_size(stack, size, rounds, log) for size in sizes]}
