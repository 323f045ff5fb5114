"""The page-view tracker's collect endpoint, and the page-view drain behind it.

One site in a fresh SQLite database; gunicorn (``--workers``) with the
collect limits lifted (the bench is one client). ``wrk`` POSTs the beacon the
script sends (text/plain JSON, the site's Origin, a browser's User-Agent);
its Lua ``response()`` counts anything but a 202. Views per second per
web worker is the endpoint's rate divided by the workers: each view is one
spool line on the request path, like a click.

Then the drain: once the web processes' shippers have put every accepted
view on the page-view stream, ``PAGEVIEW_DRAIN.run`` (as the beat task runs
it) is timed until the stream is empty, in this process. Rows written must
equal the 202s wrk saw.
"""

import json
import os
import time

from sqlalchemy import func, select

from bench import wrk
from webapp import sites
from webapp.extensions import db
from webapp.models import PageView
from webapp.pageviews.ingest import PAGEVIEW_BUFFER, PAGEVIEW_DRAIN
from webapp.redis_client import worker_redis

ORIGIN = "http://bench.example"
USER_AGENT = "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0"
LUA = """-- written by bench/collect.py: the tracker's beacon, as a browser sends it
wrk.method = "POST"
wrk.body = %(body)s
wrk.headers["Content-Type"] = "text/plain;charset=UTF-8"
wrk.headers["Origin"] = "%(origin)s"
wrk.headers["User-Agent"] = "%(agent)s"
"""
SHIPPED_QUIET_S = 0.5


def lua_script(directory):
    body = json.dumps({"u": f"{ORIGIN}/blog/post", "r": "https://news.example/", "s": 180, "l": 1200})
    path = os.path.join(directory, "beacon.lua")
    with open(path, "w") as script:
        script.write(LUA % {"body": json.dumps(body), "origin": ORIGIN, "agent": USER_AGENT})
        script.write(wrk.status_counter_lua(202))
    return path


def wait_until_shipped(client):
    """The stream's length once it stopped growing (the shippers run every 0.1 s)."""
    length, still_since = client.xlen(PAGEVIEW_BUFFER.stream), time.monotonic()
    while time.monotonic() - still_since < SHIPPED_QUIET_S:
        time.sleep(0.1)
        now = client.xlen(PAGEVIEW_BUFFER.stream)
        if now != length:
            length, still_since = now, time.monotonic()
    return length


def drain_all(app):
    """Seconds to drain the page-view stream empty, and the rows then in ``page_view``."""
    with app.app_context():
        client = worker_redis(app)
        started = time.perf_counter()
        while client.xlen(PAGEVIEW_BUFFER.stream) and PAGEVIEW_DRAIN.run(client, db.engine, app.config):
            pass
        elapsed = time.perf_counter() - started
        return elapsed, db.session.scalar(select(func.count()).select_from(PageView))


def run(stack, duration, warmup, workers, connections, log=print):
    log(f"collect benchmark: POST /collect/<key>, gunicorn {workers} workers, {connections} connections")
    database_url = stack.fresh_database("collect")
    app = stack.app(database_url)
    with app.app_context():
        site = sites.create_site("Bench", [ORIGIN], None)
        key = site.public_key
    limits = {"COLLECT_SITE_PER_MINUTE": 10**9, "COLLECT_CLIENT_PER_MINUTE": 10**9}
    server = stack.web("collect", database_url, workers=workers, **limits)
    script = lua_script(stack.log_dir("collect"))
    url = f"{server.url}/collect/{key}"
    wrk.run(url, warmup, connections=connections, script=script)
    measured = wrk.run(url, duration, connections=connections, script=script)
    accepted = measured.requests - (measured.bad_status or 0)
    with app.app_context():
        queued = wait_until_shipped(worker_redis(app))
    drain_s, rows = drain_all(app)
    result = {
        "workers": workers,
        "connections": connections,
        "wrk": measured.as_dict(),
        "views_per_s": measured.requests_per_sec,
        "views_per_s_per_worker": measured.requests_per_sec / workers,
        "accepted": accepted,
        "bad_status": measured.bad_status,
        "queued_for_drain": queued,
        "drain_s": drain_s,
        "drained_rows": rows,
        "drain_views_per_s": rows / drain_s if drain_s else None,
        # Every view accepted reached the table (the warm-up's too, hence >=), none twice.
        "ok": (measured.bad_status or 0) == 0 and queued == rows and rows >= accepted,
    }
    stack.release(app)
    log(f"  {describe(result)}")
    return result


def describe(result):
    return (
        f"{result['views_per_s']:,.0f} views/s ({result['views_per_s_per_worker']:,.0f} per web worker),"
        f" p99 {result['wrk']['p99_ms']:.1f} ms, non-202 {result['bad_status']};"
        f" drain {result['drained_rows']:,} views in {result['drain_s']:.2f}s"
        f" ({result['drain_views_per_s']:,.0f}/s) {'OK' if result['ok'] else 'MISMATCH'}"
    )
