"""The slow-page report engine (webapp/reports/slow_pageviews.py) and its parameters.

``compute`` runs day-by-day SQL histograms; each result here is checked
against ``reference_report``, a plain Python pass over the rows (an
independent oracle: no SQL), on seeded and on hand-built page views.
"""

import math
import subprocess
import sys
from collections import defaultdict
from datetime import datetime, time, timedelta
from fractions import Fraction

import pytest
from sqlalchemy import select

from webapp import PROJECT_ROOT
from webapp.extensions import db
from webapp.models import PageView, utcnow
from webapp.pageviews import seed
from webapp.pageviews.ingest import PAGEVIEW_DRAIN, app_pageview_log
from webapp.redis_client import worker_redis
from webapp.reports import slow_pageviews
from webapp.reports.params import (
    MAX_FILTER_LENGTH,
    InvalidReportParams,
    SlowReportParams,
)

# Mid-afternoon, with microseconds: the window's first and last UTC days are partial.
NOW = datetime(2026, 11, 21, 15, 30, 12, 345678)
SEED = 7

# Hand-built views whose URLs hold LIKE's special characters and mixed case.
SPECIAL_URLS = [
    "/promo/100%-off",
    "/promo/100x-off",
    "/a_b",
    "/axb",
    "/path\\to",
    "/path/to",
    "/Blog/Upper-Case",
    "/blog/lower-case",
    "/BLOG",
    "/plain",
]


def ascii_lower(text):
    """Lower-case ASCII letters only: what SQLite's LIKE ignores the case of."""
    return "".join(char.lower() if char.isascii() else char for char in text)


def nearest_rank(sorted_values, p):
    if not sorted_values:
        return None
    rank = max(1, math.ceil(Fraction(p * len(sorted_values), 100)))
    return sorted_values[rank - 1]


def reference_report(rows, params, now):
    """The report computed row by row in Python, independently of the SQL engine."""
    since = now - timedelta(days=params.days)
    needle = ascii_lower(params.url_contains)
    views = [(url, at, ms) for url, at, ms in rows if since <= at < now and needle in ascii_lower(url)]
    slow = [(url, at, ms) for url, at, ms in views if ms >= params.min_ms]

    days = []
    day = since.date()
    while datetime.combine(day, time.min) < now:
        days.append(day)
        day += timedelta(days=1)
    per_day = [
        {
            "day": day.isoformat(),
            "views": sum(1 for _, at, _ in views if at.date() == day),
            "slow": sum(1 for _, at, _ in slow if at.date() == day),
        }
        for day in days
    ]

    by_url = defaultdict(list)
    for url, _, ms in slow:
        by_url[url].append(ms)
    ranked = sorted(by_url.items(), key=lambda item: (-len(item[1]), -max(item[1]), item[0]))
    slowest = [
        {"url": url, "slow_views": len(times), "avg_ms": round(sum(times) / len(times)), "max_ms": max(times)}
        for url, times in ranked[: slow_pageviews.SLOWEST_URLS]
    ]

    times = sorted(ms for _, _, ms in views)
    return {
        "params": {"days": params.days, "min_ms": params.min_ms, "url_contains": params.url_contains},
        "window_start": since.isoformat() + "Z",
        "window_end": now.isoformat() + "Z",
        "slow_views": len(slow),
        "total_views": len(views),
        "slow_share": round(len(slow) / len(views), 4) if views else 0.0,
        "percentiles_ms": {f"p{p}": nearest_rank(times, p) for p in (50, 95, 99)},
        "slow_per_day": per_day,
        "slowest_urls": slowest,
    }


def insert(rows):
    seed.bulk_insert(db.engine, rows)
    return rows


def compute(params, now=NOW):
    with db.engine.connect() as conn:
        return slow_pageviews.compute(conn, params, now)


@pytest.fixture
def seeded_rows(app):
    """8,000 seeded views over the 40 days before NOW, plus the hand-built special URLs."""
    rows = list(seed.generate(8000, 40, SEED, now=NOW))
    for index, url in enumerate(SPECIAL_URLS):
        for offset in range(3):
            at = NOW - timedelta(days=index + 1, hours=offset)
            rows.append((url, at, 900 + 100 * offset + index))
    return insert(rows)


