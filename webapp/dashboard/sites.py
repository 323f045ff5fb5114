"""Sites in the dashboard: the tracker's sites with the tag each embeds; create; delete."""

from flask import abort, flash, redirect, render_template, request, url_for
from flask_login import current_user

from webapp import sites
from webapp.dashboard import bp
from webapp.extensions import db
from webapp.models import Site


@bp.get("/sites")
def sites_page():
    return sites_page_with()


@bp.post("/sites")
def create_site():
    form = {"name": request.form.get("name", ""), "origins": request.form.get("origins", "")}
    try:
        site = sites.create_site(form["name"], form["origins"].split(), current_user)
    except sites.InvalidSite as exc:
        return sites_page_with(form=form, error=str(exc)), 400
    flash(f"Created the site {site.name}: embed its tag in every page.", "ok")
    return redirect(url_for("dashboard.sites_page"), 303)


@bp.post("/sites/<int:site_id>/delete")
def delete_site(site_id):
    site = db.session.get(Site, site_id)
    if site is None or not (current_user.is_admin or site.owner_id == current_user.id):
        abort(404)
    sites.delete_site(site)
    flash(f"Deleted the site {site.name}; its page views stay in the report.", "ok")
    return redirect(url_for("dashboard.sites_page"), 303)


def sites_page_with(form=None, error=None):
    listed = [(site, sites.snippet(site)) for site in sites.visible_sites(current_user)]
    return render_template("dashboard/sites.html", sites=listed, form=form or {}, error=error)
