"""Retention through real processes: a year and more of raw rows pruned by the beat task in a
Celery worker while clicks keep flowing through the buffer and a drain worker.

Old raw rows go, young ones stay, every rollup stays as it was, every new click
is counted. On PostgreSQL whole months go as partitions and the coming months'
partitions are made; a database that cannot be reached (or a partition that
cannot be locked) fails the run, which is retried and ends where it should.
"""

import contextlib
import json
import random
import re
import sqlite3
import threading
from datetime import timedelta

import pytest
from sqlalchemy import create_engine, func, make_url, select, text

from tasks.maintenance import prune_raw_rows
from tests.conftest import TEST_DATABASE_URL
from tests.processes import wait_for
from tests.test_click_pipeline import buffer_clicks, buffer_length, wait_for_drain_runs
from webapp import create_app, retention
from webapp.celery_app import celery_of
from webapp.clicks.store import record_clicks
from webapp.config import ConfigError
from webapp.extensions import db
from webapp.links import service
from webapp.models import Click, LinkCounter, LinkHourlyClicks, LinkHourlyDimension, PageView, utcnow
from webapp.pageviews.ingest import record_pageviews

pytestmark = pytest.mark.integration

RETENTION_DAYS = 180
MONTHS_SEEDED = 13
ROWS_PER_MONTH = 300
TASK = "tasks.maintenance.prune_raw_rows"
PLACE_OF_AHEAD = "SELECT tableoid::regclass::text FROM page_view WHERE event_id = 'ahead'"
WORKER_ENV = {"RETENTION_DAYS": RETENTION_DAYS, "RETENTION_BATCH_SIZE": 200}


def seeded_times(now, rng):
    """ROWS_PER_MONTH moments in each of the last MONTHS_SEEDED months (30 days each), none
    within an hour of the cutoff, so the few seconds the worker's clock runs later do not matter."""
    cutoff = now - timedelta(days=RETENTION_DAYS)
    moments = []
    for month in range(MONTHS_SEEDED):
        while len(moments) < (month + 1) * ROWS_PER_MONTH:
            moment = now - timedelta(days=30 * month + rng.uniform(0.1, 30))
            if abs(moment - cutoff) > timedelta(hours=1):
                moments.append(moment)
    return moments


def seed_history(links, now):
    """Clicks and page views over the last 13 months, written by the drains' own writers (so the
    rollups beside the click rows are what the drain would have made); return the cutoff."""
    rng = random.Random(14)
    clicks = [
        {
            "event_id": f"old{index:08d}",
            "link_id": links[index % len(links)].id,
            "created_at": moment,
            "referrer": "https://news.example/item",
            "user_agent": "Mozilla/5.0 (X11; Linux x86_64) Firefox/120.0",
            "ip_anonymised": "192.0.2.0",
            "is_bot": index % 10 == 0,
        }
        for index, moment in enumerate(seeded_times(now, rng))
    ]
    views = [
        {"event_id": f"view{index:08d}", "url": f"/page/{index % 7}", "response_time_ms": 100 + index % 900,
         "created_at": moment, "site_id": None, "load_time_ms": None, "referrer": None}
        for index, moment in enumerate(seeded_times(now, rng))
    ]  # fmt: skip
    with db.engine.begin() as conn:
        record_clicks(conn, clicks, check_duplicates=False)
        record_pageviews(conn, views, check_duplicates=False)
    return now - timedelta(days=RETENTION_DAYS)


def make_past_partitions(now):
    """On PostgreSQL, the months of the seeded history get partitions of their own, as the
    migration makes for the rows a database already has (the test database was migrated empty)."""
    if not TEST_DATABASE_URL:
        return
    month = retention.month_start(now - timedelta(days=30 * MONTHS_SEEDED + 31))
    with db.engine.begin() as conn:
        for table in retention.RAW_TABLES:
            existing = retention.month_partitions(conn, table)
            start = month
            while start < retention.month_start(now):
                if start not in existing:
                    retention.create_partition(conn, table, start)
                start = retention.next_month(start)


def read(query, params=None):
    """All rows of one query on a connection of its own, closed at once: a read left open would
    hold locks the partition drops wait for (and ``db.session`` keeps its transaction open)."""
    with db.engine.connect() as conn:
        return conn.execute(query, params or {}).all()


