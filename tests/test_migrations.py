"""Migrations that move data keep it: the daily referrer and agent rollups become hourly
dimension rows (0009) and come back on downgrade; page views get their response-time
histograms (0013), and those their sums without pages (0014); on SQLite and on PostgreSQL."""

import pytest
from flask_migrate import downgrade, upgrade
from sqlalchemy import create_engine, make_url, text
from sqlalchemy.exc import IntegrityError

from tests import services
from tests.conftest import TEST_DATABASE_URL, reset_postgres_schema
from webapp import create_app
from webapp.extensions import db
from webapp.models import utcnow
from webapp.pageviews.histograms import url_key
from webapp.retention import month_start, next_month

BEFORE = "0008_link_management"
BACKENDS = [
    "sqlite",
    pytest.param("postgresql", marks=pytest.mark.postgres),
]


@pytest.fixture(params=BACKENDS)
def scratch_url(request, tmp_path):
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'migrations.sqlite3'}"
    if not TEST_DATABASE_URL:
        pytest.skip("TEST_DATABASE_URL is not set: the PostgreSQL migration runs in the second CI pass")
    url = make_url(TEST_DATABASE_URL).set(database=make_url(TEST_DATABASE_URL).database + "_migrations")
    url = url.render_as_string(hide_password=False)
    services.ensure_database(url)
    reset_postgres_schema(url)
    return url


def run_sql(url, *statements):
    engine = create_engine(url.replace("postgresql://", "postgresql+psycopg://", 1))
    try:
        with engine.begin() as conn:
            rows = [
                conn.execute(text(statement)).all()
                if statement.startswith("SELECT")
                else conn.execute(text(statement))
                for statement in statements
            ]
    finally:
        engine.dispose()  # also when a statement failed: no connection left for the collector
    return rows[-1]


def test_daily_rollups_become_hourly_dimension_rows_and_come_back(scratch_url, tmp_path, monkeypatch):
    monkeypatch.setenv("CLICKBOARD_INSTANCE_PATH", str(tmp_path))
    app = create_app({"TESTING": True, "SQLALCHEMY_DATABASE_URI": scratch_url})
    with app.app_context():
        upgrade(revision=BEFORE)
        run_sql(
            scratch_url,
            "INSERT INTO link (id, slug, target_url, enabled, created_at, updated_at)"
            " VALUES (1, 'kept', 'https://example.com/', true, '2026-03-01 00:00:00', '2026-03-01 00:00:00')",
            "INSERT INTO link_daily_referrers (link_id, day, referrer_host, clicks) VALUES (1, '2026-03-01', 'news.example', 4)",
            "INSERT INTO link_daily_agents (link_id, day, agent, is_bot, clicks) VALUES (1, '2026-03-01', 'Firefox', false, 3)",
            "INSERT INTO link_daily_agents (link_id, day, agent, is_bot, clicks) VALUES (1, '2026-03-02', 'Google', true, 2)",
        )
        upgrade()
        moved = run_sql(
            scratch_url, "SELECT dimension, value, clicks, hour FROM link_hourly_dimension ORDER BY dimension"
        )
        assert [(dimension, value, clicks) for dimension, value, clicks, _ in moved] == [
            ("bot", "Google", 2), ("browser", "Firefox", 3), ("referrer", "news.example", 4),
        ]  # fmt: skip
        assert str(moved[2][3]).startswith("2026-03-01 00:00:00")
        downgrade(revision=BEFORE)
        back = run_sql(scratch_url, "SELECT agent, is_bot, clicks FROM link_daily_agents ORDER BY agent")
        assert [(agent, bool(is_bot), clicks) for agent, is_bot, clicks in back] == [
            ("Firefox", False, 3),
            ("Google", True, 2),
        ]
        assert run_sql(scratch_url, "SELECT referrer_host, clicks FROM link_daily_referrers") == [
            ("news.example", 4)
        ]
        db.engine.dispose()


