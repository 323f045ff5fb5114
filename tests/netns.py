"""Hosts on one machine: network namespaces on a bridge, for the several-hosts test.

``Network`` builds, in a /24 of 10.0.0.0/8 that no interface or route of the
machine uses, a bridge in the root namespace and one namespace per host, each
joined to the bridge by a veth pair:

    root namespace: bridge cb<pid>b  .1 (PostgreSQL and RabbitMQ, forwarded)
                                     .2 (the test's redis-server)
    host n:         namespace cb<pid>h<n>, eth0 .1<n>, veth cb<pid>h<n> on the bridge

Every name carries the test's pid, so a run can tell the leftovers of a dead
run (its pid gone) from those of a run still going, and remove only those.

Processes of a host are started with ``in_host(namespace)`` as their
``preexec_fn``: the child joins the namespace itself (``setns``) and execs,
so the pid the test holds is gunicorn's or Celery's own (``ip netns exec``
would put its own process in between), and it asks the kernel for a signal
when the test dies (``PR_SET_PDEATHSIG``), so nothing outlives a killed run.

``python -m tests.netns LISTEN_HOST:PORT=TARGET_HOST:PORT ...`` is the TCP
forwarder that shows the machine's PostgreSQL and RabbitMQ, which listen on
127.0.0.1 only, on the bridge's address.
"""

import asyncio
import contextlib
import ctypes
import ipaddress
import json
import os
import random
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading

from tests import processes
from webapp import PROJECT_ROOT

LIBC = ctypes.CDLL(None, use_errno=True)
CLONE_NEWNET = 0x40000000
NETNS_DIR = "/var/run/netns"
# Names this module gives: bridge cb<pid>b, namespaces and veths cb<pid>h<n> (IFNAMSIZ is 16).
OUR_NAME = re.compile(r"cb(\d+)(?:b|h\d+)")
SUBNET_TRIES = 50


def missing_reason():
    """Why network namespaces cannot be built here, or None."""
    if shutil.which("ip") is None:
        return "needs iproute2 (`ip`) for network namespaces"
    if os.geteuid() != 0:
        return "needs root to create network namespaces (`ip netns add`)"
    probe = f"cb{os.getpid()}h0"
    result = subprocess.run(["ip", "netns", "add", probe], capture_output=True, text=True)
    if result.returncode != 0:
        return f"`ip netns add` is not permitted here: {result.stderr.strip()}"
    ip("netns", "del", probe)
    return None


def ip(*args, namespace=None, check=True):
    """Run ``ip`` (in ``namespace``); return its stdout, raise with its stderr on failure."""
    command = ["ip", *(("-n", namespace) if namespace else ()), *args]
    result = subprocess.run(command, capture_output=True, text=True, timeout=30)
    if check and result.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed: {result.stderr.strip()}")
    return result.stdout


def join_namespace(namespace):
    """Move the calling thread (or a child before exec) into ``namespace``'s network."""
    fd = os.open(os.path.join(NETNS_DIR, namespace), os.O_RDONLY)
    try:
        if LIBC.setns(fd, CLONE_NEWNET) != 0:
            raise OSError(ctypes.get_errno(), f"setns into {namespace}")
    finally:
        os.close(fd)


def in_host(namespace=None, death_signal=signal.SIGTERM):
    """A ``preexec_fn``: die with the test (``processes.die_with_test``), then join ``namespace``."""
    die_with_test = processes.die_with_test(death_signal)

    def prepare():
        die_with_test()
        if namespace:
            join_namespace(namespace)

    return prepare


def socket_in(namespace, address):
    """A listening-ready socket bound to ``address`` (port chosen by the kernel) inside ``namespace``.

    Bound on a thread that joins the namespace: a socket stays in the namespace
    it was made in, and only that thread's namespace changes, not the test's.
    """
    made = {}

    def bind():
        try:
            join_namespace(namespace)
            sock = socket.socket()
            sock.bind((address, 0))
            sock.set_inheritable(True)
            made["socket"] = sock
        except OSError as exc:
            made["error"] = exc

    thread = threading.Thread(target=bind)
    thread.start()
    thread.join()
    if "error" in made:
        raise made["error"]
    return made["socket"]


def reaches(namespace, address, port, timeout=2.0):
    """Whether a TCP connection from inside ``namespace`` to ``address:port`` succeeds."""
    reached = {}

    def connect():
        join_namespace(namespace)
        try:
            socket.create_connection((address, port), timeout=timeout).close()
            reached["yes"] = True
        except OSError:
            reached["yes"] = False

    thread = threading.Thread(target=connect)
    thread.start()
    thread.join()
    return reached.get("yes", False)


def used_networks():
    """The networks of every address and route of the root namespace."""
    networks = []
    for interface in json.loads(ip("-j", "addr") or "[]"):
        for info in interface.get("addr_info", []):
            if info.get("family") == "inet":
                networks.append(ipaddress.ip_network(f"{info['local']}/{info['prefixlen']}", strict=False))
    for route in json.loads(ip("-j", "route", "show", "table", "all") or "[]"):
        destination = route.get("dst")
        if destination and destination != "default" and ":" not in destination:
            networks.append(ipaddress.ip_network(destination, strict=False))
    return networks


