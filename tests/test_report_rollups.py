"""The slow-page report's daily response-time histograms (webapp/pageviews/histograms.py).

The report reads whole days from the histograms (the one without pages when
no page filter is set, the page histogram otherwise and for the slowest
pages) and partial days from the raw rows. Its results must be exactly those of the raw-rows-only
computation it replaced: ``raw_only`` is that computation (the same engine
with every day read raw, as before the histograms), compared field by field
on the same data: seeded views, views with sites written by the real
page-view drain, and URLs holding LIKE's special characters.
"""

from collections import Counter
from datetime import datetime, time, timedelta

import pytest
from sqlalchemy import func, select

from webapp.extensions import db
from webapp.models import PageView, PageViewDayHistogram, PageViewHistogram, PageViewUrl, Site, utcnow
from webapp.pageviews import histograms, seed
from webapp.pageviews.ingest import PAGEVIEW_BUFFER, PAGEVIEW_DRAIN, record_pageviews, tracked_view_line
from webapp.redis_client import worker_redis
from webapp.reports import slow_pageviews
from webapp.reports.params import SlowReportParams

NOW = datetime(2026, 11, 21, 15, 30, 12, 345678)
MIDNIGHT = datetime(2026, 11, 21)
SITES = ("site-one", "site-two")
SPECIAL_URLS = ["/promo/100%-off", "/a_b", "/path\\to", "/Blog/Upper-Case", "/BLOG", "/blog/" + "é" * 300]


def compute(params, now):
    with db.engine.connect() as conn:
        return slow_pageviews.compute(conn, params, now)


def raw_only(params, now, monkeypatch):
    """The report as computed before the histograms: every day from the raw rows."""
    with monkeypatch.context() as patch:
        patch.setattr(slow_pageviews, "is_whole_day", lambda start, end: False)
        return compute(params, now)


def sites():
    ids = []
    for key in SITES:
        site = Site(name=key, public_key=key, origins=["https://example.com"])
        db.session.add(site)
        db.session.flush()
        ids.append(site.id)
    db.session.commit()
    return ids


def drained_line(site_id, url, ms, at):
    return tracked_view_line(site_id or "", url, "", ms, ms + 50, now=epoch(at))


def epoch(moment):
    """A naive UTC datetime as Unix seconds."""
    return (moment - datetime(1970, 1, 1)).total_seconds()


def drain_lines(lines, check_duplicates=False):
    """Through the page-view drain's own write path (dedup retry included)."""
    messages = [(f"{index + 1}-0", line) for index, line in enumerate(lines)]
    recorded, _ = PAGEVIEW_DRAIN.write_batch(db.engine, PAGEVIEW_BUFFER.shards[0], messages, check_duplicates)
    return recorded


def site_lines(site_ids, now, count=1500):
    """Views with sites over the 40 days before ``now``, some on the seeded pages' URLs."""
    lines = []
    for index in range(count):
        at = now - timedelta(minutes=37 * index + 1)
        url = SPECIAL_URLS[index % len(SPECIAL_URLS)] if index % 3 else f"/blog/post-{index % 17}"
        ms = 200 + (index * 7919) % 2500
        site_id = site_ids[index % 2] if index % 5 else None
        lines.append(f"e{index:031d}\t{epoch(at):.3f}\t{ms}\t{site_id or ''}\t{ms + 40}\t\t{url}")
    return lines


def histogram_totals():
    """Views per day in the page histogram, after checking the day histogram says the same
    for every (day, site, response time)."""
    by_page = select(
        PageViewHistogram.day,
        PageViewHistogram.site_id,
        PageViewHistogram.response_time_ms,
        PageViewHistogram.views,
    ).subquery()
    keys = (by_page.c.day, by_page.c.site_id, by_page.c.response_time_ms)
    summed = dict(
        ((day, site, ms), views)
        for day, site, ms, views in db.session.execute(
            select(*keys, func.sum(by_page.c.views)).group_by(*keys)
        )
    )
    day_rows = select(
        PageViewDayHistogram.day,
        PageViewDayHistogram.site_id,
        PageViewDayHistogram.response_time_ms,
        PageViewDayHistogram.views,
    )
    assert {(day, site, ms): views for day, site, ms, views in db.session.execute(day_rows)} == summed
    totals = Counter()
    for (day, _, _), views in summed.items():
        totals[day] += views
    return dict(totals)


