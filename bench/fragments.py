"""Dashboard fragments under 100, then 1,000, polling clients while clicks flow (see bench/README.md).

One database (seeded page views for the report card, an admin user, links,
drained clicks); a Celery worker (all queues, concurrency 2) and beat run
throughout. Each gunicorn variant (``sync``: the redirect benchmark's
settings; ``gthread``: the same with ``GUNICORN_THREADS``) is logged into
through the form, checked, then measured:

- ``alone`` (sync only): each URL, one connection, no clicks: service time;
- closed loops, ``wrk -t2 -c<pollers>`` with the session cookie from a Lua
  script, while ``wrk -t1 -c8`` follows ``/r/dash-0``: ``mixed`` (the four
  URLs the dashboard polls, in turn), each URL alone (gthread: the status
  card only), ``/fragments/ops`` (sync only);
- ``paced`` (``bench.poller``): 100 dashboards at 1 request/s each and 200
  clicks/s, an open loop, ``rounds`` times; the round with the lowest p95;
- ``dashboards``: 1,000 dashboards, each sending the next of the home page's
  live regions (its ``hx-get`` URLs with ``data-live-seconds``: what an
  open dashboard polls) once a second (1,000 requests/s) over a connection
  it keeps open, as a browser does (a sync worker closes it after every
  answer, so there each poll opens a new one), from
  ``POLLER_PROCESSES`` poller processes whose own CPU share is reported (each
  round once the worker has drained what the closed loops clicked), and
  the renders the shared fragment copies took meanwhile (one per fragment
  key and interval, not one per request).

A run is valid only if every fragment answer was a 200 of about the checked
size (the script's ``response()`` counts statuses: wrk's non-2xx/3xx passes a
302 to /login) and every click a 2xx/3xx.
"""

import html
import os
import re
import threading
import time

import requests

from bench import dashboard, poller, seed, wrk
from bench.cpu import CpuMeter
from webapp.clicks.buffer import CLICK_BUFFER

GTHREAD_THREADS = 4
CLICK_CONNECTIONS = 8
PACE_S = 1.0  # each paced dashboard sends one request a second
PACED_CLICKERS, PACED_CLICKS_PER_S = 50, 200
DASHBOARDS = 1000
# The home page's live regions: a self-refreshing element's hx-get (templates/_live.html).
LIVE_REGION = re.compile(r'hx-get="([^"]+)" hx-trigger="cb:poll" data-live-seconds=')
# One Python poller process opens about a thousand connections a second at most.
POLLER_PROCESSES = 2
LINKS = 50
DRAINED_WITHIN_S = 120


def metered(stack, server, measure):
    """``measure()`` (a dict of figures) with the CPU the server and redis-server spent meanwhile."""
    meter = CpuMeter(web=server.process.pid, redis=stack.redis.process.pid)
    meter.start()
    record = measure()
    record["cpu_s"] = {name: seconds for name, seconds in meter.stop().items() if name != "wrk"}
    return record


def with_clicks(stack, server, measure, duration, click_url):
    """``metered(measure)`` while a second wrk sends clicks; the figures of both."""
    box = {}

    def send_clicks():
        try:
            box["clicks"] = wrk.run(click_url, duration + 1, threads=1, connections=CLICK_CONNECTIONS)
        except Exception as exc:  # noqa: BLE001 - re-raised below, in the bench's thread
            box["error"] = exc

    sender = threading.Thread(target=send_clicks)
    sender.start()
    time.sleep(0.5)  # clicks already flowing when the measurement starts
    try:
        record = metered(stack, server, measure)
    finally:
        sender.join()
    if "error" in box:
        raise box["error"]
    fields = ("requests_per_sec", "requests", "non_2xx_3xx", "socket_errors")
    record["clicks"] = {name: getattr(box["clicks"], name) for name in fields}
    record["valid"] = record["bad_status"] == 0 and box["clicks"].non_2xx_3xx == 0
    return record


def alone(stack, server, script, duration):
    """One connection, nothing else: the latency is (nearly) the service time."""
    record = metered(
        stack, server, lambda: wrk.run(server.url + "/", duration, 1, 1, script=script).as_dict()
    )
    record["web_cpu_ms_per_request"] = record["cpu_s"]["web"] / max(record["requests"], 1) * 1000
    record["valid"] = record["bad_status"] == 0
    return record