RAW_ROWS = [
    "INSERT INTO link (id, slug, target_url, enabled, created_at, updated_at)"
    " VALUES (1, 'kept', 'https://example.com/', true, '2025-01-01 00:00:00', '2025-01-01 00:00:00')",
    "INSERT INTO click (event_id, link_id, created_at, is_bot)"
    " VALUES ('old', 1, '2025-01-15 10:00:00', false), ('recent', 1, CURRENT_TIMESTAMP, true)",
    "INSERT INTO page_view (url, created_at, response_time_ms, event_id)"
    " VALUES ('/a', '2025-03-02 08:00:00', 120, 'view-a'), ('/b', CURRENT_TIMESTAMP, 80, NULL)",
]
RAW_SNAPSHOT = (
    "SELECT 'click', id, event_id FROM click UNION ALL SELECT 'page_view', id, event_id FROM page_view"
    " ORDER BY 1, 2"
)
CLICK_PARTITIONS = (
    "SELECT child.relname FROM pg_inherits JOIN pg_class child ON child.oid = inhrelid"
    " WHERE inhparent = 'click'::regclass"
)
PARTITIONED = "SELECT relname FROM pg_class WHERE relkind = 'p' ORDER BY relname"


def test_raw_tables_become_monthly_partitions_keeping_rows_and_come_back(scratch_url, tmp_path, monkeypatch):
    monkeypatch.setenv("CLICKBOARD_INSTANCE_PATH", str(tmp_path))
    app = create_app({"TESTING": True, "SQLALCHEMY_DATABASE_URI": scratch_url})
    postgres = scratch_url.startswith("postgresql")
    with app.app_context():
        upgrade(revision="0011_sites")
        run_sql(scratch_url, *RAW_ROWS)
        rows = run_sql(scratch_url, RAW_SNAPSHOT)
        assert len(rows) == 4
        upgrade()
        assert run_sql(scratch_url, RAW_SNAPSHOT) == rows
        if postgres:
            assert run_sql(scratch_url, PARTITIONED) == [("click",), ("page_view",)]
            placed = run_sql(scratch_url, "SELECT tableoid::regclass::text FROM click WHERE event_id = 'old'")
            assert placed == [("click_p2025_01",)]
            names = {name for (name,) in run_sql(scratch_url, CLICK_PARTITIONS)}
            ahead = next_month(next_month(month_start(utcnow())))
            assert {"click_default", f"click_p{ahead:%Y_%m}", "click_p2025_02"} <= names
        # A replayed click (same event id, same time) still collides; the sequence goes on.
        with pytest.raises(IntegrityError):
            run_sql(scratch_url, "INSERT INTO click (event_id, link_id, created_at, is_bot)"
                    " SELECT event_id, link_id, created_at, is_bot FROM click WHERE event_id = 'old'")  # fmt: skip
        run_sql(scratch_url, "INSERT INTO click (event_id, link_id, created_at, is_bot) VALUES ('new', 1, CURRENT_TIMESTAMP, false)")  # fmt: skip
        ((new_id,),) = run_sql(scratch_url, "SELECT id FROM click WHERE event_id = 'new'")
        assert new_id > 2
        downgrade(revision="0011_sites")
        assert run_sql(scratch_url, RAW_SNAPSHOT) == [*rows[:2], ("click", new_id, "new"), *rows[2:]]
        if postgres:
            assert run_sql(scratch_url, PARTITIONED) == []
        with pytest.raises(IntegrityError):
            run_sql(scratch_url, "INSERT INTO page_view (url, created_at, response_time_ms, event_id)"
                    " VALUES ('/a', CURRENT_TIMESTAMP, 1, 'view-a')")  # fmt: skip
        db.engine.dispose()