def free_subnet():
    """A random 10.x.y.0/24 that overlaps nothing the machine has an address or route for."""
    used = used_networks()
    for _ in range(SUBNET_TRIES):
        candidate = ipaddress.ip_network(f"10.{random.randrange(256)}.{random.randrange(256)}.0/24")
        if not any(candidate.overlaps(network) for network in used):
            return candidate
    raise RuntimeError(f"no unused 10.x.y.0/24 after {SUBNET_TRIES} tries")


def pid_alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def remove_leftovers():
    """Remove the namespaces, veths and bridges of earlier runs whose process is gone."""
    namespaces = [entry["name"] for entry in json.loads(ip("-j", "netns", "list") or "[]")]
    links = [entry["ifname"] for entry in json.loads(ip("-j", "link") or "[]")]
    for name in namespaces:
        match = OUR_NAME.fullmatch(name)
        if match and not pid_alive(int(match.group(1))):
            ip("netns", "del", name, check=False)
    for name in links:
        match = OUR_NAME.fullmatch(name)
        if match and not pid_alive(int(match.group(1))):
            ip("link", "del", name, check=False)


class Network:
    """A bridge with addresses for the shared services and ``hosts`` namespaces on it."""

    def __init__(self, hosts):
        self.tag = f"cb{os.getpid()}"
        self.subnet = free_subnet()
        self.bridge = f"{self.tag}b"
        self.services_address = str(self.subnet[1])  # PostgreSQL, RabbitMQ
        self.redis_address = str(self.subnet[2])  # apart, so a host can be cut from Redis alone
        self.hosts = {f"h{n}": str(self.subnet[10 + n]) for n in range(1, hosts + 1)}

    def namespace(self, host):
        return f"{self.tag}{host}"

    def build(self):
        prefix = self.subnet.prefixlen
        ip("link", "add", self.bridge, "type", "bridge")
        for address in (self.services_address, self.redis_address):
            ip("addr", "add", f"{address}/{prefix}", "dev", self.bridge)
        ip("link", "set", self.bridge, "up")
        for host, address in self.hosts.items():
            namespace = veth = self.namespace(host)
            ip("netns", "add", namespace)
            ip("link", "add", veth, "type", "veth", "peer", "name", "eth0", "netns", namespace)
            ip("link", "set", veth, "master", self.bridge, "up")
            ip("addr", "add", f"{address}/{prefix}", "dev", "eth0", namespace=namespace)
            ip("link", "set", "eth0", "up", namespace=namespace)
            ip("link", "set", "lo", "up", namespace=namespace)
        return self

    def remove(self):
        """Remove everything ``build`` made; safe to call on a half-built network."""
        for host in self.hosts:
            ip("netns", "del", self.namespace(host), check=False)
            ip("link", "del", self.namespace(host), check=False)
        ip("link", "del", self.bridge, check=False)

    def cut(self, host, address):
        """From now on ``host`` cannot reach ``address``: connections fail at once (EACCES)."""
        ip("route", "add", "prohibit", f"{address}/32", namespace=self.namespace(host))

    def heal(self, host, address):
        ip("route", "del", "prohibit", f"{address}/32", namespace=self.namespace(host))

    def routes(self, host):
        return ip("route", "show", "table", "all", namespace=self.namespace(host))


class Forwarder:
    """``python -m tests.netns``: TCP ports of the bridge forwarded to services on 127.0.0.1."""

    def __init__(self, mappings, log_path):
        self.mappings = mappings  # [((listen host, port), (target host, port)), ...]
        self.log_path = log_path
        self.process = None

    def start(self):
        arguments = [f"{lh}:{lp}={th}:{tp}" for (lh, lp), (th, tp) in self.mappings]
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "tests.netns", *arguments],
                cwd=PROJECT_ROOT,
                stdout=subprocess.PIPE,
                stderr=log,
                start_new_session=True,
                preexec_fn=in_host(death_signal=signal.SIGKILL),
            )
        ready = self.process.stdout.readline()
        if ready.strip() != b"ready":
            raise RuntimeError(f"the forwarder did not start (see {self.log_path})")
        return self

    def stop(self):
        if self.process is not None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()
            self.process.stdout.close()
            self.process = None


async def pipe(reader, writer):
    """Copy one direction until its end, then pass the end on (half-close)."""
    try:
        while data := await reader.read(1 << 16):
            writer.write(data)
            await writer.drain()
        if writer.can_write_eof():
            writer.write_eof()
    except OSError:
        writer.close()


async def forward_connection(client_reader, client_writer, target):
    try:
        server_reader, server_writer = await asyncio.open_connection(*target)
    except OSError:
        client_writer.close()
        return
    await asyncio.gather(pipe(client_reader, server_writer), pipe(server_reader, client_writer))
    server_writer.close()
    client_writer.close()


async def serve(mappings):
    servers = []
    for listen, target in mappings:
        servers.append(
            await asyncio.start_server(
                lambda r, w, target=target: forward_connection(r, w, target), *listen, reuse_address=True
            )
        )
    print("ready", flush=True)
    await asyncio.gather(*(server.serve_forever() for server in servers))


def parse_mapping(argument):
    listen, target = argument.split("=")
    (listen_host, listen_port), (target_host, target_port) = (
        side.rsplit(":", 1) for side in (listen, target)
    )
    return (listen_host, int(listen_port)), (target_host, int(target_port))


if __name__ == "__main__":
    asyncio.run(serve([parse_mapping(argument) for argument in sys.argv[1:]]))
