"""Realistic fake page views, fast: ``flask seed pageviews``.

Faker is slow per call, so it only names the site's pages (a fixed pool,
some under ``/blog/``); each view then picks a page by a Zipf-like
popularity and a response time from a skewed distribution in which some
pages are consistently slow. Views are spread evenly over the window in
time order, as a live site would have written them, and inserted in bulk
chunks on a raw connection (``executemany`` on SQLite, ``COPY`` on
PostgreSQL), then added to the daily response-time histograms in one
``INSERT ... SELECT ... GROUP BY``. The same ``seed`` gives the same pages and response times.
"""

import bisect
import itertools
import random
from datetime import timedelta

from faker import Faker
from sqlalchemy import func, select

from webapp.models import PageView, utcnow
from webapp.pageviews import histograms

CHUNK_SIZE = 50_000
PAGE_POOL_SIZE = 2_000
BLOG_SHARE = 0.25
SQLITE_INSERT = "INSERT INTO page_view (url, created_at, response_time_ms) VALUES (?, ?, ?)"
POSTGRES_COPY = "COPY page_view (url, created_at, response_time_ms) FROM STDIN"


def make_pages(rng, faker):
    """(url, typical response time in ms) for each page of the fake site."""
    pages = []
    for _ in range(PAGE_POOL_SIZE):
        path = faker.uri_path(deep=rng.randint(1, 3))
        url = f"/blog/{faker.slug()}" if rng.random() < BLOG_SHARE else f"/{path}"
        typical_ms = rng.lognormvariate(5.3, 0.8)  # most pages ~200 ms, a few seconds
        pages.append((url, typical_ms))
    return pages


def generate(count, days, seed, now=None):
    """Yield ``(url, created_at, response_time_ms)`` in time order, oldest first."""
    rng = random.Random(seed)
    faker = Faker()
    faker.seed_instance(seed)
    pages = make_pages(rng, faker)
    cumulative = list(itertools.accumulate(1 / (rank + 1) ** 1.1 for rank in range(len(pages))))
    total_weight = cumulative[-1]
    now = now or utcnow()
    start = now - timedelta(days=days)
    step = timedelta(days=days) / max(count, 1)
    for index in range(count):
        url, typical_ms = pages[bisect.bisect(cumulative, rng.random() * total_weight)]
        created_at = start + step * (index + rng.random())
        response_ms = max(1, int(typical_ms * rng.lognormvariate(0, 0.6)))
        yield url, created_at, response_ms


def chunks(rows, size=CHUNK_SIZE):
    iterator = iter(rows)
    while chunk := list(itertools.islice(iterator, size)):
        yield chunk


def bulk_insert(engine, rows, on_chunk=lambda inserted: None):
    """Insert rows in chunks on one raw connection, then their histograms in one statement;
    return how many were inserted."""
    with engine.connect() as conn:
        last_id_before = conn.scalar(select(func.coalesce(func.max(PageView.id), 0)))
    inserted = insert_rows(engine, rows, on_chunk)
    with engine.begin() as conn:
        histograms.add_seeded(conn, last_id_before)
    return inserted


def insert_rows(engine, rows, on_chunk):
    raw = engine.raw_connection()
    inserted = 0
    try:
        cursor = raw.cursor()
        for chunk in chunks(rows):
            if engine.dialect.name == "postgresql":
                copy_chunk(cursor, chunk)
            else:
                cursor.executemany(SQLITE_INSERT, [(url, sqlite_time(at), ms) for url, at, ms in chunk])
            raw.commit()
            inserted += len(chunk)
            on_chunk(len(chunk))
    finally:
        raw.close()
    return inserted


def copy_chunk(cursor, chunk):
    with cursor.copy(POSTGRES_COPY) as copy:
        for row in chunk:
            copy.write_row(row)


def sqlite_time(moment):
    """The text form SQLAlchemy's DateTime stores in SQLite, so both read alike.

    isoformat gives the same text as strftime("%Y-%m-%d %H:%M:%S.%f") at a
    quarter of the cost, a second per million rows.
    """
    return moment.isoformat(" ", "microseconds")
