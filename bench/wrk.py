"""Run wrk and read its ``--latency`` report into numbers (latencies in ms).

wrk prints the 50/75/90/99th percentiles only; a Lua script's ``done()`` may
add lines of its own, which ``parse`` reads: ``p95_us <n>`` (from
``latency:percentile(95)``, microseconds) and ``bad_status <n>`` (responses a
``response()`` callback did not accept, e.g. anything but a 200).
"""

import re
import shutil
import subprocess
from dataclasses import asdict, dataclass, field

WRK = shutil.which("wrk") or "/usr/bin/wrk"
# The end of every wrk script of ours: count the answers whose status is not the expected
# one, and report them with the 95th percentile, as ``parse`` reads them.
STATUS_COUNTER_LUA = r"""
local threads = {}
bad = 0

function setup(thread)
  table.insert(threads, thread)
end

function response(status, headers, body)
  if status ~= EXPECTED_STATUS then bad = bad + 1 end
end

function done(summary, latency, requests)
  local total = 0
  for _, thread in ipairs(threads) do total = total + thread:get("bad") end
  io.write(string.format("p95_us %d\n", latency:percentile(95)))
  io.write(string.format("bad_status %d\n", total))
end
"""


def status_counter_lua(expected_status):
    return STATUS_COUNTER_LUA.replace("EXPECTED_STATUS", str(int(expected_status)))


TIME_UNITS_MS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60_000.0, "h": 3_600_000.0}
SIZE = r"[\d.]+[KMGT]?B"
SOCKET_ERRORS = ("connect", "read", "write", "timeout")


@dataclass
class WrkResult:
    requests: int
    seconds: float
    requests_per_sec: float
    latency_ms: dict  # "50%", "75%", "90%", "99%" (and "95%" from a script's done()) -> ms
    socket_errors: dict = field(default_factory=dict)  # connect, read, write, timeout
    non_2xx_3xx: int = 0
    bytes_read: float = 0.0  # wrk's "... read" total (headers included), in bytes
    bad_status: int | None = None  # from a script's done(): None when the script does not count
    command: list = field(default_factory=list)
    output: str = ""

    @property
    def p99_ms(self):
        return self.latency_ms["99%"]

    @property
    def p95_ms(self):
        return self.latency_ms.get("95%")

    @property
    def ok_responses(self):
        """Responses with a 2xx or 3xx status (for the redirect: the 302s)."""
        return self.requests - self.non_2xx_3xx

    def as_dict(self):
        return {
            **asdict(self),
            "p99_ms": self.p99_ms,
            "p95_ms": self.p95_ms,
            "ok_responses": self.ok_responses,
        }


def to_ms(text):
    """``456.78us`` / ``1.23ms`` / ``1.02s`` / ``1.50m`` as milliseconds."""
    match = re.fullmatch(r"([\d.]+)(us|ms|s|m|h)", text.strip())
    if not match:
        raise ValueError(f"not a wrk duration: {text!r}")
    return float(match.group(1)) * TIME_UNITS_MS[match.group(2)]


def to_bytes(text):
    """wrk's ``12.34MB`` (binary units) as bytes."""
    match = re.fullmatch(r"([\d.]+)([KMGT]?)B", text)
    return float(match.group(1)) * 1024 ** " KMGT".index(match.group(2) or " ")


def parse(output):
    """The figures of one ``wrk --latency`` report; raises ValueError if it is not one."""
    percentiles = re.findall(r"^\s+(50|75|90|99)%\s+(\S+)", output, re.M)
    latency = {pct + "%": to_ms(value) for pct, value in percentiles}
    totals = re.search(rf"^\s*(\d+) requests in ([\d.]+)(us|ms|s|m|h), ({SIZE}) read", output, re.M)
    rate = re.search(r"^Requests/sec:\s+([\d.]+)", output, re.M)
    if not (totals and rate and "99%" in latency):
        raise ValueError(f"unexpected wrk output:\n{output}")
    errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", output)
    non_ok = re.search(r"Non-2xx or 3xx responses: (\d+)", output)
    p95 = re.search(r"^p95_us (\d+)", output, re.M)
    if p95:
        latency["95%"] = int(p95.group(1)) / 1000
    bad = re.search(r"^bad_status (\d+)", output, re.M)
    return WrkResult(
        requests=int(totals.group(1)),
        seconds=to_ms(totals.group(2) + totals.group(3)) / 1000,
        bytes_read=to_bytes(totals.group(4)),
        requests_per_sec=float(rate.group(1)),
        latency_ms=latency,
        socket_errors=dict(zip(SOCKET_ERRORS, map(int, errors.groups()) if errors else [0] * 4, strict=True)),
        non_2xx_3xx=int(non_ok.group(1)) if non_ok else 0,
        bad_status=int(bad.group(1)) if bad else None,
    )


def run(url, duration, threads=2, connections=16, timeout="5s", script=None):
    """One wrk run against ``url``; ``duration`` in seconds; ``script``: a Lua file for ``-s``."""
    command = [WRK, f"-t{threads}", f"-c{connections}", f"-d{duration}s", f"--timeout={timeout}", "--latency"]
    command += ["-s", script, url] if script else [url]
    completed = subprocess.run(command, capture_output=True, text=True, check=False, timeout=duration + 60)
    if completed.returncode != 0:
        raise RuntimeError(f"wrk failed ({completed.returncode}):\n{completed.stdout}\n{completed.stderr}")
    result = parse(completed.stdout)
    if result.seconds < 0.9 * duration:  # wrk prints a partial report when interrupted (SIGINT)
        raise RuntimeError(f"wrk stopped after {result.seconds}s of {duration}s:\n{completed.stdout}")
    result.command = command
    result.output = completed.stdout
    return result
