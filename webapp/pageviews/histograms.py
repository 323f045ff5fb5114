"""Daily response-time histograms of page views: the rollup the slow-page report reads.

One row per (UTC day, site, page, response time in ms) with its count of
views, so a day of any number of views is a few thousand rows per page at
most, and percentiles and thresholds read from it are the raw rows' own.
Views without a site count under site 0 (a primary key cannot hold NULL).
A page is keyed by the md5 of its url, the same in Python and in SQL
(PostgreSQL's ``md5``; on SQLite the function is registered on the
connection), and ``page_view_url`` maps the key back to the url. Beside it,
the same counts without the page (``page_view_day_histogram``): what a
report with no page filter reads.

The drain adds the rows it inserts (``record``), in their transaction;
bulk writers add theirs in one ``INSERT ... SELECT ... GROUP BY`` over
the rows they inserted (``add_seeded``): seeded rows have no event id, so
a drain writing at the same time is not counted twice.
"""

import hashlib
from collections import Counter

from sqlalchemy import text
from sqlalchemy.dialects import postgresql, sqlite

from webapp.models import PageViewDayHistogram, PageViewHistogram, PageViewUrl
from webapp.upserts import upsert_sums

NO_SITE = 0
HISTOGRAM_KEYS = ("day", "url_key", "site_id", "response_time_ms")
DAY_HISTOGRAM_KEYS = ("day", "site_id", "response_time_ms")

# Seeded rows (no event id) with ``id > :after_id`` into both tables, adding to the counts there;
# in key order, so the primary key grows at its end (a third faster on PostgreSQL at 1M views).
URLS_FROM_RAW = """
INSERT INTO page_view_url (url_key, url)
SELECT md5(url), url FROM (SELECT DISTINCT url FROM page_view WHERE id > :after_id AND event_id IS NULL) AS new_urls
WHERE true
ON CONFLICT (url_key) DO NOTHING
"""
HISTOGRAM_FROM_RAW = """
INSERT INTO page_view_histogram (day, site_id, url_key, response_time_ms, views)
SELECT day, site_id, md5(url), response_time_ms, views FROM (
    SELECT date(created_at) AS day, coalesce(site_id, 0) AS site_id, url, response_time_ms,
           count(*) AS views
    FROM page_view WHERE id > :after_id AND event_id IS NULL
    GROUP BY date(created_at), coalesce(site_id, 0), url, response_time_ms
) AS grouped
WHERE true
ORDER BY day, md5(url), site_id, response_time_ms
ON CONFLICT (day, url_key, site_id, response_time_ms)
DO UPDATE SET views = page_view_histogram.views + excluded.views
"""
DAY_HISTOGRAM_FROM_RAW = """
INSERT INTO page_view_day_histogram (day, site_id, response_time_ms, views)
SELECT date(created_at), coalesce(site_id, 0), response_time_ms, count(*)
FROM page_view WHERE id > :after_id AND event_id IS NULL
GROUP BY date(created_at), coalesce(site_id, 0), response_time_ms
ORDER BY 1, 2, 3
ON CONFLICT (day, site_id, response_time_ms)
DO UPDATE SET views = page_view_day_histogram.views + excluded.views
"""


def url_key(url):
    return hashlib.md5(url.encode(), usedforsecurity=False).hexdigest()


def record(conn, rows):
    """Add inserted page-view rows (dicts as ``page_view`` takes them) to both histograms."""
    if not rows:
        return
    counts = Counter()
    urls = {}
    for row in rows:
        key = url_key(row["url"])
        urls[key] = row["url"]
        site_id = NO_SITE if row.get("site_id") is None else row["site_id"]
        counts[(row["created_at"].date(), key, site_id, row["response_time_ms"])] += 1
    day_counts = Counter()
    for (day, _, site_id, ms), views in counts.items():
        day_counts[(day, site_id, ms)] += views
    insert_missing_urls(conn, urls)
    upsert_sums(conn, PageViewHistogram, HISTOGRAM_KEYS, sum_rows(HISTOGRAM_KEYS, counts))
    upsert_sums(conn, PageViewDayHistogram, DAY_HISTOGRAM_KEYS, sum_rows(DAY_HISTOGRAM_KEYS, day_counts))


def sum_rows(keys, counts):
    return [dict(zip(keys, key, strict=True), views=views) for key, views in counts.items()]


def insert_missing_urls(conn, urls):
    dialect_insert = postgresql.insert if conn.dialect.name == "postgresql" else sqlite.insert
    rows = [{"url_key": key, "url": url} for key, url in sorted(urls.items())]
    conn.execute(dialect_insert(PageViewUrl).on_conflict_do_nothing(index_elements=["url_key"]), rows)


def add_seeded(conn, after_id):
    """Add the seeded rows (no event id) with ``id > after_id`` to both histograms."""
    if conn.dialect.name == "sqlite":
        register_md5(conn)
    conn.execute(text(URLS_FROM_RAW), {"after_id": after_id})
    conn.execute(text(HISTOGRAM_FROM_RAW), {"after_id": after_id})
    conn.execute(text(DAY_HISTOGRAM_FROM_RAW), {"after_id": after_id})


def register_md5(conn):
    """PostgreSQL's ``md5(text)`` on this SQLite connection."""
    conn.connection.driver_connection.create_function("md5", 1, url_key, deterministic=True)
