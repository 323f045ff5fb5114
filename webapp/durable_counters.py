"""Counters that must outlive Redis: kept in a small file beside the spool files.

The pipeline's loss and recovery counts (lines lost to a full disk, shipped
again after Redis forgot them, shipped late for a dead process) are exactly
the numbers an operator needs after Redis restarted empty, so they cannot
live only in Redis. Each host keeps them in ``counters.json`` in its spool
directory; ``/metrics`` on that host reports them. Increments are rare (a
fault, not a click), so a locked read-modify-write is cheap enough; an
increment the disk refuses waits in memory and is written with the next one.
"""

import contextlib
import fcntl
import json
import os
import threading

COUNTERS_FILE = "counters.json"

unwritten = {}  # (directory, name) -> increments the disk refused, per process
unwritten_lock = threading.Lock()


class HostCounters:
    def __init__(self, directory):
        self.directory = directory
        self.path = os.path.join(directory, COUNTERS_FILE)

    def add(self, name, amount=1):
        with unwritten_lock:
            unwritten[(self.directory, name)] = unwritten.get((self.directory, name), 0) + amount
        self.flush()

    def flush(self):
        """Write this process's pending increments; keep them in memory if the disk refuses."""
        with unwritten_lock:
            pending = {
                name: amount for (directory, name), amount in unwritten.items() if directory == self.directory
            }
            if not pending:
                return
            try:
                self.write(pending)
            except OSError:
                return
            for name in pending:
                del unwritten[(self.directory, name)]

    def write(self, increments):
        os.makedirs(self.directory, exist_ok=True)
        with open(self.path + ".lock", "a") as lock_file:
            fcntl.flock(lock_file, fcntl.LOCK_EX)
            totals = self.read_file()
            for name, amount in increments.items():
                totals[name] = totals.get(name, 0) + amount
            temporary = f"{self.path}.{os.getpid()}.tmp"
            try:
                with open(temporary, "w") as out:
                    json.dump(totals, out)
                os.replace(temporary, self.path)
            finally:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(temporary)

    def read_file(self):
        try:
            with open(self.path) as counters_file:
                values = json.load(counters_file)
        except (FileNotFoundError, ValueError):
            return {}
        return {name: int(value) for name, value in values.items() if isinstance(value, int)}

    def totals(self):
        """The host's totals, with this process's unwritten increments added."""
        totals = self.read_file()
        with unwritten_lock:
            for (directory, name), amount in unwritten.items():
                if directory == self.directory:
                    totals[name] = totals.get(name, 0) + amount
        return totals
