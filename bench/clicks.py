"""Shared click helpers: links to click on, realistic click lines, shipping, draining, counting.

All of it goes through the app's own code (``create_link``, ``encode_click``,
``CLICK_BUFFER.append``, ``CLICK_DRAIN.drain``, ``click_log.ship_orphans``);
only the choice of referrers, user agents and addresses is the benchmark's.
Functions taking no app run inside the caller's app context.
"""

import contextlib
import os
import random
import time

from sqlalchemy import func, select

from webapp.clicks import click_log
from webapp.clicks.buffer import CLICK_BUFFER
from webapp.clicks.drain import CLICK_DRAIN
from webapp.clicks.events import encode_click
from webapp.extensions import db
from webapp.links.service import create_link
from webapp.models import Click, LinkCounter

CONSUMER = "bench-drain"
REFERRERS = [None, None, "https://news.ycombinator.com/", "https://www.google.com/", "https://t.co/x1y2z3"]
USER_AGENTS = [
    None,
    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0 Safari/537.36",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 18_1 like Mac OS X) AppleWebKit/605.1.15 Version/18.1 Mobile Safari",
    "curl/8.5.0",
    "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)",
]
# The shippers run every CLICK_SHIP_INTERVAL (0.1 s): the buffered counter
# standing still for this long, with every log file empty, means all shipped.
SHIPPED_QUIET_S = 0.3


def create_links(count, prefix):
    """``count`` enabled links with slugs ``prefix-0`` ...; return their ids."""
    ids = []
    for n in range(count):
        link, _ = create_link(f"https://example.com/{prefix}/{n}", None, slug=f"{prefix}-{n}")
        ids.append(link.id)
    return ids


def click_lines(count, link_ids, seed=1, weights=None):
    """``count`` click lines over ``link_ids``; by default a few links much hotter than the rest."""
    rng = random.Random(seed)
    weights = weights or [1 / (rank + 1) for rank in range(len(link_ids))]
    for link_id in rng.choices(link_ids, weights, k=count):
        if rng.random() < 0.1:
            ip = f"2001:db8:{rng.randrange(65536):x}::{rng.randrange(65536):x}"
        else:
            ip = f"198.51.{rng.randrange(256)}.{rng.randrange(256)}"
        method = "HEAD" if rng.random() < 0.02 else "GET"
        yield encode_click(link_id, method, rng.choice(REFERRERS), rng.choice(USER_AGENTS), ip)


def push(client, lines, chunk=1000):
    """Append click lines to the click stream, ``chunk`` per round trip; return how many."""
    pushed, pending = 0, []
    for line in lines:
        pending.append(line)
        if len(pending) == chunk:
            CLICK_BUFFER.append(client, pending)
            pushed, pending = pushed + len(pending), []
    if pending:
        CLICK_BUFFER.append(client, pending)
        pushed += len(pending)
    return pushed


def drain_until_empty(client, engine, batch_size=5000, max_batches=20):
    """Call the app's drain until the stream is empty; return the clicks it recorded."""
    recorded = 0
    for _ in range(100_000):
        recorded += CLICK_DRAIN.drain(client, engine, CONSUMER, batch_size, max_batches, 60)
        if client.xlen(CLICK_BUFFER.stream) == 0:
            return recorded
    raise RuntimeError("the click stream did not empty")


def unshipped_bytes(log_dir):
    """Bytes of click lines still in ``log_dir``'s files (0 once everything is shipped)."""
    total = 0
    try:
        names = os.listdir(log_dir)
    except FileNotFoundError:
        return 0
    for name in names:
        with contextlib.suppress(FileNotFoundError):  # shipped and deleted meanwhile
            total += os.path.getsize(os.path.join(log_dir, name)) if name.endswith(".log") else 0
    return total


def wait_shipped(client, log_dir, timeout=20.0):
    """Wait until the web workers' shippers have moved every logged click to the stream.

    Done when ``clicks_buffered`` has not moved for ``SHIPPED_QUIET_S`` and
    every file in ``log_dir`` is empty. Halfway to ``timeout``, files left by
    dead workers (a gunicorn restart) are shipped with ``ship_orphans``.
    Returns (seconds waited, bytes still unshipped: 0 unless it timed out).
    """
    started = time.monotonic()
    last, still_since, orphans_tried = None, started, False
    while True:
        buffered, now = client.get(CLICK_BUFFER.buffered_key), time.monotonic()
        if buffered != last:
            last, still_since = buffered, now
        left = unshipped_bytes(log_dir)
        if not left and now - still_since >= SHIPPED_QUIET_S:
            return now - started, 0
        if now - started > timeout:
            return now - started, left
        if not orphans_tried and now - started > timeout / 2:
            click_log.ship_orphans(log_dir, client)
            orphans_tried = True
        time.sleep(0.02)


def settle(client, engine, log_dir):
    """Wait for the shippers, then drain everything; return (seconds waited, bytes unshipped)."""
    waited = wait_shipped(client, log_dir)
    drain_until_empty(client, engine)
    return waited


def shipped_late(client):
    """Clicks shipped by another process than the one that logged them."""
    return int(client.get(CLICK_BUFFER.shipped_late_key) or 0)


def counted(engine=None, link_ids=None):
    """Clicks (human and bot) in ``link_counter``, for ``link_ids`` or all links."""
    query = select(func.coalesce(func.sum(LinkCounter.clicks + LinkCounter.bot_clicks), 0))
    if link_ids is not None:
        query = query.where(LinkCounter.link_id.in_(link_ids))
    with (engine or db.engine).connect() as conn:
        return int(conn.scalar(query))


def click_rows(engine=None):
    with (engine or db.engine).connect() as conn:
        return int(conn.scalar(select(func.count()).select_from(Click)))
