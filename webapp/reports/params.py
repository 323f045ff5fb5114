"""The slow-page report's parameters: parsed from user input, validated, keyed.

Everything a user can type arrives here first; what leaves is a frozen,
bounded value whose ``key`` names the report's Redis keys.
"""

import hashlib
import re
from dataclasses import asdict, dataclass

MAX_DAYS = 365
MAX_MIN_MS = 600_000
MAX_FILTER_LENGTH = 100
DEFAULTS = {"days": 30, "min_ms": 1000, "url_contains": "blog"}
SITE_KEY = re.compile(r"[A-Za-z0-9_-]{1,32}")


class InvalidReportParams(ValueError):
    """A parameter a user sent that we cannot use; the message says why."""


@dataclass(frozen=True)
class SlowReportParams:
    days: int = DEFAULTS["days"]
    min_ms: int = DEFAULTS["min_ms"]
    url_contains: str = DEFAULTS["url_contains"]
    site: str = ""  # a tracked site's public key: only its views; "" for every view

    @property
    def key(self):
        digest = hashlib.sha256(self.url_contains.encode()).hexdigest()[:16]
        return f"d{self.days}:m{self.min_ms}:u{digest}" + (f":s{self.site}" if self.site else "")

    def as_dict(self):
        """The parameters as stored with a run and sent to the task; no site: as before sites."""
        values = asdict(self)
        if not self.site:
            del values["site"]
        return values

    @classmethod
    def parse(cls, source):
        """Build from a mapping of strings (query args, form, CLI); missing ones default."""
        return cls(
            days=bounded_int(source, "days", 1, MAX_DAYS),
            min_ms=bounded_int(source, "min_ms", 0, MAX_MIN_MS),
            url_contains=url_filter(source),
            site=site_filter(source),
        )


def bounded_int(source, name, low, high):
    raw = source.get(name)
    if raw is None or raw == "":
        return DEFAULTS[name]
    try:
        value = int(str(raw).strip())
    except ValueError:
        raise InvalidReportParams(f"{name} must be a whole number, not {str(raw)[:40]!r}") from None
    if not low <= value <= high:
        raise InvalidReportParams(f"{name} must be between {low} and {high}")
    return value


def url_filter(source):
    raw = source.get("url_contains")
    if raw is None:
        return DEFAULTS["url_contains"]
    value = str(raw).strip()
    if len(value) > MAX_FILTER_LENGTH:
        raise InvalidReportParams(f"url_contains must be at most {MAX_FILTER_LENGTH} characters")
    if any(ord(char) < 32 or ord(char) == 127 for char in value):
        raise InvalidReportParams("url_contains must not contain control characters")
    return value


def site_filter(source):
    raw = str(source.get("site") or "").strip()
    if raw and not SITE_KEY.fullmatch(raw):
        raise InvalidReportParams("site must be a site's key (see Sites)")
    return raw
