"""POST /collect/<key>: page views from the tracker script (``static/js/cb-1.js``) on real sites.

Public and cookie-free, like the redirect: the key names a site, and a view
is taken only with an ``Origin`` that is one of the site's (browsers set it;
CORS lets those origins, and only those, read the answer) for a page of
that origin (its query and fragment dropped). Bodies are small (``MAX_BODY`` bytes, JSON sent as text/plain
by ``navigator.sendBeacon``, so browsers need no preflight); timings must be
plausible. Visitors asking not to be tracked (``DNT: 1``, ``Sec-GPC: 1``)
and bots get a 204 and nothing is kept; a flood is cut by two per-minute
limits, per site and per client address. An accepted view goes through the
page-view spool, as ``POST /api/pageviews`` does: a 202 is never lost.
"""

import hashlib
import json
import logging

from flask import Blueprint, Response, current_app, jsonify, request

from webapp import sites
from webapp.clicks.agents import is_bot_agent
from webapp.client_address import client_ip, trusted_proxies
from webapp.keys import app_key
from webapp.links.validation import is_encodable
from webapp.pageviews.ingest import InvalidPageView, app_pageview_log, tracked_view_line, valid_url
from webapp.redis_client import cached_script, request_redis

log = logging.getLogger(__name__)
bp = Blueprint("collect", __name__)

MAX_BODY = 4096
MAX_TIMING_MS = 600_000  # ten minutes: a longer "load" is a tab left in the background, not a timing
# KEYS: the site's and the client's counters for this minute. ARGV: their limits.
COUNT_VIEW = """
local site = redis.call('INCR', KEYS[1])
if site == 1 then redis.call('EXPIRE', KEYS[1], 60) end
local client = redis.call('INCR', KEYS[2])
if client == 1 then redis.call('EXPIRE', KEYS[2], 60) end
if site > tonumber(ARGV[1]) or client > tonumber(ARGV[2]) then return 0 end
return 1
"""


class InvalidView(ValueError):
    """A view we do not keep; the message is for the site's developer."""


@bp.route("/collect/<key>", methods=["POST", "OPTIONS"])
def collect(key):
    site = sites.known_site(key)
    if site is None:
        return refusal("no site has this key", 404)
    origin = allowed_origin(site)
    if origin is None:
        return refusal("this page's origin may not send views for this site (see its origins)", 403)
    if request.method == "OPTIONS":
        return with_cors(Response(status=204), origin, preflight=True)
    if asks_not_to_be_tracked() or is_bot_agent(request.headers.get("User-Agent", "")):
        return with_cors(Response(status=204), origin)
    if not within_limits(site):
        response = with_cors(
            refusal("too many views from this client or for this site: slow down", 429), origin
        )
        response.headers["Retry-After"] = "60"
        return response
    if (request.content_length or 0) > MAX_BODY:
        return with_cors(refusal(f"the body is larger than {MAX_BODY} bytes", 413), origin)
    try:
        line = view_line(site, origin, request.get_data(cache=False, as_text=False))
        app_pageview_log().append_all([line])
    except InvalidView as exc:
        return with_cors(refusal(str(exc), 400), origin)
    except OSError as exc:
        log.error("page-view spool unwritable, answering 503: %s", exc)
        return with_cors(refusal("views cannot be kept right now; retry shortly", 503), origin)
    return with_cors(Response(status=202), origin)


def refusal(message, status):
    return jsonify(error=message), status


def allowed_origin(site):
    try:
        origin = sites.normalise_origin(request.headers.get("Origin", ""))
    except sites.InvalidSite:
        return None
    return origin if origin in site.origins else None


def with_cors(response, origin, preflight=False):
    response = current_app.make_response(response)
    response.headers["Access-Control-Allow-Origin"] = origin
    response.headers["Vary"] = "Origin"
    if preflight:
        response.headers["Access-Control-Allow-Methods"] = "POST"
        response.headers["Access-Control-Allow-Headers"] = "Content-Type"
        response.headers["Access-Control-Max-Age"] = "86400"
    return response


def asks_not_to_be_tracked():
    return request.headers.get("DNT") == "1" or request.headers.get("Sec-GPC") == "1"


def within_limits(site):
    """Both this minute's limits, for the site and for the client; True if Redis cannot say
    (a view is small, and the spool keeps it)."""
    address = client_ip(request.remote_addr, request.headers.get("X-Forwarded-For"), trusted_proxies())
    # The address is hashed: the key only needs to tell clients apart, not to name them.
    client = hashlib.sha256((address or "").encode()).hexdigest()[:16]
    keys = [app_key("collect", "site", str(site.id)), app_key("collect", "client", client)]
    limits = [current_app.config["COLLECT_SITE_PER_MINUTE"], current_app.config["COLLECT_CLIENT_PER_MINUTE"]]
    guard = request_redis()
    if not guard.available:
        return True
    try:
        return cached_script(guard.client, COUNT_VIEW)(keys=keys, args=limits) == 1
    except Exception:  # noqa: BLE001 - a Redis failure must not cost the view
        guard.mark_down()
        return True


def view_line(site, origin, body):
    """The spool line of a valid view, or raise ``InvalidView``."""
    if len(body) > MAX_BODY:
        raise InvalidView(f"the body is larger than {MAX_BODY} bytes")
    try:
        view = json.loads(body)
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise InvalidView('the body must be JSON like {"u": "https://...", "s": 120, "l": 900}') from None
    if not isinstance(view, dict):
        raise InvalidView('the body must be a JSON object like {"u": "https://...", "s": 120, "l": 900}')
    try:
        url = valid_url(view.get("u"), "u")
    except InvalidPageView as exc:
        raise InvalidView(str(exc)) from None
    # Without its query and fragment: a query can carry a token or an email address, and the
    # report groups pages by path.
    url = url.split("#", 1)[0].split("?", 1)[0]
    if not url.startswith(origin + "/") and url != origin:
        raise InvalidView("u must be a page of the origin that sends it")
    referrer = view.get("r")
    if referrer is not None and (
        not isinstance(referrer, str) or len(referrer) > 2048 or not is_encodable(referrer)
    ):
        raise InvalidView("r must be the referrer's URL or null")
    return tracked_view_line(site.id, url, referrer, timing(view.get("s"), "s"), timing(view.get("l"), "l"))


def timing(value, name):
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value <= MAX_TIMING_MS:
        raise InvalidView(f"{name} must be milliseconds between 0 and {MAX_TIMING_MS}")
    return round(value)
