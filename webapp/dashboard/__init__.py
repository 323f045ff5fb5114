"""The dashboard (behind login): home, links, ops panel, API tokens.

Every live region is a fragment: the page includes it on first render and
htmx refreshes it from its own endpoint while the tab is visible.
"""

from flask import Blueprint
from flask_login import login_required

bp = Blueprint("dashboard", __name__)


@bp.before_request
@login_required
def require_login():
    """Every dashboard route, page or fragment, is for logged-in users only."""


from webapp.dashboard import home, insights, link_edit, link_import, links, ops, settings, sites, tokens  # noqa: E402,F401  (register routes on bp)
