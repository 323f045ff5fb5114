"""Redis may forget what it was given; clicks and page views are not lost.

Each web process keeps what it shipped (``webapp.spool``) until the drain
has committed it, and ships it again when Redis lost it: restarted without
its data, restored from an older copy, or having evicted the stream. The
in-process tests pin each rule against a real Redis; the integration tests
kill a real redis-server under real gunicorn, worker and beat processes.
"""

import os
import signal
import subprocess
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests
from sqlalchemy import func, select, text

from tests.dashboard_helpers import ADMIN_EMAIL, ADMIN_PASSWORD, logged_in
from tests.processes import wait_for
from tests.test_click_pipeline import (
    HUMAN_USER_AGENT,
    assert_counted_exactly,
    buffer_length,
    counter_of,
    send_redirects,
)
from tests.test_outages import RedirectSender
from webapp import spool_files
from webapp.auth.users import create_user
from webapp.clicks.buffer import CLICK_BUFFER
from webapp.clicks.click_log import app_click_log
from webapp.clicks.drain import CLICK_DRAIN
from webapp.clicks.events import encode_click
from webapp.durable_counters import HostCounters
from webapp.extensions import db
from webapp.links import service
from webapp.models import PageView
from webapp.pageviews.ingest import PAGEVIEW_BUFFER, app_pageview_log, spool_directory
from webapp.redis_client import worker_redis


def kept(directory):
    return sorted(
        name for name in spool_files.list_directory(directory) if name.endswith(spool_files.KEPT_SUFFIX)
    )


def drain(batch_size=5000, reclaim_idle_seconds=3600):
    return CLICK_DRAIN.drain(worker_redis(), db.engine, "test-drain", batch_size, 20, reclaim_idle_seconds)


@pytest.fixture
def click_log(app, redis_client):
    return app_click_log(app)


@pytest.fixture
def link(user):
    return service.create_link("https://example.com/kept", user, slug="kept")[0]


def log_clicks(click_log, link, count):
    for _ in range(count):
        click_log.append(encode_click(link.id, "GET", None, HUMAN_USER_AGENT, "192.0.2.10"))


def restart_empty(redis_server, buffer_key):
    """SIGKILL redis-server and start it again on its port with no data: a Redis without
    persistence restarting, or a failover to a replica that had nothing yet.

    Proves the fault happened by the buffer's epoch: a Redis that kept its data
    keeps it, one that lost it has none or (once a shipper recreated the
    stream, which may be at once) a new one."""
    epoch_key = f"{buffer_key}:epoch"
    before = redis_server.client().get(epoch_key)
    assert before, "nothing was shipped before the restart"
    redis_server.process.send_signal(signal.SIGKILL)
    redis_server.process.wait()
    redis_server.process = None
    for name in os.listdir(redis_server.data_dir):
        if name.startswith(("appendonly", "dump")):
            os.unlink(os.path.join(redis_server.data_dir, name))
    redis_server.start()
    assert redis_server.client().get(epoch_key) != before, "Redis kept its data: the fault did not happen"


# --- the rules, in process -------------------------------------------------------


def test_shipped_clicks_are_kept_on_disk_until_the_drain_commits_them(click_log, link, app):
    log_clicks(click_log, link, 20)
    click_log.ship_own()
    directory = app.config["CLICK_LOG_DIR"]
    assert len(kept(directory)) == 1

    click_log.settle()
    assert len(kept(directory)) == 1, "deleted before any drain ran"

    assert drain() == 20
    click_log.settle()
    assert kept(directory) == []


def test_a_batch_delivered_but_not_acknowledged_keeps_its_file(click_log, link, app, redis_client):
    log_clicks(click_log, link, 10)
    click_log.ship_own()
    CLICK_BUFFER.ensure_group(redis_client)
    assert (
        len(CLICK_BUFFER.shards[0].read_new(redis_client, "a-drain-that-dies", 10)) == 1
    )  # 10 lines, pending now

    click_log.settle()

    assert len(kept(app.config["CLICK_LOG_DIR"])) == 1


