"""Real processes for integration tests: redis-server, Celery worker and beat, gunicorn.

Each runs as a subprocess with its own environment (the same variables a
deployment sets), its output in a log file the failure message points at,
and dies with the test process even when that is killed (``die_with_test``).
``ClickLogWriter`` is a small process that writes a click log and then dies
or stays alive, for the tests of orphaned click logs.
"""

import contextlib
import ctypes
import os
import signal
import socket
import subprocess
import sys
import time

import redis
import requests

from webapp import PROJECT_ROOT, embedded_redis

BIN = os.path.dirname(sys.executable)
LIBC = ctypes.CDLL(None, use_errno=True)
PR_SET_PDEATHSIG = 1


def die_with_test(death_signal=signal.SIGTERM):
    """A ``preexec_fn``: the kernel sends the child ``death_signal`` when the test process dies,
    however it dies (a SIGKILL runs no fixture's cleanup), so nothing a run starts outlives it.

    SIGTERM by default, so gunicorn's master and Celery's main process take
    their own children down with them. The kernel watches the thread that
    started the child: start processes from the test's main thread. A test
    killed before the child's prctl leaves a child whose parent is already
    gone, which exits at once.
    """
    parent = os.getpid()

    def prepare():
        LIBC.prctl(PR_SET_PDEATHSIG, death_signal)
        if os.getppid() != parent:
            os._exit(1)

    return prepare


def free_port():
    """A port free a moment ago: another process may take it before we bind (see RedisServer)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def bound_socket():
    """A socket bound to a port of its own on 127.0.0.1, for a child process to inherit."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.set_inheritable(True)
    return sock


def refusing_port():
    """A socket bound but never listening: connections to its port are refused while it is held."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    return sock


def wait_for(predicate, timeout=20.0, interval=0.1, message="condition"):
    """Poll until ``predicate()`` is truthy; return its value or fail with ``message``."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {message}")
        time.sleep(interval)


class RedisServer:
    """An embedded redis-server on a free port that tests may stop and restart.

    redis-server cannot bind port 0 and tell us the port, so the first start
    tries free ports until one is really ours (another process may take a
    port between our look and redis-server's bind). A restart keeps the port.
    """

    ATTEMPTS = 5

    def __init__(self, data_dir):
        self.port = None
        self.data_dir = data_dir
        self.process = None

    @property
    def url(self):
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self):
        for attempt in range(self.ATTEMPTS):
            port = self.port or free_port()
            try:
                # Append-only on, as in `make run`: a restart must keep the buffer.
                process = embedded_redis.start(
                    port, self.data_dir, appendonly=True, preexec_fn=die_with_test()
                )
            except RuntimeError:
                if self.port or attempt == self.ATTEMPTS - 1:
                    raise
                continue
            if self.answered_by(port, process):
                self.port, self.process = port, process
                return self
            embedded_redis.stop(process)
        raise RuntimeError(f"no port of our own for redis-server after {self.ATTEMPTS} tries")

    @staticmethod
    def answered_by(port, process):
        """Whether our redis-server (not one that held the port first) answers on ``port``."""
        client = redis.Redis(port=port, socket_connect_timeout=1)
        try:
            return client.info("server")["process_id"] == process.pid
        finally:
            client.close()

    def stop(self):
        if self.process is not None:
            embedded_redis.stop(self.process)
            self.process = None

    def client(self):
        return redis.Redis.from_url(self.url, decode_responses=True)


class ManagedProcess:
    """A subprocess started with the app's environment, stoppable or killable."""

    def __init__(self, name, command, env, log_dir, pass_fds=(), preexec_fn=None):
        self.name = name
        self.command = command
        self.env = env
        self.log_path = os.path.join(log_dir, f"{name}.log")
        self.pass_fds = pass_fds
        # Run in the child before exec: tests/netns.py enters a network namespace there.
        self.preexec_fn = preexec_fn or die_with_test()
        self.process = None

    def start(self):
        log = open(self.log_path, "ab")  # noqa: SIM115 - closed in stop()
        self.process = subprocess.Popen(
            self.command,
            env=self.env,
            cwd=PROJECT_ROOT,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            pass_fds=self.pass_fds,
            preexec_fn=self.preexec_fn,
        )
        self.log = log
        return self

    @property
    def running(self):
        return self.process is not None and self.process.poll() is None

    def log_text(self):
        with open(self.log_path, errors="replace") as log:
            return log.read()

    def stop(self, timeout=15):
        """Warm shutdown (SIGTERM), then SIGKILL for anything left in the group."""
        if self.process is None:
            return
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.process.wait(timeout)
        self.kill_group()

    def pause(self):
        """SIGSTOP the whole process group: frozen mid-work, to be killed or resumed."""
        os.killpg(self.process.pid, signal.SIGSTOP)

    def kill(self):
        """SIGKILL the whole process group at once: a crash, not a shutdown."""
        if self.process is not None:
            self.kill_group()

    def kill_group(self):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait()
        self.process = None
        self.log.close()


