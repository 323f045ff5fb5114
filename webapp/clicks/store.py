"""Where a click becomes a row: click rows plus the counters kept beside them.

``record_clicks`` is the only writer of ``click`` and of the rollups the
dashboard reads instead of it: ``link_counter``, ``link_hourly_clicks``,
and ``link_hourly_dimension``. The batch drain calls it with thousands of clicks,
the per-click task with one; either way it runs inside the caller's
transaction, so rows and counters commit together or not at all.
"""

import functools
from collections import Counter, defaultdict
from datetime import UTC, datetime

import psycopg
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from webapp.clicks import dead_letters
from webapp.clicks.agents import country, describe_agent, referrer_host
from webapp.clicks.referrer_cap import cap_referrers
from webapp.dedup import chunks, rows_not_yet_recorded
from webapp.drains import AFTER_COMMIT
from webapp.links.cache import invalidate_links
from webapp.models import (
    Click,
    DeletedLink,
    Link,
    LinkCounter,
    LinkHourlyClicks,
    LinkHourlyDimension,
)
from webapp.upserts import upsert_sums

CLICK_COLUMNS = ("event_id", "link_id", "created_at", "referrer", "user_agent", "ip_anonymised", "is_bot")


def record_clicks(conn, rows, check_duplicates):
    """Insert click rows and add them to the counters; return how many were new.

    Rows for links deleted since the click drop out; rows for links this
    database never had are kept aside as dead letters (``dead_letters``). With
    ``check_duplicates`` (re-delivered or replayed messages), rows whose
    ``event_id`` is already stored drop out too, so nothing counts twice.
    """
    rows = rows_for_existing_links(conn, rows)
    if check_duplicates:
        rows = rows_not_yet_recorded(conn, Click.event_id, rows)
    clicks = [row for row in rows if not row.get("refused")]
    if clicks:
        insert_click_rows(conn, clicks)
        counters = counter_rows(clicks)
        upsert_sums(conn, LinkCounter, ["link_id"], counters, latest=["last_click_at"])
        upsert_sums(conn, LinkHourlyClicks, ["link_id", "hour"], hourly_rows(clicks))
        dimensions = cap_referrers(conn, dimension_rows(clicks))
        upsert_sums(conn, LinkHourlyDimension, ["link_id", "dimension", "hour", "value"], dimensions)
        announce_exhausted_links(conn, counters)
    if len(clicks) < len(rows):
        # Refusals have no row of their own (a replayed one can count twice; see README).
        upsert_sums(conn, LinkCounter, ["link_id"], refused_rows(row for row in rows if row.get("refused")))
    return len(rows)


def refused_rows(rows):
    return [
        {"link_id": link_id, "refused": count}
        for link_id, count in Counter(row["link_id"] for row in rows).items()
    ]


def announce_exhausted_links(conn, counters):
    """Links whose click limit this batch reached get their cache entries dropped after the
    commit, so every web process reloads them as exhausted within moments."""
    added = {row["link_id"]: row["clicks"] for row in counters if row["clicks"]}
    if not added:
        return
    crossed = []
    for chunk in chunks(added):
        query = (
            select(Link.id, LinkCounter.clicks, Link.max_clicks)
            .join(LinkCounter, LinkCounter.link_id == Link.id)
            .where(Link.id.in_(chunk), Link.max_clicks.is_not(None), LinkCounter.clicks >= Link.max_clicks)
        )
        crossed += [
            link_id for link_id, total, limit in conn.execute(query) if total - added[link_id] < limit
        ]
    if crossed:
        conn.info.setdefault(AFTER_COMMIT, []).append(lambda: invalidate_links(crossed))


def rows_for_existing_links(conn, rows):
    link_ids = {row["link_id"] for row in rows}
    existing = ids_in(conn, Link.id, link_ids)
    if existing == link_ids:
        return rows
    deleted = ids_in(conn, DeletedLink.link_id, link_ids - existing)
    strangers = [row for row in rows if row["link_id"] not in existing and row["link_id"] not in deleted]
    if strangers:
        dead_letters.keep_aside(strangers)
    return [row for row in rows if row["link_id"] in existing]


def ids_in(conn, column, ids):
    found = set()
    for chunk in chunks(ids):
        found.update(conn.scalars(select(column).where(column.in_(chunk))))
    return found


def insert_click_rows(conn, rows):
    """The bulk path of each database, on the driver itself: at thousands of rows a
    batch, SQLAlchemy's per-row parameter handling would cost more than the insert."""
    if conn.dialect.name == "postgresql":
        copy_click_rows(conn, rows)
        return
    sql = f"INSERT INTO click ({', '.join(CLICK_COLUMNS)}) VALUES ({', '.join('?' * len(CLICK_COLUMNS))})"
    conn.exec_driver_sql(sql, [click_values(row, 1 if row["is_bot"] else 0) for row in rows])


