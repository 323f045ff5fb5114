"""Tables, targets and checks of the seed, report and fragments benchmarks (``report`` prints them)."""

SEED_TIME_TARGET_S = 15
SEED_RSS_TARGET_MB = 300
REPORT_TIME_TARGETS_S = {1_000_000: 1.0, 10_000_000: 5.0}
REPORT_RSS_TARGET_MB = 200
POSTGRES_REPORT_TIME_TARGETS_S = {100_000_000: 10.0}
# Exporting clicks in constant memory: the largest export's peak within this of the smallest's.
EXPORT_RSS_GROWTH_TARGET_MB = 20
FRAGMENT_P95_TARGET_MS = 25
LOADED_RUNS = {
    "mixed": "mixed: the 4 polled URLs",
    "overview": "/fragments/overview",
    "clicks-chart": "/fragments/clicks-chart?range=hour",
    "top-links": "/fragments/top-links",
    "status": "report status card",
    "ops": "/fragments/ops",
    "paced": "paced: 1 req/s each + 200 clicks/s",
    "dashboards": "1,000 dashboards + 200 clicks/s",
}


def seed_lines(result):
    return [
        f"Seed: {result['command']} (subprocess, fresh migrated SQLite)",
        f"  wall {result['wall_s']:.1f}s (inserting {result['reported_s']:.1f}s by its own clock,"
        f" {result['count'] / result['wall_s']:,.0f} rows/s overall), peak RSS {result['peak_rss_mb']:.0f} MB"
        f" (psutil, 50 ms samples: {result['polled_peak_rss_mb']:.0f} MB), CPU {result['cpu_s']:.1f}s,"
        f" {result['rows']:,} rows, database {result['database_mb']:.0f} MB",
    ]


def export_lines(result):
    lines = ["Clicks export: flask links clicks SLUG --output FILE (subprocess, SQLite), one link per size"]
    for figures in result["exports"]:
        lines.append(
            f"  {figures['clicks']:>10,} clicks: wall {figures['wall_s']:.1f}s"
            f" ({figures['clicks'] / figures['wall_s']:,.0f} rows/s), peak RSS {figures['peak_rss_mb']:.0f} MB"
            f" (psutil: {figures['polled_peak_rss_mb']:.0f} MB), CPU {figures['cpu_s']:.1f}s, CSV {figures['csv_mb']:.0f} MB"
        )
    return lines


def collect_lines(result):
    return [
        f"Collect (tracker beacons): POST /collect/<key>, gunicorn {result['workers']} workers,"
        f" wrk {result['connections']} connections",
        f"  {result['views_per_s']:,.0f} views/s, {result['views_per_s_per_worker']:,.0f} per web worker;"
        f" p50 {result['wrk']['latency_ms']['50%']:.2f} ms, p99 {result['wrk']['p99_ms']:.2f} ms;"
        f" non-202 {result['bad_status']}",
        f"  page-view drain: {result['drained_rows']:,} views in {result['drain_s']:.2f}s"
        f" = {result['drain_views_per_s']:,.0f} views/s (in-process, as the beat task runs it)",
    ]


def export_rss_growth(result):
    """(smallest size, largest size, MB the peak grew from one to the other)."""
    exports = sorted(result["exports"], key=lambda figures: figures["clicks"])
    return exports[0]["clicks"], exports[-1]["clicks"], exports[-1]["peak_rss_mb"] - exports[0]["peak_rss_mb"]


def report_lines(result):
    lines = [
        "Slow-page report, default parameters (30 days, >= 1000 ms, URL contains 'blog'), each computation"
        f" in a process of its own; engine: best of {result['rounds']} (time), highest (peak RSS)",
        f"  {'rows':>12}{'engine s':>10}{'peak MB':>9}{'python s':>10}{'peak MB':>9}{'python÷engine':>15}"
        "   slow / views in window",
    ]
    for size in result["sizes"]:
        engine, python = size["engine"], size["python"]
        lines.append(
            f"  {size['rows']:>12,}{engine['compute_s']:>10.2f}{engine['peak_rss_mb']:>9.0f}"
            f"{python['compute_s']:>10.2f}{python['process_peak_rss_mb']:>9.0f}"
            f"{ratio(size['python_over_engine']):>15}   {engine['slow_views']:,} / {engine['total_views']:,}"
            f" (python: {python['slow_views']:,} / {python['total_views']:,})"
        )
    for size in result["sizes"]:
        engine, seeded = size["engine"], size["seed"]
        each = ", ".join(f"{seconds:.2f}" for seconds in engine["compute_s_each"])
        lines.append(
            f"  {size['rows']:,} rows: engine rounds {each} s; RSS before computing {engine['rss_before_mb']:.0f} MB"
            f" (engine) / {size['python']['rss_before_mb']:.0f} MB (python); seeded in {seeded['wall_s']:.1f}s,"
            f" peak RSS {seeded['peak_rss_mb']:.0f} MB, database {seeded['database_mb']:.0f} MB"
        )
    huge = result.get("postgres", {})
    if "compute_s" in huge:
        each = ", ".join(f"{seconds:.2f}" for seconds in huge["compute_s_each"])
        lines.append(
            f"  PostgreSQL, {huge['rows']:,} rows: engine {huge['compute_s']:.2f}s (rounds {each}), peak RSS"
            f" {huge['peak_rss_mb']:.0f} MB, slow {huge['slow_views']:,} of {huge['total_views']:,};"
            f" seeded in {huge['seed']['seed_s']:.0f}s (rows {huge['seed']['rows_s']:.0f}s, histograms"
            f" {huge['seed']['histograms_s']:.0f}s, vacuum {huge['seed']['vacuum_s']:.0f}s)"
        )
    return lines


