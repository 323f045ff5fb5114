"""Dashboards polling at a set pace (an open loop), which wrk cannot do against gunicorn.

wrk's ``delay()`` paces a connection by opening it first and then waiting
before writing the request. A sync gunicorn worker that has accepted the
connection blocks reading it for the whole delay (a gthread worker parks a
thread on it for up to 5 s), so paced wrk measures idle sockets holding
workers, not the app. A browser polling every few seconds does not do that.

Here each of N pollers (asyncio, one process) sends its next request on its
own schedule, ``interval`` seconds after the previous one was sent (or at
once if that one took longer). A group either opens a fresh connection for
every request (``Connection: close``: a visitor following a short link, or
what a sync worker answers anyway) or, with ``keep_alive``, keeps one per
poller and sends over it again, as a browser with an open dashboard does
(it opens a new one whenever the server closed the last). Latency is from
sending (opening the connection first, when there is none) to the last byte
of the response. The pollers start at random offsets within the first
interval, so they do not arrive in step. Several groups (dashboards,
clicks) run side by side in one loop.

One Python process opens about a thousand connections a second at most,
so ``run_split`` spreads the pollers over several processes (each a share
of every group) and merges their samples; it also reports the CPU the
client itself used, which on a small machine is taken from the server.
"""

import asyncio
import multiprocessing
import os
import random
import time
from dataclasses import dataclass, field, replace

TIMEOUT_S = 10.0


@dataclass
class Group:
    """``pollers`` clients, each sending the next of ``paths`` every ``interval`` seconds."""

    name: str
    paths: list
    pollers: int
    interval: float
    accept: tuple = (200,)  # the statuses that count as answered
    headers: dict = field(default_factory=dict)
    keep_alive: bool = False  # one connection per poller, reused while the server keeps it

    @property
    def offered_per_sec(self):
        return self.pollers / self.interval


class Connection:
    """One poller's HTTP/1.1 connection: opened when needed, kept while the server keeps it."""

    def __init__(self, host, port, keep_alive):
        self.host, self.port, self.keep_alive = host, port, keep_alive
        self.reader = self.writer = None

    async def get(self, path, headers):
        """The status of one GET (0 for a failure), on this connection or a new one."""
        try:
            if self.writer is None:
                self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
            lines = [f"GET {path} HTTP/1.1", f"Host: {self.host}:{self.port}"]
            lines += [] if self.keep_alive else ["Connection: close"]
            lines += [f"{name}: {value}" for name, value in headers.items()]
            self.writer.write(("\r\n".join(lines) + "\r\n\r\n").encode())
            await self.writer.drain()
            status, kept = await read_response(self.reader)
        except (OSError, ValueError, IndexError, asyncio.IncompleteReadError):
            status, kept = 0, False
        if not (kept and self.keep_alive):
            self.close()
        return status

    def close(self):
        if self.writer is not None:
            self.writer.close()
        self.reader = self.writer = None


async def read_response(reader):
    """(status, whether the connection stays open) of one response, read to its last byte."""
    status_line = await reader.readline()
    status = int(status_line.split()[1])
    fields = {}
    while (line := await reader.readline()) not in (b"\r\n", b"\n", b""):
        name, _, value = line.decode("latin-1").partition(":")
        fields[name.strip().lower()] = value.strip().lower()
    kept = status_line.startswith(b"HTTP/1.1") and fields.get("connection") != "close"
    if "content-length" in fields:
        await reader.readexactly(int(fields["content-length"]))
    elif fields.get("transfer-encoding") == "chunked":
        while (size := int((await reader.readline()).split(b";")[0], 16)) > 0:
            await reader.readexactly(size + 2)
        await reader.readline()  # no trailers are sent: the blank line after the last chunk
    else:
        await reader.read()  # the body runs to the end of the connection
        kept = False
    return status, kept


