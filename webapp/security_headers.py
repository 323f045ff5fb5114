"""The security headers of every answer: pages, fragments, API, errors, static files and the
redirect (whose fast path answers without Flask, so the list is shared with it).

The policy allows no inline script or style and nothing from another
origin: every script is a file under ``static/`` (htmx's polling filters,
which htmx would ``eval``, are replaced by ``static/clickboard.js``). The API's
docs page runs Redoc, which styles itself inline and starts a worker from a
blob: it gets those two allowances and nothing else. HSTS is sent when the
public address is https: a browser that saw it never uses plain http again.
"""

from flask import current_app, request

POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; object-src 'none'; base-uri 'self'; form-action 'self'; frame-ancestors 'none'"
)
DOCS_POLICY = POLICY.replace("style-src 'self'", "style-src 'self' 'unsafe-inline'") + "; worker-src blob:"
HSTS = "max-age=31536000; includeSubDomains"
RELAXED_ENDPOINTS = {"api.api_docs": DOCS_POLICY}


def common_headers(public_base_url):
    """Headers every answer carries (the redirect's fast path adds them itself)."""
    headers = [
        ("Content-Security-Policy", POLICY),
        ("X-Frame-Options", "DENY"),
        ("X-Content-Type-Options", "nosniff"),
        ("Referrer-Policy", "strict-origin-when-cross-origin"),
    ]
    if public_base_url.startswith("https://"):
        headers.append(("Strict-Transport-Security", HSTS))
    return headers


EXTENSION = "clickboard.security_headers"


def headers_of(app=None):
    """This app's common headers (``app`` where there is no app context: the WSGI fast path)."""
    return (app or current_app).extensions[EXTENSION]


def init_app(app):
    headers = app.extensions[EXTENSION] = common_headers(app.config["PUBLIC_BASE_URL"])

    @app.after_request
    def add_security_headers(response):
        for name, value in headers:
            response.headers.setdefault(name, value)
        relaxed = RELAXED_ENDPOINTS.get(request.endpoint)
        if relaxed:
            response.headers["Content-Security-Policy"] = relaxed
        return response
