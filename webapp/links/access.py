"""Who may see and change a link: its owner, and admins. The one home of that rule,
for the API, the dashboard, the statistics and the CLI alike."""

from sqlalchemy import select

from webapp.models import Link


def can_see(user, link):
    return link is not None and user is not None and (user.is_admin or link.owner_id == user.id)


def visible_links(user):
    """A query of the links ``user`` may see: all for admins, their own otherwise."""
    query = select(Link)
    return query if user.is_admin else query.where(Link.owner_id == user.id)


def visible_link_ids(user):
    query = select(Link.id)
    return query if user.is_admin else query.where(Link.owner_id == user.id)