def celery_worker(
    env, log_dir, queues="clicks,reports,default", concurrency=1, name="worker", extra=(), preexec_fn=None
):
    command = [
        os.path.join(BIN, "celery"), "-A", "celery_worker", "worker",
        "-Q", queues, "--concurrency", str(concurrency), "--pool", "prefork",
        "--loglevel", "INFO", "--hostname", f"{name}@%h", "--without-mingle", "--without-gossip",
        *extra,
    ]  # fmt: skip
    return ManagedProcess(name, command, env, log_dir, preexec_fn=preexec_fn)


def celery_beat(env, log_dir, preexec_fn=None):
    schedule = os.path.join(log_dir, "celerybeat-schedule")
    command = [
        os.path.join(BIN, "celery"), "-A", "celery_worker", "beat",
        "--loglevel", "INFO", "--schedule", schedule,
    ]  # fmt: skip
    return ManagedProcess("beat", command, env, log_dir, preexec_fn=preexec_fn)


class WebServer(ManagedProcess):
    """gunicorn serving ``wsgi:app`` on a socket bound here and inherited (no port to race for).

    ``sock``: a socket bound elsewhere (tests/netns.py binds one inside a network namespace).
    """

    def __init__(self, env, log_dir, workers=2, app="wsgi:app", sock=None, preexec_fn=None):
        self.socket = sock or bound_socket()
        self.address, self.port = self.socket.getsockname()
        command = [
            os.path.join(BIN, "gunicorn"), "-c", os.path.join(PROJECT_ROOT, "gunicorn.conf.py"),
            "--bind", f"fd://{self.socket.fileno()}", "--workers", str(workers), app,
        ]  # fmt: skip
        super().__init__(
            "web", command, env, log_dir, pass_fds=(self.socket.fileno(),), preexec_fn=preexec_fn
        )

    @property
    def url(self):
        return f"http://{self.address}:{self.port}"

    def start(self):
        super().start()
        self.socket.close()  # gunicorn holds it now
        wait_for(self.answers, timeout=30, message=f"gunicorn on {self.url} (log: {self.log_path})")
        return self

    def worker_pids(self):
        """The pids of gunicorn's current workers (the master's children)."""
        pid = self.process.pid
        with open(f"/proc/{pid}/task/{pid}/children") as children:
            return [int(child) for child in children.read().split()]

    def answers(self):
        if not self.running:
            raise AssertionError(f"gunicorn exited:\n{self.log_text()[-3000:]}")
        try:
            return requests.get(self.url + "/", timeout=1).status_code == 200
        except requests.ConnectionError:
            return False


# Appends stdin's lines (up to an empty one) through the real ClickLog, prints
# its file's path, then waits for stdin to close. os._exit skips the atexit
# shipment, as a SIGKILL would: the file is left for ship_orphans. With a
# Redis URL it exits normally instead, and ClickLog's atexit hook ships.
CLICK_LOG_WRITER = """
import os, sys
import redis
from webapp.clicks.click_log import ClickLog

directory, url = sys.argv[1], sys.argv[2]
client = redis.Redis.from_url(url, decode_responses=True) if url else None
log = ClickLog(directory, client, 3600)
while line := sys.stdin.readline().rstrip("\\n"):
    log.append(line)
print(log.path, flush=True)
sys.stdin.read()
if client is None:
    os._exit(0)
"""


class ClickLogWriter:
    """A process that logs clicks through ``ClickLog``, then holds its file until ``exit()``.

    Without ``redis_url`` it ships nothing and dies without cleaning up (a
    killed web process); with one, it exits cleanly and ships on the way out.
    """

    def __init__(self, directory, lines, redis_url=""):
        self.process = subprocess.Popen(
            [sys.executable, "-c", CLICK_LOG_WRITER, str(directory), redis_url],
            cwd=PROJECT_ROOT,
            stdin=subprocess.PIPE,
            preexec_fn=die_with_test(),
            stdout=subprocess.PIPE,
            text=True,
        )
        self.process.stdin.write("".join(f"{line}\n" for line in lines) + "\n")
        self.process.stdin.flush()
        self.path = self.process.stdout.readline().strip()
        if not self.path:
            raise AssertionError(f"the click log writer failed (exit code {self.process.wait()})")

    @property
    def pid(self):
        return self.process.pid

    def exit(self):
        self.process.stdin.close()
        self.process.wait(30)
        self.process.stdout.close()
        return self
