"""Run one command to completion and measure it: wall time and peak RSS, its own.

The peak comes from the kernel: ``wait4`` returns the reaped process's
``ru_maxrss``, exact however briefly the peak lasted. But Linux carries a
process's ``maxrss`` over ``exec`` from the memory of the process that
spawned it (with vfork, which ``subprocess`` uses, that is the parent's), so
a child of this process, which has the app loaded, would report at least
this process's own peak. Hence ``LAUNCHER``: a bare Python that forks the
command, waits for it and writes its ``wait4`` figures to a file. The
command's peak then starts from the launcher's few MB, not from ours.
While it runs, the command's process tree's summed RSS is also sampled with
psutil every 50 ms, which would catch several processes peaking together.
"""

import contextlib
import json
import os
import signal
import subprocess
import sys
import tempfile
import time

import psutil

from webapp import PROJECT_ROOT

POLL_S = 0.05
LAUNCHER = """
import json, os, sys, time
started = time.perf_counter()
pid = os.fork()
if pid == 0:
    os.execv(sys.argv[2], sys.argv[2:])
_, status, usage = os.wait4(pid, 0)
wall = time.perf_counter() - started
with open(sys.argv[1], "w") as out:
    json.dump({"wall_s": wall, "maxrss_kb": usage.ru_maxrss, "cpu_s": usage.ru_utime + usage.ru_stime}, out)
sys.exit(os.waitstatus_to_exitcode(status))
"""


def tree_rss(pid):
    """Summed RSS of ``pid``'s descendants (the launcher itself left out)."""
    try:
        processes = psutil.Process(pid).children(recursive=True)
    except psutil.NoSuchProcess:
        return 0
    total = 0
    for process in processes:
        try:
            total += process.memory_info().rss
        except psutil.NoSuchProcess:
            continue
    return total


def run(command, env, log_path, timeout=900):
    """Run ``command`` (output to ``log_path``); return its figures and output. Raises if it fails."""
    with tempfile.NamedTemporaryFile("r", suffix=".json") as figures, open(log_path, "w+b") as log:
        launcher = [sys.executable, "-c", LAUNCHER, figures.name, *command]
        process = subprocess.Popen(
            launcher, env=env, cwd=PROJECT_ROOT, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
        started, polled_peak = time.perf_counter(), 0
        try:
            while process.poll() is None:
                if time.perf_counter() - started > timeout:
                    raise RuntimeError(f"{command[:3]} still running after {timeout}s (log: {log_path})")
                polled_peak = max(polled_peak, tree_rss(process.pid))
                time.sleep(POLL_S)
        except BaseException:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)  # the launcher and the command
            process.wait()
            raise
        log.seek(0)
        output = log.read().decode(errors="replace")
        if process.returncode != 0:
            raise RuntimeError(f"{' '.join(command[:4])} exited {process.returncode}:\n{output[-3000:]}")
        measured = json.load(figures)
    return {
        "wall_s": measured["wall_s"],
        "peak_rss_mb": measured["maxrss_kb"] / 1024,  # Linux: kilobytes
        "polled_peak_rss_mb": polled_peak / 2**20,
        "cpu_s": measured["cpu_s"],
        "output": output,
    }
