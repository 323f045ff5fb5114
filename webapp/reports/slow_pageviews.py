"""The slow-page report, from daily response-time histograms, one day at a time.

Reading every page view would take minutes at a hundred million rows.
The page-view drain keeps histograms per UTC day, site and exact response
time in ms, one with the page and one without (``webapp.pageviews.histograms``).
A whole day of the window is read from the one without pages, or, when the
report filters by page, from the matching pages' rows of the other; a
partial day (the window's first and last) from the raw rows, grouped the
same way (``GROUP BY response_time_ms``). Either way a day's histogram is a
few thousand rows however many views there are. From those histograms come
the totals, the slow count per day and exact percentiles; a last query
ranks the URLs with the most slow views, from the slow rows of the page
histogram and of the partial days' raw rows, each summed per page before
the two are merged. Memory stays bounded by the number of distinct
response times, and each finished day is a step of progress.
"""

from collections import Counter
from datetime import datetime, time, timedelta
from fractions import Fraction

from sqlalchemy import func, select, union_all

from webapp.models import PageView, PageViewDayHistogram, PageViewHistogram, PageViewUrl, Site
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


def day_histogram_table(params):
    """Where a whole day's response times are read: only the page histogram knows pages."""
    return PageViewHistogram if params.url_contains else PageViewDayHistogram


def rollup_filter(conn, params, days, table=PageViewHistogram):
    """Histogram rows of ``days``, filtered as ``raw_filter`` does.

    Days are equalities (``IN``), never a range: psycopg prepares a statement run five
    times and PostgreSQL may then plan it once for any parameters, and ``day BETWEEN $1
    AND $2`` planned blind is a scan of every day (a second per query where the right
    plan takes milliseconds); each day of an ``IN`` is its own index range.
    """
    conditions = [table.day == days[0]] if len(days) == 1 else [table.day.in_(days)]
    if params.url_contains:
        matching = select(PageViewUrl.url_key).where(url_matches(conn, PageViewUrl.url, params.url_contains))
        conditions.append(table.url_key.in_(matching))
    if params.site:
        conditions.append(table.site_id == site_id_of(params))
    return conditions


def response_time_histogram(conn, params, start, end):
    if is_whole_day(start, end):
        table = day_histogram_table(params)
        query = (
            select(table.response_time_ms, func.sum(table.views))
            .where(*rollup_filter(conn, params, [start.date()], table))
            .group_by(table.response_time_ms)
        )
    else:
        query = (
            select(PageView.response_time_ms, func.count())
            .where(*raw_filter(conn, params, start, end))
            .group_by(PageView.response_time_ms)
        )
    return Counter({ms: int(count) for ms, count in conn.execute(query)})


def slow_views_by_url(conn, params, chunks):
    """(url, views, sum_ms, max_ms) of the slow views per page and source: whole days from
    the page histogram's slow rows (its (day, response time) index reads those alone),
    summed per page before the url is joined on; partial days from the raw rows."""
    whole = [start.date() for start, end in chunks if is_whole_day(start, end)]
    partial = [chunk for chunk in chunks if not is_whole_day(*chunk)]
    parts = []
    if whole:
        ms, views = PageViewHistogram.response_time_ms, PageViewHistogram.views
        per_page = (
            select(
                PageViewHistogram.url_key,
                func.sum(views).label("views"),
                func.sum(ms * views).label("sum_ms"),
                func.max(ms).label("max_ms"),
            )
            .where(*rollup_filter(conn, params, whole), ms >= params.min_ms)
            .group_by(PageViewHistogram.url_key)
            .subquery()
        )
        parts.append(
            select(PageViewUrl.url, per_page.c.views, per_page.c.sum_ms, per_page.c.max_ms).join(
                PageViewUrl, PageViewUrl.url_key == per_page.c.url_key
            )
        )
    raw_ms = PageView.response_time_ms
    for start, end in partial:
        # One SELECT per partial day, not one over an OR of their ranges: PostgreSQL reads
        # a single range through the index (and its month's partition), but an OR of
        # ranges, filtered by a URL pattern too, as a scan of every partition.
        parts.append(
            select(
                PageView.url,
                func.count().label("views"),
                func.sum(raw_ms).label("sum_ms"),
                func.max(raw_ms).label("max_ms"),
            )
            .where(*raw_filter(conn, params, start, end), raw_ms >= params.min_ms)
            .group_by(PageView.url)
        )
    return union_all(*parts).subquery()


def slowest_urls(conn, params, chunks):
    """The URLs with the most slow views; ties: the slowest view first, then the URL."""
    slow = slow_views_by_url(conn, params, chunks)
    slow_views = func.sum(slow.c.views).label("slow_views")
    max_ms = func.max(slow.c.max_ms).label("max_ms")
    query = (
        select(slow.c.url, slow_views, func.sum(slow.c.sum_ms).label("sum_ms"), max_ms)
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