PARAM_SETS = {
    "defaults": SlowReportParams(),
    "min_ms_0": SlowReportParams(min_ms=0),
    "no_filter": SlowReportParams(url_contains=""),
    "filter_matching_nothing": SlowReportParams(url_contains="no-such-page-anywhere"),
    "upper_case_filter": SlowReportParams(days=7, min_ms=500, url_contains="BLOG"),
    "percent_literal": SlowReportParams(min_ms=0, url_contains="%"),
    "underscore_literal": SlowReportParams(min_ms=0, url_contains="a_b"),
    "backslash_literal": SlowReportParams(min_ms=0, url_contains="\\"),
    "whole_year": SlowReportParams(days=365, min_ms=2000, url_contains=""),
    "one_day": SlowReportParams(days=1, min_ms=300, url_contains=""),
}


@pytest.mark.parametrize("params", PARAM_SETS.values(), ids=PARAM_SETS.keys())
def test_report_matches_row_by_row_computation(seeded_rows, params):
    assert compute(params) == reference_report(seeded_rows, params, NOW)


def test_seeded_data_exercises_every_part_of_the_report(seeded_rows):
    """Guards the comparison above: the default report is not trivially empty."""
    report = reference_report(seeded_rows, SlowReportParams(), NOW)
    assert report["slow_views"] > 50
    assert report["total_views"] > report["slow_views"]
    assert len(report["slowest_urls"]) == slow_pageviews.SLOWEST_URLS
    assert sum(1 for day in report["slow_per_day"] if day["slow"]) > 10


@pytest.mark.parametrize(
    ("url_contains", "expected_urls"),
    [
        ("%", {"/promo/100%-off"}),
        ("0%-", {"/promo/100%-off"}),
        ("_", {"/a_b"}),
        ("a_b", {"/a_b"}),
        ("\\", {"/path\\to"}),
        ("h\\t", {"/path\\to"}),
    ],
    ids=["percent", "percent_inside", "underscore", "underscore_inside", "backslash", "backslash_inside"],
)
def test_like_wildcards_in_filter_match_literally(app, url_contains, expected_urls):
    insert([(url, NOW - timedelta(hours=1), 5000) for url in SPECIAL_URLS])
    report = compute(SlowReportParams(days=1, min_ms=0, url_contains=url_contains))
    assert {row["url"] for row in report["slowest_urls"]} == expected_urls


def test_filter_ignores_ascii_case(app):
    insert([(url, NOW - timedelta(hours=1), 5000) for url in SPECIAL_URLS])
    lower = compute(SlowReportParams(days=1, min_ms=0, url_contains="blog"))
    upper = compute(SlowReportParams(days=1, min_ms=0, url_contains="bLoG"))
    expected = {"/Blog/Upper-Case", "/blog/lower-case", "/BLOG"}
    assert {row["url"] for row in lower["slowest_urls"]} == expected
    assert {row["url"] for row in upper["slowest_urls"]} == expected


def test_empty_table_gives_zeros_and_no_percentiles(app):
    report = compute(SlowReportParams())
    assert (report["slow_views"], report["total_views"], report["slow_share"]) == (0, 0, 0.0)
    assert report["percentiles_ms"] == {"p50": None, "p95": None, "p99": None}
    assert report["slowest_urls"] == []
    # 30 days back from mid-afternoon touch 31 UTC dates, every one present and zero.
    assert len(report["slow_per_day"]) == 31
    assert all(day["views"] == 0 and day["slow"] == 0 for day in report["slow_per_day"])


