"""/api/links: create a link, read one with its counts."""

from flask import current_app, g, has_request_context, jsonify, request

from webapp.api import bp
from webapp.auth.tokens import token_required
from webapp.links import service
from webapp.links.validation import InvalidLink

LINK_FIELDS = {"url", "slug", "redirect_code"}


def short_url(slug):
    """PUBLIC_BASE_URL if set, else the host the request came to (CLI: localhost)."""
    base = current_app.config["PUBLIC_BASE_URL"]
    if not base:
        base = request.host_url if has_request_context() else "http://127.0.0.1:8000/"
    return f"{base.rstrip('/')}/r/{slug}"


def link_json(link):
    counter = link.counter
    return {
        "slug": link.slug,
        "url": link.target_url,
        "short_url": short_url(link.slug),
        "enabled": link.enabled,
        "redirect_code": link.redirect_code or current_app.config["REDIRECT_STATUS_CODE"],
        "created_at": link.created_at.isoformat() + "Z",
        "clicks": counter.clicks if counter else 0,
        "bot_clicks": counter.bot_clicks if counter else 0,
        "last_click_at": counter.last_click_at.isoformat() + "Z"
        if counter and counter.last_click_at
        else None,
    }


def error(message, status):
    return jsonify(error=message), status


@bp.post("/links")
@token_required
def create_link():
    body = request.get_json(silent=True)
    if not isinstance(body, dict):
        return error('request body must be a JSON object like {"url": "https://example.com"}', 400)
    unknown = set(body) - LINK_FIELDS
    if unknown:
        return error(f"unknown fields: {', '.join(sorted(unknown))}", 400)
    try:
        link, created = service.create_link(
            body.get("url"), g.api_user, slug=body.get("slug"), redirect_code=body.get("redirect_code")
        )
    except InvalidLink as exc:
        return error(str(exc), 400)
    except service.SlugTaken as exc:
        return error(str(exc), 409)
    return jsonify(link_json(link)), 201 if created else 200


@bp.get("/links/<slug>")
@token_required
def show_link(slug):
    link = service.get_link(slug)
    if link is None or not (g.api_user.is_admin or link.owner_id == g.api_user.id):
        return error(f"no link with slug '{slug}'", 404)
    return jsonify(link_json(link))
