"""The door before Flask for the home page's live regions: a shared copy's hit, from WSGI.

Every open dashboard polls its regions; once a copy is shared
(``shared_fragments``) what a hit costs is Flask's request: contexts, the
session, Flask-Login's user load from the database, the hooks, several
times the Redis GET of the copy. ``FragmentDoor`` answers a GET of a home
page region itself when, and only when, Flask would answer it with the
same stored copy:

- the session cookie verifies as Flask's session interface opens it (the
  app's signing serializer and keys, fallbacks included, within the
  session lifetime) and holds Flask-Login's ``<user id>:<epoch>``, and
  serving it without Flask would not skip a Set-Cookie Flask owes: a
  session Flask refreshes on every request (permanent, with
  SESSION_REFRESH_EACH_REQUEST) goes to Flask once its signature is
  ``REFRESH_AGE`` old, one asking to set or clear a remember cookie always.
  (The sessions ``login_user`` makes here are not permanent: Flask never
  sends them again unless they change, and the door serves them, like
  Flask, until the session lifetime from their signature.) Nor would
  Flask-Login's session protection change it: a session seen from another
  address or agent than it was logged in from (``login_identifier``) and
  not yet marked "not fresh" goes to Flask, which marks it;
- the Host is one Flask trusts (else Flask's 400);
- the user's viewer record (``viewers``) holds the cookie's epoch: Flask
  loaded that user with that epoch within ``viewers.RECORD_SECONDS``, and
  no commit has changed the user since;
- the copy keyed as Flask's view would key it (``copy_key``, with the
  record's scope and zone) is in Redis.

Anything else (no cookie, a bad one, no record, no copy, Redis down or
slow, HEAD, another path) goes to Flask unchanged, which does what it
always did. A link page's statistics stay on Flask: who may see the link
is asked of the database every time. The answer is Flask's byte for byte:
the copy, and ``fragment_headers``, which Flask's view uses too. Revocation
(logout, a new password, a new zone, a lost admin flag) reaches the door
at the commit, or within ``viewers.RECORD_SECONDS`` when Redis missed it.
"""

import hashlib
import time

from itsdangerous import BadSignature
from redis import RedisError

from webapp.dashboard import viewers
from webapp.dashboard.shared_fragments import SHARED_NAME, copy_key, fragment_headers, poll_seconds
from webapp.models import User
from webapp.redis_client import request_redis
from webapp.trusted_hosts import host_is_trusted

# A session Flask would send again with every answer goes to Flask once signed this long ago.
REFRESH_AGE = 60
# Users whose last record a process keeps (a few dozen bytes each) before it starts again.
SEEN_USERS = 10_000


class FragmentDoor:
    """WSGI middleware answering shared-copy hits of the home page's regions before Flask."""

    def __init__(self, app, wsgi_app):
        self.app = app
        self.wsgi_app = wsgi_app
        self.regions = region_paths(app)
        self.seen_records = {}  # {user id: the record last read}, to guess which copy to read

    def __call__(self, environ, start_response):
        name = self.regions.get(environ.get("PATH_INFO")) if environ["REQUEST_METHOD"] == "GET" else None
        body = None if name is None else self.stored_copy(name, self.app.request_class(environ))
        if body is None:
            return self.wsgi_app(environ, start_response)
        start_response("200 OK", fragment_headers(body, self.app))
        return [body]

    def stored_copy(self, name, request):
        """The bytes Flask would answer ``request`` for region ``name`` with, or None."""
        if not host_is_trusted(request.environ, self.app):
            return None
        viewer = self.signed_viewer(request)
        if viewer is None:
            return None
        guard = request_redis(self.app)
        if not guard.available:
            return None
        try:
            html = self.copy_for(guard.client, name, request, viewer)
        except RedisError:
            guard.mark_down()  # Flask's view will not wait on it either
            return None
        return None if html is None else html.encode()

    def copy_for(self, client, name, request, viewer):
        """The copy the viewer's record keys. One MGET reads the record and the copy keyed by the
        record this process last read for the user (the record read then is what decides: the
        guess only saves a second round trip); if they differ, a GET reads the right copy."""
        user_id, epoch = viewer
        namespace = self.app.config["CLICKBOARD_NAMESPACE"]
        seen = self.seen_records.get(user_id)
        keys = [viewers.record_key(namespace, user_id)]
        if seen is not None:
            keys.append(self.copy_key(namespace, name, request, seen))
        stored, *copy = client.mget(keys)
        record = viewers.parse(stored)
        if record is None or record[0] != epoch:
            return None
        if record == seen:
            return copy[0]
        if len(self.seen_records) >= SEEN_USERS:
            self.seen_records.clear()
        self.seen_records[user_id] = record
        return client.get(self.copy_key(namespace, name, request, record))

    def copy_key(self, namespace, name, request, record):
        _, scope, zone = record
        return copy_key(namespace, name, scope, zone, request, poll_seconds(name, self.app))

    def signed_viewer(self, request):
        """(user id, epoch) of the request's session, if Flask would take it as it is."""
        interface = self.app.session_interface
        session = interface.open_session(self.app, request)
        if session is None or "_remember" in session:
            return None  # no key to verify with; Flask-Login would set or clear a cookie
        if interface.should_set_cookie(self.app, session) and self.signature_age(request) > REFRESH_AGE:
            return None
        if not self.kept_by_session_protection(session, request):
            return None
        user_id = session.get("_user_id")
        return None if user_id is None else User.session_id_parts(user_id)

    def signature_age(self, request):
        """Seconds since the session cookie was signed (it verified a moment ago)."""
        interface = self.app.session_interface
        cookie = request.cookies.get(interface.get_cookie_name(self.app), "")
        try:
            _, signed_at = interface.get_signing_serializer(self.app).loads(cookie, return_timestamp=True)
        except BadSignature:
            return float("inf")
        return time.time() - signed_at.timestamp()

    def kept_by_session_protection(self, session, request):
        """Whether Flask-Login's session protection would leave the session as it is."""
        mode = self.app.config.get("SESSION_PROTECTION", self.app.login_manager.session_protection)
        if mode not in ("basic", "strong") or session.get("_id") == login_identifier(request):
            return True
        # Basic marks the session not fresh (a new cookie) unless it is already; strong ends it.
        return mode == "basic" and session.get("_fresh") is False


def login_identifier(request):
    """Flask-Login's ``_create_identifier`` (the default session identifier) for ``request``, which
    it reads from the request context the door has not got; tests hold the two equal."""
    address = request.headers.get("X-Forwarded-For", request.remote_addr)
    if address is not None:
        address = address.encode("utf-8").split(b",")[0].strip()
    agent = request.headers.get("User-Agent")
    if agent is not None:
        agent = agent.encode("utf-8")
    return hashlib.sha512(f"{address}|{agent}".encode()).hexdigest()


def region_paths(app):
    """{URL path: region name} of the regions ``shared_fragment`` shares whole (the home
    page's), from the app's own routes and views."""
    regions = {}
    for rule in app.url_map.iter_rules():
        name = getattr(app.view_functions[rule.endpoint], SHARED_NAME, None)
        if name is not None and not rule.arguments:
            regions[rule.rule] = name
    return regions