def test_all_views_slow_gives_full_share(app):
    insert([("/blog/slow", NOW - timedelta(hours=hours), 1000 + hours) for hours in range(1, 25)])
    report = compute(SlowReportParams())
    assert report["slow_views"] == report["total_views"] == 24
    assert report["slow_share"] == 1.0
    assert report["slowest_urls"] == [{"url": "/blog/slow", "slow_views": 24, "avg_ms": 1012, "max_ms": 1024}]


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        (list(range(1, 101)), {"p50": 50, "p95": 95, "p99": 99}),
        (list(range(1, 11)), {"p50": 5, "p95": 10, "p99": 10}),
        ([42], {"p50": 42, "p95": 42, "p99": 42}),
        ([10, 10, 10, 5000], {"p50": 10, "p95": 5000, "p99": 5000}),
    ],
    ids=["1_to_100", "1_to_10", "single", "one_outlier"],
)
def test_percentiles_are_nearest_rank(app, values, expected):
    insert([("/blog/p", NOW - timedelta(minutes=index + 1), ms) for index, ms in enumerate(values)])
    assert compute(SlowReportParams(days=1))["percentiles_ms"] == expected


def test_view_exactly_at_window_start_is_included(app):
    insert([("/blog/edge", NOW - timedelta(days=30), 1500)])
    assert compute(SlowReportParams())["total_views"] == 1


def test_view_a_microsecond_before_window_start_is_excluded(app):
    insert([("/blog/edge", NOW - timedelta(days=30, microseconds=1), 1500)])
    assert compute(SlowReportParams())["total_views"] == 0


def test_view_exactly_at_now_is_excluded(app):
    insert([("/blog/edge", NOW, 1500)])
    assert compute(SlowReportParams())["total_views"] == 0


def test_days_are_utc_dates_with_partial_first_and_last_day(app):
    now = datetime(2026, 11, 21, 6, 0)  # window: 11-19 06:00 .. 11-21 06:00
    insert(
        [
            ("/blog/a", datetime(2026, 11, 19, 5, 59, 59), 2000),  # before the window
            ("/blog/a", datetime(2026, 11, 19, 6, 0), 2000),
            ("/blog/a", datetime(2026, 11, 19, 23, 59, 59, 999999), 10),
            ("/blog/a", datetime(2026, 11, 20, 0, 0), 2000),
            ("/blog/a", datetime(2026, 11, 21, 0, 0), 2000),
            ("/blog/a", datetime(2026, 11, 21, 5, 59, 59), 2000),
            ("/blog/a", datetime(2026, 11, 21, 6, 0), 2000),  # at now: after the window
        ]
    )
    report = compute(SlowReportParams(days=2), now=now)
    assert report["slow_per_day"] == [
        {"day": "2026-11-19", "views": 2, "slow": 1},
        {"day": "2026-11-20", "views": 1, "slow": 1},
        {"day": "2026-11-21", "views": 2, "slow": 2},
    ]


def test_window_ending_at_midnight_has_no_empty_extra_day(app):
    report = compute(SlowReportParams(days=2), now=datetime(2026, 11, 21))
    assert [day["day"] for day in report["slow_per_day"]] == ["2026-11-19", "2026-11-20"]


def test_ingested_view_with_utc_offset_lands_on_its_utc_day(client, api_headers):
    """Like "2026-11-20T23:30:00-02:00" landing on 2026-11-21, two days ago so always accepted."""
    local_day = utcnow().date() - timedelta(days=2)
    utc_day = local_day + timedelta(days=1)
    view = {"url": "/blog/time-zones", "response_time_ms": 1500, "ts": f"{local_day}T23:30:00-02:00"}
    response = client.post("/api/pageviews", json=view, headers=api_headers)
    assert response.status_code == 202
    app_pageview_log().ship_own()
    drained = PAGEVIEW_DRAIN.drain(
        worker_redis(), db.engine, "test-drain", batch_size=100, max_batches=1, reclaim_idle_seconds=60
    )
    assert drained == 1
    assert db.session.scalar(select(PageView.created_at)) == datetime.combine(utc_day, time(1, 30))
    report = compute(SlowReportParams(days=7, url_contains="time-zones"), now=utcnow())
    slow_days = {day["day"]: day["slow"] for day in report["slow_per_day"] if day["slow"]}
    assert slow_days == {utc_day.isoformat(): 1}