async def poller(host, port, group, until, samples, rng):
    index = rng.randrange(len(group.paths))
    next_at = time.perf_counter() + rng.random() * group.interval
    connection = Connection(host, port, group.keep_alive)
    while True:
        # Not past the end: a poller sleeping out its last interval would stretch the run's
        # seconds, and the requests per second reported would come out short of those sent.
        await asyncio.sleep(max(0.0, min(next_at, until) - time.perf_counter()))
        if time.perf_counter() >= until:
            connection.close()
            return
        next_at += group.interval
        started = time.perf_counter()
        try:
            status = await asyncio.wait_for(connection.get(group.paths[index], group.headers), TIMEOUT_S)
        except TimeoutError:
            connection.close()
            status = 0
        samples.append((group.paths[index], status, time.perf_counter() - started))
        index = (index + 1) % len(group.paths)
        next_at = max(next_at, time.perf_counter())


async def poll_all(host, port, groups, duration, seed=7):
    rng = random.Random(seed)
    samples = {group.name: [] for group in groups}
    until = time.perf_counter() + duration
    clients = [
        poller(host, port, group, until, samples[group.name], rng)
        for group in groups
        for _ in range(group.pollers)
    ]
    await asyncio.gather(*clients)
    return samples


def percentile(sorted_values, p):
    """Nearest rank."""
    if not sorted_values:
        return None
    rank = max(1, -(-p * len(sorted_values) // 100))
    return sorted_values[rank - 1]


def figures(group, samples, elapsed):
    """Shaped like ``WrkResult.as_dict()`` where they overlap."""
    latencies = sorted(seconds * 1000 for _, _, seconds in samples)
    latency = {f"{p}%": percentile(latencies, p) for p in (50, 75, 90, 95, 99)}
    by_path = {}
    for path in group.paths:
        mine = sorted(seconds * 1000 for sent, _, seconds in samples if sent == path)
        by_path[path] = {
            "requests": len(mine),
            "p50_ms": percentile(mine, 50),
            "p95_ms": percentile(mine, 95),
        }
    return {
        "requests": len(samples),
        "seconds": elapsed,
        "requests_per_sec": len(samples) / elapsed,
        "offered_per_sec": group.offered_per_sec,
        "latency_ms": latency,
        "p95_ms": latency["95%"],
        "p99_ms": latency["99%"],
        "max_ms": latencies[-1] if latencies else None,
        "bad_status": sum(1 for _, status, _ in samples if status not in group.accept),
        "failed": sum(1 for _, status, _ in samples if status == 0),
        "socket_errors": {},
        "by_path": by_path,
    }


def run(base_url, groups, duration):
    """All groups at once for ``duration`` seconds: their figures by group name."""
    host, port = base_url.removeprefix("http://").split(":")
    started = time.perf_counter()
    samples = asyncio.run(poll_all(host, int(port), groups, duration))
    elapsed = time.perf_counter() - started
    return {group.name: figures(group, samples[group.name], elapsed) for group in groups}


def poll_share(base_url, groups, duration, seed):
    """One poller process's part: (samples by group name, its CPU seconds, its wall seconds)."""
    host, port = base_url.removeprefix("http://").split(":")
    cpu, started = time.process_time(), time.perf_counter()
    samples = asyncio.run(poll_all(host, int(port), groups, duration, seed))
    return samples, time.process_time() - cpu, time.perf_counter() - started


def shares(groups, processes):
    """Each process's groups: every group's pollers divided as evenly as they go."""
    return [
        [replace(group, pollers=len(range(index, group.pollers, processes))) for group in groups]
        for index in range(processes)
    ]


def run_split(base_url, groups, duration, processes):
    """``run`` from ``processes`` processes at once: the figures by group name (of all the
    processes' samples together) and, under ``"client"``, the pollers' own CPU use."""
    work = [(base_url, share, duration, 7 + index) for index, share in enumerate(shares(groups, processes))]
    # spawn: the bench has imported the app and runs threads, which a fork would copy half-way.
    with multiprocessing.get_context("spawn").Pool(processes) as pool:
        parts = pool.starmap(poll_share, work)
    elapsed = max(seconds for _, _, seconds in parts)
    merged = {
        group.name: [sample for samples, _, _ in parts for sample in samples[group.name]] for group in groups
    }
    figures_by_group = {group.name: figures(group, merged[group.name], elapsed) for group in groups}
    cpu = sum(seconds for _, seconds, _ in parts)
    figures_by_group["client"] = {
        "processes": processes,
        "cpu_s": round(cpu, 3),
        "cpu_share": round(cpu / (elapsed * (os.cpu_count() or 1)), 3),
    }
    return figures_by_group