def test_page_view_histograms_are_built_from_the_rows_already_there(scratch_url, tmp_path, monkeypatch):
    """0013 backfills the slow-page report's histograms from page_view, on SQLite and PostgreSQL."""
    monkeypatch.setenv("CLICKBOARD_INSTANCE_PATH", str(tmp_path))
    app = create_app({"TESTING": True, "SQLALCHEMY_DATABASE_URI": scratch_url})
    long_url = "/blog/" + "é" * 2000  # longer in UTF-8 than a PostgreSQL B-tree key may be
    with app.app_context():
        upgrade(revision="0011_sites")
        run_sql(
            scratch_url,
            "INSERT INTO site (id, name, public_key, origins, created_at)"
            " VALUES (3, 's', 'key3', '[]', '2026-03-01 00:00:00')",
            "INSERT INTO page_view (url, created_at, response_time_ms, site_id) VALUES"
            " ('/a', '2026-03-01 00:00:00', 120, NULL), ('/a', '2026-03-01 23:59:59.999999', 120, NULL),"
            " ('/a', '2026-03-02 00:00:00', 120, NULL), ('/a', '2026-03-01 10:00:00', 120, 3),"
            f" ('/a', '2026-03-01 11:00:00', 121, NULL), ('{long_url}', '2026-03-01 12:00:00', 5000, 3)",
        )
        upgrade(revision="0013_pageview_histograms")
        rows = run_sql(
            scratch_url,
            "SELECT day, site_id, url, response_time_ms, views FROM page_view_histogram"
            " JOIN page_view_url USING (url_key) ORDER BY day, site_id, url, response_time_ms",
        )
        assert [(str(day), site, url, ms, views) for day, site, url, ms, views in rows] == [
            ("2026-03-01", 0, "/a", 120, 2),
            ("2026-03-01", 0, "/a", 121, 1),
            ("2026-03-01", 3, "/a", 120, 1),
            ("2026-03-01", 3, long_url, 5000, 1),
            ("2026-03-02", 0, "/a", 120, 1),
        ]
        keys = run_sql(scratch_url, "SELECT url_key, url FROM page_view_url")
        assert {key: url for key, url in keys} == {url_key(url): url for url in ("/a", long_url)}
        downgrade(revision="0012_raw_retention")
        assert run_sql(scratch_url, "SELECT count(*) FROM page_view") == [(6,)]
        db.engine.dispose()


def test_day_histograms_are_the_page_histograms_summed_over_pages(scratch_url, tmp_path, monkeypatch):
    """0014 backfills the histograms without pages from those with, and takes them away again."""
    monkeypatch.setenv("CLICKBOARD_INSTANCE_PATH", str(tmp_path))
    app = create_app({"TESTING": True, "SQLALCHEMY_DATABASE_URI": scratch_url})
    with app.app_context():
        upgrade(revision="0013_pageview_histograms")
        run_sql(
            scratch_url,
            "INSERT INTO page_view_histogram (day, url_key, site_id, response_time_ms, views) VALUES"
            " ('2026-03-01', 'a', 0, 120, 2), ('2026-03-01', 'b', 0, 120, 5), ('2026-03-01', 'b', 0, 121, 1),"
            " ('2026-03-01', 'a', 3, 120, 4), ('2026-03-02', 'a', 0, 120, 1)",
        )
        upgrade(revision="0014_day_histograms")
        rows = run_sql(scratch_url, "SELECT day, site_id, response_time_ms, views FROM page_view_day_histogram"
                       " ORDER BY day, site_id, response_time_ms")  # fmt: skip
        assert [(str(day), site, ms, views) for day, site, ms, views in rows] == [
            ("2026-03-01", 0, 120, 7),
            ("2026-03-01", 0, 121, 1),
            ("2026-03-01", 3, 120, 4),
            ("2026-03-02", 0, 120, 1),
        ]
        downgrade(revision="0013_pageview_histograms")
        assert run_sql(scratch_url, "SELECT count(*) FROM page_view_histogram") == [(5,)]
        upgrade(revision="0014_day_histograms")  # down and up again: nothing left behind
        db.engine.dispose()
