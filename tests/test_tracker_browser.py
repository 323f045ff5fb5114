"""The tracker on a real page: a page served by the test on its own port (another origin)
embeds the snippet; Chromium loads it; the view reaches ``page_view`` through a real gunicorn,
the spool and the drain, with its site and timings, and shows in the report for that site."""

import json

import pytest
from sqlalchemy import select

from tests.dashboard_helpers import CHROME
from tests.local_site import LocalSite
from tests.processes import wait_for
from webapp import sites
from webapp.extensions import db
from webapp.models import PageView
from webapp.pageviews.ingest import PAGEVIEW_DRAIN
from webapp.redis_client import worker_redis

pytestmark = [pytest.mark.integration, pytest.mark.browser]

PAGE = """<!doctype html><html lang="en"><head><meta charset="utf-8"><title>A real site</title>
{tag}</head><body><h1>Hello from another origin</h1><img src="/slow.png" alt=""></body></html>"""


@pytest.fixture
def embedding_site():
    with LocalSite() as local:
        yield local


@pytest.fixture
def page(browser):
    # Headless Chromium says "HeadlessChrome", which the collect endpoint drops as a bot (as it
    # should); the visitor here is a person's browser.
    context = browser.new_context(viewport={"width": 1100, "height": 800}, user_agent=CHROME)
    page = context.new_page()
    page.set_default_timeout(20_000)
    yield page
    context.close()


def stored_views(app):
    """Drain what the web processes shipped (their shipper threads run every 0.1 s)."""
    PAGEVIEW_DRAIN.run(worker_redis(app), db.engine, app.config)
    db.session.expire_all()
    return db.session.scalars(select(PageView)).all()


def test_a_page_with_the_snippet_reports_its_view(
    app, user, processes, embedding_site, page, runner, artifacts
):
    web = processes.web(workers=2)
    site = sites.create_site("Local site", [embedding_site.base], user)
    tag = sites.snippet(site).replace("http://127.0.0.1:8000", web.url)  # the gunicorn under test
    embedding_site.route("/blog/hello", body=PAGE.format(tag=tag).encode(), **{"Content-Type": "text/html"})
    embedding_site.route("/slow.png", body=b"", **{"Content-Type": "image/png"})

    page.goto(embedding_site.base + "/blog/hello")
    page.screenshot(path=artifacts("tracker-embedding-page.png"))
    (view,) = wait_for(lambda: stored_views(app), timeout=30, message="the page view stored")
    headless = page.context.browser.new_context()  # the same page, as a headless bot: dropped
    headless.new_page().goto(embedding_site.base + "/blog/hello")
    headless.close()

    assert view.site_id == site.id and view.url == embedding_site.base + "/blog/hello"
    assert 0 <= view.response_time_ms <= view.load_time_ms < 30_000
    report = json.loads(
        runner.invoke(
            args=["report", "slow-pageviews", "--now", "--min-ms", "0", "--site", site.public_key]
        ).output
    )
    assert report["total_views"] == 1 and report["slowest_urls"][0]["url"] == view.url
    assert len(stored_views(app)) == 1
