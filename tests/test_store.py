"""record_clicks against the real test database (webapp/clicks/store.py), and the
click drain that feeds it from the stream (webapp/clicks/drain.py), in-process."""

import itertools
import threading
import time
from datetime import datetime

import pytest
from sqlalchemy import func, select, text
from sqlalchemy.exc import IntegrityError, OperationalError

from tests.processes import wait_for
from webapp.clicks import buffer
from webapp.clicks.buffer import CLICK_BUFFER
from webapp.clicks.drain import CLICK_DRAIN
from webapp.clicks.events import click_row, encode_click
from webapp.clicks.store import record_clicks
from webapp.extensions import db
from webapp.links import service
from webapp.models import Click, LinkCounter, LinkHourlyClicks
from webapp.streams import LINES_PER_ENTRY

EVENT_IDS = (f"event-{number}" for number in itertools.count())
TEN_PAST_NINE = datetime(2026, 3, 1, 9, 10)


def click(link, at=TEN_PAST_NINE, is_bot=False, event_id=None):
    """A click row as ``click_row`` makes it."""
    return {
        "event_id": event_id or next(EVENT_IDS),
        "link_id": getattr(link, "id", link),  # a Link or a bare id
        "created_at": at,
        "referrer": "https://news.example/",
        "user_agent": "Mozilla/5.0",
        "ip_anonymised": "203.0.113.0",
        "is_bot": is_bot,
    }


def record(rows, check_duplicates=False):
    with db.engine.begin() as conn:
        return record_clicks(conn, rows, check_duplicates)


def counter(link):
    with db.engine.connect() as conn:
        row = conn.execute(select(LinkCounter).where(LinkCounter.link_id == link.id)).one_or_none()
    return row and (row.clicks, row.bot_clicks, row.last_click_at)


def hourly(link):
    with db.engine.connect() as conn:
        rows = conn.execute(
            select(LinkHourlyClicks.hour, LinkHourlyClicks.clicks, LinkHourlyClicks.bot_clicks)
            .where(LinkHourlyClicks.link_id == link.id)
            .order_by(LinkHourlyClicks.hour)
        )
        return [tuple(row) for row in rows]


def click_count():
    with db.engine.connect() as conn:
        return conn.scalar(select(func.count()).select_from(Click))


@pytest.fixture
def link(app, user):
    return service.create_link("https://example.com/a", user, slug="alpha")[0]


@pytest.fixture
def other_link(app, user):
    return service.create_link("https://example.com/b", user, slug="beta")[0]


def test_each_click_becomes_one_row(link):
    assert record([click(link), click(link), click(link, is_bot=True)]) == 3
    assert click_count() == 3


def test_row_keeps_the_click_fields(link):
    row = click(link, is_bot=True)
    record([row])
    with db.engine.connect() as conn:
        stored = conn.execute(select(Click)).one()
    assert (stored.event_id, stored.link_id, stored.created_at, stored.referrer, stored.is_bot) == (
        row["event_id"],
        link.id,
        TEN_PAST_NINE,
        "https://news.example/",
        True,
    )


def test_row_keeps_every_column_exactly(link):
    # The insert is a hand-written executemany: each column must land in its own place.
    row = {
        "event_id": "0123456789abcdef0123456789abcdef",
        "link_id": link.id,
        "created_at": datetime(2026, 3, 1, 9, 59, 59, 999999),
        "referrer": "https://news.example/item?id=1",
        "user_agent": "Mozilla/5.0 (X11; Linux x86_64)",
        "ip_anonymised": "2001:db8:abcd::",
        "is_bot": False,
    }
    record([row])
    stored = db.session.scalars(select(Click)).one()
    assert {column: getattr(stored, column) for column in row} == row


def test_empty_optional_columns_are_stored_as_null(link):
    row = {**click(link), "referrer": None, "user_agent": None, "ip_anonymised": None}
    record([row])
    stored = db.session.scalars(select(Click)).one()
    assert (stored.referrer, stored.user_agent, stored.ip_anonymised, stored.is_bot) == (
        None,
        None,
        None,
        False,
    )


def test_rows_made_from_click_lines_are_recorded(link):
    at = datetime(2026, 3, 1, 9, 10, 11, 123000)
    seconds = (at - datetime(1970, 1, 1)).total_seconds()
    line = encode_click(link.id, "GET", "https://news.example/", "Mozilla/5.0", "203.0.113.77", at=seconds)
    assert record([click_row(line)]) == 1
    stored = db.session.scalars(select(Click)).one()
    assert (stored.event_id, stored.created_at, stored.ip_anonymised) == (
        line.split("\t")[0],
        at,
        "203.0.113.0",
    )


