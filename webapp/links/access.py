"""Who may see and change a link: its owner, and admins. The one home of that rule,
for the API, the dashboard, the statistics and the CLI alike: ``can_see`` in
Python, ``owner_condition`` in SQL, and the queries built on it."""

from sqlalchemy import select

from webapp.models import Link


def can_see(user, link):
    return link is not None and user is not None and (user.is_admin or link.owner_id == user.id)


def owner_condition(user):
    """The SQL condition on ``Link`` for the links ``user`` may see; None: all of them (an admin)."""
    return None if user.is_admin else Link.owner_id == user.id


def visible_links(user):
    """A query of the links ``user`` may see."""
    return restrict(select(Link), user)


def visible_link_ids(user):
    return restrict(select(Link.id), user)


def restrict(query, user):
    condition = owner_condition(user)
    return query if condition is None else query.where(condition)


def restrict_by_link(query, user, link_column):
    """``query`` over rows that belong to links (rollups, counters), kept to ``user``'s links."""
    condition = owner_condition(user)
    return query if condition is None else query.where(link_column.in_(select(Link.id).where(condition)))