# --- parameters -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("source", "message"),
    [
        ({"days": "-1"}, "days must be between 1 and 365"),
        ({"days": "0"}, "days must be between 1 and 365"),
        ({"days": "366"}, "days must be between 1 and 365"),
        ({"days": "abc"}, "days must be a whole number"),
        ({"days": "1e3"}, "days must be a whole number"),
        ({"days": " "}, "days must be a whole number"),
        ({"days": "7.5"}, "days must be a whole number"),
        ({"days": "30.0"}, "days must be a whole number"),
        ({"days": "nan"}, "days must be a whole number"),
        ({"days": "99999999999999999999999999"}, "days must be between 1 and 365"),
        ({"days": "9" * 5000}, "days must be"),
        ({"min_ms": "-1"}, "min_ms must be between 0 and 600000"),
        ({"min_ms": "600001"}, "min_ms must be between 0 and 600000"),
        ({"min_ms": "fast"}, "min_ms must be a whole number"),
        ({"url_contains": "x" * (MAX_FILTER_LENGTH + 1)}, "url_contains must be at most 100 characters"),
        ({"url_contains": "blog\x00"}, "url_contains must not contain control characters"),
        ({"url_contains": "blog\nx"}, "url_contains must not contain control characters"),
        ({"url_contains": "a\x1bb"}, "url_contains must not contain control characters"),
        ({"url_contains": "a\x7fb"}, "url_contains must not contain control characters"),
    ],
    ids=lambda value: repr(value)[:40] if isinstance(value, dict) else None,
)
def test_invalid_params_are_rejected_with_a_message(source, message):
    with pytest.raises(InvalidReportParams) as raised:
        SlowReportParams.parse(source)
    assert message in str(raised.value)


def test_rejection_message_quotes_long_input_briefly():
    with pytest.raises(InvalidReportParams) as raised:
        SlowReportParams.parse({"days": "z" * 5000})
    assert len(str(raised.value)) < 100


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ({}, SlowReportParams(30, 1000, "blog")),
        ({"days": "", "min_ms": ""}, SlowReportParams(30, 1000, "blog")),
        ({"days": "7", "min_ms": "0", "url_contains": ""}, SlowReportParams(7, 0, "")),
        ({"days": " 365 ", "min_ms": "600000"}, SlowReportParams(365, 600000, "blog")),
        ({"days": "1", "url_contains": "  /Blog/  "}, SlowReportParams(1, 1000, "/Blog/")),
        ({"url_contains": "   "}, SlowReportParams(30, 1000, "")),
        ({"url_contains": "x" * MAX_FILTER_LENGTH}, SlowReportParams(30, 1000, "x" * MAX_FILTER_LENGTH)),
        ({"url_contains": "' OR 1=1 --"}, SlowReportParams(30, 1000, "' OR 1=1 --")),
        ({"url_contains": "café/ü"}, SlowReportParams(30, 1000, "café/ü")),
    ],
    ids=lambda value: repr(value)[:40] if isinstance(value, dict) else None,
)
def test_valid_params_are_parsed(source, expected):
    assert SlowReportParams.parse(source) == expected


def test_key_differs_for_different_filters():
    keys = {SlowReportParams(url_contains=text).key for text in ("blog", "blog/", "Blog", "", "%")}
    assert len(keys) == 5


def test_key_differs_for_different_days_and_thresholds():
    keys = {SlowReportParams(days=d, min_ms=m).key for d, m in ((30, 1000), (31, 1000), (30, 1001))}
    assert len(keys) == 3


def test_key_is_the_same_for_equal_params():
    assert (
        SlowReportParams.parse({"days": "7", "url_contains": " x "}).key
        == SlowReportParams(days=7, url_contains="x").key
    )


def test_key_is_stable_across_processes():
    """Web and worker processes must name the same Redis keys (no per-process hash seed)."""
    code = "from webapp.reports.params import SlowReportParams as P; print(P(url_contains='blog').key)"
    keys = {
        subprocess.run(
            [sys.executable, "-c", code],
            cwd=PROJECT_ROOT,
            env={"PYTHONHASHSEED": str(hash_seed)},
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        for hash_seed in (1, 2)
    }
    assert keys == {SlowReportParams(url_contains="blog").key}