def test_counter_counts_human_and_bot_clicks_apart(link):
    record([click(link), click(link), click(link, is_bot=True)])
    assert counter(link)[:2] == (2, 1)


def test_counter_last_click_is_the_latest_in_the_batch(link):
    record([click(link, at=datetime(2026, 3, 1, 9, 30)), click(link, at=datetime(2026, 3, 1, 9, 45))])
    assert counter(link)[2] == datetime(2026, 3, 1, 9, 45)


def test_second_batch_adds_to_the_counter(link):
    record([click(link), click(link, is_bot=True)])
    record([click(link), click(link), click(link, is_bot=True)])
    assert counter(link)[:2] == (3, 2)


def test_later_batch_moves_last_click_forward(link):
    record([click(link, at=datetime(2026, 3, 1, 9, 0))])
    record([click(link, at=datetime(2026, 3, 1, 11, 0))])
    assert counter(link)[2] == datetime(2026, 3, 1, 11, 0)


def test_older_batch_does_not_move_last_click_back(link):
    record([click(link, at=datetime(2026, 3, 1, 11, 0))])
    record([click(link, at=datetime(2026, 3, 1, 9, 0))])
    assert counter(link)[2] == datetime(2026, 3, 1, 11, 0)


def test_counters_are_kept_per_link(link, other_link):
    record([click(link), click(link), click(other_link, is_bot=True)])
    assert (counter(link)[:2], counter(other_link)[:2]) == ((2, 0), (0, 1))


def test_hourly_rollup_buckets_clicks_by_hour(link):
    record(
        [
            click(link, at=datetime(2026, 3, 1, 9, 0, 0)),
            click(link, at=datetime(2026, 3, 1, 9, 59, 59, 999999), is_bot=True),
            click(link, at=datetime(2026, 3, 1, 10, 0, 0)),
        ]
    )
    assert hourly(link) == [(datetime(2026, 3, 1, 9), 1, 1), (datetime(2026, 3, 1, 10), 1, 0)]


def test_hourly_rollup_adds_across_batches(link):
    record([click(link, at=datetime(2026, 3, 1, 9, 5))])
    record(
        [
            click(link, at=datetime(2026, 3, 1, 9, 55)),
            click(link, at=datetime(2026, 3, 1, 9, 56), is_bot=True),
        ]
    )
    assert hourly(link) == [(datetime(2026, 3, 1, 9), 2, 1)]


def test_redelivered_event_is_skipped_with_duplicate_check(link):
    first = click(link)
    record([first])
    assert record([first, click(link)], check_duplicates=True) == 1
    assert (click_count(), counter(link)[0]) == (2, 2)


def test_duplicates_inside_one_batch_count_once_with_duplicate_check(link):
    repeated = click(link)
    assert record([repeated, dict(repeated), dict(repeated)], check_duplicates=True) == 1
    assert (click_count(), counter(link)[0], hourly(link)[0][1]) == (1, 1, 1)


def test_redelivered_batch_without_duplicate_check_fails_whole(link):
    # The drain relies on this: it retries the batch with the check on.
    first = click(link)
    record([first])
    with pytest.raises(IntegrityError):
        record([click(link), first])
    assert (click_count(), counter(link)[0]) == (1, 1)


def test_clicks_for_a_deleted_link_are_dropped(link, other_link):
    doomed = click(other_link)
    service.delete_link(other_link)
    assert record([click(link), doomed]) == 1
    assert click_count() == 1


def test_clicks_for_a_link_that_never_existed_are_dropped(link):
    assert record([click(999_999), click(999_998)], check_duplicates=True) == 0
    assert (click_count(), counter(link)) == (0, None)


def test_empty_batch_records_nothing(link):
    assert record([]) == 0
    assert record([], check_duplicates=True) == 0
    assert click_count() == 0


# --- the drain, in-process ----------------------------------------------------


def lines_for(link, count, method="GET"):
    return [encode_click(link.id, method, None, "Mozilla/5.0", "203.0.113.9") for _ in range(count)]


def drain(redis_client, batch_size=100, max_batches=10, reclaim_idle_seconds=60):
    return CLICK_DRAIN.drain(redis_client, db.engine, "tests", batch_size, max_batches, reclaim_idle_seconds)


def test_drain_records_each_buffered_line(link, redis_client):
    CLICK_BUFFER.append(redis_client, lines_for(link, 3) + lines_for(link, 2, method="HEAD"))
    assert drain(redis_client) == 5
    assert counter(link)[:2] == (3, 2)