def fragments_lines(result):
    cfg = result["settings"]
    sync, gthread = result["variants"]["sync"], result["variants"].get("gthread")
    lines = [
        f"Fragments: gunicorn --workers {cfg['gunicorn_workers']}, sync (the redirect benchmark's settings)"
        + (f" and gthread ({gthread['threads']} threads each)" if gthread else ""),
        f"  wrk -t2 -c{cfg['pollers']} (session cookie + HX-Request set by a Lua script), {cfg['duration_s']}s"
        f" per run ({cfg['short_s']}s for one URL), while wrk -t1 -c{cfg['click_connections']} follows"
        f" /r/{result['data']['slug']}; {result['data']['pageviews']:,} page views, {result['data']['clicks']:,}"
        " clicks; Celery worker + beat running; closed loops one round each, paced best of"
        f" {cfg['rounds']} rounds (lowest p95)",
        "  service time, 1 connection, no clicks (sync): "
        + ", ".join(
            f"{name} p50 {run['latency_ms']['50%']:.1f} ms (web CPU {run['web_cpu_ms_per_request']:.1f} ms/req)"
            + ("" if run["valid"] else " INVALID")
            for name, run in sync["runs"].get("alone", {}).items()
        ),
        f"  {'run (' + str(cfg['pollers']) + ' connections)':<36}{'server':<9}{'req/s':>8}{'p50 ms':>9}"
        f"{'p95 ms':>9}{'p99 ms':>9}{'non-200':>9}{'clicks/s':>10}  p95 <= {FRAGMENT_P95_TARGET_MS} ms",
    ]
    for variant, figures in result["variants"].items():
        for name, label in LOADED_RUNS.items():
            run = figures["runs"].get(name)
            if run is None:
                continue
            verdict = "INVALID" if not run["valid"] else "PASS" if passed(run) else "MISS"
            rounds = ", ".join(f"{value:.1f}" for value in run.get("p95_ms_each", []))
            each = f"  (p95 of each round: {rounds})" if rounds else ""
            lines.append(
                f"  {label:<36}{variant:<9}{run['requests_per_sec']:>8.0f}{run['latency_ms']['50%']:>9.1f}"
                f"{run['p95_ms']:>9.1f}{run['p99_ms']:>9.1f}{run['bad_status']:>9}"
                f"{run['clicks']['requests_per_sec']:>10.0f}  {verdict}{each}"
            )
    for variant, figures in result["variants"].items():
        paced = figures["runs"].get("paced")
        if paced:
            names = {path: name for name, (path, _) in cfg["paths"].items()}
            each = ", ".join(
                f"{names.get(path, path)} {fig['p95_ms']:.1f}" for path, fig in paced["by_path"].items()
            )
            lines.append(f"  paced, best round, p95 ms per URL ({variant}): {each}")
        many = figures["runs"].get("dashboards")
        if many:
            lines.append(
                f"  {many['clients']:,} dashboards ({variant}), best round: client CPU {many['client']['cpu_share']:.0%}"
                f" of the machine ({many['client']['processes']} poller processes), {many['fragment_renders']}"
                f" fragment renders for {many['requests']:,} requests (shared copies); p95 ms per URL: "
                + ", ".join(f"{path} {fig['p95_ms']:.1f}" for path, fig in many["by_path"].items())
            )
    lines.append(
        f"  closed loop (all but paced): each connection sends again as soon as it is answered, so with"
        f" {cfg['pollers']} connections on a few workers most of the latency is waiting in line (about"
        " connections ÷ req/s). paced (open loop, bench/poller.py): each of the dashboards sends the next URL"
        " once a second on a fresh connection while 200 clicks/s arrive the same way: 100 open dashboards."
        " 1,000 dashboards: the same, each dashboard on a connection it keeps open between polls, as a"
        " browser does (a sync worker closes it after each answer)"
    )
    return lines


def passed(run):
    return run["p95_ms"] is not None and run["p95_ms"] <= FRAGMENT_P95_TARGET_MS


def ratio(value):
    return "n/a" if value is None else f"{value:.1f}x"