def test_redis_that_forgot_everything_gets_the_kept_clicks_again_and_counts_each_once(
    click_log, link, app, redis_client
):
    log_clicks(click_log, link, 30)
    click_log.ship_own()
    assert drain(batch_size=10) == 30  # some already counted ...
    log_clicks(click_log, link, 20)
    click_log.ship_own()
    redis_client.flushall()  # ... then Redis forgets the stream, its group and its epoch
    assert redis_client.xlen(CLICK_BUFFER.stream) == 0

    click_log.settle()
    drain()

    assert counter_of(link.id) == 50
    assert HostCounters(app.config["CLICK_LOG_DIR"]).totals()["clicks_reshipped"] == 50
    click_log.settle()
    assert kept(app.config["CLICK_LOG_DIR"]) == []


def test_a_stream_restored_from_an_older_copy_gets_its_lost_tail_again(click_log, link, app, redis_client):
    log_clicks(click_log, link, 5)
    click_log.ship_own()
    log_clicks(click_log, link, 3)
    click_log.ship_own()
    ((older_id, older_fields), _) = redis_client.xrange(CLICK_BUFFER.stream)
    epoch = redis_client.get(CLICK_BUFFER.epoch_key)
    # What a replica that lagged looks like after a failover: the same epoch,
    # the stream as it was before the last lines arrived.
    redis_client.delete(CLICK_BUFFER.stream)
    redis_client.xadd(CLICK_BUFFER.stream, older_fields, id=older_id)
    redis_client.set(CLICK_BUFFER.epoch_key, epoch)

    click_log.settle()
    drain()

    assert counter_of(link.id) == 8


def test_an_evicted_stream_starts_a_new_epoch_and_its_clicks_are_shipped_again(
    click_log, link, app, redis_client
):
    log_clicks(click_log, link, 8)
    click_log.ship_own()
    old_epoch = redis_client.get(CLICK_BUFFER.epoch_key)
    redis_client.delete(CLICK_BUFFER.stream)  # evicted under maxmemory; the epoch key stayed
    log_clicks(click_log, link, 2)
    click_log.ship_own()  # recreates the stream
    assert redis_client.get(CLICK_BUFFER.epoch_key) != old_epoch

    click_log.settle()
    drain()

    assert counter_of(link.id) == 10


def test_kept_files_beyond_the_disk_bound_are_released_oldest_first_and_counted(app, link, redis_client):
    directory = app.config["CLICK_LOG_DIR"]
    for _ in range(3):
        log = app_click_log(app)
        log_clicks(log, link, 50)
        log.ship_own()
    sizes = [os.path.getsize(os.path.join(directory, name)) for name in kept(directory)]
    assert len(sizes) == 3

    spool_files.settle_kept(directory, redis_client, CLICK_BUFFER, keep_bytes=sum(sizes) - 1)

    assert len(kept(directory)) == 2
    assert HostCounters(directory).totals()["clicks_released_unconfirmed"] == 1


def test_a_batch_whose_write_failed_is_retried_at_the_next_drain_not_after_the_reclaim_time(
    click_log, link, redis_client
):
    log_clicks(click_log, link, 12)
    click_log.ship_own()
    with db.engine.begin() as conn:  # a real failure of the write: the table is gone
        conn.execute(text("ALTER TABLE click RENAME TO click_away"))
    try:
        with pytest.raises(Exception, match="click"):
            drain(reclaim_idle_seconds=3600)
    finally:
        with db.engine.begin() as conn:
            conn.execute(text("ALTER TABLE click_away RENAME TO click"))
    assert redis_client.llen(CLICK_BUFFER.retry_key) == 1  # the one entry holding the 12 lines

    assert drain(reclaim_idle_seconds=3600) == 12

    assert counter_of(link.id) == 12
    assert redis_client.xlen(CLICK_BUFFER.stream) == 0