def raw_totals():
    rows = db.session.scalars(select(PageView.created_at))
    return Counter(at.date() for at in rows)


@pytest.fixture(params=[NOW, MIDNIGHT], ids=["mid-afternoon", "midnight"])
def now(request):
    return request.param


@pytest.fixture
def views(app, now):
    """Seeded views (bulk insert) and drained views with and without sites, before ``now``."""
    seed.bulk_insert(db.engine, seed.generate(6000, 40, 11, now=now))
    site_ids = sites()
    assert drain_lines(site_lines(site_ids, now)) == 1500
    return site_ids


PARAM_SETS = {
    "defaults": SlowReportParams(),
    "min_ms_0": SlowReportParams(min_ms=0),
    "no_filter": SlowReportParams(url_contains=""),
    "nothing_matches": SlowReportParams(url_contains="no-such-page-anywhere"),
    "upper_case_filter": SlowReportParams(days=7, min_ms=500, url_contains="BLOG"),
    "percent_literal": SlowReportParams(min_ms=0, url_contains="%"),
    "underscore_literal": SlowReportParams(min_ms=0, url_contains="a_b"),
    "backslash_literal": SlowReportParams(min_ms=0, url_contains="\\"),
    "non_ascii": SlowReportParams(min_ms=0, url_contains="é"),
    "whole_year": SlowReportParams(days=365, min_ms=2000, url_contains=""),
    "one_day": SlowReportParams(days=1, min_ms=300, url_contains=""),
    "threshold_above_all": SlowReportParams(min_ms=600_000, url_contains=""),
    "site_one": SlowReportParams(min_ms=700, url_contains="", site="site-one"),
    "site_two_blog": SlowReportParams(days=20, min_ms=1000, url_contains="blog", site="site-two"),
    "unknown_site": SlowReportParams(url_contains="", site="no-such-site"),
}


@pytest.mark.parametrize("params", PARAM_SETS.values(), ids=PARAM_SETS.keys())
def test_report_from_histograms_is_identical_to_report_from_raw_rows(views, now, params, monkeypatch):
    from_histograms = compute(params, now)
    assert from_histograms == raw_only(params, now, monkeypatch)


def test_the_data_exercises_sites_percentiles_and_both_sources(views, now, monkeypatch):
    report = compute(SlowReportParams(url_contains="", site="site-one"), now)
    assert 0 < report["slow_views"] < report["total_views"] < 1500
    assert len(set(report["percentiles_ms"].values())) == 3
    assert len(report["slowest_urls"]) == slow_pageviews.SLOWEST_URLS
    whole = sum(
        slow_pageviews.is_whole_day(*chunk) for chunk in slow_pageviews.day_chunks(now - timedelta(30), now)
    )
    assert whole >= 29
    # Each histogram really is read: emptied, the whole days count nothing where it is used.
    unfiltered, by_page = SlowReportParams(url_contains=""), SlowReportParams(min_ms=0, url_contains="blog")
    before = {params: compute(params, now) for params in (unfiltered, by_page)}
    db.session.execute(PageViewDayHistogram.__table__.delete())
    db.session.commit()
    assert compute(unfiltered, now)["total_views"] < before[unfiltered]["total_views"]
    assert compute(unfiltered, now)["slowest_urls"] == before[unfiltered]["slowest_urls"]  # from pages
    assert compute(by_page, now) == before[by_page]
    db.session.execute(PageViewHistogram.__table__.delete())
    db.session.commit()
    assert compute(by_page, now)["total_views"] < before[by_page]["total_views"]
    assert compute(unfiltered, now)["slowest_urls"] != before[unfiltered]["slowest_urls"]
    assert raw_only(unfiltered, now, monkeypatch) == before[unfiltered]


