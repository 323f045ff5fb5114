"""Periods in a user's time zone: presets, custom dates, the period before, buckets (pure logic)."""

from datetime import datetime

import pytest

from webapp.periods import InvalidPeriod, add_months, resolve

NOW = datetime(2026, 3, 18, 15, 20)  # naive UTC, a Wednesday


def span(period):
    return period.start, period.end, period.bucket


@pytest.mark.parametrize(
    ("preset", "start", "end", "bucket"),
    [
        ("today", datetime(2026, 3, 18), datetime(2026, 3, 18, 16), "hour"),
        ("7d", datetime(2026, 3, 12), datetime(2026, 3, 18, 16), "day"),
        ("30d", datetime(2026, 2, 17), datetime(2026, 3, 18, 16), "day"),
        ("month", datetime(2026, 3, 1), datetime(2026, 3, 18, 16), "day"),
        ("12mo", datetime(2025, 4, 1), datetime(2026, 3, 18, 16), "month"),
    ],
)
def test_presets_run_from_a_local_midnight_to_the_end_of_the_current_hour(preset, start, end, bucket):
    assert span(resolve(preset, None, None, "UTC", NOW)) == (start, end, bucket)


def test_a_preset_is_the_users_days_not_utcs():
    # 15:20 UTC is 02:20 the next day in Sydney (UTC+11 in March).
    period = resolve("today", None, None, "Australia/Sydney", NOW)
    assert span(period) == (datetime(2026, 3, 19), datetime(2026, 3, 19, 3), "hour")
    assert period.utc_start == datetime(2026, 3, 18, 13)


@pytest.mark.parametrize(
    ("first", "last", "bucket", "buckets"),
    [("2026-03-01", "2026-03-02", "hour", 48), ("2026-03-01", "2026-03-31", "day", 31),
     ("2025-01-01", "2026-03-31", "week", 66), ("2020-01-01", "2026-03-31", "month", 75)],
)  # fmt: skip
def test_a_custom_range_includes_both_dates_and_its_bucket_follows_its_length(first, last, bucket, buckets):
    period = resolve("custom", first, last, "UTC", NOW)
    assert period.bucket == bucket and len(period.bucket_starts()) == buckets
    assert period.start == datetime.fromisoformat(first)


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (("custom", "2026-03-05", "2026-03-01", "UTC"), "must not be after"),
        (("custom", None, "2026-03-01", "UTC"), "needs a from date"),
        (("custom", "yesterday", None, "UTC"), "from must be a date"),
        (("custom", "1999-12-31", None, "UTC"), "between the years 2000 and 9998"),
        (("custom", "2000-01-01", "2026-01-01", "UTC"), "at most 3660 days"),
        (("decade", None, None, "UTC"), "range must be one of"),
        (("7d", None, None, "Mars/Olympus"), "unknown time zone 'Mars/Olympus'"),
        (("7d", None, None, "../../etc/passwd"), "unknown time zone"),
        (("7d", None, None, "x" * 500), "unknown time zone"),
    ],
)
def test_a_period_that_cannot_be_answered_says_why(args, words):
    with pytest.raises(InvalidPeriod, match=words):
        resolve(*args, NOW)


def test_the_period_before_has_the_same_length():
    week = resolve("7d", None, None, "UTC", NOW).previous()
    assert span(week)[:2] == (datetime(2026, 3, 5, 8), datetime(2026, 3, 12))
    custom = resolve("custom", "2026-03-01", "2026-03-03", "UTC", NOW).previous()
    assert span(custom)[:2] == (datetime(2026, 2, 26), datetime(2026, 3, 1))


def test_today_is_compared_with_yesterday_up_to_the_same_hour():
    assert span(resolve("today", None, None, "UTC", NOW).previous())[:2] == (
        datetime(2026, 3, 17),
        datetime(2026, 3, 17, 16),
    )


def test_this_month_is_compared_with_the_same_days_of_the_month_before():
    before = resolve("month", None, None, "UTC", NOW).previous()
    assert span(before)[:2] == (datetime(2026, 2, 1), datetime(2026, 2, 18, 16))


def test_in_a_half_hour_zone_an_hour_counts_where_it_starts():
    period = resolve("custom", "2026-03-01", "2026-03-02", "Asia/Kolkata", NOW)  # UTC+5:30
    assert period.utc_start == datetime(2026, 2, 28, 18, 30)
    assert period.bucket_of(datetime(2026, 2, 28, 19)) == datetime(2026, 3, 1, 0)  # 00:30 local
    assert period.bucket_of(datetime(2026, 3, 1, 18)) == datetime(2026, 3, 1, 23)  # 23:30 local


def test_across_the_spring_change_every_utc_hour_has_a_bucket():
    period = resolve("custom", "2026-03-08", "2026-03-08", "America/New_York", NOW)
    starts = set(period.bucket_starts())
    hours = [
        datetime(2026, 3, 8, 5) + (datetime(2026, 1, 1, 1) - datetime(2026, 1, 1)) * n for n in range(23)
    ]
    assert all(period.bucket_of(hour) in starts for hour in hours)


def test_months_are_added_with_the_day_capped_at_the_months_end():
    assert add_months(datetime(2026, 1, 31), 1) == datetime(2026, 2, 28)
    assert add_months(datetime(2026, 3, 1), -12) == datetime(2025, 3, 1)
    assert add_months(datetime(2026, 12, 15), 1) == datetime(2027, 1, 15)