def measure_server(stack, server, variant, plan, log):
    cookie = dashboard.login(server.url)
    pages = {**dashboard.FRAGMENTS, **dashboard.OPS}
    sizes = dashboard.check(server.url, cookie, pages)
    directory = stack.log_dir(f"lua-{variant}")
    single = {
        name: dashboard.lua_script(directory, name, cookie, [path]) for name, (path, _) in pages.items()
    }
    paths = [path for path, _ in dashboard.FRAGMENTS.values()]
    mixed = dashboard.lua_script(directory, "mixed", cookie, paths)
    click_url = f"{server.url}/r/{plan['slug']}"
    runs = {}
    if variant == "sync":
        runs["alone"] = {}
        for name, script in single.items():
            runs["alone"][name] = alone(stack, server, script, plan["alone_s"])
            check_size(runs["alone"][name], sizes[name])
            log(f"  {variant} alone {name:<12} {describe(runs['alone'][name])}")
    if plan["warmup_s"]:
        wrk.run(server.url + "/", plan["warmup_s"], connections=plan["pollers"], script=mixed)
    steps = [("mixed", mixed, plan["duration_s"])]
    names = list(dashboard.FRAGMENTS) if variant == "sync" else ["status"]
    steps += [(name, single[name], plan["short_s"]) for name in names]
    if variant == "sync":
        steps.append(("ops", single["ops"], plan["duration_s"]))
    for name, script, seconds in steps:
        runs[name] = with_clicks(
            stack, server, closed_loop(server, script, seconds, plan), seconds, click_url
        )
        expected = [sizes[name]] if name in sizes else [sizes[page] for page in dashboard.FRAGMENTS]
        check_size(runs[name], sum(expected) / len(expected))
        log(f"  {variant} {name:<18} {describe(runs[name])}")
    rounds = []
    for round_number in range(1, plan["rounds"] + 1):
        rounds.append(paced(stack, server, paths, cookie, plan))
        log(f"  {variant} paced round {round_number:<6} {describe(rounds[-1])}")
    runs["paced"] = best_round(rounds)
    regions = live_regions(server.url, cookie)
    log(f"  {variant} the home page's live regions: {', '.join(regions)}")
    rounds = []
    for round_number in range(1, plan["rounds"] + 1):
        wait_drained(stack, plan["click_stream"], log)
        rounds.append(dashboards(stack, server, regions, cookie, plan))
        log(f"  {variant} {DASHBOARDS} dashboards round {round_number:<3} {describe(rounds[-1])}")
    runs["dashboards"] = best_round(rounds)
    return runs


def wait_drained(stack, stream, log, timeout=DRAINED_WITHIN_S):
    """Until the clicks the closed loops sent (thousands a second) are drained: the dashboards
    are measured while 200 clicks/s flow, not while the worker works off a backlog."""
    deadline = time.monotonic() + timeout
    with stack.redis.client() as client:
        while (buffered := client.xlen(stream)) and time.monotonic() < deadline:
            time.sleep(0.5)
    if buffered:
        log(f"  warning: {buffered} click entries still buffered after {timeout} s")


def live_regions(base_url, cookie):
    """The URLs an open dashboard polls: its live regions' (the report card polls only while
    a report computes, and the check before has waited for it to finish)."""
    page = requests.get(base_url + "/", headers={"Cookie": cookie}, timeout=10).text
    regions = [html.unescape(url) for url in LIVE_REGION.findall(page)]
    if not regions:
        raise RuntimeError(f"no live region on the dashboard page:\n{page[:1000]}")
    return regions


def best_round(rounds):
    """Outside load only ever adds latency: the best round is the least disturbed one."""
    best = {**min(rounds, key=lambda run: run["p95_ms"]), "valid": all(run["valid"] for run in rounds)}
    best["p95_ms_each"] = [run["p95_ms"] for run in rounds]
    return best


def check_size(record, body_bytes):
    """wrk's bytes per response against the page checked before: a 401 or a redirect is tiny."""
    record["bytes_per_response"] = record["bytes_read"] / max(record["requests"], 1)
    record["checked_body_bytes"] = body_bytes
    record["valid"] = record["valid"] and record["bytes_per_response"] >= body_bytes / 2


def closed_loop(server, script, seconds, plan):
    return lambda: wrk.run(server.url + "/", seconds, 2, plan["pollers"], script=script).as_dict()


def paced_groups(paths, cookie, plan, pollers, keep_alive=False):
    """``pollers`` dashboards sending the next of ``paths`` once a second, and the clickers
    (each click on a new connection: a visitor following a short link)."""
    headers = {"Cookie": cookie, "HX-Request": "true"}
    return [
        poller.Group("dashboards", paths, pollers, PACE_S, headers=headers, keep_alive=keep_alive),
        poller.Group(
            "clicks",
            [f"/r/{plan['slug']}"],
            PACED_CLICKERS,
            PACED_CLICKERS / PACED_CLICKS_PER_S,
            accept=(302,),
        ),
    ]


def paced(stack, server, paths, cookie, plan):
    """Dashboards and clicks both at a set rate (``bench.poller``): what 100 open dashboards see."""
    groups = paced_groups(paths, cookie, plan, plan["pollers"])
    measured = metered(stack, server, lambda: poller.run(server.url, groups, plan["duration_s"]))
    return paced_record(measured)


