"""``flask seed pageviews --count N`` as a real subprocess: wall time and peak RSS.

The command runs exactly as an operator would type it (``.venv/bin/flask``,
``FLASK_APP=webapp``), with ``DATABASE_URL`` on a fresh migrated SQLite file
in the temp dir and ``REDIS_URL`` on the bench's Redis. Wall time covers the
whole process (imports and app start included); the command's own
"Inserted ... in Xs" figure is kept beside it. Peak RSS: see ``bench.measure``.

``seeded_database`` is what the report benchmark uses to get a database of
N page views: seeded the same way, once per size per run, so it reuses the
seed benchmark's database when both run (neither writes to it). The
fragments benchmark, which does write, seeds a database of its own.
"""

import bisect
import itertools
import os
import random
import re
import sqlite3
import time
from datetime import timedelta

import psycopg
from faker import Faker
from psycopg import sql
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from bench import measure, postgres
from tests.processes import BIN
from webapp.config import database_uri
from webapp.models import utcnow
from webapp.pageviews import histograms
from webapp.pageviews import seed as pageview_seed

INSERTED = re.compile(r"Inserted ([\d,]+) page views in ([\d.]+)s")


def seed(stack, name, count, log=print):
    """A fresh database seeded with ``count`` page views by the CLI: (url, figures)."""
    url = stack.fresh_database(name)
    command = [os.path.join(BIN, "flask"), "seed", "pageviews", "--count", str(count)]
    env = stack.env(url, FLASK_APP="webapp")  # SECRET_KEY: the stack's, as in production
    log(f"  {' '.join(['flask', *command[1:]])} ...")
    figures = measure.run(command, env, os.path.join(stack.log_dir("seed"), f"{name}.log"))
    output = figures.pop("output")
    inserted = INSERTED.search(output)
    if not inserted:
        raise RuntimeError(f"flask seed pageviews printed no 'Inserted' line:\n{output[-2000:]}")
    figures["command"] = " ".join(["flask", *command[1:]])
    figures["count"] = count
    figures["reported_inserted"] = int(inserted.group(1).replace(",", ""))
    figures["reported_s"] = float(inserted.group(2))
    figures["rows"] = page_view_rows(url)
    figures["ok"] = figures["rows"] == figures["reported_inserted"] == count
    figures["database_mb"] = os.path.getsize(url.removeprefix("sqlite:///")) / 2**20
    log(f"    {describe(figures)}")
    return url, figures


def seeded_database(stack, count, log=print):
    """(URL, seed figures) of a database of ``count`` seeded page views, seeded if this run has none."""
    if count not in stack.seeded:
        stack.seeded[count] = seed(stack, f"pageviews-{count}", count, log)
    return stack.seeded[count]


def page_view_rows(url):
    with sqlite3.connect(url.removeprefix("sqlite:///")) as conn:
        return conn.execute("SELECT count(*) FROM page_view").fetchone()[0]


def describe(figures):
    return (
        f"{figures['count']:,} rows in {figures['wall_s']:.1f}s wall ({figures['reported_s']:.1f}s inserting"
        f" by its own clock), peak RSS {figures['peak_rss_mb']:.0f} MB, CPU {figures['cpu_s']:.1f}s,"
        f" {figures['rows']:,} rows in the table {'OK' if figures['ok'] else 'MISMATCH'}"
    )


def run(stack, count, log=print):
    """The seed benchmark: one timed ``flask seed pageviews --count count`` into an empty database."""
    log(f"seed benchmark: {count:,} page views")
    stack.seeded[count] = seed(stack, f"pageviews-{count}", count, log)
    return stack.seeded[count][1]


# --- the 100M case: seeded on the PostgreSQL server itself ---------------------------------

PAGE_SLOTS = 65_536  # a page per slot, as many slots as its popularity: one random slot picks a page
SERVER_CHUNK = 5_000_000
SERVER_SEED_DAYS = 60
CREATE_SLOTS = "CREATE TEMP TABLE bench_page_slot (slot integer PRIMARY KEY, url text, typical_ms float8)"
# One statement per chunk: ids in time order, a page by popularity, a log-normal response
# time around the page's typical one (Box-Muller; PostgreSQL 15 has no random_normal).
SERVER_INSERT = """
INSERT INTO page_view (url, created_at, response_time_ms)
SELECT s.url,
       %(start)s + (r.i - 1 + r.u) * %(step)s * interval '1 microsecond',
       greatest(1, floor(s.typical_ms * exp(0.6 * sqrt(-2 * ln(1 - r.u1)) * cos(2 * pi() * r.u2))))::integer
FROM (SELECT i, random() AS u, random() AS u1, random() AS u2, floor(random() * %(slots)s)::integer AS slot
      FROM generate_series(%(first)s::bigint, %(last)s::bigint) AS i) AS r
JOIN bench_page_slot AS s ON s.slot = r.slot
"""


def page_slots(seed_value):
    """(slot, url, typical ms): each of ``make_pages``'s pages in slots as many as its weight."""
    rng = random.Random(seed_value)
    faker = Faker()
    faker.seed_instance(seed_value)
    pages = pageview_seed.make_pages(rng, faker)
    cumulative = list(itertools.accumulate(1 / (rank + 1) ** 1.1 for rank in range(len(pages))))
    return [
        (slot, *pages[bisect.bisect(cumulative, (slot + 0.5) / PAGE_SLOTS * cumulative[-1])])
        for slot in range(PAGE_SLOTS)
    ]


