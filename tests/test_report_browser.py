"""The report card in a real browser: Debian's Chromium driven by Playwright.

Against real gunicorn, a Celery worker and Redis: the card is rendered busy,
htmx polls its own URL, the numbers replace it in place (no navigation),
and once done no more polling requests are made. Screenshots go to
``test-artifacts/``.
"""

import re

import pytest

from tests.test_report_workers import EMAIL, PASSWORD, REPORT_QUEUES, seed_views
from webapp.reports import runner
from webapp.reports.params import SlowReportParams

# Skipped, saying why, where Chromium is missing; a failure under CI=true (tests/conftest.py).
pytestmark = [pytest.mark.integration, pytest.mark.browser]

PAGE_PATH = "/reports/slow-pageviews"
DONE_CARD = "#report-card:not([data-polling]) dd.slow-count"

# Records every state the card goes through, from the first render on.
RECORD_CARD_STATES = """
window.__cardStates = [];
function recordCardState() {
  const card = document.getElementById("report-card");
  if (!card) return;
  const count = card.querySelector("dd.slow-count");
  const state = {
    polling: card.getAttribute("data-polling") === "true",
    count: count ? count.textContent : null,
    busyText: (card.querySelector(".report-progress span") || {}).textContent || null,
  };
  const last = window.__cardStates[window.__cardStates.length - 1];
  if (!last || JSON.stringify(last) !== JSON.stringify(state)) window.__cardStates.push(state);
}
document.addEventListener("DOMContentLoaded", () => {
  recordCardState();
  new MutationObserver(recordCardState).observe(document.body, {childList: true, subtree: true, attributes: true});
});
"""


@pytest.fixture
def page(browser):
    context = browser.new_context(viewport={"width": 1100, "height": 1200})
    page = context.new_page()
    page.add_init_script(RECORD_CARD_STATES)
    yield page
    context.close()


@pytest.fixture
def site(app, user, processes):
    """400,000 seeded page views, gunicorn and a report worker."""
    seed_views(100_000, doublings=2)
    web = processes.web(workers=2)
    processes.worker(queues=REPORT_QUEUES, concurrency=1)
    return web


def log_in(page, web):
    page.goto(web.url + "/login")
    page.fill('input[name="email"]', EMAIL)
    page.fill('input[name="password"]', PASSWORD)
    with page.expect_navigation():
        page.click('button[type="submit"]')
    assert not page.url.endswith("/login")


def status_requests(page, seconds):
    """URLs of requests to the status endpoint made during the next ``seconds``."""
    seen = []
    page.on("request", lambda request: seen.append(request.url))
    page.wait_for_timeout(seconds * 1000)
    return [url for url in seen if "/status" in url]


def test_card_replaces_itself_with_numbers_and_stops_polling(site, page, artifacts):
    log_in(page, site)
    page.goto(site.url + PAGE_PATH)
    url = page.url
    page.evaluate("window.__marker = 'same document'")
    # The page's card has no result: it posts for a computation as it loads, then polls.
    page.wait_for_selector('#report-card[data-polling="true"]', timeout=20_000)
    page.screenshot(path=artifacts("report-busy.png"), full_page=True)

    page.wait_for_selector(DONE_CARD, timeout=60_000)
    page.screenshot(path=artifacts("report-done.png"), full_page=True)

    assert page.url == url
    assert page.evaluate("window.__marker") == "same document"
    states = page.evaluate("window.__cardStates")
    states = states[[state["polling"] for state in states].index(True) :]  # from the first busy card
    assert states[0]["polling"] and states[0]["count"] is None
    assert re.match(r"Queued|Computing", states[0]["busyText"])
    assert not states[-1]["polling"] and re.fullmatch(r"[\d,]+", states[-1]["count"])
    assert status_requests(page, 5) == []


def test_retry_button_recomputes_a_failed_report(site, page, artifacts):
    def failing(on_progress):
        raise RuntimeError("the database went away")

    with pytest.raises(RuntimeError):
        runner.run_report(SlowReportParams(), failing)
    log_in(page, site)
    page.goto(site.url + PAGE_PATH)
    assert "The last computation failed" in page.locator("#report-card").inner_text()
    page.screenshot(path=artifacts("report-failed.png"), full_page=True)

    page.click("#report-card button:has-text('Retry')")  # htmx POST with the CSRF header
    page.wait_for_selector(DONE_CARD, timeout=60_000)

    assert "failed" not in page.locator("#report-card").inner_text()
    states = page.evaluate("window.__cardStates")
    assert states[0]["count"] is None and not states[0]["polling"]  # the failure card
    assert any(state["polling"] for state in states)  # the retry went through the busy card
