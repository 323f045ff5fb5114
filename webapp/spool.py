"""The local spool: where a click or a page view is written first, shipped from,
and kept until the drain has committed it.

A request appends its line to a file of its own process (one ``write`` to the
page cache, no network) and answers. A background thread, the shipper, moves
the lines to the Redis Stream buffer every ``interval`` seconds. When Redis is
down the lines simply wait in the file: the spool is the outage path.

Redis may also *forget* what it was given: a restart without persistence, a
failover to a replica that lagged, an AOF that lost its last second, an
eviction under ``maxmemory``. So a shipped file is not deleted but kept, named
after the buffer's epoch (a token set in Redis whenever the stream is created,
so a stream Redis lost or evicted comes back under a new one) and the last
stream id its lines got.
The shipper then settles kept files (``webapp.spool_files.settle_kept``):

- the drain has committed past the file's last id: delete it;
- the epoch changed, the stream is gone, or the stream's last id is older
  than the file's (Redis lost them): ship the file again; the event ids in
  the lines make the drain count each once;
- otherwise keep waiting. ``keep_bytes`` bounds the disk this uses: past it
  the oldest kept files are released (counted) rather than fill the disk.

Files, in the spool's directory:

    <prefix>-<host>-<pid>.log        the file a live process appends to
    shipping-<pid>-<uuid>.log        a file moved aside to be shipped
    shipped-<epoch>-<ms>-<seq>-<uuid>.kept   shipped, kept until committed

To ship, the owner renames its file aside and opens a fresh one, under a
thread lock so no append falls between. A process holds a shared ``flock``
on the file it appends to and an exclusive one on a file it ships, so
``ship_orphans`` (run by every shipper now and then, and by the periodic
task) can tell the files of dead processes, which it ships, from live ones.

When the disk refuses a line (full, read-only, gone), the line is held in
memory instead (``memory_lines`` at most; beyond that it is counted lost),
the spool reports itself failing (``failing``), and the shipper sends held
lines straight to Redis. A redirect never fails for want of a log.
"""

import atexit
import collections
import contextlib
import logging
import os
import socket
import threading
import time
import uuid

from flask import current_app
from redis import RedisError

from webapp.durable_counters import HostCounters
from webapp.spool_files import (
    list_directory,
    open_appending,
    settle_kept,
    ship_file,
    ship_files,
    ship_orphans,
)

log = logging.getLogger(__name__)

ORPHAN_CHECK_EVERY = 50  # shipper ticks between looks for dead processes' files
SETTLE_EVERY = 5  # shipper ticks between looks at kept files
# A spool that failed to write within this many seconds reports itself failing.
FAILING_FOR_SECONDS = 60.0
# Kept (shipped, not yet committed) files beyond this are released, oldest first.
DEFAULT_KEEP_BYTES = 256 << 20
# Lines held in memory while the disk refuses them, per process.
DEFAULT_MEMORY_LINES = 10_000


