"""GET /r/<slug>: the hot path. Redirect at once; the click is captured for later."""

import re

from flask import Blueprint, Response, current_app, render_template, request

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
    capture.capture(click_line(request.environ, entry.link_id))
    code = entry.redirect_code or current_app.config["REDIRECT_STATUS_CODE"]
    # No body: Flask's redirect() would render an HTML page nobody reads.
    return Response(status=code, headers={"Location": entry.target_url, "Cache-Control": NO_STORE})


def click_line(environ, link_id):
    # Straight from the WSGI environ: the header proxies cost more than the lookups.
    ip = client_ip(
        environ.get("REMOTE_ADDR"),
        environ.get("HTTP_X_FORWARDED_FOR"),
        current_app.extensions["clickboard.trusted_proxies"],
    )
    referrer, user_agent = environ.get("HTTP_REFERER"), environ.get("HTTP_USER_AGENT")
    return encode_click(link_id, environ["REQUEST_METHOD"], referrer, user_agent, ip)


def not_found(slug):
    response = current_app.make_response((render_template("link_not_found.html", slug=slug), 404))
    response.headers["Cache-Control"] = NO_STORE
    return response
