"""Read-only queries behind the dashboard, all on counters and rollups.

Nothing here counts click rows except ``recent_clicks``, which reads the
newest few through the (link_id, created_at) index. A fragment polled every
few seconds by many dashboards must stay cheap whatever the traffic.
"""

from datetime import timedelta

from sqlalchemy import func, select

from webapp.extensions import db
from webapp.links.access import restrict_by_link, visible_links
from webapp.models import (
    Click,
    Link,
    LinkCounter,
    LinkHourlyClicks,
    utcnow,
)


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
    since = utcnow().replace(minute=0, second=0, microsecond=0) - timedelta(hours=23)
    recent = restrict_by_link(
        select(func.coalesce(func.sum(LinkHourlyClicks.clicks), 0)).where(LinkHourlyClicks.hour >= since),
        user,
        LinkHourlyClicks.link_id,
    )
    return {"links": links, "clicks": clicks, "bot_clicks": bots, "clicks_24h": db.session.scalar(recent)}


def top_links(user, limit=10):
    query = (
        visible_links(user)
        .add_columns(LinkCounter.clicks)
        .join(LinkCounter, LinkCounter.link_id == Link.id)
        .order_by(LinkCounter.clicks.desc(), Link.id)
        .limit(limit)
    )
    return db.session.execute(query).all()


def recent_clicks(link_id, limit=20):
    query = select(Click).where(Click.link_id == link_id).order_by(Click.created_at.desc()).limit(limit)
    return db.session.execute(query).scalars().all()