def test_drain_empties_the_buffer_and_counts_what_it_drained(link, redis_client):
    CLICK_BUFFER.append(redis_client, lines_for(link, 4))
    drain(redis_client)
    assert redis_client.xlen(CLICK_BUFFER.stream) == 0
    assert redis_client.xpending(CLICK_BUFFER.stream, CLICK_BUFFER.group)["pending"] == 0
    assert buffer.counters(redis_client) == {
        "clicks_buffered": 4,
        "clicks_drained": 4,
        "clicks_dropped": 0,
        "clicks_shipped_late": 0,
        "clicks_dead_lettered": 0,
    }


def test_drain_reads_batch_after_batch_up_to_its_limit(link, redis_client):
    for line in lines_for(link, 25):
        CLICK_BUFFER.append(redis_client, [line])  # 25 entries of one line each
    # A batch of 1,000 lines is 10 entries of up to LINES_PER_ENTRY (100) lines.
    assert drain(redis_client, batch_size=10 * LINES_PER_ENTRY, max_batches=2) == 20
    # The read-ahead stops at the limit: nothing is left delivered but unacknowledged.
    assert redis_client.xpending(CLICK_BUFFER.stream, CLICK_BUFFER.group)["pending"] == 0
    assert redis_client.xlen(CLICK_BUFFER.stream) == 5
    assert drain(redis_client, batch_size=10 * LINES_PER_ENTRY, max_batches=2) == 5


def test_lines_travel_a_hundred_to_a_stream_entry(link, redis_client):
    CLICK_BUFFER.append(redis_client, lines_for(link, 250))
    assert redis_client.xlen(CLICK_BUFFER.stream) == 3  # 100 + 100 + 50
    assert buffer.counters(redis_client)["clicks_buffered"] == 250
    assert drain(redis_client) == 250
    assert counter(link)[0] == 250


def test_drain_of_many_batches_records_and_acknowledges_each(link, other_link, redis_client):
    CLICK_BUFFER.append(redis_client, lines_for(link, 230) + lines_for(other_link, 70))
    assert drain(redis_client, batch_size=40, max_batches=100) == 300
    assert (counter(link)[0], counter(other_link)[0], click_count()) == (230, 70, 300)
    assert redis_client.xlen(CLICK_BUFFER.stream) == 0
    assert buffer.counters(redis_client)["clicks_drained"] == 300


def test_drain_stops_on_a_database_error_and_leaves_unwritten_batches_pending(
    link, redis_client, monkeypatch
):
    for line in lines_for(link, 30):
        CLICK_BUFFER.append(redis_client, [line])  # 30 entries of one line
    writes = []

    def fail_on_second(engine, rows, check_duplicates, dropped=0):
        writes.append(len(rows))
        if len(writes) == 2:
            raise OperationalError("INSERT", {}, Exception("database went away"))
        return record(rows, check_duplicates)

    monkeypatch.setattr(CLICK_DRAIN, "commit_rows", fail_on_second)
    with pytest.raises(OperationalError):
        drain(redis_client, batch_size=10 * LINES_PER_ENTRY)  # 10 entries
    monkeypatch.undo()
    # The first batch is recorded and acknowledged; the failed one and the one read ahead wait.
    assert counter(link)[0] == 10
    assert redis_client.xpending(CLICK_BUFFER.stream, CLICK_BUFFER.group)["pending"] == 20
    assert (
        drain(redis_client, batch_size=20 * LINES_PER_ENTRY, reclaim_idle_seconds=0) == 20
    )  # one reclaim of 20
    assert (counter(link)[0], click_count()) == (30, 30)


def test_drain_drops_a_message_without_the_click_field(link, redis_client):
    CLICK_BUFFER.append(redis_client, lines_for(link, 2))
    redis_client.xadd(CLICK_BUFFER.stream, {"other": "field"})  # not ours: no "c"
    assert drain(redis_client) == 2
    assert redis_client.xlen(CLICK_BUFFER.stream) == 0
    assert buffer.counters(redis_client)["clicks_dropped"] == 1


def test_drain_counts_a_line_shipped_twice_once(link, redis_client):
    # A click log shipped twice (its shipper killed between XADD and unlink).
    lines = lines_for(link, 3)
    CLICK_BUFFER.append(redis_client, lines)
    CLICK_BUFFER.append(redis_client, lines[:2])
    assert drain(redis_client) == 3
    assert (click_count(), counter(link)[0]) == (3, 3)
    assert buffer.counters(redis_client)["clicks_dropped"] == 2