def seed_on_server(database_url, count, log=print, days=SERVER_SEED_DAYS, seed_value=1):
    """``count`` page views over the last ``days`` days, generated by PostgreSQL itself in
    chunks of ``INSERT ... SELECT FROM generate_series``, then the histograms in one
    ``INSERT ... SELECT ... GROUP BY`` (``histograms.add_seeded``) and a ``VACUUM ANALYZE``.
    Return the figures: seconds per phase, rows, and the tables' sizes."""
    now = utcnow()
    start = now - timedelta(days=days)
    step_us = days * 86_400_000_000 / count
    figures = {"count": count, "days": days}
    with psycopg.connect(postgres.conninfo(make_url(database_url)), autocommit=True) as conn:
        conn.execute("SET work_mem = '256MB'")
        conn.execute(CREATE_SLOTS)
        with conn.cursor().copy("COPY bench_page_slot FROM STDIN") as copy:
            for row in page_slots(seed_value):
                copy.write_row(row)
        started = time.perf_counter()
        index_definitions = drop_secondary_indexes(conn)
        for first in range(1, count + 1, SERVER_CHUNK):
            last = min(first + SERVER_CHUNK - 1, count)
            conn.execute(
                SERVER_INSERT,
                {"start": start, "step": step_us, "slots": PAGE_SLOTS, "first": first, "last": last},
            )
            log(f"    {last:,} of {count:,} page views in {time.perf_counter() - started:.0f}s")
        for definition in index_definitions:
            conn.execute(definition)
        figures["rows_s"] = time.perf_counter() - started
        phase = time.perf_counter()
        add_histograms(database_url)
        figures["histograms_s"] = time.perf_counter() - phase
        phase = time.perf_counter()
        conn.execute("VACUUM ANALYZE page_view")
        conn.execute("VACUUM ANALYZE page_view_histogram")
        conn.execute("VACUUM ANALYZE page_view_day_histogram")
        conn.execute("VACUUM ANALYZE page_view_url")
        figures["vacuum_s"] = time.perf_counter() - phase
        figures["seed_s"] = time.perf_counter() - started
        figures["rows"] = conn.execute("SELECT count(*) FROM page_view").fetchone()[0]
        figures["histogram_rows"] = conn.execute("SELECT count(*) FROM page_view_histogram").fetchone()[0]
        figures["day_histogram_rows"] = conn.execute(
            "SELECT count(*) FROM page_view_day_histogram"
        ).fetchone()[0]
        for table in ("page_view", "page_view_histogram", "page_view_day_histogram"):
            # page_view is partitioned by month: its size is its partitions' (a table that is
            # not partitioned has no partition tree, and is its own size).
            size = conn.execute(
                "SELECT coalesce((SELECT sum(pg_total_relation_size(relid)) FROM pg_partition_tree(%s)),"
                " pg_total_relation_size(%s))",
                (table, table),
            ).fetchone()[0]
            figures[f"{table}_mb"] = size / 2**20
    figures["ok"] = figures["rows"] == count
    log(f"    {describe_server_seed(figures)}")
    return figures


def drop_secondary_indexes(conn):
    """Drop page_view's indexes but its primary key; return their definitions.

    Built once over a hundred million rows, an index takes a fraction of the
    time it takes kept up row by row; the partial unique index on event ids
    stays (seeded rows have none, so it costs nothing) and with it the rule.
    """
    definitions = conn.execute(
        "SELECT indexname, indexdef FROM pg_indexes WHERE tablename = 'page_view'"
        " AND indexname NOT IN ('page_view_pkey', 'ux_page_view_event_id')"
    ).fetchall()
    for name, _ in definitions:
        conn.execute(sql.SQL("DROP INDEX {}").format(sql.Identifier(name)))
    # page_view is partitioned: pg_indexes gives its indexes as "ON ONLY page_view", which
    # would build an invalid index on the parent and none on the partitions.
    return [definition.replace(" ON ONLY ", " ON ", 1) for _, definition in definitions]


def add_histograms(database_url):
    """The rollup exactly as ``flask seed pageviews`` builds it, with room to sort in memory."""
    engine = create_engine(database_uri(database_url, None))
    try:
        with engine.begin() as conn:
            conn.execute(text("SET LOCAL work_mem = '256MB'"))
            histograms.add_seeded(conn, 0)
    finally:
        engine.dispose()


def describe_server_seed(figures):
    return (
        f"{figures['rows']:,} rows in {figures['seed_s']:.0f}s (rows {figures['rows_s']:.0f}s, histograms"
        f" {figures['histograms_s']:.0f}s, vacuum {figures['vacuum_s']:.0f}s): {figures['histogram_rows']:,}"
        f" histogram rows, {figures['day_histogram_rows']:,} without pages; page_view {figures['page_view_mb']:,.0f} MB,"
        f" page_view_histogram {figures['page_view_histogram_mb']:,.0f} MB,"
        f" page_view_day_histogram {figures['page_view_day_histogram_mb']:,.0f} MB"
    )