def targets(results):
    from bench.dashboard import STATUS_PATH  # imports the app: not at the top, for --help's sake
    from bench.report import target

    found = []
    if "seed" in results:
        result = results["seed"]
        name = f"seed {result['count']:,} page views <= {SEED_TIME_TARGET_S} s"
        found.append(target(name, result["wall_s"], SEED_TIME_TARGET_S, "<=", "{:.1f}s"))
        name = f"seed peak RSS <= {SEED_RSS_TARGET_MB} MB"
        found.append(target(name, result["peak_rss_mb"], SEED_RSS_TARGET_MB, "<=", "{:.0f} MB"))
    for size in results.get("report", {}).get("sizes", []):
        rows, engine = size["rows"], size["engine"]
        if rows in REPORT_TIME_TARGETS_S:
            limit = REPORT_TIME_TARGETS_S[rows]
            name = f"slow-page report at {rows:,} rows <= {limit:g} s"
            found.append(target(name, engine["compute_s"], limit, "<=", "{:.2f}s"))
        name = f"slow-page report at {rows:,} rows peak RSS <= {REPORT_RSS_TARGET_MB} MB"
        found.append(target(name, engine["peak_rss_mb"], REPORT_RSS_TARGET_MB, "<=", "{:.0f} MB"))
    huge = results.get("report", {}).get("postgres", {})
    if "compute_s" in huge:
        limit = POSTGRES_REPORT_TIME_TARGETS_S.get(huge["rows"])
        if limit:
            name = f"slow-page report at {huge['rows']:,} rows on PostgreSQL <= {limit:g} s"
            found.append(target(name, huge["compute_s"], limit, "<=", "{:.2f}s"))
        name = (
            f"slow-page report at {huge['rows']:,} rows on PostgreSQL peak RSS <= {REPORT_RSS_TARGET_MB} MB"
        )
        found.append(target(name, huge["peak_rss_mb"], REPORT_RSS_TARGET_MB, "<=", "{:.0f} MB"))
    if len(results.get("export", {}).get("exports", [])) > 1:
        small, large, growth = export_rss_growth(results["export"])
        name = f"clicks export peak RSS at {large:,} <= at {small:,} + {EXPORT_RSS_GROWTH_TARGET_MB} MB"
        found.append(target(name, growth, EXPORT_RSS_GROWTH_TARGET_MB, "<=", "{:+.1f} MB"))
    for label, p95, valid in fragment_targets(results.get("fragments"), STATUS_PATH):
        found.append(target(label, p95, FRAGMENT_P95_TARGET_MS, "<=", "{:.1f} ms"))
        found[-1]["invalid"] = not valid
    return found


def fragment_targets(fragments, status_path):
    """(label, p95, valid) for the closed-loop mixed and status-card runs and the paced ones."""
    if not fragments:
        return
    wanted = [("sync", "mixed"), ("sync", "status"), ("sync", "paced"), ("sync", "paced status")]
    wanted += [("gthread", "mixed"), ("gthread", "status"), ("sync", "dashboards"), ("gthread", "dashboards")]
    for variant, name in wanted:
        run = fragments["variants"].get(variant, {}).get("runs", {}).get(name.split()[0])
        if run is None:
            continue
        label, p95 = LOADED_RUNS[name.split()[0]], run["p95_ms"]
        if name == "paced status":
            label, p95 = label + ", report status card only", run["by_path"][status_path]["p95_ms"]
        clients = run.get("clients", fragments["settings"]["pollers"])
        yield (
            f"fragments p95 <= {FRAGMENT_P95_TARGET_MS} ms, {label}, {clients} clients, {variant}",
            p95,
            run["valid"],
        )


def checks(results):
    found = []
    if "seed" in results:
        found.append(("seed: page_view rows == --count == rows the command reported", results["seed"]["ok"]))
    for size in results.get("report", {}).get("sizes", []):
        found.append((f"slow-page report at {size['rows']:,} rows: engine == python loop (slow and total views)",
                      size["same_counts"]))  # fmt: skip
    huge = results.get("report", {}).get("postgres", {})
    if "same_counts" in huge:
        found.append((f"slow-page report at {huge['rows']:,} rows on PostgreSQL: every round the same counts",
                      huge["same_counts"] and huge["seed"]["ok"]))  # fmt: skip
    if "collect" in results:
        found.append(
            ("collect: every beacon a 202, every accepted view drained once", results["collect"]["ok"])
        )
    for figures in results.get("export", {}).get("exports", []):
        found.append((f"clicks export at {figures['clicks']:,}: one CSV row per click", figures["ok"]))
    for variant, figures in results.get("fragments", {}).get("variants", {}).items():
        runs = [*figures["runs"].get("alone", {}).values()]
        runs += [run for name, run in figures["runs"].items() if name != "alone"]
        found.append((f"fragments ({variant}): every fragment answer a 200 and every click a 2xx/3xx,"
                      f" in all {len(runs)} runs", all(run["valid"] for run in runs)))  # fmt: skip
    return found
