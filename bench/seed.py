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

import os
import re
import sqlite3

from bench import measure
from tests.processes import BIN

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
