"""A minimal circuit breaker for the request path.

After a failure of Redis or the broker, requests skip that service for
``retry_after`` seconds instead of each paying a connection timeout again.
State is per process, which is what we want: each gunicorn worker finds out
for itself, at the cost of one failed call.
"""

import time


class Breaker:
    def __init__(self, retry_after):
        self.retry_after = retry_after
        self.down_until = 0.0

    @property
    def available(self):
        return time.monotonic() >= self.down_until

    def mark_down(self):
        self.down_until = time.monotonic() + self.retry_after

    def mark_up(self):
        self.down_until = 0.0