@pytest.fixture
def evicting_redis(redis_client):
    redis_client.config_set("maxmemory-policy", "allkeys-lru")
    yield redis_client
    redis_client.config_set("maxmemory-policy", "noeviction")


def test_an_evicting_redis_is_a_warning_on_healthz_and_the_ops_panel(
    app, client, evicting_redis, admin_headers
):
    create_user(ADMIN_EMAIL, ADMIN_PASSWORD, is_admin=True)
    redis = client.get("/healthz", headers=admin_headers).json["redis"]
    assert "allkeys-lru" in redis["warning"]

    html = logged_in(app, ADMIN_EMAIL, ADMIN_PASSWORD).get("/fragments/ops").text
    assert 'data-ops="warning"' in html and "allkeys-lru" in html


def test_a_noeviction_redis_has_no_warning(client, redis_client, admin_headers):
    assert redis_client.config_get("maxmemory-policy")["maxmemory-policy"] == "noeviction"
    assert "warning" not in client.get("/healthz", headers=admin_headers).json["redis"]


def test_posted_page_views_wait_in_the_spool_until_shipped(client, app, api_headers, redis_client):
    views = [{"url": f"/spooled/{index}", "response_time_ms": 10 * index} for index in range(5)]

    assert client.post("/api/pageviews", json=views, headers=api_headers).status_code == 202
    assert redis_client.xlen(PAGEVIEW_BUFFER.stream) == 0
    app_pageview_log(app).ship_own()
    assert len(PAGEVIEW_BUFFER.waiting_lines(redis_client)) == 5
    assert len(kept(spool_directory(app.config["CLICK_LOG_DIR"]))) == 1


@pytest.mark.parametrize("url", ["/tab\there", "/\ud800lone-surrogate"])
def test_a_page_view_url_that_cannot_be_a_spool_line_is_a_400(client, api_headers, url):
    response = client.post("/api/pageviews", json={"url": url, "response_time_ms": 5}, headers=api_headers)
    assert response.status_code == 400
    assert "url" in response.json["error"]


# --- real processes ----------------------------------------------------------------


@pytest.mark.integration
def test_redis_restarted_empty_with_a_backlog_loses_no_click(app, user, processes, redis_server):
    link, _ = service.create_link("https://example.com/backlog", user, slug="backlog")
    web = processes.web()
    results = send_redirects(f"{web.url}/r/backlog", 600)
    assert [status for status, _ in results] == [302] * 600
    wait_for(lambda: buffer_length(redis_server) == 600, timeout=30, message="600 clicks in the stream")

    restart_empty(redis_server, CLICK_BUFFER.stream)
    processes.worker(queues="clicks")
    processes.beat()

    assert_counted_exactly(app, redis_server, link.id, 600, timeout=90)
    metrics = requests.get(f"{web.url}/metrics", timeout=5).text
    assert "clickboard_clicks_spool_reshipped_total 600.0" in metrics


@pytest.mark.integration
def test_redis_restarted_empty_while_clicks_flow_loses_no_click(app, user, processes, redis_server):
    link, _ = service.create_link("https://example.com/flowing", user, slug="flowing")
    web = processes.web()
    processes.worker(queues="clicks")
    processes.beat()

    with RedirectSender(f"{web.url}/r/flowing") as sender:
        sender.send_in_phase("before", 200)
        restart_empty(redis_server, CLICK_BUFFER.stream)
        sender.send_in_phase("after", 200)

    assert {item.status for item in sender.sent} == {302}
    assert_counted_exactly(app, redis_server, link.id, len(sender.sent), timeout=90)


