"""Managing one link in the dashboard: edit every field, remove old slugs, QR codes, many at once.

Edits go through ``links.service`` as the API's do, so the rules, the change
history and the cache invalidation are the same. The edit form carries the
ETag of what it showed: saving over someone else's change is refused with a
message rather than done silently.
"""

from flask import Response, abort, flash, redirect, render_template, request, stream_with_context, url_for
from flask_login import current_user

from webapp.dashboard import bp
from webapp.dashboard.links import own_link_or_404
from webapp.extensions import db
from webapp.links import bulk, export, service
from webapp.links.access import visible_links
from webapp.links.qr import FORMATS, qr_code
from webapp.links.representation import etag, short_url
from webapp.links.validation import InvalidLink
from webapp.models import Link

TEXT_FIELDS = ("url", "slug", "title", "tags", "expires_at", "max_clicks")


@bp.get("/links/<slug>/edit")
def edit_link_page(slug):
    link = own_link_or_404(slug)
    return render_template(
        "dashboard/link_edit.html", link=link, form=form_of(link), errors={}, etag=etag(link)
    )


@bp.post("/links/<slug>/edit")
def edit_link(slug):
    link = own_link_or_404(slug)
    form = {field: request.form.get(field, "").strip() for field in TEXT_FIELDS}
    form["redirect_code"] = request.form.get("redirect_code", "")
    form["enabled"] = request.form.get("enabled") == "1"
    if request.form.get("etag") != etag(link):
        return edit_error(
            link, form, {"form": "Someone changed this link since you opened it: reload to see it."}, 409
        )
    try:
        changes = service.update_link(link, fields_from(form), current_user)
    except InvalidLink as exc:
        return edit_error(link, form, {exc.field or "form": str(exc)}, 400)
    except service.SlugTaken as exc:
        return edit_error(link, form, {"slug": str(exc)}, 409)
    flash(f"Saved: {', '.join(changes)}." if changes else "Nothing changed.", "ok")
    return redirect(url_for("dashboard.link_page", slug=link.slug), 303)


def form_of(link):
    return {
        "url": link.target_url,
        "slug": link.slug,
        "title": link.title or "",
        "tags": ", ".join(link.tags),
        "redirect_code": str(link.redirect_code or ""),
        "enabled": link.enabled,
        "expires_at": link.expires_at.strftime("%Y-%m-%dT%H:%M") if link.expires_at else "",
        "max_clicks": "" if link.max_clicks is None else str(link.max_clicks),
    }


def fields_from(form):
    """The form's text as service fields: empty means none; the expiry is UTC (as labelled)."""
    return {
        "url": form["url"],
        "slug": form["slug"],
        "title": form["title"] or None,
        "tags": form["tags"],
        "redirect_code": int(form["redirect_code"]) if form["redirect_code"].isdigit() else None,
        "enabled": form["enabled"],
        "expires_at": form["expires_at"] or None,
        "max_clicks": form["max_clicks"] or None,
    }


def edit_error(link, form, errors, status):
    page = render_template("dashboard/link_edit.html", link=link, form=form, errors=errors, etag=etag(link))
    return page, status


@bp.post("/links/<slug>/aliases/<alias>/delete")
def remove_alias(slug, alias):
    link = own_link_or_404(slug)
    if not service.remove_alias(link, alias, current_user):
        abort(404)
    flash(f"/r/{alias} no longer redirects here.", "ok")
    return redirect(url_for("dashboard.link_page", slug=link.slug), 303)


@bp.get("/links/<slug>/qr.<image_format>")
def link_qr(slug, image_format):
    link = own_link_or_404(slug)
    if image_format not in FORMATS:
        abort(404)
    image, mimetype = qr_code(short_url(link.slug), image_format)
    response = Response(image, mimetype=mimetype)
    if request.args.get("download"):
        response.headers["Content-Disposition"] = f'attachment; filename="{link.slug}-qr.{image_format}"'
    return response


@bp.post("/links/bulk")
def bulk_create():
    text = request.form.get("lines", "")
    items = bulk.parse_pasted(text)
    try:
        results = bulk.create_many(items, current_user)
    except bulk.InvalidBatch as exc:
        return render_template("dashboard/bulk_results.html", results=[], error=str(exc), items=items), 400
    return render_template("dashboard/bulk_results.html", results=results, error=None, items=items)


@bp.get("/export/links.<export_format>")
def export_links(export_format):
    """The user's links (an admin's: all) as CSV or JSON."""
    if export_format not in export.EXPORTS:
        abort(404)
    links = db.session.scalars(visible_links(current_user).order_by(Link.id)).all()
    response = Response(export.EXPORTS[export_format](links), mimetype=f"text/{export_format}")
    if export_format == "json":
        response.mimetype = "application/json"
    response.headers["Content-Disposition"] = f'attachment; filename="clickboard-links.{export_format}"'
    return response


@bp.get("/links/<slug>/clicks.csv")
def export_link_clicks(slug):
    """Every click of the link, streamed in constant memory."""
    link = own_link_or_404(slug)
    response = Response(stream_with_context(export.clicks_csv(link.id)), mimetype="text/csv")
    response.headers["Content-Disposition"] = f'attachment; filename="{link.slug}-clicks.csv"'
    return response
