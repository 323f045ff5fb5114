"""Managing links in a real browser (Debian's Chromium, Playwright) against a real gunicorn:
editing a target and seeing it and its history, downloading the QR code, pasting many URLs.

Screenshots at a desktop and a phone width go to ``test-artifacts/``.
"""

import pytest

from tests.test_dashboard_browser import log_in
from webapp.links import service

pytestmark = [pytest.mark.integration, pytest.mark.browser]


@pytest.fixture
def web(app, user, processes):
    service.create_link(
        "https://example.com/spring", user, slug="spring", title="Spring sale", tags=["promo"]
    )
    return processes.web(workers=2)


@pytest.fixture(params=[(1366, 900), (390, 844)], ids=["desktop", "phone"])
def page(browser, request):
    width, height = request.param
    context = browser.new_context(viewport={"width": width, "height": height})
    page = context.new_page()
    page.set_default_timeout(20_000)
    page.width = width
    yield page
    context.close()


def test_editing_a_links_target_shows_the_new_target_and_the_change(web, page, artifacts):
    log_in(page, web)
    page.goto(web.url + "/links/spring")
    page.click("text=Edit")
    page.fill('input[name="url"]', "https://example.com/summer")
    page.fill('input[name="tags"]', "promo, summer")
    with page.expect_navigation():
        page.click('button:has-text("Save")')

    assert page.url == web.url + "/links/spring"
    assert "Saved: url, tags." in page.inner_text("main")
    assert page.locator('a.url[href="https://example.com/summer"]').count() == 1
    assert "https://example.com/spring → https://example.com/summer" in page.inner_text(".history")
    assert page.evaluate("document.documentElement.scrollWidth") <= page.width
    page.screenshot(path=artifacts(f"link-edited-{page.width}.png"), full_page=True)


def test_the_qr_code_downloads_as_an_svg_and_a_png(web, page, tmp_path):
    log_in(page, web)
    page.goto(web.url + "/links/spring")
    for label, start in (("Download SVG", b"<?xml"), ("Download PNG", b"\x89PNG")):
        with page.expect_download() as download:
            page.click(f"text={label}")
        saved = tmp_path / download.value.suggested_filename
        download.value.save_as(saved)
        assert saved.read_bytes().startswith(start), label
        assert saved.name.startswith("spring-qr.")


def test_pasting_many_urls_shows_a_result_per_line(web, page, artifacts):
    log_in(page, web)
    page.goto(web.url + "/links")
    page.click("text=Many links at once")
    page.fill('textarea[name="lines"]', "https://example.com/a alpha\nhttps://example.com/spring\nftp://nope")
    with page.expect_navigation():
        page.click('button:has-text("Shorten them all")')

    assert page.inner_text("[data-summary]") == "1 created, 1 you already had, 1 refused."
    assert page.locator('tr[data-status="error"]').inner_text().count("http") >= 1
    assert page.evaluate("document.documentElement.scrollWidth") <= page.width
    page.screenshot(path=artifacts(f"links-bulk-{page.width}.png"), full_page=True)
