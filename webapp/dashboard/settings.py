"""The user's settings: the time zone of their charts, tables and CSV exports.

New users get their browser's zone at their first login (the login form
carries it); here they can change it.
"""

from zoneinfo import available_timezones

from flask import flash, redirect, render_template, request, url_for
from flask_login import current_user

from webapp import periods
from webapp.dashboard import bp
from webapp.extensions import db

ZONES = sorted(zone for zone in available_timezones() if "/" in zone or zone == "UTC")


@bp.get("/settings")
def settings_page():
    return render_template("dashboard/settings.html", zones=ZONES, error=None)


@bp.post("/settings")
def save_settings():
    name = request.form.get("time_zone") or request.form.get("browser_time_zone") or ""
    try:
        periods.zone_named(name)
    except periods.InvalidPeriod as exc:
        return render_template("dashboard/settings.html", zones=ZONES, error=str(exc)), 400
    current_user.time_zone = name or periods.DEFAULT_ZONE
    db.session.commit()
    flash(f"Times are now shown in {current_user.time_zone}.", "ok")
    return redirect(url_for("dashboard.settings_page"), 303)