class Spool:
    """One process's spool file, its memory fallback and its shipper thread."""

    def __init__(
        self,
        directory,
        client,
        interval,
        buffer,
        prefix,
        keep_bytes=DEFAULT_KEEP_BYTES,
        memory_lines=DEFAULT_MEMORY_LINES,
    ):
        self.directory = directory
        self.client = client
        self.interval = interval
        self.buffer = buffer
        self.prefix = prefix
        self.keep_bytes = keep_bytes
        self.held = collections.deque()  # lines the disk refused, waiting for Redis
        self.memory_lines = memory_lines
        self.counters = HostCounters(directory)
        self.last_failure = None  # (time, error text) of the last line the disk refused
        self.lock = threading.Lock()
        self.fd = None
        self.torn = False  # a short write left a partial line: start the next one afresh
        self.pid = None
        self.stopped = threading.Event()

    @property
    def path(self):
        return os.path.join(self.directory, f"{self.prefix}-{socket.gethostname()}-{self.pid}.log")

    @property
    def metric(self):
        return self.buffer.metric

    def append(self, line):
        data = (line + "\n").encode()
        with self.lock:
            if self.pid != os.getpid():  # first use in this process (gunicorn forks after loading)
                self.start()
            try:
                self.write(data)
            except OSError as exc:
                self.hold(line, exc)

    def append_all(self, lines):
        """Write lines that must be on disk before they are acknowledged; raise OSError if the
        disk refuses them (the caller says "not accepted", and nothing is held or lost)."""
        data = "".join(line + "\n" for line in lines).encode()
        with self.lock:
            if self.pid != os.getpid():
                self.start()
            try:
                self.write(data)
            except OSError as exc:
                self.last_failure = (time.time(), f"{type(exc).__name__}: {exc}"[:200])
                raise

    def write(self, data):
        if self.fd is None:
            self.fd = open_appending(self.path)  # the disk refused before: try it again
        if self.torn:
            data = b"\n" + data  # the partial line stays alone, and the drain drops it
        written = os.write(self.fd, data)
        self.torn = written < len(data)
        if self.torn:
            raise OSError(f"short write to the {self.prefix} log ({written} of {len(data)} bytes)")

    def hold(self, line, exc):
        """The disk refused ``line``: keep it in memory for the shipper, or count it lost."""
        if self.last_failure is None or self.last_failure[0] < time.time() - 10:
            log.error("%s log %s unwritable, holding lines in memory: %s", self.prefix, self.directory, exc)
        self.last_failure = (time.time(), f"{type(exc).__name__}: {exc}"[:200])
        if len(self.held) < self.memory_lines:
            self.held.append(line)
        else:
            self.counters.add(f"{self.metric}_lost")

    def failing(self):
        """The last disk failure's text if it is recent, else None."""
        if self.last_failure and self.last_failure[0] > time.time() - FAILING_FOR_SECONDS:
            return self.last_failure[1]
        return None

    def start(self):
        self.pid = os.getpid()
        self.held.clear()
        self.stopped.clear()
        try:
            os.makedirs(self.directory, exist_ok=True)
            self.fd = open_appending(self.path)
        except OSError as exc:
            self.fd = None
            self.last_failure = (time.time(), f"{type(exc).__name__}: {exc}"[:200])
            log.error("%s log %s cannot be opened: %s", self.prefix, self.directory, exc)
        atexit.register(self.stop)  # a clean shutdown ships the last lines itself
        threading.Thread(target=self.ship_forever, name=f"{self.prefix}-shipper", daemon=True).start()

    def ship_forever(self):
        ticks = 0
        while not self.stopped.wait(self.interval):
            ticks += 1
            try:
                self.ship_own()
                if ticks % SETTLE_EVERY == 1:
                    self.settle()
                if ticks % ORPHAN_CHECK_EVERY == 1:
                    ship_orphans(self.directory, self.client, self.buffer, self.prefix)
            except RedisError as exc:
                log.warning("%s shipping paused, Redis unavailable: %s", self.prefix, exc)
            except Exception:  # noqa: BLE001 - the thread must live on; lines wait in files
                log.exception("%s shipping failed; will retry", self.prefix)

    def ship_own(self):
        """Move this process's lines to Redis; leave them on disk if Redis fails."""
        self.ship_held()
        earlier = [
            os.path.join(self.directory, name)
            for name in list_directory(self.directory)
            if name.startswith(f"shipping-{self.pid}-")  # failed tries, shard parts
        ]
        try:
            ship_files(earlier, self.client, self.buffer)
        except RedisError:
            # One stream: Redis is away, and new lines wait in the live file. Several
            # shards: the others still take lines, so the live file is split as usual
            # (a shard that is away gathers its lines in its part file).
            if len(self.buffer.shards) == 1:
                raise
        aside = self.rotate()
        if aside:
            ship_file(aside, self.client, self.buffer)

    def ship_held(self):
        """Lines the disk refused go to Redis from memory (not kept: there is no disk to keep them on)."""
        while self.held:
            lines = [self.held[index] for index in range(min(len(self.held), 500))]
            self.buffer.append_lines(self.client, "\n".join(lines))
            for _ in lines:
                self.held.popleft()

    def settle(self):
        settle_kept(self.directory, self.client, self.buffer, self.keep_bytes)

    def rotate(self):
        """Rename the current file aside and start a new one; None if it is empty."""
        with self.lock:
            if self.fd is None or os.fstat(self.fd).st_size == 0:
                return None
            aside = os.path.join(self.directory, f"shipping-{self.pid}-{uuid.uuid4().hex}.log")
            os.rename(self.path, aside)
            old_fd, self.fd = self.fd, None
            os.close(old_fd)
            try:
                self.fd = open_appending(self.path)
            except OSError as exc:  # the next append holds its line in memory and tries again
                self.last_failure = (time.time(), f"{type(exc).__name__}: {exc}"[:200])
            return aside

    def stop(self):
        """Ship what is left (on a clean shutdown) and stop the thread."""
        self.stopped.set()
        if self.pid == os.getpid():
            with contextlib.suppress(RedisError, OSError):  # the files stay; another process ships them
                self.ship_own()


# The extension names that webapp.clicks.click_log and webapp.pageviews.ingest register
# their spools under (those modules import this one, so it cannot import theirs).
CLICK_LOG, PAGEVIEW_LOG = "clickboard.click_log", "clickboard.pageview_log"


def app_spools():
    """The current app's spools by name (set up by ``webapp.clicks`` and ``webapp.pageviews``)."""
    return {
        "click_log": current_app.extensions[CLICK_LOG],
        "pageview_log": current_app.extensions[PAGEVIEW_LOG],
    }


def problems():
    """Why each of the app's spools cannot take lines now (this process's last write failed,
    or its disk is unwritable or nearly full), by name; empty when all is well."""
    found = {}
    for name, spool in app_spools().items():
        problem = spool.failing() or disk_problem(spool.directory)
        if problem:
            found[name] = problem
    return found


def disk_problem(directory, min_free_bytes=1 << 20):
    """Why the spool's disk cannot take lines now (not writable, nearly full), or None."""
    try:
        os.makedirs(directory, exist_ok=True)
        usage = os.statvfs(directory)
    except OSError as exc:
        return f"{type(exc).__name__}: {exc}"[:200]
    if not os.access(directory, os.W_OK):
        return f"{directory} is not writable"
    free = usage.f_bavail * usage.f_frsize
    if free < min_free_bytes:
        return f"{directory} has {free} bytes free"
    return None
