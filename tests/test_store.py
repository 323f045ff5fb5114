"""record_clicks against the real test database (webapp/clicks/store.py)."""

import itertools
from datetime import datetime

import pytest
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError

from webapp.clicks.store import record_clicks
from webapp.extensions import db
from webapp.links import service
from webapp.models import Click, LinkCounter, LinkHourlyClicks

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
