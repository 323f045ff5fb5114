"""What a test run starts dies with it, even when the run is killed outright (SIGKILL runs no
fixture's cleanup): ``tests.processes.die_with_test``."""

import os
import signal
import subprocess
import sys
import textwrap

from tests.processes import wait_for
from webapp import PROJECT_ROOT

# A stand-in for a test process: starts what a test would, prints their pids, then waits to be killed.
KILLED_TEST = textwrap.dedent(
    """
    import sys, time
    from tests.processes import ManagedProcess, RedisServer

    redis_server = RedisServer(sys.argv[1]).start()
    sleeper = ManagedProcess(
        "sleeper", [sys.executable, "-c", "import time; time.sleep(600)"], {}, sys.argv[1]
    ).start()
    print(redis_server.process.pid, sleeper.process.pid, flush=True)
    time.sleep(600)
    """
)


def alive(pid):
    """Whether ``pid`` is a running process (not a zombie waiting for its parent to reap it)."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def test_a_killed_test_takes_its_redis_server_and_its_processes_with_it(tmp_path):
    started = []
    with subprocess.Popen(
        [sys.executable, "-c", KILLED_TEST, str(tmp_path)],
        cwd=PROJECT_ROOT,
        stdout=subprocess.PIPE,
        text=True,
        start_new_session=True,  # its children are not ours: only the kernel's signal can end them
    ) as test:
        try:
            started = [int(pid) for pid in test.stdout.readline().split()]
            assert len(started) == 2 and all(alive(pid) for pid in started)
        finally:
            test.kill()  # SIGKILL: no cleanup of its own runs
    try:
        wait_for(lambda: not any(alive(pid) for pid in started), timeout=20, message="the children to die")
    finally:
        for pid in filter(alive, started):  # what this test failed on must not outlive it either
            os.kill(pid, signal.SIGKILL)