def test_drain_counts_a_line_already_recorded_in_an_earlier_run_once(link, redis_client):
    lines = lines_for(link, 2)
    CLICK_BUFFER.append(redis_client, lines)
    drain(redis_client)
    CLICK_BUFFER.append(redis_client, lines[:1] + lines_for(link, 1))
    assert drain(redis_client) == 1
    assert counter(link)[0] == 3


def test_drain_drops_malformed_lines_and_keeps_the_rest(link, redis_client):
    CLICK_BUFFER.append(redis_client, ["not a click", *lines_for(link, 2), "x\tseven\t0\t\t\t\t"])
    assert drain(redis_client) == 2
    assert redis_client.xlen(CLICK_BUFFER.stream) == 0
    assert buffer.counters(redis_client)["clicks_dropped"] == 2


def test_drain_drops_clicks_of_a_deleted_link(link, other_link, redis_client):
    CLICK_BUFFER.append(redis_client, lines_for(link, 1) + lines_for(other_link, 2))
    service.delete_link(other_link)
    assert drain(redis_client) == 1


def test_drain_takes_over_messages_a_dead_drain_left_pending(link, redis_client):
    CLICK_BUFFER.append(redis_client, lines_for(link, 3))
    CLICK_BUFFER.ensure_group(redis_client)
    CLICK_BUFFER.shards[0].read_new(redis_client, "dead-drain", 10)  # delivered, never acknowledged
    assert drain(redis_client, reclaim_idle_seconds=0) == 3
    assert redis_client.xpending(CLICK_BUFFER.stream, CLICK_BUFFER.group)["pending"] == 0


def test_drain_leaves_a_slow_drain_messages_until_they_are_idle_long_enough(link, redis_client):
    CLICK_BUFFER.append(redis_client, lines_for(link, 3))
    CLICK_BUFFER.ensure_group(redis_client)
    CLICK_BUFFER.shards[0].read_new(redis_client, "slow-drain", 10)
    assert drain(redis_client, reclaim_idle_seconds=60) == 0
    assert redis_client.xpending(CLICK_BUFFER.stream, CLICK_BUFFER.group)["pending"] == 1  # one entry of 3


def test_drain_of_messages_committed_before_a_crash_counts_them_once(link, redis_client):
    # A drain that committed and died before its XACK: the reclaim finds them stored.
    CLICK_BUFFER.append(redis_client, lines_for(link, 3))
    CLICK_BUFFER.ensure_group(redis_client)
    messages = CLICK_BUFFER.shards[0].read_new(redis_client, "dead-drain", 10)
    CLICK_DRAIN.commit_rows(
        db.engine, [click_row(line) for _, text in messages for line in text.split("\n")], False
    )
    assert drain(redis_client, reclaim_idle_seconds=0) == 0
    assert (click_count(), counter(link)[0]) == (3, 3)


def test_every_drain_run_records_when_it_ran(link, redis_client):
    drain(redis_client)  # even with nothing to drain
    assert float(redis_client.get(CLICK_BUFFER.last_drain_key)) == pytest.approx(time.time(), abs=5)


# Row locks: SQLite takes one lock for the whole database, so only PostgreSQL has
# counter rows two drains can take in opposite orders.
@pytest.mark.postgres
def test_drains_sharing_links_take_counter_locks_in_one_order(link, other_link):
    # A drain holding ``link``'s counter (it locks in id order) and then asking for
    # ``other_link``'s must not deadlock with a drain whose batch names other_link first.
    record([click(link), click(other_link)])  # both counter rows exist
    results, engine = [], db.engine

    def second_drain():
        with engine.begin() as conn:
            results.append(record_clicks(conn, [click(other_link), click(link)], False))

    with engine.connect() as first:
        first.begin()
        record_clicks(first, [click(link)], False)  # holds link's counter row
        second = threading.Thread(target=second_drain)
        second.start()
        wait_for_a_backend_waiting_on_a_lock()
        record_clicks(first, [click(other_link)], False)  # deadlock here if the second holds other_link
        first.commit()
    second.join(timeout=30)
    assert results == [2]
    assert (counter(link)[0], counter(other_link)[0]) == (3, 3)


def wait_for_a_backend_waiting_on_a_lock(timeout=10):
    query = text("SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock'")

    def a_backend_waits():
        with db.engine.connect() as conn:
            return conn.scalar(query) > 0

    wait_for(a_backend_waits, timeout, 0.05, "the second drain to wait for the first")
