"""Work spread over hosts: host queues, shared queues, per-worker rate limits.

Two real workers named for two hosts consume the shared ``default`` queue
and their own ``host.<name>`` queue. The quota-bound task is the real link
target check, fetching from a local HTTP server the test starts (allowed
explicitly: the checker refuses loopback addresses otherwise).
"""

import re

import pytest

from tests.local_site import LocalSite
from tests.processes import ClickLogWriter, wait_for
from webapp.clicks.buffer import CLICK_BUFFER
from webapp.clicks.events import encode_click
from webapp.extensions import db
from webapp.links import service
from webapp.models import Link

pytestmark = pytest.mark.integration

HOSTS = "a,b"
# The deployment's quota (30/m) would pace these tests' checks two seconds apart;
# only the rate-limit test itself keeps a limit.
UNLIMITED = "1000/s"


@pytest.fixture
def target_server():
    with LocalSite() as site:
        yield site


@pytest.fixture
def routed_app(make_app):
    return make_app(HOST_QUEUES=["a", "b"], LINK_CHECK_ALLOWED_HOSTS=["127.0.0.1"])


def make_links(user, server, count, path="page"):
    return [
        service.create_link(f"{server.base}/{path}/{n}", user, slug=f"{path}-{n}")[0].id for n in range(count)
    ]


def start_host_workers(processes, **env):
    common = {
        "HOST_QUEUES": HOSTS,
        "LINK_CHECK_ALLOWED_HOSTS": "127.0.0.1",
        "LINK_CHECK_RATE_LIMIT": UNLIMITED,
        **env,
    }
    worker_a = processes.worker(name="host-a", queues="default,host.a", **common)
    worker_b = processes.worker(name="host-b", queues="default,host.b", **common)
    return worker_a, worker_b


def checks_run(worker):
    return len(re.findall(r"Task tasks\.links\.check_link_target\[[^\]]+\] succeeded", worker.log_text()))


def all_checked(link_ids):
    db.session.expire_all()
    return all(
        link.checked_at is not None
        for link in db.session.scalars(db.select(Link).where(Link.id.in_(link_ids)))
    )


def test_a_task_sent_to_a_host_queue_runs_only_on_that_host(routed_app, user, processes, target_server):
    from tasks.links import send_link_check

    link_ids = make_links(user, target_server, 6)
    worker_a, worker_b = start_host_workers(processes)
    for link_id in link_ids:
        send_link_check(link_id, host="a")
    wait_for(lambda: all_checked(link_ids), timeout=60, message="six checks recorded")
    assert (checks_run(worker_a), checks_run(worker_b)) == (6, 0)


def test_tasks_on_the_shared_queue_are_spread_over_both_hosts(routed_app, user, processes, target_server):
    from tasks.links import send_link_check

    link_ids = make_links(user, target_server, 16)
    worker_a, worker_b = start_host_workers(processes)
    wait_for(
        lambda: "ready" in worker_a.log_text() and "ready" in worker_b.log_text(),
        timeout=60,
        message="workers up",
    )
    for link_id in link_ids:
        send_link_check(link_id)
    wait_for(lambda: all_checked(link_ids), timeout=60, message="sixteen checks recorded")
    ran_a, ran_b = checks_run(worker_a), checks_run(worker_b)
    assert ran_a + ran_b == 16
    assert ran_a > 0 and ran_b > 0, (ran_a, ran_b)


def test_a_rate_limited_task_never_exceeds_its_limit_on_one_worker(
    routed_app, user, processes, target_server
):
    from tasks.links import send_link_check

    link_ids = make_links(user, target_server, 6)
    processes.worker(
        name="limited",
        queues="default",
        concurrency=2,
        LINK_CHECK_RATE_LIMIT="60/m",
        LINK_CHECK_ALLOWED_HOSTS="127.0.0.1",
    )
    for link_id in link_ids:
        send_link_check(link_id)
    wait_for(lambda: all_checked(link_ids), timeout=60, message="six checks recorded")
    times = sorted(request["at"] for request in target_server.requests)
    gaps = [later - earlier for earlier, later in zip(times, times[1:], strict=False)]
    # 60/m is one a second. A fetch's own latency moves each arrival by a fraction of a
    # second either way, so no gap may be under half a slot (two in one slot would be),
    # and six checks span at least the five slots between them. Load only widens both.
    assert len(times) == 6
    assert min(gaps) >= 0.5, gaps
    assert times[-1] - times[0] >= 4.5, gaps


def test_link_check_records_status_and_title_through_its_callback(routed_app, user, processes, target_server):
    from tasks.links import send_link_check

    ok_id = make_links(user, target_server, 1, path="page")[0]
    gone_id = make_links(user, target_server, 1, path="gone")[0]
    processes.worker(queues="default", LINK_CHECK_ALLOWED_HOSTS="127.0.0.1", LINK_CHECK_RATE_LIMIT=UNLIMITED)
    send_link_check(ok_id)
    send_link_check(gone_id)
    wait_for(lambda: all_checked([ok_id, gone_id]), timeout=60, message="two checks recorded")
    ok, gone = db.session.get(Link, ok_id), db.session.get(Link, gone_id)
    assert (ok.target_ok, ok.target_status, ok.target_title) == (True, 200, "Local page")
    assert (gone.target_ok, gone.target_status) == (False, 404)
    assert all("Cookie" not in request["headers"] for request in target_server.requests)


def test_a_worker_without_the_allowance_refuses_to_fetch_a_loopback_target(
    routed_app, user, processes, target_server
):
    from tasks.links import send_link_check

    link_id = make_links(user, target_server, 1)[0]
    processes.worker(queues="default", LINK_CHECK_ALLOWED_HOSTS="")
    send_link_check(link_id)
    wait_for(lambda: all_checked([link_id]), timeout=60, message="the check recorded")
    link = db.session.get(Link, link_id)
    assert link.target_ok is False
    assert "non-public address" in link.target_error
    assert target_server.requests == []


def test_each_named_host_ships_the_spools_left_on_its_own_disk(app, user, processes, tmp_path, redis_client):
    """A host restarted without traffic: the click log its killed web process left is
    shipped by that host's worker (beat sends each named host its own orphan shipping),
    though the worker consumes no shared queue at all."""
    link, _ = service.create_link("https://example.com/left", user, slug="left")
    host_disk = tmp_path / "host-a-clicks"
    lines = [encode_click(link.id, "GET", None, "Mozilla/5.0", "203.0.113.9") for _ in range(5)]
    ClickLogWriter(host_disk, lines).exit()  # dies without shipping, as a killed web process
    env = {"HOST_QUEUES": HOSTS, "CLICK_LOG_DIR": host_disk}
    processes.worker(name="host-a", queues="host.a", **env)
    processes.beat(**env)
    wait_for(
        lambda: CLICK_BUFFER.waiting_lines(redis_client) == lines,
        timeout=60,
        message="host a's orphaned clicks shipped by host a's worker",
    )
