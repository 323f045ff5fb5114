"""CPU time used by process trees over a measurement: a figure the machine's other load barely moves.

Wall-clock throughput on a shared machine drops whenever someone else's job
runs; the CPU seconds our own processes spend per request do not (much).
"""

import resource

import psutil


def tree_cpu_seconds(pid):
    """User + system seconds of ``pid`` and all its live descendants."""
    try:
        root = psutil.Process(pid)
        processes = [root, *root.children(recursive=True)]
    except psutil.NoSuchProcess:
        return 0.0
    total = 0.0
    for process in processes:
        try:
            times = process.cpu_times()
        except psutil.NoSuchProcess:
            continue
        total += times.user + times.system
    return total


def children_cpu_seconds():
    """CPU of this process's reaped children (wrk, once ``subprocess.run`` returns)."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


class CpuMeter:
    """``start()`` ... ``stop()``: CPU seconds used meanwhile by each named process tree, and by wrk."""

    def __init__(self, **pids):
        self.pids = pids
        self.before = None

    def sample(self):
        return {name: tree_cpu_seconds(pid) for name, pid in self.pids.items()} | {
            "wrk": children_cpu_seconds()
        }

    def start(self):
        self.before = self.sample()

    def stop(self):
        after = self.sample()
        return {name: round(after[name] - self.before[name], 3) for name in after}
