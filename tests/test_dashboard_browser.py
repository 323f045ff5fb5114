"""The dashboard in a real browser: Debian's Chromium driven by Playwright.

Against real gunicorn (two workers), a Celery worker, beat and Redis: the
login form, the link form's inline validation, clicks on a short URL
showing up in the totals and the chart without a navigation, the ops panel
noticing a worker come and go, polling that pauses in a hidden tab, and a
dashboard whose session ended going to the login page. Short links point at
the gunicorn under test itself, so the browser never needs the internet.
Live regions poll every second here (DASHBOARD_POLL_SECONDS). Screenshots go
to ``test-artifacts/``. The read-only pages are in ``test_dashboard_browser_pages.py``.
"""

import re

import pytest
import requests
from playwright.sync_api import expect

from tests.dashboard_helpers import ADMIN_EMAIL, ADMIN_PASSWORD, OWNER_EMAIL, OWNER_PASSWORD
from webapp.links import service

# Skipped, saying why, where Chromium is missing; a failure under CI=true (tests/conftest.py).
pytestmark = [pytest.mark.integration, pytest.mark.browser]

MARKER = "same document"

HIDE_TAB = """() => {
  Object.defineProperty(document, "visibilityState", {configurable: true, get: () => "hidden"});
  Object.defineProperty(document, "hidden", {configurable: true, get: () => true});
  document.dispatchEvent(new Event("visibilitychange"));
}"""
SHOW_TAB = """() => {
  delete document.visibilityState;
  delete document.hidden;
  document.dispatchEvent(new Event("visibilitychange"));
}"""


@pytest.fixture
def context(browser):
    context = browser.new_context(viewport={"width": 1200, "height": 1000})
    yield context
    context.close()


@pytest.fixture
def page(context):
    page = context.new_page()
    page.set_default_timeout(20_000)
    return page


POLL_SECONDS = 1


@pytest.fixture
def web(app, user, processes):
    return processes.web(workers=2, DASHBOARD_POLL_SECONDS=POLL_SECONDS)


def log_in(page, web, email=OWNER_EMAIL, password=OWNER_PASSWORD):
    page.goto(web.url + "/login")
    page.fill('input[name="email"]', email)
    page.fill('input[name="password"]', password)
    with page.expect_navigation():
        page.click('button[type="submit"]')
    assert not page.url.startswith(web.url + "/login"), "login failed"


def mark_document(page):
    """Mark this document; a navigation would lose the mark."""
    page.evaluate(f"window.__marker = {MARKER!r}")
    return page.url


def assert_same_document(page, url):
    assert page.url == url
    assert page.evaluate("window.__marker") == MARKER


def htmx_requests(page):
    """A list that fills with the URLs of htmx requests the page makes from now on."""
    seen = []
    page.on(
        "request", lambda request: seen.append(request.url) if request.headers.get("hx-request") else None
    )
    return seen


def test_login_form_logs_in_to_the_dashboard(web, page, artifacts):
    page.goto(web.url + "/links")
    assert page.url.startswith(web.url + "/login?next=")
    page.screenshot(path=artifacts("dashboard-login.png"), full_page=True)
    page.fill('input[name="email"]', OWNER_EMAIL)
    page.fill('input[name="password"]', OWNER_PASSWORD)
    with page.expect_navigation():
        page.click('button[type="submit"]')
    assert page.url.rstrip("?") == web.url + "/links"
    assert page.locator("h1").inner_text() == "Links"


def test_link_form_shows_the_error_inline_then_creates_the_link(web, page, artifacts):
    log_in(page, web)
    page.goto(web.url + "/links")
    url = mark_document(page)

    page.locator('input[name="url"]').press_sequentially("example.com/page")
    error = page.locator('#link-form-errors [data-field="url"]')
    error.wait_for()
    assert error.inner_text() == "url must start with http:// or https://"
    assert_same_document(page, url)
    page.screenshot(path=artifacts("dashboard-link-form-error.png"), full_page=True)

    page.fill('input[name="url"]', "")
    page.locator('input[name="url"]').press_sequentially(f"{web.url}/healthz")
    page.locator('input[name="slug"]').press_sequentially("health")
    error.wait_for(state="detached")
    with page.expect_navigation():
        page.click('form.link-form button[type="submit"]')

    assert page.url == web.url + "/links/health"
    assert page.locator("#short-url").inner_text() == f"{web.url}/r/health"
    assert requests.get(f"{web.url}/r/health", allow_redirects=False, timeout=5).status_code == 302


