"""GET /r/<slug>: the hot path. Redirect at once; the click is captured for later.

Two doors, one behaviour. ``CachedRedirects`` sits in front of Flask and
answers the common case, a slug this process has a live cache entry for in
batch mode, straight from WSGI: Flask's per-request machinery (contexts,
hooks, the response object) costs more than resolving and capturing, and a
redirect needs none of it (no session, no user, no database). Everything else
goes to the Flask view ``follow_link``: a cache miss (it asks Redis, then
the database), an unknown or disabled slug (the 404 page), task mode, other
methods. Both build the click line and the headers with the same functions
below.
"""

import logging
import re
import time
from http import HTTPStatus

from flask import Blueprint, Response, current_app, render_template, request
from werkzeug.urls import iri_to_uri

from webapp import security_headers
from webapp.clicks import capture
from webapp.clicks.click_log import app_click_log
from webapp.clicks.events import encode_click
from webapp.client_address import client_ip, trusted_proxies
from webapp.links.cache import local_link_cache
from webapp.links.service import REDIRECT_CODES
from webapp.trusted_hosts import host_is_trusted

log = logging.getLogger(__name__)

bp = Blueprint("redirects", __name__)

PREFIX = "/r/"
# Anything that could never be a slug is a 404 without touching Redis.
PLAUSIBLE_SLUG = re.compile(r"[A-Za-z0-9_-]{1,64}")
# Every click must reach us: no browser or proxy may answer from its cache.
NO_STORE = "private, no-store, no-cache, max-age=0"
STATUS_LINES = {code: f"{code} {HTTPStatus(code).phrase}" for code in REDIRECT_CODES}


@bp.route(PREFIX + "<slug>", methods=["GET", "HEAD"])
def follow_link(slug):
    if not PLAUSIBLE_SLUG.fullmatch(slug):
        return not_found(slug)
    entry = capture.resolve(slug.lower())
    if entry is None:
        return not_found(slug)
    if entry.refuses(time.time()):
        capture.capture(click_line(request.environ, entry.link_id, current_app, refused=True))
        return gone(slug)
    capture.capture(click_line(request.environ, entry.link_id, current_app))
    response = Response(status=redirect_code(entry, current_app.config), headers=redirect_headers(entry))
    del response.headers["Content-Type"]  # an empty body has no type: as the fast path answers
    return response


def click_line(environ, link_id, app, refused=False):
    # Straight from the WSGI environ: the header proxies cost more than the lookups.
    ip = client_ip(
        environ.get("REMOTE_ADDR"),
        environ.get("HTTP_X_FORWARDED_FOR"),
        trusted_proxies(app),
    )
    referrer, user_agent = environ.get("HTTP_REFERER"), environ.get("HTTP_USER_AGENT")
    return encode_click(link_id, environ["REQUEST_METHOD"], referrer, user_agent, ip, refused=refused)


def redirect_code(entry, config):
    return entry.redirect_code or config["REDIRECT_STATUS_CODE"]


def answer_headers(app=None):
    """The headers of every answer at /r/<slug>, redirect, 404 or 410, from either door: a
    header added here reaches the fast path and the Flask view alike."""
    return [("Cache-Control", NO_STORE), *security_headers.headers_of(app)]


def redirect_headers(entry, app=None):
    """Every header of a redirect. No body: a page saying "Redirecting..." is read by nobody."""
    target = entry.target_url
    # Paths and queries may hold non-ASCII text; a header must not.
    location = target if target.isascii() else iri_to_uri(target)
    return [("Location", location), *answer_headers(app), ("Content-Length", "0")]


def not_found(slug):
    return page_answer(render_template("link_not_found.html", slug=slug), 404)


def gone(slug):
    """An expired link, or one that reached its click limit: 410, in the site's layout."""
    return page_answer(render_template("link_gone.html", slug=slug), 410)


def page_answer(page, status):
    """A 404 or 410 page (only the Flask view renders pages) with every answer's headers."""
    response = current_app.make_response((page, status))
    for name, value in answer_headers():
        response.headers[name] = value
    return response


class CachedRedirects:
    """WSGI middleware answering cache hits of batch-mode redirects before Flask sees them."""

    def __init__(self, app, wsgi_app):
        self.app = app
        self.wsgi_app = wsgi_app

    def __call__(self, environ, start_response):
        entry = self.cached_entry(environ)
        if entry is None:
            return self.wsgi_app(environ, start_response)
        try:
            app_click_log(self.app).append(click_line(environ, entry.link_id, self.app))
        except OSError:
            # Flask's view meets the same error and answers with the error page.
            log.exception("could not log a click; handing the request to Flask")
            return self.wsgi_app(environ, start_response)
        start_response(STATUS_LINES[redirect_code(entry, self.app.config)], redirect_headers(entry, self.app))
        return [b""]

    def cached_entry(self, environ):
        """The live local cache entry of a redirect this middleware may answer, else None."""
        path = environ.get("PATH_INFO", "")
        if not path.startswith(PREFIX) or environ["REQUEST_METHOD"] not in ("GET", "HEAD"):
            return None
        if self.app.config["CLICK_CAPTURE_MODE"] != "batch" or not host_is_trusted(environ, self.app):
            return None  # a forged Host gets Flask's 400, as every other path does
        slug = path[len(PREFIX) :]
        if not PLAUSIBLE_SLUG.fullmatch(slug):
            return None
        hit, entry = local_link_cache(self.app).get(slug.lower())
        if not hit or entry is None or entry.refuses(time.time()):
            return None  # a cached "no such link" gets Flask's 404 page, a refusal its 410
        return entry