def rollups():
    """Every counter and rollup row, to compare before and after."""
    return {
        "counters": sorted(read(select(LinkCounter.link_id, LinkCounter.clicks, LinkCounter.bot_clicks))),
        "hourly": sorted(read(select(LinkHourlyClicks.link_id, LinkHourlyClicks.hour, LinkHourlyClicks.clicks, LinkHourlyClicks.bot_clicks))),
        "dimensions": sorted(read(select(LinkHourlyDimension.link_id, LinkHourlyDimension.dimension, LinkHourlyDimension.hour, LinkHourlyDimension.value, LinkHourlyDimension.clicks))),
    }  # fmt: skip


def raw_counts(model, cutoff):
    """(rows created before the cutoff, rows at or after it)."""
    ((older, younger),) = read(
        select(
            func.count().filter(model.created_at < cutoff),
            func.count().filter(model.created_at >= cutoff),
        )
    )
    return older, younger


def row_count(table):
    return read(text(f"SELECT count(*) FROM {table}"))[0][0]


def partitions(table):
    query = text(
        "SELECT child.relname FROM pg_inherits JOIN pg_class child ON child.oid = pg_inherits.inhrelid"
        " WHERE pg_inherits.inhparent = CAST(:table AS regclass)"
    )
    return {name for (name,) in read(query, {"table": table})}


def prune_outcomes(worker):
    """(runs that succeeded, retries) of the pruning task in the worker's log."""
    log = worker.log_text()
    succeeded = re.findall(rf"Task {re.escape(TASK)}\[[0-9a-f-]+\] succeeded", log)
    retried = re.findall(rf"Task {re.escape(TASK)}\[[0-9a-f-]+\] retry: ", log)
    return len(succeeded), len(retried)


def wait_for_prune(worker, runs=1, timeout=120):
    wait_for(lambda: prune_outcomes(worker)[0] >= runs, timeout, 0.2, f"{runs} pruning run(s) succeeded")


def hours_before(rows, hour_index, moment):
    return [row for row in rows if row[hour_index] < moment]


@pytest.fixture
def history(app, user):
    """Two links with 13 months of clicks and rollups, and 13 months of page views."""
    now = utcnow()
    links = [
        service.create_link(f"https://example.com/{slug}", user, slug=slug)[0] for slug in ("old", "older")
    ]
    make_past_partitions(now)
    cutoff = seed_history(links, now)
    ids = [link.id for link in links]
    db.session.remove()  # no transaction of the test's left open while the worker drops partitions
    return ids, cutoff


def whole_old_months(table, cutoff):
    """The table's monthly partitions that end at or before the cutoff (PostgreSQL; none on SQLite)."""
    if not TEST_DATABASE_URL:
        return set()
    with db.engine.connect() as conn:
        months = retention.month_partitions(conn, table)
    return {name for start, name in months.items() if retention.next_month(start) <= cutoff}


@contextlib.contextmanager
def clicks_flowing(redis_client, link_id, chunk=50):
    """Clicks appended to the buffer, ``chunk`` at a time, from before the block until its end;
    yields the list of chunk sizes sent (its sum: the clicks sent so far)."""
    sent, stop = [], threading.Event()

    def send():
        while not stop.is_set():
            buffer_clicks(redis_client, link_id, chunk, chunk)
            sent.append(chunk)
            stop.wait(0.01)

    sender = threading.Thread(target=send)
    sender.start()
    try:
        yield sent
    finally:
        stop.set()
        sender.join()


