"""Helpers for the dashboard tests: a test client that behaves like separate requests,
logging in through the form, CSRF tokens taken from pages, and clicks recorded
the way the drain records them.
"""

import re
import time
from datetime import UTC
from urllib.parse import parse_qs, urlsplit

from flask.testing import FlaskClient

from webapp.clicks.events import click_row, encode_click
from webapp.clicks.store import record_clicks
from webapp.extensions import db

OWNER_EMAIL = "owner@example.com"
OWNER_PASSWORD = "correct horse battery"
OTHER_EMAIL = "other@example.com"
OTHER_PASSWORD = "another long password"
ADMIN_EMAIL = "admin@example.com"
ADMIN_PASSWORD = "an admin's long password"

FIREFOX = "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0"
CHROME = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0 Safari/537.36"
IPHONE = (
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko)"
    " Version/17.5 Mobile/15E148 Safari/604.1"
)
GOOGLEBOT = "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)"

CSRF_INPUT = re.compile(r'<input[^>]*name="csrf_token"[^>]*value="([^"]+)"')
CSRF_HEADER = re.compile(r'"X-CSRFToken": "([^"]+)"')


class Visitor(FlaskClient):
    """A test client whose every request runs in its own app context, as in production.

    The ``app`` fixture keeps one app context pushed for the whole test, and
    Flask reuses a pushed context for the requests made inside it, so ``g``
    would carry Flask-Login's loaded user and Flask-WTF's CSRF token from one
    request (or one client) to the next. A fresh context per request does not.
    """

    def open(self, *args, **kwargs):
        with self.application.app_context():
            return super().open(*args, **kwargs)


def visitor(app, address="127.0.0.1"):
    client = Visitor(app, app.response_class, use_cookies=True)
    client.environ_base["REMOTE_ADDR"] = address
    return client


def csrf_token_in(html):
    match = CSRF_INPUT.search(html)
    assert match, "no csrf_token field in the page"
    return match.group(1)


def csrf_token(client, page="/login"):
    """The token a browser would have: the hidden field of a page this client loads."""
    response = client.get(page)
    assert response.status_code == 200, f"GET {page} answered {response.status_code}"
    return csrf_token_in(response.text)


def htmx_csrf_token(client, page="/links"):
    """The token htmx sends: the X-CSRFToken of the page's ``hx-headers`` (logged-in pages only)."""
    match = CSRF_HEADER.search(client.get(page).text)
    assert match, f"no hx-headers X-CSRFToken in {page}"
    return match.group(1)


def log_in(client, email=OWNER_EMAIL, password=OWNER_PASSWORD, next_url=None, headers=None):
    """Submit the login form as a browser would; return the response (not followed)."""
    token = csrf_token(client, "/login")
    query = {"next": next_url} if next_url is not None else None
    return client.post(
        "/login",
        query_string=query,
        data={"email": email, "password": password, "csrf_token": token},
        headers=headers or {},
    )


def logged_in(app, email=OWNER_EMAIL, password=OWNER_PASSWORD):
    """A new visitor, logged in through the form."""
    client = visitor(app)
    response = log_in(client, email, password)
    assert response.status_code == 302, f"login failed with {response.status_code}"
    return client


def is_logged_in(client):
    return client.get("/links").status_code == 200


def location(response):
    """(path, query dict) of a redirect's Location."""
    parts = urlsplit(response.headers["Location"])
    return parts.path, parse_qs(parts.query)


def record(link, count=1, referrer=None, user_agent=FIREFOX, at=None, method="GET", ip="203.0.113.9"):
    """Record clicks as the drain does: lines → rows → ``record_clicks`` in one transaction."""
    at = time.time() if at is None else at
    rows = [click_row(encode_click(link.id, method, referrer, user_agent, ip, at=at)) for _ in range(count)]
    with db.engine.begin() as conn:
        return record_clicks(conn, rows, check_duplicates=False)


def at(moment):
    """Unix seconds of a naive UTC datetime, as ``record`` takes times."""
    return moment.replace(tzinfo=UTC).timestamp()


def stat(html, name):
    """The number shown in an overview figure, e.g. ``stat(html, "clicks")``."""
    match = re.search(rf'data-stat="{name}">([\d,]+)<', html)
    assert match, f"no data-stat={name} in the page"
    return int(match.group(1).replace(",", ""))


def section(html, heading):
    """The HTML of the card whose ``<h2>`` is ``heading`` (up to the card's end)."""
    start = html.index(f"<h2>{heading}</h2>")
    return html[start : html.index("</section>", start)]


def table_rows(html):
    """Text cells of each table row, tags stripped (entities left as they are)."""
    rows = []
    for row in re.findall(r"<tr[^>]*>(.*?)</tr>", html, re.DOTALL):
        cells = re.findall(r"<td[^>]*>(.*?)</td>", row, re.DOTALL)
        if cells:
            rows.append([re.sub(r"<[^>]+>", "", cell).strip() for cell in cells])
    return rows


def chart_bars(html):
    """[(label, value)] of the bars of the clicks chart, oldest first."""
    return [
        (label, int(value.replace(",", "")))
        for label, value in re.findall(r'<rect [^>]*class="bar"><title>([^<]*): ([\d,]+)</title>', html)
    ]
