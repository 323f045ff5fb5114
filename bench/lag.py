"""Click-to-count lag: from a redirect answered to its click visible in the API's count.

One fresh SQLite database; gunicorn (2 sync workers, the redirect benchmark's
settings), one Celery worker on the clicks queue and beat: the drain as
deployed (``CLICK_DRAIN_INTERVAL``, following the stream for
``CLICK_DRAIN_FOLLOW_SECONDS`` after each drain).

Load on ``/r/lag-load``, while a probe follows ``/r/lag-probe``:

- ``steady``: ``STEADY_RATE`` clicks a second (``bench.poller``, an open
  loop) for ``duration`` seconds;
- ``spike``: wrk at full speed (-t2 -c16, about ten times the steady rate on
  this machine; the rate it reached is reported) for ``SPIKE_S`` seconds,
  then the steady load again until the lag is back under a second.

The probe sends one redirect every ``PROBE_EVERY_S`` and notes when each 302
arrived; a second thread reads ``GET /api/links/lag-probe`` every
``READ_EVERY_S`` and, when the count reaches k, the k-th probe's lag is the
time of that read minus the time its 302 arrived (so it includes up to one
read interval). Lag p50/p95/p99 per phase, and for the spike the seconds from
the end of wrk until the probe's lag stayed under one second.
"""

import statistics
import threading
import time

import requests

from bench import poller, wrk
from webapp.auth.tokens import issue_token
from webapp.auth.users import create_user
from webapp.links.service import create_link

STEADY_RATE = 1000
STEADY_POLLERS = 100  # each sends every STEADY_POLLERS / STEADY_RATE seconds
SPIKE_S = 5
PROBE_EVERY_S = 0.05
READ_EVERY_S = 0.02
LAG_TARGET_S = 1.0
RECOVERY_LIMIT_S = 30.0
FINAL_WAIT_S = 5.0  # at the end, how long the last probes may take to be counted


class Probe:
    """Redirects on the probe link, and reads of its count, in two threads."""

    def __init__(self, base_url, token):
        self.base_url, self.token = base_url, token
        self.answered = []  # time each probe's 302 arrived, in order
        self.lags = []  # (time the count was seen, lag) per probe click
        self.errors = 0
        self.clicks_stopped = threading.Event()
        self.stopped = threading.Event()
        self.clicker = threading.Thread(target=self.click, daemon=True)
        self.reader = threading.Thread(target=self.read, daemon=True)
        self.threads = [self.clicker, self.reader]

    def __enter__(self):
        for thread in self.threads:
            thread.start()
        return self

    def __exit__(self, *exc_info):
        # The last probes answered are still on their way to the count: stop clicking, let
        # the reader see them (or give up after FINAL_WAIT_S), then stop reading.
        self.clicks_stopped.set()
        self.clicker.join(timeout=10)
        deadline = time.time() + FINAL_WAIT_S
        while len(self.lags) < len(self.answered) and time.time() < deadline:
            time.sleep(READ_EVERY_S)
        self.stopped.set()
        self.reader.join(timeout=10)

    def click(self):
        session = requests.Session()
        while not self.clicks_stopped.wait(PROBE_EVERY_S):
            try:
                answer = session.get(f"{self.base_url}/r/lag-probe", allow_redirects=False, timeout=5)
            except requests.RequestException:
                self.errors += 1
                continue
            if answer.status_code == 302:
                self.answered.append(time.time())
            else:
                self.errors += 1

    def read(self):
        session = requests.Session()
        session.headers["Authorization"] = f"Bearer {self.token}"
        seen = 0
        while not self.stopped.wait(READ_EVERY_S):
            try:
                count = session.get(f"{self.base_url}/api/links/lag-probe", timeout=5).json()["clicks"]
            except (requests.RequestException, ValueError, KeyError):
                continue
            now = time.time()
            for index in range(seen, min(count, len(self.answered))):
                self.lags.append((now, now - self.answered[index]))
            seen = max(seen, min(count, len(self.answered)))

    def lags_between(self, start, end):
        return sorted(lag for seen_at, lag in self.lags if start <= seen_at < end)


def percentiles(lags):
    if not lags:
        return {"count": 0, "p50_s": None, "p95_s": None, "p99_s": None, "max_s": None}

    def at(p):
        return lags[min(len(lags) - 1, int(p / 100 * len(lags)))]

    return {
        "count": len(lags),
        "p50_s": statistics.median(lags),
        "p95_s": at(95),
        "p99_s": at(99),
        "max_s": lags[-1],
    }


def steady_load(base_url, duration):
    group = poller.Group(
        "clicks", ["/r/lag-load"], STEADY_POLLERS, STEADY_POLLERS / STEADY_RATE, accept=(302,)
    )
    return poller.run(base_url, [group], duration)["clicks"]


def recovery_seconds(probe, spike_end, limit):
    """Seconds after ``spike_end`` from which every probe click's lag was under the target."""
    late = [seen_at for seen_at, lag in probe.lags if seen_at >= spike_end and lag >= LAG_TARGET_S]
    if not late:
        return 0.0
    recovered = max(late) - spike_end
    return recovered if recovered < limit else None


def run(stack, duration, log=print):
    database_url = stack.fresh_database("lag")
    app = stack.app(database_url)
    with app.app_context():
        user = create_user("lag@bench.example", "bench-password-lag")
        _, token = issue_token(user, "lag bench")
        create_link("https://example.com/load", user, slug="lag-load")
        create_link("https://example.com/probe", user, slug="lag-probe")
    stack.release(app)
    web = stack.web("web-lag", database_url, workers=2)
    stack.worker("worker-lag", database_url, queues="clicks", concurrency=1)
    stack.beat("beat-lag", database_url)
    time.sleep(3)  # beat's first drains; the link caches warm
    result = {"steady_rate": STEADY_RATE, "spike_s": SPIKE_S, "lag_target_s": LAG_TARGET_S}
    with Probe(web.url, token) as probe:
        started = time.time()
        log(f"  steady: {STEADY_RATE} clicks/s for {duration:.0f}s ...")
        result["steady_load"] = steady_load(web.url, duration)
        result["steady"] = percentiles(probe.lags_between(started + 2, time.time()))
        log(f"  spike: wrk -t2 -c16 for {SPIKE_S:.0f}s, then {STEADY_RATE}/s again ...")
        spike_start = time.time()
        spike = wrk.run(f"{web.url}/r/lag-load", SPIKE_S)
        spike_end = time.time()
        result["spike_rps"] = spike.requests_per_sec
        result["spike_load"] = spike.as_dict()
        result["after_spike_load"] = steady_load(web.url, RECOVERY_LIMIT_S / 2)
        time.sleep(2)
        result["spike"] = percentiles(probe.lags_between(spike_start, time.time()))
        result["recovery_s"] = recovery_seconds(probe, spike_end, RECOVERY_LIMIT_S / 2)
    # After the probe's exit, which waits for the last probes to be counted.
    result["probe_errors"] = probe.errors
    result["probes"] = len(probe.answered)
    result["probes_counted"] = len(probe.lags)
    result["ok"] = result["probes_counted"] == result["probes"] and not probe.errors
    return result
