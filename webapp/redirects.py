"""GET /r/<slug>: the hot path. Redirect at once; the click is captured for later."""

import re

from flask import Blueprint, current_app, redirect, render_template, request

from webapp.clicks import capture
from webapp.clicks.events import client_ip, encode_click

bp = Blueprint("redirects", __name__)

# Anything that could never be a slug is a 404 without touching Redis.
PLAUSIBLE_SLUG = re.compile(r"[A-Za-z0-9_-]{1,64}")
# Every click must reach us: no browser or proxy may answer from its cache.
NO_STORE = "private, no-store, no-cache, max-age=0"


@bp.route("/r/<slug>", methods=["GET", "HEAD"])
def follow_link(slug):
    if not PLAUSIBLE_SLUG.fullmatch(slug):
        return not_found(slug)
    entry = capture.resolve(slug.lower())
    if entry is None:
        return not_found(slug)
    capture.capture(click_line(entry.link_id))
    response = redirect(entry.target_url, entry.redirect_code or current_app.config["REDIRECT_STATUS_CODE"])
    response.headers["Cache-Control"] = NO_STORE
    return response


def click_line(link_id):
    headers = request.headers
    ip = client_ip(
        request.remote_addr,
        headers.get("X-Forwarded-For"),
        current_app.extensions["clickboard.trusted_proxies"],
    )
    return encode_click(link_id, request.method, headers.get("Referer"), headers.get("User-Agent"), ip)


def not_found(slug):
    response = current_app.make_response((render_template("link_not_found.html", slug=slug), 404))
    response.headers["Cache-Control"] = NO_STORE
    return response
