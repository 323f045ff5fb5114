"""The sharded click buffer on a real three-master Redis Cluster (``tests.redis_cluster``).

Real gunicorn, Celery worker and beat with ``CLICK_REDIS_URL`` naming one
node, ``CLICK_REDIS_CLUSTER=1`` and ``CLICK_STREAMS=3``: the shards land one
per master, every click is counted once, a master that is away holds back its
own shard's clicks only (they wait in the web host's spool), and a slot moved
to another master during traffic loses and doubles nothing.
"""

import threading
import time

import pytest
import requests
from redis.crc import key_slot

from tests.processes import wait_for
from tests.redis_cluster import LocalCluster
from tests.test_click_pipeline import click_totals, send_redirects
from webapp.links import service
from webapp.spool_files import list_directory
from webapp.streams import StreamBuffer

SHARDS = 3


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    local = LocalCluster(str(tmp_path_factory.mktemp("cluster"))).start()
    yield local
    local.stop()


@pytest.fixture
def on_cluster(cluster, app):
    """The environment that puts the click buffer on the cluster, with keys of this test's own."""
    client = cluster.client()
    try:
        for node in client.get_primaries():
            client.flushall(target_nodes=node)
    finally:
        client.close()
    return {"CLICK_REDIS_URL": cluster.url, "CLICK_REDIS_CLUSTER": "1", "CLICK_STREAMS": str(SHARDS)}


def start_on_cluster(processes, env):
    """Web, clicks worker and beat, the click buffer on the cluster; return the web server."""
    web = processes.web(**env)
    processes.worker(queues="clicks", **env)
    processes.beat(**env)
    return web


def cluster_buffer(app):
    """The click buffer as the processes on the cluster build it (their keys, in this test)."""
    return StreamBuffer(app.config["CLICKBOARD_NAMESPACE"], "clicks", "drain", "c", SHARDS, True)


def counted_stays(link_id, expected, seconds=3.0):
    """The counter reached ``expected`` and, ``seconds`` later, still says so (nothing doubled)."""
    wait_for(
        lambda: click_totals(link_id).counter >= expected, timeout=90, message=f"{expected} clicks counted"
    )
    time.sleep(seconds)
    return click_totals(link_id)


def test_each_shard_lives_on_its_own_master_with_its_keys_in_one_slot(cluster):
    buffer = StreamBuffer("ns", "clicks", "drain", field="c", shards=SHARDS, tagged=True)
    owners = set()
    for shard in buffer.shards:
        keys = (shard.stream, shard.epoch_key, shard.retry_key, shard.buffered_key, shard.drained_key)
        assert len({key_slot(key.encode()) for key in keys}) == 1, keys
        owners.add(cluster.node_of(key_slot(shard.stream.encode())).port)
    assert len(owners) == SHARDS


def test_one_stream_on_a_cluster_keeps_its_keys_in_one_slot_too():
    (shard,) = StreamBuffer("ns", "clicks", "drain", field="c", tagged=True).shards
    assert len({key_slot(key.encode()) for key in (shard.stream, shard.epoch_key, shard.buffered_key)}) == 1


def test_clicks_through_every_shard_of_the_cluster_are_counted_once(
    app, user, processes, on_cluster, cluster
):
    link, _ = service.create_link("https://example.com/sharded", user, slug="sharded")
    web = start_on_cluster(processes, on_cluster)

    results = send_redirects(f"{web.url}/r/sharded", 600)

    assert [status for status, _ in results] == [302] * 600
    assert counted_stays(link.id, 600) == (600, 600, 600)
    client = cluster.client()
    try:
        buffer = cluster_buffer(app)
        per_shard = [int(client.get(shard.buffered_key) or 0) for shard in buffer.shards]
    finally:
        client.close()
    assert sum(per_shard) == 600 and all(per_shard), per_shard  # every shard took its share


def test_a_master_that_is_away_holds_back_its_own_shard_only(app, user, processes, on_cluster, cluster):
    link, _ = service.create_link("https://example.com/away", user, slug="away")
    web = start_on_cluster(processes, on_cluster)
    send_redirects(f"{web.url}/r/away", 10)  # the link cached, the shards' groups made
    wait_for(lambda: click_totals(link.id).counter == 10, timeout=60, message="the first clicks counted")
    buffer = cluster_buffer(app)
    away = cluster.node_of(key_slot(buffer.shards[0].stream.encode()))

    away.pause()
    try:
        results = send_redirects(f"{web.url}/r/away", 300)
        assert [status for status, _ in results] == [302] * 300  # redirects never wait on Redis
        # The other shards' clicks flow: about two thirds, never all of them.
        wait_for(
            lambda: click_totals(link.id).counter >= 10 + 150, timeout=60, message="the other shards drained"
        )
        time.sleep(2)
        assert click_totals(link.id).counter < 310
        held = [name for name in list_directory(app.config["CLICK_LOG_DIR"]) if name.endswith("-s0.log")]
        assert held, "the away shard's clicks wait in the spool"
    finally:
        away.resume()

    assert counted_stays(link.id, 310) == (310, 310, 310)


def test_a_slot_moved_to_another_master_during_traffic_loses_and_doubles_nothing(
    app, user, processes, on_cluster, cluster
):
    link, _ = service.create_link("https://example.com/moved", user, slug="moved")
    web = start_on_cluster(processes, on_cluster)
    buffer = cluster_buffer(app)
    slot = key_slot(buffer.shards[1].stream.encode())
    sent, stop = [], threading.Event()

    def send():
        with requests.Session() as session:
            while not stop.is_set():
                sent.append(session.get(f"{web.url}/r/moved", allow_redirects=False, timeout=5).status_code)
                time.sleep(0.005)

    sender = threading.Thread(target=send)
    sender.start()
    try:
        time.sleep(2)
        target = next(node for node in cluster.nodes if node is not cluster.node_of(slot))
        cluster.move_slot(slot, target)
        time.sleep(2)
    finally:
        stop.set()
        sender.join()

    assert cluster.node_of(slot) is target
    assert set(sent) == {302}
    assert counted_stays(link.id, len(sent)) == (len(sent),) * 3
