"""Polled fragments rendered once per poll interval for everyone who sees the same thing.

Every open dashboard asks for its live regions every few seconds; a
thousand dashboards of one team would otherwise run the same queries and
render the same HTML a thousand times per interval. Here a fragment's HTML
is kept in Redis for its poll interval under a key made of everything that
decides what it shows, and served from there to every poller of that key.

A hit that Flask serves still pays for the whole request (contexts, the
session, loading the user from the database), several times the copy's
GET: ``fragment_door`` answers the home page's regions before Flask when a
viewer record (``viewers``) vouches for the cookie's user, with the key
and the headers made here (``copy_key``, ``fragment_headers``).

Why Redis alone, and no copy per process: the gunicorn workers of every web
host share one Redis, so one render serves them all; a per-process copy
would render once per process per interval and could add another interval
of age on top of Redis's. A hit costs one GET on the request client.

Why a lock: when the copy expires, every poller of that key misses at
once. The first takes a short Redis lock (redis-py's ``Lock``: a token,
owner-only release) and renders; the others wait for its result, a few
milliseconds, and render themselves only if it does not come
(``RENDER_WAIT_SECONDS``), so a slow or dead renderer delays nobody for
long. Redis down: every request renders for itself, as before (never a
500); the request client's breaker keeps that from costing a timeout each.

What may be shared: the dashboard fragments (the home page's regions, a link
page's statistics) show the links a user may see
(``webapp.links.access.owner_condition``: an admin sees all of them, anyone
else only their own), in the user's time zone, for the request's query
arguments, with a few admin-only links. They embed no CSRF token and no
per-user text (the page's ``hx-headers`` carry the token, outside any
fragment), so that is the whole key.
"""

import hashlib
import json
import time
from functools import wraps

from flask import current_app, request
from flask_login import current_user
from redis import RedisError
from redis.exceptions import LockError

from webapp import keys, security_headers
from webapp.dashboard import bp, viewers
from webapp.dashboard.insights import zone_name
from webapp.models import User
from webapp.redis_client import request_redis

# Each live region's own refresh interval, in seconds (DASHBOARD_POLL_SECONDS replaces them all).
POLL_SECONDS = {"overview": 5, "clicks-chart": 10, "top-links": 10, "tables": 15, "link-stats": 10}
# A renderer holds the lock this long at most; the others wait this long for its result.
RENDER_LOCK_SECONDS = 5.0
RENDER_WAIT_SECONDS = 2.0
WAIT_STEP_SECONDS = 0.005
HTML = "text/html; charset=utf-8"
# The attribute ``shared_fragment`` gives a view: its region name.
SHARED_NAME = "shared_fragment_name"


@bp.app_template_global("poll_seconds")
def poll_seconds(name, app=None):
    """How often the region ``name`` refreshes, and so how long its HTML is shared (``app``
    where there is no app context: the door before Flask)."""
    return (app or current_app).config["DASHBOARD_POLL_SECONDS"] or POLL_SECONDS[name]


def viewer_scope(user):
    """Who sees the same fragments: every admin sees every link (and the admin-only links to
    Ops); anyone else sees their own links only (``owner_condition``)."""
    return "admin" if user.is_admin else f"owner:{user.id}"


def fragment_key(name):
    """The Redis key of fragment ``name`` as the current request would see it."""
    return copy_key(
        current_app.config["CLICKBOARD_NAMESPACE"],
        name,
        viewer_scope(current_user),
        zone_name(),
        request,
        poll_seconds(name),
    )


def copy_key(namespace, name, scope, zone, place, seconds):
    """The Redis key of a shared copy, from everything that decides what it shows: the viewer's
    scope and zone, and ``place``, the request's path (a link page's region names its link
    there), query arguments and script root. The one rule for Flask's view and the door."""
    decides = {
        "viewer": scope,
        "zone": zone,
        "path": place.path,
        "args": sorted(place.args.items(multi=True)),
        "root": place.script_root,
        "seconds": seconds,
    }
    digest = hashlib.sha256(json.dumps(decides, sort_keys=True).encode()).hexdigest()[:32]
    return keys.key(namespace, "fragment", name, digest)


