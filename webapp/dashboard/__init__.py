"""The dashboard home page (behind login)."""

from flask import Blueprint, render_template
from flask_login import login_required
from sqlalchemy import func

from webapp.extensions import db
from webapp.models import Link, LinkCounter
from webapp.reports.views import report_card_context

bp = Blueprint("dashboard", __name__)


@bp.get("/")
@login_required
def index():
    totals = db.session.execute(
        db.select(func.count(Link.id), func.coalesce(func.sum(LinkCounter.clicks), 0)).outerjoin(LinkCounter)
    ).one()
    return render_template(
        "dashboard/index.html", link_count=totals[0], click_count=totals[1], **report_card_context({})
    )
