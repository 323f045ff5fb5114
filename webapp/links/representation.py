"""A link as the outside sees it: its short URL, its JSON, and the ETag of its editable state."""

import hashlib
import json

from flask import current_app, has_request_context, request

EDITABLE = ("slug", "url", "title", "tags", "redirect_code", "enabled", "expires_at", "max_clicks")


def public_base():
    """Where the outside reaches this install: PUBLIC_BASE_URL if set, else the host the
    request came to (one of TRUSTED_HOSTS; the CLI: localhost), without a trailing slash."""
    base = current_app.config["PUBLIC_BASE_URL"]
    if not base:
        base = request.host_url if has_request_context() else "http://127.0.0.1:8000/"
    return base.rstrip("/")


def short_url(slug):
    return f"{public_base()}/r/{slug}"


def iso(moment):
    return moment.isoformat() + "Z" if moment else None


def link_json(link):
    counter = link.counter
    return {
        "slug": link.slug,
        "url": link.target_url,
        "short_url": short_url(link.slug),
        "title": link.title,
        "tags": link.tags,
        "redirect_code": link.redirect_code or current_app.config["REDIRECT_STATUS_CODE"],
        "enabled": link.enabled,
        "expires_at": iso(link.expires_at),
        "max_clicks": link.max_clicks,
        "aliases": [alias.slug for alias in link.aliases],
        "clicks": counter.clicks if counter else 0,
        "bot_clicks": counter.bot_clicks if counter else 0,
        "refused": counter.refused if counter else 0,
        "last_click_at": iso(counter.last_click_at) if counter else None,
        "created_at": iso(link.created_at),
    }


def etag(link):
    """Changes whenever an editable field does (counts do not), so If-Match guards edits only."""
    state = link_json(link)
    editable = {field: state[field] for field in EDITABLE}
    return hashlib.sha256(json.dumps(editable, sort_keys=True).encode()).hexdigest()[:32]
