"""Click analytics over a time range, read from the rollups the drain keeps.

``link_hourly_clicks`` answers any series of hours, days or weeks;
``link_daily_referrers`` and ``link_daily_agents`` answer the tables. No
query here counts click rows, so a range of a year costs what a day does.
Times are naive UTC; a range is ``[start, end)``.
"""

from collections import Counter
from datetime import UTC, datetime, timedelta

from sqlalchemy import func, select

from webapp.extensions import db
from webapp.models import LinkDailyAgents, LinkDailyReferrers, LinkHourlyClicks

BUCKETS = {"hour": timedelta(hours=1), "day": timedelta(days=1), "week": timedelta(weeks=1)}
MAX_BUCKETS = 5000


class InvalidRange(ValueError):
    """A range or bucket we cannot answer; the message is for the user."""


def bucket_start(bucket, moment):
    hour = moment.replace(minute=0, second=0, microsecond=0)
    if bucket == "hour":
        return hour
    day = hour.replace(hour=0)
    return day if bucket == "day" else day - timedelta(days=day.weekday())


def parse_range(start_text, end_text, bucket, now, default_days=30):
    """(start, end, bucket) from ISO 8601 dates or date-times (UTC), or raise ``InvalidRange``."""
    if bucket not in BUCKETS:
        raise InvalidRange(f"bucket must be one of {', '.join(BUCKETS)}")
    end = parse_moment(end_text, "to") if end_text else now
    start = parse_moment(start_text, "from") if start_text else end - timedelta(days=default_days)
    if start >= end:
        raise InvalidRange("from must be before to")
    if (end - start) / BUCKETS[bucket] > MAX_BUCKETS:
        raise InvalidRange(f"that range has more than {MAX_BUCKETS} {bucket}s: choose a larger bucket")
    return start, end, bucket


def parse_moment(text, name):
    try:
        moment = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        raise InvalidRange(f"{name} must be an ISO 8601 date or date-time, e.g. 2027-01-31") from None
    if moment.tzinfo is not None:
        moment = moment.astimezone(UTC).replace(tzinfo=None)
    if not 2000 <= moment.year <= 9998:
        raise InvalidRange(f"{name} must be between the years 2000 and 9998")
    return moment


def series(link_ids_query, start, end, bucket):
    """[(bucket start, human clicks, bot clicks)] for the links of ``link_ids_query``, zeros included."""
    query = (
        select(
            LinkHourlyClicks.hour, func.sum(LinkHourlyClicks.clicks), func.sum(LinkHourlyClicks.bot_clicks)
        )
        .where(
            LinkHourlyClicks.link_id.in_(link_ids_query),
            LinkHourlyClicks.hour >= start,
            LinkHourlyClicks.hour < end,
        )
        .group_by(LinkHourlyClicks.hour)
    )
    humans, bots = Counter(), Counter()
    for hour, clicks, bot_clicks in db.session.execute(query):
        # int(): PostgreSQL sums a BIGINT column as NUMERIC, which JSON would write as text.
        humans[bucket_start(bucket, hour)] += int(clicks)
        bots[bucket_start(bucket, hour)] += int(bot_clicks)
    first, step = bucket_start(bucket, start), BUCKETS[bucket]
    count = int((end - first) / step) + (1 if (end - first) % step else 0)
    starts = [first + step * index for index in range(count)]
    return [(moment, humans[moment], bots[moment]) for moment in starts]


def referrers(link_ids_query, start, end, limit=10):
    """[(referrer host, clicks)] over the days the range touches, most first."""
    clicks = func.sum(LinkDailyReferrers.clicks).label("clicks")
    query = (
        select(LinkDailyReferrers.referrer_host, clicks)
        .where(
            LinkDailyReferrers.link_id.in_(link_ids_query),
            LinkDailyReferrers.day >= start.date(),
            LinkDailyReferrers.day <= last_day(end),
        )
        .group_by(LinkDailyReferrers.referrer_host)
        .order_by(clicks.desc(), LinkDailyReferrers.referrer_host)
        .limit(limit)
    )
    return db.session.execute(query).all()


def agents(link_ids_query, start, end, bots, limit=10):
    """[(browser family, clicks)] of humans (or of bots) over the days the range touches."""
    clicks = func.sum(LinkDailyAgents.clicks).label("clicks")
    query = (
        select(LinkDailyAgents.agent, clicks)
        .where(
            LinkDailyAgents.link_id.in_(link_ids_query),
            LinkDailyAgents.day >= start.date(),
            LinkDailyAgents.day <= last_day(end),
            LinkDailyAgents.is_bot.is_(bots),
        )
        .group_by(LinkDailyAgents.agent)
        .order_by(clicks.desc(), LinkDailyAgents.agent)
        .limit(limit)
    )
    return db.session.execute(query).all()


def last_day(end):
    """The last day a range ending (exclusively) at ``end`` touches."""
    return (end - timedelta(microseconds=1)).date()
