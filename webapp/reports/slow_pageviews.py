"""The slow-page report, from daily response-time histograms, one day at a time.

Reading every page view would take minutes at a hundred million rows.
The page-view drain keeps a histogram per UTC day, site, page and exact
response time in ms (``webapp.pageviews.histograms``); a whole day of the
window is read from it, a partial day (the window's first and last) from
the raw rows, grouped the same way (``GROUP BY response_time_ms``). Either
way a day's histogram is a few thousand rows however many views there are.
From those histograms come the totals, the slow count per day and exact
percentiles; a last query ranks the URLs with the most slow views over
the same two sources. Memory stays bounded by the number of distinct
response times, and each finished day is a step of progress.
"""

from collections import Counter
from datetime import datetime, time, timedelta
from fractions import Fraction

from sqlalchemy import and_, func, or_, select, union_all

from webapp.models import PageView, PageViewHistogram, PageViewUrl, Site
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
    slowest = slowest_urls(conn, params, chunks)
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


def is_whole_day(start, end):
    return start.time() == time.min and end - start == timedelta(days=1)


def url_matches(conn, column, pattern_text):
    """``column`` contains the text, case-insensitively, with LIKE wildcards escaped."""
    pattern = contains_pattern(pattern_text)
    if conn.dialect.name == "postgresql":
        return column.ilike(pattern, escape=LIKE_ESCAPE)
    return column.like(pattern, escape=LIKE_ESCAPE)  # SQLite's LIKE ignores ASCII case


def site_id_of(params):
    return select(Site.id).where(Site.public_key == params.site).scalar_subquery()


def raw_filter(conn, params, start, end):
    conditions = [PageView.created_at >= start, PageView.created_at < end]
    if params.url_contains:
        conditions.append(url_matches(conn, PageView.url, params.url_contains))
    if params.site:
        conditions.append(PageView.site_id == site_id_of(params))
    return conditions


def rollup_filter(conn, params, first_day, last_day):
    """Histogram rows of the days ``first_day``..``last_day``, filtered as ``raw_filter`` does.

    One day is an equality: psycopg prepares a statement run five times and PostgreSQL may
    then plan it once for any parameters, and ``day BETWEEN $1 AND $2`` planned blind is a
    scan of every day (a second per query where the right plan takes milliseconds).
    """
    if first_day == last_day:
        conditions = [PageViewHistogram.day == first_day]
    else:
        conditions = [PageViewHistogram.day >= first_day, PageViewHistogram.day <= last_day]
    if params.url_contains:
        matching = select(PageViewUrl.url_key).where(url_matches(conn, PageViewUrl.url, params.url_contains))
        conditions.append(PageViewHistogram.url_key.in_(matching))
    if params.site:
        conditions.append(PageViewHistogram.site_id == site_id_of(params))
    return conditions


def response_time_histogram(conn, params, start, end):
    if is_whole_day(start, end):
        query = (
            select(PageViewHistogram.response_time_ms, func.sum(PageViewHistogram.views))
            .where(*rollup_filter(conn, params, start.date(), start.date()))
            .group_by(PageViewHistogram.response_time_ms)
        )
    else:
        query = (
            select(PageView.response_time_ms, func.count())
            .where(*raw_filter(conn, params, start, end))
            .group_by(PageView.response_time_ms)
        )
    return Counter({ms: int(count) for ms, count in conn.execute(query)})


def slow_views_by_url_and_ms(conn, params, chunks):
    """(url, ms, views) of the slow views: whole days from the histograms, partial days raw."""
    whole = [start.date() for start, end in chunks if is_whole_day(start, end)]
    partial = [chunk for chunk in chunks if not is_whole_day(*chunk)]
    parts = []
    if whole:
        parts.append(
            select(PageViewUrl.url, PageViewHistogram.response_time_ms.label("ms"), PageViewHistogram.views)
            .join(PageViewUrl, PageViewUrl.url_key == PageViewHistogram.url_key)
            .where(
                *rollup_filter(conn, params, whole[0], whole[-1]),
                PageViewHistogram.response_time_ms >= params.min_ms,
            )
        )
    if partial:
        parts.append(
            select(PageView.url, PageView.response_time_ms.label("ms"), func.count().label("views"))
            .where(
                or_(*(and_(*raw_filter(conn, params, start, end)) for start, end in partial)),
                PageView.response_time_ms >= params.min_ms,
            )
            .group_by(PageView.url, PageView.response_time_ms)
        )
    return union_all(*parts).subquery()


def slowest_urls(conn, params, chunks):
    """The URLs with the most slow views; ties: the slowest view first, then the URL."""
    slow = slow_views_by_url_and_ms(conn, params, chunks)
    slow_views = func.sum(slow.c.views).label("slow_views")
    max_ms = func.max(slow.c.ms).label("max_ms")
    query = (
        select(slow.c.url, slow_views, func.sum(slow.c.ms * slow.c.views).label("sum_ms"), max_ms)
        .group_by(slow.c.url)
        .order_by(slow_views.desc(), max_ms.desc(), slow.c.url)
        .limit(SLOWEST_URLS)
    )
    return [
        {
            "url": url,
            "slow_views": int(count),
            "avg_ms": round(Fraction(int(sum_ms), int(count))),  # exact: an integer sum over a count
            "max_ms": int(peak),
        }
        for url, count, sum_ms, peak in conn.execute(query)
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
