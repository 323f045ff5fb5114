"""``make run``'s process supervisor: start, prefix output, restart, and leave nothing behind.

Every process it starts (the embedded Redis, gunicorn, the Celery worker,
beat, and whatever they fork) lives in one process group of its own, led
by a tiny watchdog process. The watchdog reads a pipe from the supervisor
and does nothing else; when the pipe closes, because the supervisor
stopped or died in any way (Ctrl-C, SIGTERM, SIGHUP from a closed
terminal, SIGKILL), it sends SIGTERM to the whole group, then SIGKILL to
what is left after ``GRACE_SECONDS``. The children's own children (gunicorn
workers, the Celery pool) are in the group too, so nothing outlives it.

Ctrl-C, SIGTERM and SIGHUP stop the processes in reverse order of start
(Redis last, so the worker and the web processes can still hand it what
they hold). A process that exits by itself while the rest run
is started again after a pause that doubles up to ``MAX_BACKOFF_SECONDS``:
a worker killed by a library bug comes back and counting resumes.
"""

import contextlib
import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field

GRACE_SECONDS = 8
MIN_BACKOFF_SECONDS = 1.0
MAX_BACKOFF_SECONDS = 30.0
STABLE_SECONDS = 30  # up this long: the next exit starts the backoff afresh


@dataclass
class Child:
    name: str
    argv: list
    ready: object = None  # called with the Popen after each start; raises if it never gets ready
    process: subprocess.Popen | None = None
    started: float = 0.0
    backoff: float = MIN_BACKOFF_SECONDS
    restart_at: float | None = None
    restarts: int = field(default=0)


class Supervisor:
    def __init__(self, cwd, env, out=sys.stdout):
        self.cwd, self.env, self.out = cwd, env, out
        self.children = []
        self.stopping = threading.Event()
        self.print_lock = threading.Lock()
        self.watchdog = start_watchdog()

    @property
    def group(self):
        """The process group of everything started (the watchdog leads it)."""
        return self.watchdog.pid

    def add(self, name, argv, ready=None):
        """Start a process now and keep it running until ``stop``."""
        child = Child(name, list(argv), ready)
        self.children.append(child)
        self.spawn(child)
        return child

    def spawn(self, child):
        group = self.group
        child.process = subprocess.Popen(
            child.argv,
            cwd=self.cwd,
            env=self.env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            # Out of the terminal's group (Ctrl-C is ours to pass on, in order), into the watchdog's.
            process_group=group,
        )
        child.started, child.restart_at = time.monotonic(), None
        threading.Thread(target=self.copy_output, args=(child, child.process), daemon=True).start()
        if child.ready:
            child.ready(child.process)

    def copy_output(self, child, process):
        for line in iter(process.stdout.readline, b""):
            self.say(child.name, line.decode(errors="replace").rstrip())
        process.stdout.close()

    def say(self, name, text):
        width = max((len(child.name) for child in self.children), default=6)
        with self.print_lock:
            print(f"{time.strftime('%H:%M:%S')} {name:<{width}} | {text}", file=self.out, flush=True)

    def run(self):
        """Supervise until a stop signal; return 0."""
        for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            signal.signal(signum, lambda *_: self.stopping.set())
        try:
            while not self.stopping.wait(0.2):
                for child in self.children:
                    self.check(child)
        finally:
            self.stop()
        return 0

    def check(self, child):
        now = time.monotonic()
        if child.restart_at is not None:
            if now >= child.restart_at:
                child.restarts += 1
                self.say("system", f"starting {child.name} again (restart {child.restarts})")
                self.spawn(child)
            return
        code = child.process.poll()
        if code is None:
            return
        if now - child.started > STABLE_SECONDS:
            child.backoff = MIN_BACKOFF_SECONDS
        self.say(
            "system", f"{child.name} exited with code {code}; starting it again in {child.backoff:.0f} s"
        )
        child.restart_at = now + child.backoff
        child.backoff = min(child.backoff * 2, MAX_BACKOFF_SECONDS)

    def stop(self):
        """Stop the children newest first, then let the watchdog end whatever is left."""
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # a second Ctrl-C must not cut the shutdown short
        for child in reversed(self.children):
            if child.process is not None and child.process.poll() is None:
                self.say("system", f"stopping {child.name}")
                child.process.terminate()
                with contextlib.suppress(subprocess.TimeoutExpired):
                    child.process.wait(GRACE_SECONDS)
        if not self.watchdog.stdin.closed:
            self.watchdog.stdin.close()  # the watchdog ends anything still in the group
        self.watchdog.wait()


def start_watchdog():
    return subprocess.Popen(
        # Run as a plain script: the watchdog needs the standard library only, not the app.
        [sys.executable, "-I", os.path.abspath(__file__), "--watchdog"],
        stdin=subprocess.PIPE,
        process_group=0,  # a group of its own, which the supervised processes join
    )


def watch():
    """The watchdog: wait for the supervisor's pipe to close, then end the whole group."""
    for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, signal.SIG_IGN)
    sys.stdin.buffer.read()  # returns at EOF: the supervisor is gone
    group = os.getpgrp()
    os.killpg(group, signal.SIGTERM)
    deadline = time.monotonic() + GRACE_SECONDS
    while time.monotonic() < deadline and group_members(group) - {os.getpid()}:
        time.sleep(0.1)
    os.killpg(group, signal.SIGKILL)  # the watchdog too: it is the group's last member


def group_members(group):
    """Pids in process group ``group`` (from /proc; without it, assume some remain)."""
    members = set()
    try:
        names = os.listdir("/proc")
    except FileNotFoundError:
        return {0}
    for name in names:
        if name.isdigit():
            with contextlib.suppress(OSError, ValueError, IndexError):
                with open(f"/proc/{name}/stat") as stat:
                    fields = stat.read().rsplit(")", 1)[1].split()
                if int(fields[2]) == group and fields[0] != "Z":
                    members.add(int(name))
    return members


if __name__ == "__main__" and sys.argv[1:] == ["--watchdog"]:
    watch()