def dashboards(stack, server, paths, cookie, plan):
    """``DASHBOARDS`` open dashboards at 1 request/s each, each on a connection of its own kept
    open between polls, while clicks flow, from several poller processes; with the client's CPU
    share and the fragment renders the server did meanwhile."""
    groups = paced_groups(paths, cookie, plan, DASHBOARDS, keep_alive=True)
    renders = fragment_renders(stack)
    measured = metered(
        stack, server, lambda: poller.run_split(server.url, groups, plan["duration_s"], POLLER_PROCESSES)
    )
    record = paced_record(measured)
    record["clients"] = DASHBOARDS
    record["client"] = measured["client"]
    record["fragment_renders"] = fragment_renders(stack) - renders
    return record


def paced_record(measured):
    record, clicks = measured["dashboards"], measured["clicks"]
    record["cpu_s"] = measured["cpu_s"]
    record["clicks"] = {**clicks, "non_2xx_3xx": clicks["bad_status"]}
    record["valid"] = record["bad_status"] == 0 and clicks["bad_status"] == 0
    return record


def fragment_renders(stack):
    """Renders into the shared fragment copies so far, every fragment together: the counts
    ``webapp.dashboard.shared_fragments.render_counts`` reads, under any namespace."""
    with stack.redis.client() as client:
        keys = list(client.scan_iter("cb:*:fragment-renders"))
        return sum(int(count) for key in keys for count in client.hvals(key))


def describe(record):
    errors = sum(record["socket_errors"].values())
    line = (
        f"{record['requests_per_sec']:7.1f} req/s  p50 {record['latency_ms']['50%']:7.1f}"
        f"  p95 {record['p95_ms']:7.1f}  p99 {record['p99_ms']:7.1f} ms  non-200 {record['bad_status']}"
        f"  socket errors {errors}"
    )
    if "bytes_per_response" in record:
        line += f"  {record['bytes_per_response']:.0f} B/resp"
    if "clicks" in record:
        line += f"  | clicks {record['clicks']['requests_per_sec']:.0f}/s"
    if "client" in record:
        line += (
            f"  | client CPU {record['client']['cpu_share']:.0%} of the machine"
            f" ({record['client']['processes']} processes)  | {record['fragment_renders']} fragment renders"
        )
    if "web_cpu_ms_per_request" in record:
        line += f"  | web CPU {record['web_cpu_ms_per_request']:.1f} ms/req"
    return line + ("" if record["valid"] else "  INVALID")


def run(stack, duration, warmup, rounds, workers, pollers, pageviews, click_count, log=print):
    log(f"fragments benchmark: {pageviews:,} page views, {click_count:,} clicks over {LINKS} links")
    database_url, seeded = seed.seed(stack, "fragments", pageviews, log)
    app = stack.app(database_url)
    with app.app_context():
        populated = dashboard.populate(LINKS, click_count)
        click_stream = CLICK_BUFFER.stream
    stack.release(app)
    log("  starting a Celery worker (all queues, prefork, concurrency 2) and beat ...")
    worker = stack.worker("worker-fragments", database_url, "clicks,reports,default", 2)
    beat = stack.beat("beat-fragments", database_url)
    plan = {"pollers": pollers, "duration_s": duration, "short_s": max(2, duration // 2), "warmup_s": warmup}
    plan.update(
        alone_s=max(1, duration // 5), slug=populated["slug"], rounds=rounds, click_stream=click_stream
    )
    variants = {"sync": {}, "gthread": {"GUNICORN_THREADS": GTHREAD_THREADS}}
    results = {}
    for variant, env in variants.items():
        threads = env.get("GUNICORN_THREADS", 1)
        log(f"  gunicorn --workers {workers}, {variant} ({threads} thread(s) each) ...")
        log_dir = os.path.join(stack.root, "clicks", f"fragments-{variant}")
        server = stack.web(
            f"web-fragments-{variant}", database_url, workers=workers, CLICK_LOG_DIR=log_dir, **env
        )
        results[variant] = {"threads": threads, "runs": measure_server(stack, server, variant, plan, log)}
        server.stop()
    beat.stop()
    worker.stop()  # close() stops all three on errors
    settings = {**plan, "gunicorn_workers": workers, "click_connections": CLICK_CONNECTIONS}
    settings.update(pace_s=PACE_S, paths=dashboard.FRAGMENTS, ops=dashboard.OPS)
    settings.update(dashboards=DASHBOARDS, poller_processes=POLLER_PROCESSES)
    return {"settings": settings, "data": {**populated, "pageviews": seeded["rows"]}, "variants": results}
