"""Links in the dashboard: list with search, sort and pages; create; the link page.

The create form validates as you type (``/links/validate``) with the same
rules the API uses; a delete answers 303 to the list.
"""

from flask import abort, flash, redirect, render_template, request, url_for
from flask_login import current_user
from sqlalchemy import or_, select

from tasks.links import request_link_check
from webapp.dashboard import bp, insights, stats
from webapp.dashboard.shared_fragments import shared_html
from webapp.extensions import db
from webapp.links import service
from webapp.links.access import can_see, visible_link_ids, visible_links
from webapp.links.check_requests import PER_USER_PER_MINUTE
from webapp.links.representation import short_url
from webapp.links.validation import InvalidLink, normalise_slug, normalise_url
from webapp.models import Link, LinkCounter, LinkTag, utcnow
from webapp.request_args import page_number
from webapp.search import LIKE_ESCAPE, contains_pattern

PAGE_SIZE = 25
SORTS = {
    "new": (Link.id.desc(),),
    "old": (Link.id.asc(),),
    "clicks": (LinkCounter.clicks.desc().nulls_last(), Link.id.desc()),
    "slug": (Link.slug.asc(),),
}


@bp.get("/links")
def links_page():
    context = links_list_context()
    if request.htmx and request.htmx.target == "links-table":
        return render_template("dashboard/_links_table.html", **context)
    return render_template("dashboard/links.html", form={}, errors={}, **context)


def links_list_context():
    search = request.args.get("q", "").strip()[:100]
    sort = request.args.get("sort", "new")
    sort = sort if sort in SORTS else "new"
    page = page_number()
    query = visible_links(current_user).outerjoin(LinkCounter, LinkCounter.link_id == Link.id)
    if search:
        pattern = contains_pattern(search)
        query = query.where(
            or_(
                Link.slug.ilike(pattern, escape=LIKE_ESCAPE),
                Link.target_url.ilike(pattern, escape=LIKE_ESCAPE),
                Link.title.ilike(pattern, escape=LIKE_ESCAPE),
            )
        )
    tag = request.args.get("tag", "").strip().lower()[:40]
    if tag:
        query = query.where(Link.id.in_(select(LinkTag.link_id).where(LinkTag.tag == tag)))
    query = query.add_columns(LinkCounter.clicks).order_by(*SORTS[sort])
    rows = db.session.execute(query.limit(PAGE_SIZE + 1).offset((page - 1) * PAGE_SIZE)).all()
    return {
        "rows": rows[:PAGE_SIZE],
        "has_next": len(rows) > PAGE_SIZE,
        "page": page,
        "q": search,
        "sort": sort,
        "tag": tag,
        "tags": db.session.scalars(
            select(LinkTag.tag)
            .where(LinkTag.link_id.in_(visible_link_ids(current_user)))
            .distinct()
            .order_by(LinkTag.tag)
        ).all(),
    }


CREATE_EXTRAS = ("title", "tags", "expires_at", "max_clicks")


@bp.post("/links")
def create_link():
    form = {"url": request.form.get("url", ""), "slug": request.form.get("slug", "").strip()}
    form.update({field: request.form.get(field, "").strip() for field in CREATE_EXTRAS})
    errors = validate_link_form(form)
    if not errors:
        extras = {field: form[field] or None for field in CREATE_EXTRAS}
        try:
            link, created = service.create_link(
                form["url"], current_user, slug=form["slug"] or None, **extras
            )
        except service.SlugTaken as exc:
            errors["slug"] = str(exc)
        except InvalidLink as exc:
            errors[exc.field or "url"] = str(exc)
        else:
            flash(
                f"Created {short_url(link.slug)}" if created else "You already had a link to that URL.", "ok"
            )
            return redirect(url_for("dashboard.link_page", slug=link.slug), 303)
    return render_template("dashboard/links.html", form=form, errors=errors, **links_list_context()), 400


@bp.post("/links/validate")
def validate_link():
    """Inline validation: the form's error messages, as a fragment."""
    form = {"url": request.form.get("url", ""), "slug": request.form.get("slug", "").strip()}
    errors = validate_link_form(form, require_url=bool(form["url"]))
    return render_template("dashboard/_link_form_errors.html", errors=errors)


def validate_link_form(form, require_url=True):
    errors = {}
    if require_url:
        try:
            normalise_url(form["url"])
        except InvalidLink as exc:
            errors["url"] = str(exc)
    if form["slug"]:
        try:
            slug = normalise_slug(form["slug"])
        except InvalidLink as exc:
            errors["slug"] = str(exc)
        else:
            if service.get_link(slug) is not None:
                errors["slug"] = f"slug '{slug}' is already taken"
    return errors


def own_link_or_404(slug):
    link = service.get_link(slug)
    if not can_see(current_user, link):
        abort(404)
    return link


@bp.get("/links/<slug>")
def link_page(slug):
    link = own_link_or_404(slug)
    return render_template(
        "dashboard/link.html",
        link=link,
        short_url=short_url(link.slug),
        history=service.history(link),
        now_utc=utcnow(),
        **{**link_stats_context(link), **insights.chart_context(link.id)},
    )


@bp.get("/links/<slug>/stats")
def link_stats_fragment(slug):
    link = own_link_or_404(slug)  # before the shared copy: who may see the link is asked every time
    return shared_html(
        "link-stats",
        lambda: render_template("dashboard/_link_stats.html", link=link, **link_stats_context(link)),
    )


def link_stats_context(link):
    return {**insights.tables_context(link.id), "recent": stats.recent_clicks(link.id)}


@bp.post("/links/<slug>/enabled")
def set_link_enabled(slug):
    link = own_link_or_404(slug)
    service.set_enabled(link, request.form.get("enabled") == "1", current_user)
    flash(f"{'Enabled' if link.enabled else 'Disabled'} /r/{link.slug}.", "ok")
    return redirect(url_for("dashboard.link_page", slug=link.slug), 303)


CHECK_MESSAGES = {
    "queued": ("Checking the target; the result appears here in a moment.", "ok"),
    "pending": ("A check of this link is already under way; its result appears here in a moment.", "ok"),
    "limited": (f"Too many checks: at most {PER_USER_PER_MINUTE} a minute. Try again in a minute.", "error"),
}


@bp.post("/links/<slug>/check")
def check_link(slug):
    link = own_link_or_404(slug)
    try:
        outcome = request_link_check(link.id, current_user.id)
    except Exception:  # noqa: BLE001 - the broker is down: say so, lose nothing
        flash("Could not reach the task queue; try again shortly.", "error")
    else:
        flash(*CHECK_MESSAGES[outcome])
    return redirect(url_for("dashboard.link_page", slug=link.slug), 303)


@bp.post("/links/<slug>/delete")
def delete_link(slug):
    link = own_link_or_404(slug)
    service.delete_link(link)
    flash(f"Deleted /r/{slug}.", "ok")
    return redirect(url_for("dashboard.links_page"), 303)