def copy_click_rows(conn, rows):
    statement = f"COPY click ({', '.join(CLICK_COLUMNS)}) FROM STDIN"
    cursor = conn.connection.driver_connection.cursor()
    try:
        with cursor.copy(statement) as copy:
            for row in rows:
                copy.write_row(click_values(row, row["is_bot"]))
    except psycopg.IntegrityError as exc:
        # COPY runs on the driver, outside SQLAlchemy's error translation; the
        # drain's duplicate handling waits for SQLAlchemy's IntegrityError.
        raise IntegrityError(statement, None, exc) from exc


@functools.lru_cache(maxsize=4096)
def second_text(whole_second):
    return datetime.fromtimestamp(whole_second, UTC).strftime("%Y-%m-%d %H:%M:%S")


def timestamp_text(row):
    """SQLAlchemy's own text form for DateTime in SQLite, so the ORM reads these back alike;
    PostgreSQL's COPY reads it too.

    Formatting a datetime per row was the drain's largest Python cost; a
    batch shares a handful of seconds, so the seconds' text is cached.
    """
    if "at" not in row:
        return f"{row['created_at']:%Y-%m-%d %H:%M:%S.%f}"
    whole, micro = row["at"]
    return f"{second_text(whole)}.{micro:06d}"


def click_values(row, is_bot):
    """A row's values in ``CLICK_COLUMNS`` order, the time as text, the bot flag as given."""
    return (
        row["event_id"],
        row["link_id"],
        timestamp_text(row),
        row["referrer"],
        row["user_agent"],
        row["ip_anonymised"],
        is_bot,
    )


def counter_rows(rows):
    totals = defaultdict(lambda: {"clicks": 0, "bot_clicks": 0, "last_click_at": None})
    for row in rows:
        total = totals[row["link_id"]]
        total["bot_clicks" if row["is_bot"] else "clicks"] += 1
        if total["last_click_at"] is None or row["created_at"] > total["last_click_at"]:
            total["last_click_at"] = row["created_at"]
    return [{"link_id": link_id, **total} for link_id, total in totals.items()]


def hour_of(row):
    """The hour a click falls in: ``click_row`` gives it; rows built otherwise have their time only."""
    hour = row.get("hour")
    return hour if hour is not None else row["created_at"].replace(minute=0, second=0, microsecond=0)


def hourly_rows(rows):
    totals = Counter((row["link_id"], hour_of(row), row["is_bot"]) for row in rows)
    hourly = defaultdict(lambda: {"clicks": 0, "bot_clicks": 0})
    for (link_id, hour, is_bot), count in totals.items():
        hourly[(link_id, hour)]["bot_clicks" if is_bot else "clicks"] += count
    return [{"link_id": link_id, "hour": hour, **total} for (link_id, hour), total in hourly.items()]


def dimension_rows(rows):
    """Per link, hour and dimension value: people by referrer, country, device, OS and
    browser; bots by name. Dimensions are read here, in the drain, not on the redirect.

    Counted first by (link, hour, the raw value), each distinct value then looked up
    once: a batch of thousands of clicks holds a few hundred agents, referrers and
    networks, and a lookup per click was most of the drain's Python time."""
    totals = Counter()
    agents = Counter((row["link_id"], hour_of(row), row["user_agent"], row["is_bot"]) for row in rows)
    for (link_id, hour, user_agent, is_bot), count in agents.items():
        agent = describe_agent(user_agent)
        if is_bot:
            totals[(link_id, hour, "bot", agent.bot or agent.browser or "Unknown bot")] += count
            continue
        totals[(link_id, hour, "device", agent.device)] += count
        totals[(link_id, hour, "os", agent.os)] += count
        totals[(link_id, hour, "browser", agent.browser)] += count
    people = [(row["link_id"], hour_of(row), row) for row in rows if not row["is_bot"]]
    referrers = Counter((link_id, hour, row["referrer"]) for link_id, hour, row in people)
    for (link_id, hour, referrer), count in referrers.items():
        totals[(link_id, hour, "referrer", referrer_host(referrer))] += count
    networks = Counter((link_id, hour, row["ip_anonymised"]) for link_id, hour, row in people)
    for (link_id, hour, network), count in networks.items():
        totals[(link_id, hour, "country", country(network))] += count
    return [
        {"link_id": link_id, "hour": hour, "dimension": dimension, "value": value, "clicks": count}
        for (link_id, hour, dimension, value), count in totals.items()
    ]
