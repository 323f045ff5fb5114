"""A real Redis Cluster of three masters on loopback ports, for the sharded click buffer's tests.

Each node is a redis-server of its own (``embedded_redis``'s binary, data and
nodes.conf in a temp dir); ``redis-cli --cluster create`` gives each master
one contiguous third of the slots. Nodes may be paused (SIGSTOP: unreachable,
as behind a dead link) and resumed, and a slot moved from one to another.
"""

import os
import shutil
import signal
import socket
import subprocess
import time

import redis
from redis.cluster import RedisCluster

from tests.processes import die_with_test, free_port, wait_for
from webapp import embedded_redis

NODES = 3
BUS_OFFSET = 10_000  # Redis Cluster's node-to-node port is the client port + 10000


def cluster_port():
    """A free port whose cluster bus port (+10000) is free too and exists."""
    while True:
        port = free_port()
        if port + BUS_OFFSET > 65535:
            continue
        with socket.socket() as bus:
            try:
                bus.bind(("127.0.0.1", port + BUS_OFFSET))
            except OSError:
                continue
        return port


class ClusterNode:
    def __init__(self, data_dir):
        self.data_dir, self.port, self.process = data_dir, None, None

    def start(self):
        self.port = cluster_port()
        argv = embedded_redis.command(self.data_dir, self.port, appendonly=True) + [
            "--cluster-enabled", "yes",
            "--cluster-config-file", os.path.join(self.data_dir, "nodes.conf"),
            "--cluster-node-timeout", "2000",
            # The masters that answer keep serving their slots while one is away.
            "--cluster-require-full-coverage", "no",
        ]  # fmt: skip
        os.makedirs(self.data_dir, exist_ok=True)
        self.process = subprocess.Popen(
            argv, stdin=subprocess.DEVNULL, start_new_session=True, preexec_fn=die_with_test()
        )
        embedded_redis.wait_until_ready(self.port, self.process)

    def client(self):
        return redis.Redis(port=self.port, decode_responses=True)

    @property
    def node_id(self):
        with self.client() as client:
            return client.execute_command("CLUSTER MYID")

    def pause(self):
        os.kill(self.process.pid, signal.SIGSTOP)

    def resume(self):
        os.kill(self.process.pid, signal.SIGCONT)

    def stop(self):
        if self.process is not None:
            if self.process.poll() is None:
                self.resume()
            embedded_redis.stop(self.process)
            self.process = None


class LocalCluster:
    def __init__(self, root):
        self.nodes = [ClusterNode(os.path.join(root, f"node-{index}")) for index in range(NODES)]

    @property
    def url(self):
        return f"redis://127.0.0.1:{self.nodes[0].port}/0"

    def start(self):
        try:
            for node in self.nodes:
                node.start()
            addresses = [f"127.0.0.1:{node.port}" for node in self.nodes]
            cli = shutil.which("redis-cli") or os.path.join(
                os.path.dirname(embedded_redis.redis_server_binary()), "redis-cli"
            )
            subprocess.run(
                [cli, "--cluster", "create", *addresses, "--cluster-replicas", "0", "--cluster-yes"],
                check=True, capture_output=True, timeout=60,
            )  # fmt: skip
            wait_for(self.healthy, timeout=30, message="the cluster's state ok on every node")
        except BaseException:
            self.stop()
            raise
        return self

    def healthy(self):
        for node in self.nodes:
            with node.client() as client:
                if client.cluster("INFO").get("cluster_state") != "ok":
                    return False
        return True

    def client(self):
        return RedisCluster.from_url(self.url, decode_responses=True)

    def node_of(self, slot):
        """The node serving ``slot`` now."""
        with self.nodes[0].client() as client:
            for low, high, master, *_ in client.execute_command("CLUSTER SLOTS"):
                if low <= slot <= high:
                    return next(node for node in self.nodes if node.port == int(master[1]))
        raise LookupError(slot)

    def move_slot(self, slot, target):
        """Migrate ``slot`` and its keys to ``target`` while clients keep using it (MIGRATING /
        IMPORTING, MIGRATE key by key, then SETSLOT NODE everywhere), as a resharding does."""
        source = self.node_of(slot)
        with source.client() as src, target.client() as dst:
            dst.execute_command("CLUSTER SETSLOT", slot, "IMPORTING", source.node_id)
            src.execute_command("CLUSTER SETSLOT", slot, "MIGRATING", target.node_id)
            while keys := src.execute_command("CLUSTER GETKEYSINSLOT", slot, 100):
                src.execute_command("MIGRATE", "127.0.0.1", target.port, "", 0, 5000, "KEYS", *keys)
                time.sleep(0.05)  # clients meet ASK redirections meanwhile
            for node in self.nodes:
                with node.client() as client:
                    client.execute_command("CLUSTER SETSLOT", slot, "NODE", target.node_id)

    def stop(self):
        for node in self.nodes:
            node.stop()
