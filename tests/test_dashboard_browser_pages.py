"""The dashboard's pages in a real browser, against one seeded site shared by the module.

These tests only read: one gunicorn, one database of links with clicks of
several kinds, and one logged-in browser state serve them all. Every page
renders without a script error or a failed request; the chart's range
switch and the link search replace their part of the page in place.
Screenshots go to ``test-artifacts/``.
"""

import os
import time

import pytest

from tests.conftest import IN_PROCESS_CONFIG, stop_click_logs
from tests.dashboard_helpers import CHROME, FIREFOX, GOOGLEBOT, OWNER_EMAIL, OWNER_PASSWORD, record
from tests.processes import WebServer, wait_for
from tests.test_dashboard_browser import MARKER, log_in, mark_document
from webapp import create_app
from webapp.auth.users import create_user
from webapp.extensions import db
from webapp.links import service

# Skipped, saying why, where Chromium is missing; a failure under CI=true (tests/conftest.py).
pytestmark = [pytest.mark.integration, pytest.mark.browser]


def seed(web):
    """The owner, and links with clicks of several kinds, for pages worth looking at."""
    user = create_user(OWNER_EMAIL, OWNER_PASSWORD, is_admin=True)  # admins see every page, Ops too
    launch = service.create_link(f"{web.url}/healthz", user, slug="launch")[0]
    guide = service.create_link(f"{web.url}/metrics", user, slug="guide")[0]
    now = time.time()
    for hours_ago, count in ((1, 4), (3, 9), (7, 2), (20, 6), (30, 5)):
        record(
            launch,
            count,
            referrer="https://www.news.example/item",
            user_agent=FIREFOX,
            at=now - hours_ago * 3600,
        )
    record(launch, 3, referrer="https://forum.example.org/t/1", user_agent=CHROME, at=now - 600)
    record(launch, 2, user_agent=GOOGLEBOT, at=now - 300)
    record(guide, 5, at=now - 2 * 3600)


@pytest.fixture(scope="module")
def web(shared_app_env, tmp_path_factory):
    """gunicorn on the module's database, seeded once through an app built on the same environment."""
    server = WebServer({**os.environ, **shared_app_env}, str(tmp_path_factory.mktemp("web")), workers=2)
    with pytest.MonkeyPatch.context() as env:
        for name, value in shared_app_env.items():
            env.setenv(name, value)
        app = create_app(IN_PROCESS_CONFIG)
        with app.app_context():
            seed(server)
            db.session.remove()
            db.engine.dispose()
        stop_click_logs([app])
        server.start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def logged_in_state(web, browser):
    """The cookies of one login through the form, for every test's fresh browser context."""
    context = browser.new_context()
    log_in(context.new_page(), web)
    state = context.storage_state()
    context.close()
    return state


@pytest.fixture
def page(browser, logged_in_state):
    context = browser.new_context(viewport={"width": 1200, "height": 1000}, storage_state=logged_in_state)
    page = context.new_page()
    page.set_default_timeout(20_000)
    yield page
    context.close()


@pytest.mark.parametrize(
    ("path", "screenshot"),
    [
        ("/", "dashboard-home.png"),
        ("/links", "dashboard-links.png"),
        ("/links/launch", "dashboard-link.png"),
        ("/ops", "dashboard-ops.png"),
        ("/tokens", "dashboard-tokens.png"),
        ("/reports/slow-pageviews", "dashboard-report.png"),
    ],
)
def test_page_renders_without_script_errors(web, page, artifacts, path, screenshot):
    problems = []
    page.on("pageerror", lambda error: problems.append(f"script error: {error}"))
    page.on(
        "console",
        lambda message: (
            problems.append(f"{message.text} ({message.location.get('url')})")
            if message.type == "error"
            else None
        ),
    )
    page.on(
        "response",
        lambda response: (
            problems.append(f"{response.status} {response.url}")
            if response.status >= 400 and not response.url.endswith("/favicon.ico")
            else None
        ),
    )
    page.goto(web.url + path)
    assert page.url.startswith(web.url + path), "not logged in"
    page.wait_for_load_state("networkidle")
    page.screenshot(path=artifacts(screenshot), full_page=True)
    assert page.evaluate("typeof htmx") == "object"
    assert [problem for problem in problems if "favicon" not in problem] == []


def test_the_period_picker_redraws_the_page_in_place_and_keeps_the_period_in_the_address(web, page):
    page.goto(web.url + "/")
    mark_document(page)
    page.select_option('#clicks-chart select[name="range"]', "30d")
    page.click('#clicks-chart button:has-text("Show")')
    page.wait_for_url("**/?range=30d*")
    wait_for(
        lambda: page.locator("#clicks-chart rect.bar").count() == 30, timeout=20, message="30 daily bars"
    )
    assert page.evaluate("window.__marker") == MARKER
    assert page.locator('#insight-tables [data-table="country"]').count() == 1


def test_search_filters_the_list_in_place_and_updates_the_address(web, page):
    page.goto(web.url + "/links")
    page.evaluate(f"window.__marker = {MARKER!r}")
    page.locator('input[name="q"]').press_sequentially("guid")
    wait_for(
        lambda: page.locator("#links-table tbody a").all_inner_texts() == ["/r/guide"],
        timeout=20,
        message="the list to show only /r/guide",
    )
    assert page.evaluate("window.__marker") == MARKER
    page.wait_for_url("**/links?q=guid*")
