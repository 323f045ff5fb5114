"""The floor: a bare WSGI callable whose ``/r/<slug>`` redirects, no framework at all.

Beside the no-op Flask app (``noop_app``), served by the same gunicorn
settings: what gunicorn and wrk alone cost on this machine, the most any
Python redirect behind this server could reach. Like the Flask no-op it
sends only a ``Location``; Clickboard's own answers also carry the security
headers (see ``webapp.security_headers``), so the ratio to this one includes
their cost. ``app_with_headers`` is the same floor sending every header a
Clickboard redirect sends (the same list, from the same functions), so the
bench can tell what the headers cost from what Clickboard's own code costs.
"""

from webapp.redirects import NO_STORE
from webapp.security_headers import common_headers

REDIRECT = ("302 Found", [("Location", "https://example.com/"), ("Content-Length", "0")])
# What a Clickboard redirect sends on a plain-http install (``redirects.redirect_headers``).
CLICKBOARD_HEADERS = [("Cache-Control", NO_STORE), *common_headers("http://localhost")]
REDIRECT_WITH_HEADERS = ("302 Found", [REDIRECT[1][0], *CLICKBOARD_HEADERS, REDIRECT[1][1]])
OK = ("200 OK", [("Content-Type", "text/plain"), ("Content-Length", "2")])
NOT_FOUND = ("404 Not Found", [("Content-Length", "0")])


def app(environ, start_response, redirect=REDIRECT):
    path = environ.get("PATH_INFO", "")
    if path.startswith("/r/"):
        start_response(*redirect)
        return [b""]
    if path == "/":  # what tests.processes.WebServer polls to know the server is up
        start_response(*OK)
        return [b"ok"]
    start_response(*NOT_FOUND)
    return [b""]


def app_with_headers(environ, start_response):
    return app(environ, start_response, REDIRECT_WITH_HEADERS)