def test_pruning_while_clicks_flow_keeps_young_rows_and_every_rollup(
    app, history, processes, redis_client, redis_server
):
    (live, other), cutoff = history
    this_hour = utcnow().replace(minute=0, second=0, microsecond=0)
    coming = farthest_coming_partitions_dropped()
    before = rollups()
    clicks_young = raw_counts(Click, cutoff)[1]
    views_old, views_young = raw_counts(PageView, cutoff)
    assert raw_counts(Click, cutoff)[0] > 1000 and views_old > 1000 and clicks_young > 1000
    old_months = {table: whole_old_months(table, cutoff) for table in retention.RAW_TABLES}
    processes.worker(name="drain", queues="clicks", **WORKER_ENV)
    pruner = processes.worker(name="pruner", queues="default", **WORKER_ENV)
    processes.beat(**WORKER_ENV)

    with clicks_flowing(redis_client, live) as sent:
        wait_for(lambda: sum(sent) >= 500, 30, 0.05, "clicks flowing")
        prune_raw_rows.apply_async()
        wait_for_prune(pruner)
    wait_until_counted(redis_server, live, before_clicks(before, live) + sum(sent))

    assert raw_counts(Click, cutoff) == (0, clicks_young + sum(sent))
    assert raw_counts(PageView, cutoff) == (0, views_young)
    after = rollups()
    assert counters_of(after, other) == counters_of(before, other)
    assert counters_of(after, live) == (
        live,
        before_clicks(before, live) + sum(sent),
        counters_of(before, live)[2],
    )
    assert hours_before(after["hourly"], 1, this_hour) == before["hourly"]
    assert sum(row[2] for row in after["hourly"] if row[1] >= this_hour) == sum(sent)
    assert hours_before(after["dimensions"], 2, this_hour) == before["dimensions"]
    if TEST_DATABASE_URL:
        for table in retention.RAW_TABLES:
            assert len(old_months[table]) >= 5
            assert not old_months[table] & partitions(table), f"old {table} months still there"
        assert coming <= partitions("click") | partitions("page_view")
        # ... and the view that waited in the DEFAULT partition moved into its month's.
        assert read(text(PLACE_OF_AHEAD)) == [(name,) for name in coming if name.startswith("page_view")]


def farthest_coming_partitions_dropped():
    """PostgreSQL: drop the farthest coming month's partitions (the migration made them), so
    the task has to make them again; return their names."""
    if not TEST_DATABASE_URL:
        return set()
    month = retention.month_start(utcnow())
    for _ in range(retention.MONTHS_AHEAD):
        month = retention.next_month(month)
    names = {retention.partition_name(table, month) for table in retention.RAW_TABLES}
    with db.engine.begin() as conn:
        for name in names:
            conn.execute(text(f"DROP TABLE IF EXISTS {name}"))
        # A view of that month meanwhile (a clock far ahead) waits in the DEFAULT partition.
        conn.execute(
            text(
                "INSERT INTO page_view (url, created_at, response_time_ms, event_id)"
                " VALUES ('/ahead', :at, 10, 'ahead')"
            ),
            {"at": month + timedelta(days=1)},
        )
    assert not names & (partitions("click") | partitions("page_view"))
    assert read(text(PLACE_OF_AHEAD)) == [("page_view_default",)]
    return names


def counters_of(snapshot, link_id):
    return next(row for row in snapshot["counters"] if row[0] == link_id)


def before_clicks(snapshot, link_id):
    return counters_of(snapshot, link_id)[1]


def wait_until_counted(redis_server, link_id, expected, timeout=60):
    """Until the link's counter reaches ``expected`` and the buffer is empty; then two more drain
    runs, so a click counted twice late would show."""

    def counted():
        return read(select(LinkCounter.clicks).where(LinkCounter.link_id == link_id))[0][0]

    wait_for(
        lambda: counted() >= expected and buffer_length(redis_server) == 0,
        timeout,
        0.2,
        f"{expected} counted",
    )
    wait_for_drain_runs(redis_server, 2)
    assert counted() == expected


