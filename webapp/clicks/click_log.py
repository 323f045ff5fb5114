"""The local click log: where every click is written first, and shipped from.

The redirect appends the click's line to a file of its own process (one
``write`` to the page cache, no network) and answers. A background thread,
the shipper, moves the lines to the Redis Stream buffer in pipelined
batches every ``CLICK_SHIP_INTERVAL`` seconds. When Redis is down the lines
simply wait in the file, so an outage needs no special path: the log is the
spool, and shipping resumes when Redis answers.

Files, in ``CLICK_LOG_DIR``:

    clicks-<host>-<pid>.log     the file a live process appends to
    shipping-<pid>-<uuid>.log   a file moved aside to be shipped

To ship, the owner renames its file aside and opens a fresh one, under a
thread lock so no append falls between. A process holds a shared ``flock``
on the file it appends to and an exclusive one on the file it ships, so
``ship_orphans`` (run by every shipper now and then, and by the periodic
task) can tell the files of dead processes, which it locks and ships, from
live ones, which it leaves alone. A file shipped twice (a shipper killed
after ``XADD``, before ``unlink``) repeats clicks, and event ids make the
drain count each once. The page cache survives a killed process; a machine
crash can lose the last fraction of a second, as Redis's own
``appendfsync everysec`` can.
"""

import atexit
import contextlib
import fcntl
import logging
import os
import socket
import threading
import uuid

from redis import RedisError

from webapp.clicks.buffer import click_buffer, shipped_late_key

log = logging.getLogger(__name__)

# Read and sent this much at a time: about 500 click lines, so a file left by a
# long Redis outage neither fills memory nor holds Redis in one long call.
SHIP_BLOCK_BYTES = 64 * 1024
ORPHAN_CHECK_EVERY = 50  # shipper ticks between looks for dead processes' files


class ClickLog:
    """One process's log file and its shipper thread.

    ``buffer`` is the install's click buffer (by default ``click_buffer()``).
    """

    def __init__(self, directory, client, interval, buffer=None):
        self.directory = directory
        self.client = client
        self.buffer = buffer or click_buffer()
        self.interval = interval
        self.lock = threading.Lock()
        self.fd = None
        self.pid = None
        self.stopped = threading.Event()

    @property
    def path(self):
        return os.path.join(self.directory, f"clicks-{socket.gethostname()}-{self.pid}.log")

    def append(self, line):
        data = (line + "\n").encode()
        with self.lock:
            if self.pid != os.getpid():  # first use in this process (gunicorn forks after loading)
                self.start()
            os.write(self.fd, data)

    def start(self):
        os.makedirs(self.directory, exist_ok=True)
        self.pid = os.getpid()
        self.fd = open_appending(self.path)
        self.stopped.clear()
        atexit.register(self.stop)  # a clean shutdown ships the last lines itself
        threading.Thread(target=self.ship_forever, name="click-shipper", daemon=True).start()

    def ship_forever(self):
        ticks = 0
        while not self.stopped.wait(self.interval):
            ticks += 1
            try:
                self.ship_own()
                if ticks % ORPHAN_CHECK_EVERY == 1:
                    ship_orphans(self.directory, self.client, self.buffer)
            except RedisError as exc:
                log.warning("click shipping paused, Redis unavailable: %s", exc)
            except Exception:  # noqa: BLE001 - the thread must live on; lines wait in files
                log.exception("click shipping failed; will retry")

    def ship_own(self):
        """Move this process's lines to Redis; leave them on disk if Redis fails."""
        for name in sorted(os.listdir(self.directory)):
            if name.startswith(f"shipping-{self.pid}-"):
                ship_file(os.path.join(self.directory, name), self.client, self.buffer)  # a failed try's
        aside = self.rotate()
        if aside:
            ship_file(aside, self.client, self.buffer)

    def rotate(self):
        """Rename the current file aside and start a new one; None if it is empty."""
        with self.lock:
            if self.fd is None or os.fstat(self.fd).st_size == 0:
                return None
            aside = os.path.join(self.directory, f"shipping-{self.pid}-{uuid.uuid4().hex}.log")
            os.rename(self.path, aside)
            old_fd, self.fd = self.fd, open_appending(self.path)
            os.close(old_fd)
            return aside

    def stop(self):
        """Ship what is left (on a clean shutdown) and stop the thread."""
        self.stopped.set()
        if self.pid == os.getpid():
            with contextlib.suppress(RedisError):  # the files stay; another process ships them
                self.ship_own()


def open_appending(path):
    while True:
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        fcntl.flock(fd, fcntl.LOCK_SH)  # "alive": ship_orphans leaves this file alone
        if same_file(fd, path):
            return fd
        # Between open and flock, ship_orphans took the new file for a dead
        # one and deleted it: lines written to it now would be lost.
        os.close(fd)


def same_file(fd, path):
    """Whether ``path`` still names the file open as ``fd``."""
    try:
        opened, named = os.fstat(fd), os.stat(path)
    except FileNotFoundError:
        return False
    return (opened.st_dev, opened.st_ino) == (named.st_dev, named.st_ino)


def ship_file(path, client, buffer):
    """Push a file's lines into the buffer, then delete it; return the number of clicks."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        return 0
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return 0  # its owner is alive, or another shipper has it
        if not same_file(fd, path):
            # Shipped and deleted meanwhile, or renamed aside by its owner and
            # replaced by its new live file, which unlink(path) would delete.
            return 0
        shipped = 0
        with os.fdopen(os.dup(fd), "rb") as file:
            for block in line_blocks(file):
                # Whole blocks, not lines: per-line Python work was most of the shipping cost.
                shipped += buffer.append_lines(client, block.decode(errors="replace"))
        os.unlink(path)
        return shipped
    finally:
        os.close(fd)


def line_blocks(file, size=SHIP_BLOCK_BYTES):
    """The file's bytes in blocks of about ``size`` that end at a line's end.

    A last line with no newline (a write torn by a crash) comes last, as it
    is: the drain drops it if it is not a whole click.
    """
    rest = b""
    while block := file.read(size):
        block = rest + block
        cut = block.rfind(b"\n") + 1
        if cut:
            yield block[:cut]
        rest = block[cut:]
    if rest:
        yield rest


def ship_orphans(directory, client, buffer=None):
    """Ship the files of processes that died; return the number of clicks shipped.

    Without ``buffer``, to the current app's click buffer."""
    buffer = buffer or click_buffer()
    shipped = 0
    try:
        names = sorted(os.listdir(directory))
    except FileNotFoundError:
        return 0  # no process on this host has logged a click yet
    for name in names:
        if name.endswith(".log") and name.startswith(("clicks-", "shipping-")):
            shipped += ship_file(os.path.join(directory, name), client, buffer)
    if shipped:
        client.incrby(shipped_late_key(buffer), shipped)
        log.info("shipped %d clicks left by stopped processes", shipped)
    return shipped


def pending_files(directory):
    try:
        return sum(1 for name in os.listdir(directory) if name.endswith(".log"))
    except FileNotFoundError:
        return 0
