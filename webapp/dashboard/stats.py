"""Read-only queries behind the dashboard, all on counters and rollups.

Nothing here counts click rows except ``recent_clicks``, which reads the
newest few through the (link_id, created_at) index. A fragment polled every
few seconds by many dashboards must stay cheap whatever the traffic.
"""

from collections import Counter
from datetime import timedelta

from sqlalchemy import func, select

from webapp.analytics import bucket_start
from webapp.extensions import db
from webapp.links.access import restrict_by_link, visible_links
from webapp.models import (
    Click,
    Link,
    LinkCounter,
    LinkDailyAgents,
    LinkDailyReferrers,
    LinkHourlyClicks,
    utcnow,
)

# range name → (bucket, number of buckets)
RANGES = {"hour": ("hour", 48), "day": ("day", 30), "week": ("week", 12)}
BUCKET_LENGTH = {"hour": timedelta(hours=1), "day": timedelta(days=1), "week": timedelta(weeks=1)}
TABLE_DAYS = 30


def totals(user):
    links = db.session.scalar(select(func.count()).select_from(visible_links(user).subquery()))
    counter = restrict_by_link(
        select(
            func.coalesce(func.sum(LinkCounter.clicks), 0), func.coalesce(func.sum(LinkCounter.bot_clicks), 0)
        ),
        user,
        LinkCounter.link_id,
    )
    clicks, bots = db.session.execute(counter).one()
    since = bucket_start("hour", utcnow()) - timedelta(hours=23)
    recent = restrict_by_link(
        select(func.coalesce(func.sum(LinkHourlyClicks.clicks), 0)).where(LinkHourlyClicks.hour >= since),
        user,
        LinkHourlyClicks.link_id,
    )
    return {"links": links, "clicks": clicks, "bot_clicks": bots, "clicks_24h": db.session.scalar(recent)}


def clicks_series(user, range_name, link_id=None):
    """[(label, human clicks)] per bucket, oldest first, zeros included."""
    bucket, count = RANGES.get(range_name, RANGES["hour"])
    last = bucket_start(bucket, utcnow())
    first = last - BUCKET_LENGTH[bucket] * (count - 1)
    query = select(LinkHourlyClicks.hour, func.sum(LinkHourlyClicks.clicks)).where(
        LinkHourlyClicks.hour >= first
    )
    if link_id is not None:
        query = query.where(LinkHourlyClicks.link_id == link_id)
    query = restrict_by_link(query, user, LinkHourlyClicks.link_id).group_by(LinkHourlyClicks.hour)
    sums = Counter()
    for hour, clicks in db.session.execute(query):
        sums[bucket_start(bucket, hour)] += clicks
    starts = [first + BUCKET_LENGTH[bucket] * index for index in range(count)]
    return [(bucket_label(bucket, start), sums[start]) for start in starts]


def bucket_label(bucket, start):
    if bucket == "hour":
        return start.strftime("%H:00")
    return start.strftime("%m-%d")


def top_links(user, limit=10):
    query = (
        visible_links(user)
        .add_columns(LinkCounter.clicks)
        .join(LinkCounter, LinkCounter.link_id == Link.id)
        .order_by(LinkCounter.clicks.desc(), Link.id)
        .limit(limit)
    )
    return db.session.execute(query).all()


def top_referrers(link_id, limit=10):
    since = utcnow().date() - timedelta(days=TABLE_DAYS - 1)
    clicks = func.sum(LinkDailyReferrers.clicks).label("clicks")
    query = (
        select(LinkDailyReferrers.referrer_host, clicks)
        .where(LinkDailyReferrers.link_id == link_id, LinkDailyReferrers.day >= since)
        .group_by(LinkDailyReferrers.referrer_host)
        .order_by(clicks.desc(), LinkDailyReferrers.referrer_host)
        .limit(limit)
    )
    return db.session.execute(query).all()


def agent_families(link_id, bots, limit=10):
    since = utcnow().date() - timedelta(days=TABLE_DAYS - 1)
    clicks = func.sum(LinkDailyAgents.clicks).label("clicks")
    query = (
        select(LinkDailyAgents.agent, clicks)
        .where(
            LinkDailyAgents.link_id == link_id, LinkDailyAgents.day >= since, LinkDailyAgents.is_bot.is_(bots)
        )
        .group_by(LinkDailyAgents.agent)
        .order_by(clicks.desc(), LinkDailyAgents.agent)
        .limit(limit)
    )
    return db.session.execute(query).all()


def recent_clicks(link_id, limit=20):
    query = select(Click).where(Click.link_id == link_id).order_by(Click.created_at.desc()).limit(limit)
    return db.session.execute(query).scalars().all()