def fragment_headers(body, app=None):
    """Every header of a shared fragment's answer (``body``: its bytes), from Flask's view or the
    door: Flask's after-request hook and session find theirs already here, so whatever is added
    here reaches both doors, and the door's answer stays Flask's."""
    return [
        ("Content-Type", HTML),
        ("Content-Length", str(len(body))),
        *security_headers.headers_of(app),
        ("Vary", "Cookie"),
    ]


def renders_key():
    return keys.app_key("fragment-renders")


def render_counts(client):
    """``{fragment name: renders}`` stored in the shared copy so far (tests, the bench)."""
    return {name: int(count) for name, count in client.hgetall(renders_key()).items()}


def shared_fragment(name):
    """Decorate a fragment view returning HTML: its answer shared for ``poll_seconds(name)``.

    The view's answer depends on nothing but what ``copy_key`` keys, so the door before
    Flask may serve it too: it finds such views by ``SHARED_NAME`` (a view that checks
    access first, as a link page's statistics do, calls ``shared_html`` itself instead)."""

    def decorate(view):
        @wraps(view)
        def shared_view(*args, **kwargs):
            return shared_html(name, lambda: view(*args, **kwargs))

        setattr(shared_view, SHARED_NAME, name)
        return shared_view

    return decorate


def shared_html(name, render):
    """The answer of fragment ``name``: its shared copy, ``render()``-ed here if there is none yet."""
    return fragment_answer(shared_copy(name, render))


def fragment_answer(html):
    body = html.encode()
    return current_app.response_class(body, headers=fragment_headers(body))


def shared_copy(name, render):
    guard = request_redis()
    if not guard.available:
        return render()
    key = fragment_key(name)
    try:
        html, lock = stored_copy_or_lock(guard.client, key)
    except RedisError:
        guard.mark_down()
        return render()
    try:
        if html is None:
            html = render()
            store(guard, key, name, html)
        return html
    finally:
        release(guard, lock)


def stored_copy_or_lock(client, key):
    """(the stored HTML, None); or (None, the render lock, now ours); or (None, None) when the
    request that holds the lock did not store its copy in time."""
    html = first_read(client, key)
    if html is not None:
        return html, None
    lock = client.lock(key + ":render", timeout=RENDER_LOCK_SECONDS)
    if lock.acquire(blocking=False):
        # The previous holder may have stored its copy between our GET and our lock.
        return client.get(key), lock
    return wait_for_copy(client, key), None


def first_read(client, key):
    """The stored copy, and in the same round trip the viewer's record for the door."""
    user_id, epoch = User.session_id_parts(current_user.get_id())
    scope, zone = viewer_scope(current_user), zone_name()
    with client.pipeline(transaction=False) as pipe:
        viewers.remember(pipe, current_app.config["CLICKBOARD_NAMESPACE"], user_id, epoch, scope, zone)
        pipe.get(key)
        return pipe.execute()[-1]


def wait_for_copy(client, key):
    """Another request renders ``key``: its HTML once stored, or None if it takes too long."""
    deadline = time.monotonic() + RENDER_WAIT_SECONDS
    while time.monotonic() < deadline:
        time.sleep(WAIT_STEP_SECONDS)
        html = client.get(key)
        if html is not None:
            return html
    return None


def store(guard, key, name, html):
    seconds = poll_seconds(name)
    try:
        with guard.client.pipeline(transaction=False) as pipe:
            pipe.set(key, html, px=int(seconds * 1000))
            pipe.hincrby(renders_key(), name, 1)
            pipe.execute()
    except RedisError:
        guard.mark_down()


def release(guard, lock):
    """Let the next render start; a lock that expired or a Redis gone is released already."""
    if lock is None or lock.local.token is None:
        return
    try:
        lock.release()
    except LockError:
        pass
    except RedisError:
        guard.mark_down()