@contextlib.contextmanager
def database_unreachable():
    """SQLite: another connection holds the file's exclusive lock (every statement of the
    worker fails "database is locked"). PostgreSQL: the database refuses connections and
    those open are ended, as in a restart."""
    if TEST_DATABASE_URL:
        name = make_url(TEST_DATABASE_URL).database
        server = create_engine(
            make_url(TEST_DATABASE_URL).set(drivername="postgresql+psycopg", database="postgres"),
            isolation_level="AUTOCOMMIT",
        )
        with server.connect() as conn:
            conn.execute(text(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS false'))
            conn.execute(
                text("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = :name"),
                {"name": name},
            )
            try:
                yield
            finally:
                conn.execute(text(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS true'))
        server.dispose()
        return
    holder = sqlite3.connect(make_url(db.engine.url).database, isolation_level=None)
    holder.execute("BEGIN EXCLUSIVE")
    try:
        yield
    finally:
        holder.execute("ROLLBACK")
        holder.close()


def test_a_database_down_during_pruning_is_retried_and_ends_consistent(app, history, processes):
    _, cutoff = history
    before = rollups()
    clicks_young, views_young = raw_counts(Click, cutoff)[1], raw_counts(PageView, cutoff)[1]
    pruner = processes.worker(name="pruner", queues="default", **WORKER_ENV)
    with database_unreachable():
        prune_raw_rows.apply_async()
        wait_for(lambda: prune_outcomes(pruner)[1] >= 1, 60, 0.2, "the pruning run failed and was retried")
        assert prune_outcomes(pruner)[0] == 0
    wait_for_prune(pruner)

    assert "OperationalError" in pruner.log_text()
    assert raw_counts(Click, cutoff) == (0, clicks_young)
    assert raw_counts(PageView, cutoff) == (0, views_young)
    assert rollups() == before


@pytest.mark.postgres
def test_a_partition_drop_that_cannot_lock_leaves_whole_months_and_is_retried(app, history, processes):
    _, cutoff = history
    old_months = sorted(whole_old_months("click", cutoff))
    rows_in = {name: row_count(name) for name in old_months}
    pruner = processes.worker(name="pruner", queues="default", **WORKER_ENV)
    blocker = create_engine(db.engine.url)
    with blocker.connect() as conn:
        conn.execute(text(f"LOCK TABLE {old_months[2]} IN ACCESS SHARE MODE"))  # as a long report would
        prune_raw_rows.apply_async()
        wait_for(lambda: prune_outcomes(pruner)[1] >= 1, 60, 0.2, "a drop timed out and the run was retried")
        remaining = partitions("click")
        assert not set(old_months[:2]) & remaining
        for name in old_months[2:]:
            assert name in remaining
            assert row_count(name) == rows_in[name]
        conn.rollback()
    blocker.dispose()
    wait_for_prune(pruner)
    assert not set(old_months) & partitions("click")
    assert raw_counts(Click, cutoff)[0] == 0


def test_the_cli_prunes_now_and_prints_what_went(app, history, runner):
    _, cutoff = history
    before = rollups()
    clicks_old, clicks_young = raw_counts(Click, cutoff)

    result = runner.invoke(args=["retention", "prune", "--days", str(RETENTION_DAYS)])

    assert result.exit_code == 0, result.output
    tables = json.loads(result.output)["tables"]
    assert raw_counts(Click, cutoff) == (0, clicks_young)
    assert rollups() == before
    if TEST_DATABASE_URL:  # whole months went as partitions, the boundary month row by row
        assert tables["click"]["partitions_dropped"] and tables["click"]["rows_deleted"] < clicks_old
    else:
        assert tables["click"] == {"partitions_dropped": [], "rows_deleted": clicks_old}


@pytest.mark.parametrize("days", ["-1", "soon", "99999999"])
def test_the_cli_refuses_a_wrong_number_of_days(app, runner, days):
    result = runner.invoke(args=["retention", "prune", "--days", days])
    assert result.exit_code == 2
    assert "--days" in result.output


def test_the_daily_run_is_scheduled_on_the_default_queue_with_time_limits(app):
    celery_config = app.config["CELERY"]
    entry = celery_config["beat_schedule"]["prune-raw-rows"]
    assert entry["task"] == TASK
    assert (entry["schedule"].hour, entry["schedule"].minute) == ({3}, {30})
    assert celery_config["task_routes"]["tasks.maintenance.*"] == {"queue": "default"}
    assert celery_of(app).tasks[TASK].soft_time_limit == 1800


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("RETENTION_DAYS", "-1", "RETENTION_DAYS must be 0"),
        ("RETENTION_DAYS", "a year", "RETENTION_DAYS must be a number"),
        ("RETENTION_BATCH_SIZE", "0", "RETENTION_BATCH_SIZE 1 or more"),
    ],
)
def test_a_wrong_retention_setting_stops_the_app_with_its_name(app_env, monkeypatch, name, value, message):
    for key, setting in app_env.items():
        monkeypatch.setenv(key, setting)
    monkeypatch.setenv(name, value)
    with pytest.raises(ConfigError, match=message):
        create_app({"TESTING": True})


def test_zero_days_keeps_every_raw_row(app, history):
    _, cutoff = history
    counts = raw_counts(Click, cutoff), raw_counts(PageView, cutoff)
    assert retention.prune(db.engine, 0, 100) == {}
    assert (raw_counts(Click, cutoff), raw_counts(PageView, cutoff)) == counts
