"""One slow-page report computation in a process of its own, so its peak RSS is its own.

``python -m bench.slowreport_child engine|python DATABASE_URL NOW_ISO`` prints
one JSON line: the computation's time (imports and connecting excluded), the
slow and total counts, and the process's RSS before and at its peak.

- ``engine``: ``webapp.reports.slow_pageviews.compute`` with the default
  ``SlowReportParams``, as the report task runs it.
- ``python``: the naive way: stream every row of ``page_view`` (SQLAlchemy
  Core, ``yield_per``) and apply the three conditions in Python: the window
  ``[now - days, now)``, ``min_ms``, and ``url_contains`` case-insensitively.
"""

import json
import resource
import sys
import time
from datetime import datetime, timedelta

import psutil
from sqlalchemy import create_engine, select

from webapp.config import database_uri
from webapp.models import PageView
from webapp.reports import slow_pageviews
from webapp.reports.params import SlowReportParams

YIELD_PER = 10_000


def engine_report(conn, params, now):
    report = slow_pageviews.compute(conn, params, now)
    return report["slow_views"], report["total_views"], None


def python_report(conn, params, now):
    """Row by row, the naive way: every page view crosses into Python."""
    since = now - timedelta(days=params.days)
    needle = params.url_contains.lower()
    query = select(PageView.url, PageView.created_at, PageView.response_time_ms)
    slow = views = scanned = 0
    for url, created_at, response_ms in conn.execution_options(yield_per=YIELD_PER).execute(query):
        scanned += 1
        if since <= created_at < now and needle in url.lower():
            views += 1
            if response_ms >= params.min_ms:
                slow += 1
    return slow, views, scanned


def main(mode, database_url, now_iso):
    compute = {"engine": engine_report, "python": python_report}[mode]
    now = datetime.fromisoformat(now_iso)
    params = SlowReportParams()
    engine = create_engine(database_uri(database_url, None))
    with engine.connect() as conn:
        rss_before = psutil.Process().memory_info().rss
        started = time.perf_counter()
        slow, views, scanned = compute(conn, params, now)
        elapsed = time.perf_counter() - started
    engine.dispose()
    figures = {
        "mode": mode,
        "compute_s": elapsed,
        "slow_views": slow,
        "total_views": views,
        "rows_scanned": scanned,
        "rss_before_mb": rss_before / 2**20,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }
    print(json.dumps(figures))


if __name__ == "__main__":
    main(*sys.argv[1:4])
