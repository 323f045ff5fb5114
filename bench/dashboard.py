"""What the fragments benchmark needs to look like a logged-in dashboard.

- ``populate``: an admin user, links, clicks drained into the counters and
  rollups (the app's own ``create_user``, ``create_link``, ``CLICK_DRAIN``);
- ``login``: GET /login for the CSRF token, POST /login, keep the cookie;
- ``check``: each fragment answers 200 with its own element, and the report
  card holds a computed result (so the load measures fragments, not login
  redirects or an empty card);
- ``lua_script``: a wrk script that sends the session cookie (and htmx's
  ``HX-Request`` header, as the polling page does), cycles through paths,
  counts every response that is not a 200 and prints p95 (wrk's
  ``--latency`` stops at 50/75/90/99). No ``delay()``: see ``bench.poller``.
"""

import os
import re
import time
from urllib.parse import urlencode

import requests
from urllib3.util import SKIP_HEADER

from bench import clicks, wrk
from webapp.auth.users import create_user
from webapp.extensions import db
from webapp.redis_client import worker_redis
from webapp.reports.params import SlowReportParams

EMAIL, PASSWORD = "bench@example.com", "bench-password"
STATUS_PATH = "/reports/slow-pageviews/status?" + urlencode(SlowReportParams().as_dict())
# What the dashboard page polls (templates/dashboard/*.html), and the element each answer must hold.
FRAGMENTS = {
    "overview": ("/fragments/overview", 'id="overview"'),
    "clicks-chart": ("/fragments/clicks-chart?range=hour", 'id="clicks-chart"'),
    "top-links": ("/fragments/top-links", 'id="top-links"'),
    "status": (STATUS_PATH, 'id="report-card"'),
}
OPS = {"ops": ("/fragments/ops", 'id="ops"')}
CSRF_INPUT = re.compile(r'<input[^>]*name="csrf_token"[^>]*>')
CSRF_HEADER = re.compile(r'"X-CSRFToken": "([^"]+)"')

LUA = """-- written by bench/dashboard.py
local paths = {%(paths)s}
local cookie = "%(cookie)s"
local index = 0

function request()
  index = index %% #paths + 1
  return wrk.format("GET", paths[index], {["Cookie"] = cookie, ["HX-Request"] = "true"})
end
"""


def populate(links, click_count):
    """Inside an app context: the admin user, ``links`` links, ``click_count`` clicks recorded."""
    create_user(EMAIL, PASSWORD, is_admin=True)
    link_ids = clicks.create_links(links, "dash")
    client = worker_redis()
    clicks.push(client, clicks.click_lines(click_count, link_ids, seed=3))
    recorded = clicks.drain_until_empty(client, db.engine)
    return {"links": links, "clicks": recorded, "slug": "dash-0"}


def login(base_url):
    """Log in through the form; return the ``Cookie`` header value of the logged-in session.

    Without a User-Agent, as wrk and the pollers send theirs: the session is theirs for
    Flask-Login's session protection, which would otherwise answer each of them with a new
    cookie (marked not fresh) that a browser keeps but they never send back.
    """
    session = requests.Session()
    session.headers["User-Agent"] = SKIP_HEADER  # none at all: urllib3 would add its own
    page = session.get(base_url + "/login", timeout=10)
    field = CSRF_INPUT.search(page.text)
    token = field and re.search(r'value="([^"]*)"', field.group(0))
    if not token:
        raise RuntimeError(f"no csrf_token input on /login ({page.status_code}):\n{page.text[:1000]}")
    form = {"email": EMAIL, "password": PASSWORD, "csrf_token": token.group(1)}
    answer = session.post(base_url + "/login", data=form, allow_redirects=False, timeout=10)
    if answer.status_code != 302 or "/login" in answer.headers.get("Location", "/login"):
        raise RuntimeError(f"login failed: {answer.status_code} {answer.headers.get('Location')}")
    return "; ".join(f"{cookie.name}={cookie.value}" for cookie in session.cookies)


def check(base_url, cookie, pages, timeout=120):
    """Every page answers 200 with its element; wait until the report card shows a finished result.

    Returns each page's body size, to compare with the bytes wrk read under load.
    """
    headers = {"Cookie": cookie, "HX-Request": "true"}
    deadline = time.monotonic() + timeout
    sizes = {}
    for name, (path, marker) in pages.items():
        while True:
            answer = requests.get(base_url + path, headers=headers, allow_redirects=False, timeout=10)
            if answer.status_code != 200 or marker not in answer.text:
                raise RuntimeError(f"{path}: {answer.status_code}, {marker!r} not in:\n{answer.text[:500]}")
            card_done = 'class="slow-count"' in answer.text and 'data-polling="true"' not in answer.text
            if name == "status" and 'data-wants-refresh="true"' in answer.text:
                start_report(base_url, cookie, path)  # as the card does when it loads: GETs start none
            if name != "status" or card_done:
                sizes[name] = len(answer.content)
                break
            if time.monotonic() > deadline:
                raise RuntimeError(f"the report card did not finish in {timeout}s:\n{answer.text[:1000]}")
            time.sleep(0.5)
    return sizes


def start_report(base_url, cookie, path):
    """POST the status URL as the card's ``hx-post`` does, with the page's ``X-CSRFToken``."""
    page = requests.get(base_url + "/", headers={"Cookie": cookie}, timeout=10).text
    token = CSRF_HEADER.search(page)
    if not token:
        raise RuntimeError(f"no X-CSRFToken in the dashboard page:\n{page[:1000]}")
    headers = {"Cookie": cookie, "HX-Request": "true", "X-CSRFToken": token.group(1)}
    answer = requests.post(base_url + path, headers=headers, timeout=10)
    if answer.status_code != 200:
        raise RuntimeError(f"POST {path}: {answer.status_code}\n{answer.text[:500]}")


def lua_script(directory, name, cookie, paths):
    """Write a wrk script for ``paths``; return its path."""
    if '"' in cookie or "\\" in cookie:
        raise ValueError("unexpected characters in the session cookie")
    quoted = ", ".join(f'"{path}"' for path in paths)
    text = LUA % {"paths": quoted, "cookie": cookie} + wrk.status_counter_lua(200)
    path = os.path.join(directory, f"{name}.lua")
    with open(path, "w") as script:
        script.write(text)
    return path
