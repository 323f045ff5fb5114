"""The floor: a bare WSGI callable whose ``/r/<slug>`` redirects, no framework at all.

Beside the no-op Flask app (``noop_app``), served by the same gunicorn
settings: what gunicorn and wrk alone cost on this machine, the most any
Python redirect behind this server could reach. Like the Flask no-op it
sends only a ``Location``; Clickboard's own answers also carry the security
headers (see ``webapp.security_headers``), so the ratio to this one includes
their cost.
"""

REDIRECT = ("302 Found", [("Location", "https://example.com/"), ("Content-Length", "0")])
OK = ("200 OK", [("Content-Type", "text/plain"), ("Content-Length", "2")])
NOT_FOUND = ("404 Not Found", [("Content-Length", "0")])


def app(environ, start_response):
    path = environ.get("PATH_INFO", "")
    if path.startswith("/r/"):
        start_response(*REDIRECT)
        return [b""]
    if path == "/":  # what tests.processes.WebServer polls to know the server is up
        start_response(*OK)
        return [b"ok"]
    start_response(*NOT_FOUND)
    return [b""]
