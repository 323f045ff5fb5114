"""Exporting a link's clicks as CSV: ``flask links clicks SLUG`` on links of 100k and 1M clicks.

One fresh SQLite database holds a link per size, its clicks written
straight into the ``click`` table (as the drain would have, minus the
rollups the export does not read). Each export runs as an operator would
type it, in a process of its own (``bench.measure``: wall time, peak RSS
from the kernel), writing to a file whose rows are then counted. Constant
memory means the peak at 1M is the peak at 100k, give or take the
allocator: the target allows ``RSS_GROWTH_TARGET_MB``.
"""

import os
import sqlite3
from datetime import datetime, timedelta

from bench import measure
from tests.processes import BIN

INSERT_CHUNK = 50_000
USER_AGENT = "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0"


def insert_link_with_clicks(path, slug, count):
    started = datetime(2026, 1, 1)
    with sqlite3.connect(path) as conn:
        cursor = conn.execute(
            "INSERT INTO link (slug, target_url, enabled, created_at, updated_at) VALUES (?, ?, 1, ?, ?)",
            (slug, f"https://example.com/{slug}", started, started),
        )
        link_id = cursor.lastrowid
        for first in range(0, count, INSERT_CHUNK):
            rows = (
                (f"{slug}-{n:010d}", link_id, started + timedelta(seconds=n), "https://news.example/", USER_AGENT,
                 "203.0.113.0", n % 10 == 0)
                for n in range(first, min(count, first + INSERT_CHUNK))
            )  # fmt: skip
            conn.executemany(
                "INSERT INTO click (event_id, link_id, created_at, referrer, user_agent, ip_anonymised, is_bot)"
                " VALUES (?, ?, ?, ?, ?, ?, ?)",
                rows,
            )
    return link_id


def export_one(stack, database_url, slug, count):
    output = os.path.join(stack.root, f"{slug}.csv")
    command = [os.path.join(BIN, "flask"), "links", "clicks", slug, "--output", output]
    figures = measure.run(command, stack.env(database_url, FLASK_APP="webapp"),
                          os.path.join(stack.log_dir("export"), f"{slug}.log"))  # fmt: skip
    figures.pop("output")
    with open(output, "rb") as exported:
        figures["rows"] = sum(1 for _ in exported) - 1  # the header
    figures["csv_mb"] = os.path.getsize(output) / 2**20
    os.remove(output)
    figures["clicks"] = count
    figures["ok"] = figures["rows"] == count
    return figures


def run(stack, sizes, log=print):
    log(f"clicks export benchmark: {', '.join(f'{size:,}' for size in sizes)} clicks")
    database_url = stack.fresh_database("export")
    path = database_url.removeprefix("sqlite:///")
    exports = []
    for count in sizes:
        slug = f"export-{count}"
        insert_link_with_clicks(path, slug, count)
        exports.append(export_one(stack, database_url, slug, count))
        log(f"  {describe(exports[-1])}")
    return {"exports": exports}


def describe(figures):
    return (
        f"{figures['clicks']:>10,} clicks: {figures['wall_s']:.1f}s wall"
        f" ({figures['clicks'] / figures['wall_s']:,.0f} rows/s), peak RSS {figures['peak_rss_mb']:.0f} MB,"
        f" CSV {figures['csv_mb']:.0f} MB, {figures['rows']:,} rows {'OK' if figures['ok'] else 'MISMATCH'}"
    )
