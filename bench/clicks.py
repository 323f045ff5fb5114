"""Shared click helpers: links to click on, realistic events, draining, counting.

All of it goes through the app's own code (``create_link``,
``make_click_event``, ``buffer.append``, ``drain_click_buffer``); only the
choice of referrers, user agents and addresses is the benchmark's.
Functions taking no app run inside the caller's app context.
"""

import random

from sqlalchemy import func, select

from webapp.clicks import buffer, drain, spool
from webapp.clicks.events import make_click_event
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


def create_links(count, prefix):
    """``count`` enabled links with slugs ``prefix-0`` ...; return their ids."""
    ids = []
    for n in range(count):
        link, _ = create_link(f"https://example.com/{prefix}/{n}", None, slug=f"{prefix}-{n}")
        ids.append(link.id)
    return ids


def click_events(count, link_ids, seed=1):
    """``count`` click messages over ``link_ids``, a few links much hotter than the rest."""
    rng = random.Random(seed)
    weights = [1 / (rank + 1) for rank in range(len(link_ids))]
    for link_id in rng.choices(link_ids, weights, k=count):
        if rng.random() < 0.1:
            ip = f"2001:db8:{rng.randrange(65536):x}::{rng.randrange(65536):x}"
        else:
            ip = f"198.51.{rng.randrange(256)}.{rng.randrange(256)}"
        method = "HEAD" if rng.random() < 0.02 else "GET"
        event = make_click_event(method, rng.choice(REFERRERS), rng.choice(USER_AGENTS), ip)
        event["l"] = str(link_id)
        yield event


def push(client, events, chunk=1000):
    """Append events to the click stream, ``chunk`` per round trip; return how many."""
    pushed, pending = 0, []
    for event in events:
        pending.append(event)
        if len(pending) == chunk:
            buffer.append(client, pending)
            pushed, pending = pushed + len(pending), []
    if pending:
        buffer.append(client, pending)
        pushed += len(pending)
    return pushed


def drain_until_empty(client, engine, batch_size=5000, max_batches=20):
    """Call the app's drain until the stream is empty; return the clicks it recorded."""
    recorded = 0
    for _ in range(100_000):
        recorded += drain.drain_click_buffer(client, engine, CONSUMER, batch_size, max_batches, 60)
        if client.xlen(buffer.CLICK_STREAM) == 0:
            return recorded
    raise RuntimeError("the click stream did not empty")


def settle(client, engine):
    """Push spooled clicks (from a Redis hiccup) back to the stream, then drain everything."""
    replayed = spool.replay_all()
    return replayed, drain_until_empty(client, engine)


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
