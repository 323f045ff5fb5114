"""The slow-page report, computed in SQL one day at a time.

Iterating every page view in Python would take minutes at ten million
rows and hold them in memory. Here the database does the
filtering and counting: for each UTC day of the window, one indexed range
query returns that day's response-time histogram (``GROUP BY
response_time_ms``: a few thousand rows however many views there are).
From those histograms come the totals, the slow count per day and exact
percentiles; a last query ranks the URLs with the most slow views. Memory
stays bounded by the number of distinct response times, and each finished
day is a step of progress.
"""

from collections import Counter
from datetime import datetime, time, timedelta

from sqlalchemy import func, select

from webapp.models import PageView, Site
from webapp.search import LIKE_ESCAPE, contains_pattern

SLOWEST_URLS = 10
PERCENTILES = (50, 95, 99)


def compute(conn, params, now, on_progress=lambda done, total: None):
    """Return the report for ``params`` over the ``params.days`` days before ``now`` (naive UTC)."""
    since = now - timedelta(days=params.days)
    chunks = day_chunks(since, now)
    histogram = Counter()
    per_day = []
    for done, (start, end) in enumerate(chunks):
        day_histogram = response_time_histogram(conn, params, start, end)
        histogram.update(day_histogram)
        per_day.append(
            {
                "day": start.date().isoformat(),
                "views": sum(day_histogram.values()),
                "slow": sum(count for ms, count in day_histogram.items() if ms >= params.min_ms),
            }
        )
        on_progress(done + 1, len(chunks) + 1)
    slowest = slowest_urls(conn, params, since, now)
    on_progress(len(chunks) + 1, len(chunks) + 1)
    return summarise(params, since, now, histogram, per_day, slowest)


def day_chunks(since, until):
    """[since, until) cut at UTC midnights: the first and last chunks may be partial days."""
    chunks = []
    start = since
    while start < until:
        next_midnight = datetime.combine(start.date() + timedelta(days=1), time.min)
        end = min(next_midnight, until)
        chunks.append((start, end))
        start = end
    return chunks


def url_matches(conn, pattern_text):
    """``url`` contains the text, case-insensitively, with LIKE wildcards escaped."""
    pattern = contains_pattern(pattern_text)
    if conn.dialect.name == "postgresql":
        return PageView.url.ilike(pattern, escape=LIKE_ESCAPE)
    return PageView.url.like(pattern, escape=LIKE_ESCAPE)  # SQLite's LIKE ignores ASCII case


def window_filter(conn, params, start, end):
    conditions = [PageView.created_at >= start, PageView.created_at < end]
    if params.url_contains:
        conditions.append(url_matches(conn, params.url_contains))
    if params.site:
        site_id = select(Site.id).where(Site.public_key == params.site).scalar_subquery()
        conditions.append(PageView.site_id == site_id)
    return conditions


def response_time_histogram(conn, params, start, end):
    query = (
        select(PageView.response_time_ms, func.count())
        .where(*window_filter(conn, params, start, end))
        .group_by(PageView.response_time_ms)
    )
    return Counter(dict(conn.execute(query).all()))


def slowest_urls(conn, params, since, until):
    slow_views = func.count().label("slow_views")
    query = (
        select(
            PageView.url,
            slow_views,
            func.avg(PageView.response_time_ms).label("avg_ms"),
            func.max(PageView.response_time_ms).label("max_ms"),
        )
        .where(*window_filter(conn, params, since, until), PageView.response_time_ms >= params.min_ms)
        .group_by(PageView.url)
        .order_by(slow_views.desc(), func.max(PageView.response_time_ms).desc(), PageView.url)
        .limit(SLOWEST_URLS)
    )
    return [
        {"url": url, "slow_views": count, "avg_ms": round(float(avg)), "max_ms": int(peak)}
        for url, count, avg, peak in conn.execute(query)
    ]


def percentile(histogram, total, p):
    """Nearest-rank percentile: the smallest value with at least p% of views at or below it."""
    if not total:
        return None
    rank = max(1, -(-p * total // 100))  # ceil(p * total / 100), in integers
    seen = 0
    for value in sorted(histogram):
        seen += histogram[value]
        if seen >= rank:
            return value
    return None


def summarise(params, since, until, histogram, per_day, slowest):
    total = sum(histogram.values())
    slow = sum(count for ms, count in histogram.items() if ms >= params.min_ms)
    return {
        "params": params.as_dict(),
        "window_start": since.isoformat() + "Z",
        "window_end": until.isoformat() + "Z",
        "slow_views": slow,
        "total_views": total,
        "slow_share": round(slow / total, 4) if total else 0.0,
        "percentiles_ms": {f"p{p}": percentile(histogram, total, p) for p in PERCENTILES},
        "slow_per_day": per_day,
        "slowest_urls": slowest,
    }
