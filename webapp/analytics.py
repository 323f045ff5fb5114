"""Click analytics over a period, read from the rollups the drain keeps.

``link_hourly_clicks`` answers series and totals, ``link_hourly_dimension``
the tables (referrers, countries, devices, OS, browsers, bots); both are
per UTC hour, so any period in any whole-hour zone is exact (see
``webapp.periods`` for the rest). No query here counts click rows, so a
range of a year costs what a day does.
"""

from collections import Counter
from datetime import UTC, datetime, timedelta

from sqlalchemy import func, select

from webapp.extensions import db
from webapp.models import DIMENSIONS, LinkHourlyClicks, LinkHourlyDimension
from webapp.periods import BUCKETS, InvalidPeriod, Period, zone_named
from webapp.periods import resolve as resolve_period

MAX_BUCKETS = 5000
UNKNOWN_LABELS = {"referrer": "(direct)", "country": "Unknown", "device": "Unknown", "os": "Unknown",
                  "browser": "Unknown", "bot": "Unknown bot"}  # fmt: skip


def api_period(preset, start_text, end_text, bucket, zone_name, now):
    """The period of an API request: a preset (``range``) or ``from``/``to`` date-times, in
    ``tz`` (naive times are that zone's; default UTC); ``bucket`` as asked or the preset's."""
    if bucket is not None and bucket not in BUCKETS:
        raise InvalidPeriod(f"bucket must be one of {', '.join(BUCKETS)}")
    if preset:
        period = resolve_period(preset, start_text, end_text, zone_name, now)
        return with_bucket(period, bucket or period.bucket)
    zone = zone_named(zone_name)
    end = local_moment(end_text, "to", zone) if end_text else to_local(now, zone)
    start = local_moment(start_text, "from", zone) if start_text else end - timedelta(days=30)
    if start >= end:
        raise InvalidPeriod("from must be before to")
    return with_bucket(Period("custom", zone, start, end, bucket or "day"), bucket or "day")


def with_bucket(period, bucket):
    period = Period(period.preset, period.zone, period.start, period.end, bucket)
    if len(period.bucket_starts()) > MAX_BUCKETS:
        raise InvalidPeriod(f"that range has more than {MAX_BUCKETS} {bucket}s: choose a larger bucket")
    return period


def local_moment(text, name, zone):
    try:
        moment = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        raise InvalidPeriod(f"{name} must be an ISO 8601 date or date-time, e.g. 2027-01-31") from None
    if moment.tzinfo is not None:
        moment = moment.astimezone(zone).replace(tzinfo=None)
    if not 2000 <= moment.year <= 9998:
        raise InvalidPeriod(f"{name} must be between the years 2000 and 9998")
    return moment


def to_local(utc_naive, zone):
    return utc_naive.replace(tzinfo=UTC).astimezone(zone).replace(tzinfo=None)


def in_period(query, column, link_ids_query, period, link_column):
    return query.where(link_column.in_(link_ids_query), column >= period.utc_start, column < period.utc_end)


def series(link_ids_query, period):
    """[(local bucket start, human clicks, bot clicks)] for the links of ``link_ids_query``, zeros included."""
    query = select(
        LinkHourlyClicks.hour, func.sum(LinkHourlyClicks.clicks), func.sum(LinkHourlyClicks.bot_clicks)
    ).group_by(LinkHourlyClicks.hour)
    query = in_period(query, LinkHourlyClicks.hour, link_ids_query, period, LinkHourlyClicks.link_id)
    humans, bots = Counter(), Counter()
    for hour, clicks, bot_clicks in db.session.execute(query):
        # int(): PostgreSQL sums a BIGINT column as NUMERIC, which JSON would write as text.
        humans[period.bucket_of(hour)] += int(clicks)
        bots[period.bucket_of(hour)] += int(bot_clicks)
    return [(start, humans[start], bots[start]) for start in period.bucket_starts()]


def totals(link_ids_query, period):
    """(human clicks, bot clicks) in the period."""
    query = select(
        func.coalesce(func.sum(LinkHourlyClicks.clicks), 0),
        func.coalesce(func.sum(LinkHourlyClicks.bot_clicks), 0),
    )
    query = in_period(query, LinkHourlyClicks.hour, link_ids_query, period, LinkHourlyClicks.link_id)
    clicks, bot_clicks = db.session.execute(query).one()
    return int(clicks), int(bot_clicks)


def comparison(link_ids_query, period):
    """This period's totals beside the previous period's, with the change in percent (None from 0)."""
    (clicks, bots), (before, bots_before) = (
        totals(link_ids_query, period),
        totals(link_ids_query, period.previous()),
    )
    return {
        "clicks": clicks,
        "bot_clicks": bots,
        "previous_clicks": before,
        "previous_bot_clicks": bots_before,
        "change_percent": round((clicks - before) * 100 / before, 1) if before else None,
    }


def table(link_ids_query, period, dimension, limit=10):
    """[(value, clicks)] of one dimension in the period, most first; "" is unknown (or direct)."""
    if dimension not in DIMENSIONS:
        raise InvalidPeriod(f"table must be one of {', '.join(DIMENSIONS)}")
    clicks = func.sum(LinkHourlyDimension.clicks).label("clicks")
    query = (
        select(LinkHourlyDimension.value, clicks)
        .where(LinkHourlyDimension.dimension == dimension)
        .group_by(LinkHourlyDimension.value)
        .order_by(clicks.desc(), LinkHourlyDimension.value)
    )
    query = in_period(query, LinkHourlyDimension.hour, link_ids_query, period, LinkHourlyDimension.link_id)
    if limit is not None:
        query = query.limit(limit)
    return [(value, int(count)) for value, count in db.session.execute(query)]


def label(dimension, value):
    return value or UNKNOWN_LABELS[dimension]