@pytest.mark.integration
def test_page_views_accepted_before_redis_restarted_empty_are_all_stored(
    app, processes, api_headers, redis_server
):
    web = processes.web()
    batches = [
        [{"url": f"/kept/{batch}/{index}", "response_time_ms": index} for index in range(200)]
        for batch in range(5)
    ]
    with ThreadPoolExecutor(max_workers=5) as pool:
        responses = list(
            pool.map(
                lambda views: requests.post(f"{web.url}/api/pageviews", json=views, headers=api_headers),
                batches,
            )
        )
    assert [response.status_code for response in responses] == [202] * 5

    def streamed():
        client = redis_server.client()
        try:
            return len(PAGEVIEW_BUFFER.waiting_lines(client))
        finally:
            client.close()

    wait_for(lambda: streamed() == 1000, timeout=30, message="1,000 page views in the stream")
    restart_empty(redis_server, PAGEVIEW_BUFFER.stream)
    processes.worker(queues="clicks")
    processes.beat()

    def stored():
        db.session.rollback()
        return db.session.scalar(select(func.count()).select_from(PageView))

    wait_for(lambda: stored() >= 1000, timeout=60, message="1,000 page-view rows")
    wait_for(
        lambda: kept(spool_directory(app.config["CLICK_LOG_DIR"])) == [],
        timeout=30,
        message="every kept page-view file confirmed",
    )
    assert stored() == 1000
    assert db.session.scalar(select(func.count(func.distinct(PageView.url)))) == 1000


# --- a full disk -----------------------------------------------------------------


@pytest.fixture
def tiny_disk(tmp_path):
    """A 256 KiB tmpfs for the click log (root only: mounting needs it)."""
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root; CI runs as root")
    mountpoint = tmp_path / "tiny"
    mountpoint.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", str(mountpoint)], check=True)
    yield mountpoint
    subprocess.run(["umount", "-l", str(mountpoint)], check=True)


def fill(directory):
    fd = os.open(os.path.join(directory, "filler"), os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        while os.write(fd, b"x" * 4096):
            pass
    except OSError:
        pass  # full
    finally:
        os.close(fd)


@pytest.mark.integration
def test_a_full_click_log_disk_still_redirects_says_so_and_counts_every_click(
    app, user, processes, redis_server, tiny_disk
):
    link, _ = service.create_link("https://example.com/full", user, slug="full")
    clicks_dir = tiny_disk / "clicks"
    web = processes.web(CLICK_LOG_DIR=clicks_dir)
    processes.worker(queues="clicks")
    processes.beat()
    assert [status for status, _ in send_redirects(f"{web.url}/r/full", 20)] == [302] * 20

    fill(tiny_disk)
    assert os.statvfs(tiny_disk).f_bavail == 0, "the disk is not full: the fault did not happen"
    results = send_redirects(f"{web.url}/r/full", 300)

    assert [status for status, _ in results] == [302] * 300
    health = requests.get(f"{web.url}/healthz", timeout=5)  # ok or not is public
    assert health.status_code == 503
    assert health.json()["spool"]["ok"] is False
    wait_for(lambda: counter_of(link.id) >= 320, timeout=60, message="320 clicks counted")
    assert counter_of(link.id) == 320


def test_drained_and_dropped_totals_on_metrics_survive_redis_losing_its_data(
    click_log, link, client, redis_client
):
    log_clicks(click_log, link, 7)
    click_log.append("a torn line")
    click_log.ship_own()
    drain()
    redis_client.flushall()
    assert redis_client.get(CLICK_BUFFER.drained_key) is None  # Redis's own copy is gone

    metrics = client.get("/metrics").text

    assert "clickboard_clicks_drained_total 7.0" in metrics
    assert "clickboard_clicks_dropped_total 1.0" in metrics


@pytest.mark.integration
def test_a_worker_started_on_an_evicting_redis_says_so_in_its_log(processes, evicting_redis):
    worker = processes.worker(queues="clicks")
    wait_for(
        lambda: "maxmemory-policy is allkeys-lru" in worker.log_text(),
        timeout=60,
        message="the eviction warning in the worker's log",
    )