def test_dashboard_counts_and_chart_update_without_navigation(app, user, web, processes, page, artifacts):
    processes.worker()
    processes.beat()
    service.create_link(f"{web.url}/healthz", user, slug="live")
    log_in(page, web)
    page.goto(web.url + "/")
    assert page.locator('[data-stat="clicks"]').inner_text() == "0"
    assert "No clicks in this period." in page.locator("#clicks-chart").inner_text()
    url = mark_document(page)

    for _ in range(3):
        response = requests.get(f"{web.url}/r/live", allow_redirects=False, timeout=5)
        assert response.headers["Location"] == f"{web.url}/healthz"

    # Locators, not wait_for_function: the page's Content-Security-Policy forbids the eval it uses.
    expect(page.locator('[data-stat="clicks"]')).to_have_text("3", timeout=45_000)
    bars = page.locator("#clicks-chart rect.bar title")
    bars.filter(has_text=re.compile(r": 3$")).first.wait_for(state="attached", timeout=45_000)
    assert bars.count() == 7  # the default period: the last 7 days
    assert_same_document(page, url)
    page.screenshot(path=artifacts("dashboard-home-live.png"), full_page=True)


def test_top_links_update_without_navigation(app, user, web, processes, page):
    processes.worker()
    processes.beat()
    service.create_link(f"{web.url}/healthz", user, slug="popular")
    log_in(page, web)
    page.goto(web.url + "/")
    assert "No clicks yet." in page.locator("#top-links").inner_text()
    url = mark_document(page)

    requests.get(f"{web.url}/r/popular", allow_redirects=False, timeout=5)
    page.locator('#top-links a[href="/links/popular"]').wait_for(timeout=45_000)
    assert_same_document(page, url)


def test_ops_panel_shows_a_live_worker_then_notices_it_stopped(web, processes, page, artifacts, admin_user):
    worker = processes.worker()
    log_in(page, web, ADMIN_EMAIL, ADMIN_PASSWORD)
    page.goto(web.url + "/ops")
    page.locator("tr[data-worker]").first.wait_for(timeout=45_000)
    assert page.locator("tr[data-worker]").first.get_attribute("data-worker").startswith("worker@")
    url = mark_document(page)
    page.screenshot(path=artifacts("dashboard-ops-worker.png"), full_page=True)

    worker.stop()
    # Gone from the table once its heartbeat expires (TTL 20 s); no beat runs here, so no
    # drain ever ran and the panel says no worker is alive (the rule of /healthz) throughout.
    page.locator("tr[data-worker]").first.wait_for(state="detached", timeout=40_000)
    assert "No worker is alive" in page.locator("#ops").inner_text()
    assert_same_document(page, url)
    page.screenshot(path=artifacts("dashboard-ops-no-worker.png"), full_page=True)


def is_overview_poll(request):
    return "/fragments/overview" in request.url and bool(request.headers.get("hx-request"))


def test_polling_pauses_while_the_tab_is_hidden(web, page):
    log_in(page, web)
    page.goto(web.url + "/")
    with page.expect_request(is_overview_poll, timeout=10_000):
        pass  # polling while visible

    page.evaluate(HIDE_TAB)
    assert page.evaluate("document.visibilityState") == "hidden"
    page.wait_for_timeout(500)  # a request already under way may finish
    seen = htmx_requests(page)
    # Nothing to wait for: absence is only seen over time, three poll intervals here.
    page.wait_for_timeout(3 * POLL_SECONDS * 1000)
    assert seen == []

    with page.expect_request(is_overview_poll, timeout=10_000):
        page.evaluate(SHOW_TAB)


def test_dashboard_goes_to_login_when_its_session_ends(web, context, page):
    log_in(page, web)
    page.goto(web.url + "/")
    context.clear_cookies()
    page.wait_for_url(web.url + "/login", timeout=20_000)  # the next poll's 401 + HX-Redirect
    assert page.locator('input[name="password"]').count() == 1