def test_histograms_hold_exactly_the_raw_rows(views):
    assert histogram_totals() == raw_totals()
    urls = set(db.session.scalars(select(PageViewUrl.url)))
    assert urls == set(db.session.scalars(select(PageView.url).distinct()))
    assert all(
        histograms.url_key(url) == key
        for key, url in db.session.execute(select(PageViewUrl.url_key, PageViewUrl.url))
    )


def test_a_replayed_batch_is_not_counted_twice(app):
    site_ids = sites()
    lines = site_lines(site_ids, NOW, count=300)
    assert drain_lines(lines) == 300
    before = histogram_totals()
    assert drain_lines(lines) == 0  # unique event ids: the drain retries with the dedup check
    assert drain_lines(lines[:10] + lines[:10] + [lines[-1]], check_duplicates=True) == 0
    assert histogram_totals() == before == raw_totals()
    assert sum(before.values()) == 300


def test_a_batch_seen_twice_in_itself_counts_once(app):
    line = drained_line(None, "/blog/twice", 1234, NOW - timedelta(days=2))
    assert drain_lines([line, line]) == 1
    assert db.session.scalar(select(func.sum(PageViewHistogram.views))) == 1
    assert db.session.scalar(select(func.sum(PageViewDayHistogram.views))) == 1


def test_rows_and_histograms_commit_together(app):
    """A batch that fails after its rows were written leaves neither rows nor histogram."""
    line = drained_line(None, "/blog/rolled-back", 1500, NOW - timedelta(days=3))
    row = PAGEVIEW_DRAIN.to_row(line)
    with pytest.raises(RuntimeError), db.engine.begin() as conn:
        record_pageviews(conn, [row], check_duplicates=True)
        assert conn.scalar(select(func.sum(PageViewHistogram.views))) == 1
        raise RuntimeError("the batch fails before it commits")
    assert db.session.scalar(select(func.count()).select_from(PageViewHistogram)) == 0
    assert db.session.scalar(select(func.count()).select_from(PageViewDayHistogram)) == 0
    assert db.session.scalar(select(func.count()).select_from(PageView)) == 0


def test_views_drained_from_the_real_stream_twice_count_once(app, redis_client):
    """The same lines shipped twice to the Redis Stream (a replayed spool): one row, one count."""
    client = worker_redis()
    at = utcnow() - timedelta(days=2)
    lines = [drained_line(None, f"/blog/replayed-{index}", 900 + index, at) for index in range(50)]
    for _ in range(2):
        PAGEVIEW_BUFFER.append(client, lines)
    drained = PAGEVIEW_DRAIN.drain(
        client, db.engine, "test-drain", batch_size=40, max_batches=10, reclaim_idle_seconds=60
    )
    assert drained == 50
    assert histogram_totals() == raw_totals() == {at.date(): 50}
    report = compute(SlowReportParams(days=7, min_ms=0, url_contains="replayed"), utcnow())
    assert report["total_views"] == 50
    assert report["percentiles_ms"] == {"p50": 924, "p95": 947, "p99": 949}


def test_seeding_twice_adds_to_the_histograms(app):
    seed.bulk_insert(db.engine, seed.generate(500, 5, 3, now=NOW))
    seed.bulk_insert(db.engine, seed.generate(700, 5, 4, now=NOW))
    assert histogram_totals() == raw_totals()
    assert sum(histogram_totals().values()) == 1200


def test_a_deleted_sites_views_still_count_without_a_site_filter(views, now, monkeypatch):
    site = db.session.scalar(select(Site).where(Site.public_key == "site-two"))
    db.session.delete(site)
    db.session.commit()
    for params in (SlowReportParams(url_contains=""), SlowReportParams(url_contains="", site="site-two")):
        assert compute(params, now) == raw_only(params, now, monkeypatch)
    assert compute(SlowReportParams(url_contains="", site="site-two"), now)["total_views"] == 0


def test_whole_days_are_exactly_midnight_to_midnight():
    day = datetime.combine(NOW.date(), time.min)
    assert slow_pageviews.is_whole_day(day, day + timedelta(days=1))
    assert not slow_pageviews.is_whole_day(day, day + timedelta(hours=23))
    assert not slow_pageviews.is_whole_day(day + timedelta(microseconds=1), day + timedelta(days=1))
