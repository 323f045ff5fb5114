"""Date ranges as people pick them: presets or custom dates, in their time zone, with the
period before for comparison and a chart bucket that follows the range's length.

Pure logic, no I/O. Rollups are hourly in UTC (``link_hourly_clicks``,
``link_hourly_dimension``); a period turns into the UTC hours it covers, and
each UTC hour is counted in the local hour, day, week or month it starts
in. For a whole-hour zone that is exact. In a zone offset by a half or
three quarters of an hour (India, Newfoundland, Nepal), an hour's clicks are
counted where the UTC hour starts: a local day holds the clicks from
00:30 (say) to 00:30, so up to 45 minutes on either side of midnight may land
in the neighbouring day. Across a DST change a day has 23 or 25 hours; the
repeated hour's clicks share one bucket.
"""

from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

PRESETS = {
    "today": "Today",
    "7d": "Last 7 days",
    "30d": "Last 30 days",
    "month": "This month",
    "12mo": "Last 12 months",
    "custom": "Custom range",
}
DEFAULT_PRESET = "7d"
BUCKETS = ("hour", "day", "week", "month")
MAX_DAYS = 3660  # ten years of days: a custom range beyond is refused
DEFAULT_ZONE = "UTC"


class InvalidPeriod(ValueError):
    """A range, preset or time zone we cannot answer; the message is for the user."""


@dataclass(frozen=True)
class Period:
    preset: str
    zone: ZoneInfo
    start: datetime  # local wall-clock time (naive), inclusive
    end: datetime  # local wall-clock time (naive), exclusive
    bucket: str

    @property
    def utc_start(self):
        return to_utc(self.start, self.zone)

    @property
    def utc_end(self):
        return to_utc(self.end, self.zone)

    @property
    def label(self):
        last_day = (self.end - timedelta(microseconds=1)).date()
        first = self.start.date()
        span = first.isoformat() if first == last_day else f"{first.isoformat()} – {last_day.isoformat()}"
        return f"{PRESETS[self.preset]} ({span}, {self.zone.key})"

    def previous(self):
        """The period just before, of the same nominal length (a month before a month)."""
        if self.preset in ("month", "12mo"):
            months = 1 if self.preset == "month" else 12
            start = add_months(self.start, -months)
            return Period(self.preset, self.zone, start, start + (self.end - self.start), self.bucket)
        # Today so far is compared with yesterday up to the same hour.
        length = timedelta(days=1) if self.preset == "today" else self.end - self.start
        return Period(self.preset, self.zone, self.start - length, self.end - length, self.bucket)

    def bucket_of(self, utc_hour):
        """The local bucket start a UTC hour's clicks count in."""
        local = utc_hour.replace(tzinfo=UTC).astimezone(self.zone).replace(tzinfo=None)
        return floor(self.bucket, local)

    def bucket_starts(self):
        starts, moment = [], floor(self.bucket, self.start)
        while moment < self.end:
            starts.append(moment)
            moment = step(self.bucket, moment)
        return starts


def zone_named(name):
    """The ZoneInfo of an IANA name, or raise ``InvalidPeriod``."""
    if not name:
        return ZoneInfo(DEFAULT_ZONE)
    if not isinstance(name, str) or len(name) > 64 or name.startswith(("/", ".")) or ".." in name:
        raise InvalidPeriod("unknown time zone: use an IANA name such as Europe/Paris")
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise InvalidPeriod(
            f"unknown time zone '{name[:64]}': use an IANA name such as Europe/Paris"
        ) from None


def resolve(preset, from_text, to_text, zone_name, now_utc):
    """The ``Period`` a request asks for; ``now_utc`` is naive UTC. Raises ``InvalidPeriod``."""
    zone = zone_named(zone_name)
    preset = preset or ("custom" if from_text or to_text else DEFAULT_PRESET)
    if preset not in PRESETS:
        raise InvalidPeriod(f"range must be one of {', '.join(PRESETS)}")
    now = now_utc.replace(tzinfo=UTC).astimezone(zone).replace(tzinfo=None)
    today = now.replace(hour=0, minute=0, second=0, microsecond=0)
    if preset == "custom":
        return custom(from_text, to_text, zone, now)
    start, bucket = {
        "today": (today, "hour"),
        "7d": (today - timedelta(days=6), "day"),
        "30d": (today - timedelta(days=29), "day"),
        "month": (today.replace(day=1), "day"),
        "12mo": (add_months(today.replace(day=1), -11), "month"),
    }[preset]
    return Period(preset, zone, start, step("hour", floor("hour", now)), bucket)


def custom(from_text, to_text, zone, now):
    """From one local date to another, both included."""
    first = parse_day(from_text, "from") if from_text else None
    last = parse_day(to_text, "to") if to_text else now.date()
    if first is None:
        raise InvalidPeriod("a custom range needs a from date, e.g. 2027-01-01")
    if first > last:
        raise InvalidPeriod("the from date must not be after the to date")
    days = (last - first).days + 1
    if days > MAX_DAYS:
        raise InvalidPeriod(f"a range may span at most {MAX_DAYS} days")
    bucket = "hour" if days <= 2 else "day" if days <= 92 else "week" if days <= 731 else "month"
    start = datetime.combine(first, datetime.min.time())
    return Period("custom", zone, start, start + timedelta(days=days), bucket)


def parse_day(text, name):
    try:
        day = date.fromisoformat(text.strip()[:10]) if isinstance(text, str) else None
    except ValueError:
        day = None
    if day is None:
        raise InvalidPeriod(f"{name} must be a date such as 2027-01-31")
    if not 2000 <= day.year <= 9998:
        raise InvalidPeriod(f"{name} must be between the years 2000 and 9998")
    return day


def to_utc(local, zone):
    return local.replace(tzinfo=zone).astimezone(UTC).replace(tzinfo=None)


def floor(bucket, moment):
    hour = moment.replace(minute=0, second=0, microsecond=0)
    if bucket == "hour":
        return hour
    day = hour.replace(hour=0)
    if bucket == "day":
        return day
    if bucket == "week":
        return day - timedelta(days=day.weekday())
    return day.replace(day=1)


def step(bucket, moment):
    if bucket == "month":
        return add_months(moment, 1)
    return moment + {"hour": timedelta(hours=1), "day": timedelta(days=1), "week": timedelta(weeks=1)}[bucket]


def add_months(moment, months):
    """The same day and time ``months`` later (earlier if negative), the day capped at the month's end."""
    index = moment.year * 12 + moment.month - 1 + months
    year, month = divmod(index, 12)
    month += 1
    next_month = date(year + (month == 12), month % 12 + 1, 1)
    last_day = (next_month - timedelta(days=1)).day
    return moment.replace(year=year, month=month, day=min(moment.day, last_day))


LABEL_FORMATS = {"hour": "%H:00", "day": "%b %d", "week": "%b %d", "month": "%b %Y"}


def bucket_label(bucket, start):
    return start.strftime(LABEL_FORMATS[bucket])
