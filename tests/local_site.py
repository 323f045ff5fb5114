"""A small HTTP site on 127.0.0.1 for tests of outbound fetches (the link checker).

Each path answers what ``routes`` says (a default page otherwise, 404 under
``/gone``), and every request is recorded with its time and headers.
"""

import http.server
import sys
import threading
import time

DEFAULT_PAGE = (
    200,
    {"Content-Type": "text/html"},
    b"<html><head><title>Local page</title></head><body>hi</body></html>",
)
GONE = (404, {"Content-Type": "text/html"}, b"<title>Nope</title>")


class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):  # noqa: N802 - the name http.server calls
        site = self.server
        site.requests.append({"at": time.monotonic(), "path": self.path, "headers": dict(self.headers)})
        status, headers, body = site.routes.get(
            self.path, GONE if self.path.startswith("/gone") else DEFAULT_PAGE
        )
        if isinstance(body, Drip):
            return self.drip(status, headers, body)
        body = body() if callable(body) else body
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def drip(self, status, headers, drip):
        """The body a byte at a time, ``drip.interval`` apart, until sent or the client hangs up."""
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(drip.body)))
        self.end_headers()
        try:
            for index in range(len(drip.body)):
                self.wfile.write(drip.body[index : index + 1])
                self.wfile.flush()
                drip.sent += 1
                time.sleep(drip.interval)
        except OSError:
            drip.hung_up.set()

    def log_message(self, *args):
        pass


class Drip:
    """A body sent a byte every ``interval`` seconds (a slowloris of a target)."""

    def __init__(self, body, interval):
        self.body, self.interval = body, interval
        self.sent = 0
        self.hung_up = threading.Event()


class LocalSite(http.server.ThreadingHTTPServer):
    def __init__(self):
        super().__init__(("127.0.0.1", 0), Handler)
        self.routes = {}
        self.requests = []
        self.base = f"http://127.0.0.1:{self.server_address[1]}"

    def handle_error(self, request, client_address):
        """A client that hung up first (a check cut off by its time cap) is expected: no traceback."""
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)

    def route(self, path, status=200, body=b"", **headers):
        """Answer ``path`` with this status, body (bytes, or a callable returning them) and headers."""
        self.routes[path] = (status, headers, body)

    def __enter__(self):
        threading.Thread(target=self.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc_info):
        self.shutdown()
        self.server_close()
