"""Every page on a wide screen and on a phone, checked by a real accessibility engine.

One seeded gunicorn serves the module. For each page in ``PAGES`` and each
view in ``VIEWS`` (1366×900, 390×844, and 390×844 in the dark scheme) the
test loads the page in Chromium, runs axe-core (WCAG 2.0/2.1 A and AA rules,
vendored in ``tests/vendor/``, see its header for the version) and asserts
no violation; on a phone it also asserts that nothing scrolls sideways and
that every control is at least 44 px tall; on every width that chart labels
read at 11 px or more. A full-page screenshot of each lands in
``test-artifacts/<page>-<view>.png``.

To check a new page, add a ``Page`` to ``PAGES`` (and seed what it needs in
``seed``): a GET of its path, or ``open`` for one reached by a form.
"""

import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

import pytest

from tests.conftest import IN_PROCESS_CONFIG, stop_click_logs
from tests.dashboard_helpers import CHROME, FIREFOX, GOOGLEBOT, OWNER_EMAIL, OWNER_PASSWORD, record
from tests.processes import WebServer
from tests.test_dashboard_browser import log_in
from webapp import create_app, sites
from webapp.auth.users import create_user
from webapp.extensions import db
from webapp.links import service
from webapp.models import ReportRun, utcnow
from webapp.pageviews import seed as pageview_seed
from webapp.reports import slow_pageviews
from webapp.reports.params import SlowReportParams
from webapp.reports.runner import run_report

# Skipped, saying why, where Chromium is missing; a failure under CI=true (tests/conftest.py).
pytestmark = [pytest.mark.integration, pytest.mark.browser]

AXE = os.path.join(os.path.dirname(__file__), "vendor", "axe.min.js")
AXE_TAGS = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa"]
MIN_TAP_PX = 44  # WCAG 2.5.5 (AAA) target size, asked of every control on a phone
MIN_CHART_TEXT_PX = 11
PHONE_WIDTH = 390

# --- the pages --------------------------------------------------------------------------------


def submit_form(page, web, path, fill=(), button="main form button[type=submit]", files=None, native=False):
    """Open ``path``, fill ``{selector: value}``, submit, and wait for the answer page."""
    page.goto(web.url + path)
    for selector, value in fill:
        page.fill(selector, value)
    if files:
        page.set_input_files(*files)
    with page.expect_navigation():
        if native:  # form.submit() skips the browser's own checks, as an old browser would
            page.locator(button).evaluate("(button) => button.form.submit()")
        else:
            page.click(button)


def open_bulk_results(page, web):
    page.goto(web.url + "/links")
    page.click("summary:has-text('Many links at once')")
    page.fill(
        "textarea[name=lines]", f"{web.url}/healthz?bulk=1\nnot a url\n{web.url}/metrics?bulk=2 bulk-two"
    )
    with page.expect_navigation():
        page.click("button:has-text('Shorten them all')")


IMPORT_CSV = (
    "keyword,url,title,timestamp,clicks\n"
    "spring-sale,https://shop.example/spring,Spring sale,2024-03-01 10:00:00,120\n"
    "old-blog,https://blog.example/2019/a-very-long-path-that-goes-on/and-on?with=query&and=more,,2019-05-02 08:00:00,7\n"
    "broken,ftp://files.example/x,,2020-01-01 00:00:00,3\n"
)


@dataclass(frozen=True)
class Page:
    name: str  # also the screenshot's name
    path: str
    logged_in: bool = True
    current: str | None = None  # the main-navigation entry marked as this page
    open: Callable | None = None  # open(page, web), for a page reached by a form
    status: int = 200


PAGES = [
    Page("login", "/login", logged_in=False),
    Page(
        "login-error",
        "/login",
        logged_in=False,
        status=401,
        open=lambda page, web: submit_form(
            page, web, "/login", [("input[name=email]", OWNER_EMAIL), ("input[name=password]", "wrong")]
        ),
    ),
    Page("home", "/", current="Dashboard"),
    Page("links", "/links", current="Links"),
    Page(
        "links-form-error",
        "/links",
        current="Links",
        status=400,
        open=lambda page, web: submit_form(
            page,
            web,
            "/links",
            [("input[name=url]", "example.com/no-scheme"), ("input[name=slug]", "no spaces please")],
            button="form.link-form button[type=submit]",
            native=True,
        ),
    ),
    Page("link", "/links/launch", current="Links"),
    Page("link-edit", "/links/launch/edit", current="Links"),
    Page(
        "link-edit-error",
        "/links/launch/edit",
        current="Links",
        status=400,
        open=lambda page, web: submit_form(
            page, web, "/links/launch/edit", [("input[name=slug]", "no spaces please")]
        ),
    ),
    Page("bulk-results", "/links/bulk", current="Links", open=open_bulk_results),
    Page("import", "/links/import", current="Links"),
    Page(
        "import-preview",
        "/links/import",
        current="Links",
        open=lambda page, web: submit_form(
            page,
            web,
            "/links/import",
            files=(
                "input[name=file]",
                {"name": "yourls.csv", "mimeType": "text/csv", "buffer": IMPORT_CSV.encode()},
            ),
        ),
    ),
    Page("ops", "/ops", current="Ops"),
    Page("tokens", "/tokens", current="Tokens"),
    Page("sites", "/sites", current="Sites"),
    Page("settings", "/settings", current="Settings"),
    Page("link-custom-period", "/links/launch?range=custom&from=2026-01-01&to=2026-03-31", current="Links"),
    Page("slow-pages", "/reports/slow-pageviews", current="Slow pages"),
    Page("not-found", "/links/no-such-link", status=404),
    Page("link-not-found", "/r/no-such-link", logged_in=False, status=404),
    Page("link-gone", "/r/expired", logged_in=False, status=410),
    Page("server-error", "/__test-500", status=500),
]

VIEWS = {
    "1366": {"viewport": {"width": 1366, "height": 900}, "color_scheme": "light"},
    "390": {"viewport": {"width": PHONE_WIDTH, "height": 844}, "color_scheme": "light"},
    "390-dark": {"viewport": {"width": PHONE_WIDTH, "height": 844}, "color_scheme": "dark"},
}

# --- the site ---------------------------------------------------------------------------------


def seed(web):
    """The owner; links with clicks of several kinds; page views, a computed report, its runs."""
    user = create_user(OWNER_EMAIL, OWNER_PASSWORD, is_admin=True)  # an admin sees every page, Ops too
    launch = service.create_link(
        f"{web.url}/healthz", user, slug="launch-2024", title="Spring launch", tags="launch, spring"
    )[0]
    guide = service.create_link(f"{web.url}/metrics", user, slug="guide", title="The guide")[0]
    service.create_link(
        "https://docs.example.org/a/very/long/path/that/keeps/going/and/going/until/it/wraps?utm_source=newsletter",
        user,
        slug="a-rather-long-slug-for-a-newsletter",
    )
    past = (datetime.utcnow() - timedelta(minutes=5)).isoformat() + "Z"  # noqa: DTZ003 - naive UTC on purpose
    service.create_link(f"{web.url}/healthz?old", user, slug="expired", expires_at=past)
    service.update_link(launch, {"slug": "launch", "max_clicks": "1000"}, user)  # launch-2024 stays an alias
    now = time.time()
    for hours_ago, count in ((1, 4), (3, 9), (7, 2), (20, 16), (30, 5), (200, 31)):
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
    record(guide, 2, user_agent=CHROME, ip="81.2.69.160", at=now - 3600)  # a country to show
    sites.create_site("The blog", ["https://blog.example.com", "http://localhost:8080"], user)

    pageview_seed.bulk_insert(db.engine, pageview_seed.generate(3000, 25, 7))
    params = SlowReportParams()

    def compute(on_progress):
        with db.engine.connect() as conn:
            return slow_pageviews.compute(conn, params, utcnow(), on_progress)

    report = run_report(params, compute)
    started = utcnow() - timedelta(minutes=3)
    db.session.add_all(
        [
            ReportRun(
                report="slow_pageviews",
                params=params.as_dict(),
                status="done",
                enqueued_at=started,
                started_at=started,
                finished_at=started + timedelta(seconds=1),
                duration_ms=1000,
                result=report,
            ),
            ReportRun(
                report="slow_pageviews",
                params={**params.as_dict(), "days": 7},
                status="failed",
                enqueued_at=started,
                started_at=started,
                finished_at=started,
                duration_ms=12,
                error="OperationalError: database is locked",
            ),
        ]
    )
    db.session.commit()


def server_error_page(app):
    """The 500 page as the app's own error handler renders it, for a view that raised."""

    def boom():
        raise RuntimeError("a view that fails")

    app.add_url_rule("/__test-500", "test_500", boom)
    app.config["PROPAGATE_EXCEPTIONS"] = False
    response = app.test_client().get("/__test-500")
    assert response.status_code == 500
    return response.text


@pytest.fixture(scope="module")
def web(shared_app_env, tmp_path_factory):
    """gunicorn on the module's database, seeded once; ``web.error_500`` is the 500 page's HTML."""
    server = WebServer({**os.environ, **shared_app_env}, str(tmp_path_factory.mktemp("web")), workers=2)
    with pytest.MonkeyPatch.context() as env:
        for name, value in shared_app_env.items():
            env.setenv(name, value)
        app = create_app(IN_PROCESS_CONFIG)
        with app.app_context():
            seed(server)
            db.session.remove()
            db.engine.dispose()
        server.error_500 = server_error_page(app)
        stop_click_logs([app])
        server.start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def logged_in_state(web, browser):
    context = browser.new_context()
    log_in(context.new_page(), web)
    state = context.storage_state()
    context.close()
    return state


def open_page(browser, web, logged_in_state, spec, view):
    """A fresh context in ``view``, showing ``spec``; returns (context, page, response status)."""
    context = browser.new_context(
        viewport=VIEWS[view]["viewport"],
        color_scheme=VIEWS[view]["color_scheme"],
        storage_state=logged_in_state if spec.logged_in else None,
        # axe is injected as an inline script, which the pages' CSP rightly refuses; the CSP
        # itself is checked by tests/security and the other browser tests, which keep it.
        bypass_csp=True,
    )
    page = context.new_page()
    page.set_default_timeout(20_000)
    page.script_errors = []
    page.on("pageerror", lambda error: page.script_errors.append(str(error)))
    statuses = []
    page.on(
        "response",
        lambda response: (
            statuses.append(response.status) if response.request.is_navigation_request() else None
        ),
    )
    if spec.path == "/__test-500":  # no route serves it: the page the app's handler rendered, at our origin
        page.route(
            web.url + spec.path,
            lambda route: route.fulfill(
                status=500, content_type="text/html; charset=utf-8", body=web.error_500
            ),
        )
    if spec.open:
        spec.open(page, web)
    else:
        page.goto(web.url + spec.path)
    page.wait_for_load_state("networkidle")
    return context, page, statuses[-1] if statuses else None


# --- checks -----------------------------------------------------------------------------------

RUN_AXE = """async (tags) => {
  const results = await axe.run(document, {runOnly: {type: "tag", values: tags}, resultTypes: ["violations"]});
  return results.violations.map((v) => ({
    id: v.id, impact: v.impact, help: v.help,
    nodes: v.nodes.map((n) => ({target: n.target.join(" "), summary: n.failureSummary})),
  }));
}"""

# Controls a finger must hit: nav links, buttons, form controls, disclosure summaries.
# Links inside running text are exempt (WCAG 2.5.8's inline exception).
SMALL_CONTROLS = """(minimum) => {
  const controls = document.querySelectorAll(
    "nav a, a.button, a.skip-link:focus, button, input:not([type=hidden]), select, textarea, summary");
  const small = [];
  for (const element of controls) {
    const style = getComputedStyle(element);
    if (style.visibility === "hidden" || element.closest("[hidden], details:not([open]) > :not(summary)")) continue;
    const target = ["checkbox", "radio"].includes(element.type) ? element.closest("label") || element : element;
    const box = target.getBoundingClientRect();
    if (box.width === 0 && box.height === 0) continue;
    if (box.height < minimum - 0.5) {
      small.push(`${element.outerHTML.slice(0, 90)} is ${box.width.toFixed(0)}×${box.height.toFixed(1)} px`);
    }
  }
  return small;
}"""

CHART_TEXT = """() => [...document.querySelectorAll(".chart svg text")]
  .filter((text) => getComputedStyle(text).display !== "none")
  .map((text) => {
    const matrix = text.getScreenCTM();
    const scale = matrix ? Math.hypot(matrix.c, matrix.d) : 1;
    return {text: text.textContent, size: parseFloat(getComputedStyle(text).fontSize) * scale,
            height: text.getBoundingClientRect().height};
  })"""

SIDEWAYS = """() => ({
  scrollWidth: document.documentElement.scrollWidth, innerWidth: window.innerWidth,
  wide: [...document.querySelectorAll("body *")]
    .filter((e) => e.getBoundingClientRect().right > window.innerWidth + 0.5)
    .map((e) => e.tagName.toLowerCase() + (e.id ? "#" + e.id : "") + (e.className && typeof e.className === "string" ? "." + e.className.trim().split(/\\s+/).join(".") : ""))
    .slice(0, 8),
})"""


def readable(violations):
    lines = []
    for violation in violations:
        lines.append(f"[{violation['impact']}] {violation['id']}: {violation['help']}")
        for node in violation["nodes"][:6]:
            lines.append(f"    {node['target']}")
            lines.extend(f"      {line}" for line in node["summary"].splitlines())
    return "\n".join(lines)


@pytest.mark.parametrize("view", list(VIEWS))
@pytest.mark.parametrize("spec", PAGES, ids=[spec.name for spec in PAGES])
def test_page_is_accessible_and_fits(web, browser, logged_in_state, artifacts, spec, view):
    context, page, status = open_page(browser, web, logged_in_state, spec, view)
    try:
        page.screenshot(path=artifacts(f"{spec.name}-{view}.png"), full_page=True)
        assert status == spec.status, f"{spec.path} answered {status}"
        assert page.url.startswith(web.url), page.url

        page.add_script_tag(path=AXE)
        violations = page.evaluate(RUN_AXE, AXE_TAGS)
        assert violations == [], f"axe-core found on {spec.name} at {view}:\n{readable(violations)}"

        chart_text = page.evaluate(CHART_TEXT)
        small_text = [
            label for label in chart_text if min(label["size"], label["height"]) < MIN_CHART_TEXT_PX
        ]
        assert small_text == [], f"chart labels under {MIN_CHART_TEXT_PX} px"

        if VIEWS[view]["viewport"]["width"] == PHONE_WIDTH:
            sideways = page.evaluate(SIDEWAYS)
            assert sideways["scrollWidth"] <= sideways["innerWidth"], f"scrolls sideways: {sideways}"
            assert page.evaluate(SMALL_CONTROLS, MIN_TAP_PX) == []

        skip_link_and_navigation(page, spec)
        field_errors_are_tied_to_their_fields(page)
        assert page.script_errors == []
    finally:
        context.close()


FIRST_FOCUSABLE = """() => {
  const focusable = [...document.querySelectorAll(
    "a[href], button, input:not([type=hidden]), select, textarea, summary, [tabindex]")]
    .filter((element) => element.tabIndex >= 0 && !element.disabled);
  const first = focusable[0];
  first.focus();
  const box = first.getBoundingClientRect();
  return {text: first.textContent.trim(), href: first.getAttribute("href"), shown: box.top >= 0 && box.height > 0};
}"""


def skip_link_and_navigation(page, spec):
    """The first focusable element is "Skip to content", shown when focused, leading to <main id="content">;
    the main navigation marks the current page."""
    assert page.evaluate(FIRST_FOCUSABLE) == {"text": "Skip to content", "href": "#content", "shown": True}
    assert page.locator("main#content").count() == 1
    current = page.locator('nav[aria-label="Main"] a[aria-current="page"]')
    if spec.current:
        assert current.all_inner_texts() == [spec.current]
    else:
        assert current.count() == 0


def field_errors_are_tied_to_their_fields(page):
    """Each field's error message has an id its field names in aria-describedby, and the field is aria-invalid."""
    for error in page.locator(".field-error[data-field]").all():
        name, error_id = error.get_attribute("data-field"), error.get_attribute("id")
        assert error_id, f"the error for {name} has no id"
        field = page.locator(f'form [name="{name}"]:not([type=hidden])')
        if name == "form" or field.count() == 0:
            continue
        assert field.get_attribute("aria-invalid") == "true", name
        assert error_id in (field.get_attribute("aria-describedby") or "").split(), name


# --- what one view of a page does not show ----------------------------------------------------


@pytest.fixture
def phone(browser, logged_in_state):
    context = browser.new_context(viewport=VIEWS["390"]["viewport"], storage_state=logged_in_state)
    page = context.new_page()
    page.set_default_timeout(20_000)
    yield page
    context.close()


FORM_ERRORS = {
    "login-error": {"email", "password"},
    "links-form-error": {"url", "slug"},
    "link-edit-error": {"slug"},
}


@pytest.mark.parametrize("name", list(FORM_ERRORS))
def test_form_pages_tie_their_errors_to_fields(web, browser, logged_in_state, name):
    """The pages whose forms failed mark exactly the fields in error, each described by its message."""
    spec = next(spec for spec in PAGES if spec.name == name)
    context, page, _ = open_page(browser, web, logged_in_state, spec, "390")
    try:
        invalid = {field.get_attribute("name") for field in page.locator('[aria-invalid="true"]').all()}
        assert invalid == FORM_ERRORS[name]
        field_errors_are_tied_to_their_fields(page)
        for field in page.locator('[aria-invalid="true"]').all():
            for error_id in field.get_attribute("aria-describedby").split():
                assert page.locator(f"#{error_id}").inner_text().strip(), f"#{error_id} is empty"
    finally:
        context.close()


def test_inline_validation_ties_and_unties_the_error(web, phone):
    """The new-link form checks as you type: the URL field is marked invalid, then valid again."""
    phone.goto(web.url + "/links")
    url = phone.locator("form.link-form input[name=url]")
    url.press_sequentially("example.com/page")
    phone.locator("#url-error").wait_for()
    # Locators, not wait_for_function: a predicate given as text is eval'd, which the CSP forbids.
    phone.locator("form.link-form [name=url][aria-invalid=true]").wait_for()
    assert url.get_attribute("aria-describedby") == "url-error"
    url.fill("")
    url.press_sequentially(f"{web.url}/healthz?inline")
    phone.locator("#url-error").wait_for(state="detached")
    phone.locator("form.link-form [name=url]:not([aria-invalid])").wait_for()
    assert url.get_attribute("aria-describedby") is None


def test_dark_scheme_changes_the_colours(web, browser, logged_in_state):
    backgrounds = {}
    for scheme in ("light", "dark"):
        context = browser.new_context(color_scheme=scheme, storage_state=logged_in_state)
        page = context.new_page()
        page.goto(web.url + "/")
        backgrounds[scheme] = page.evaluate("getComputedStyle(document.body).backgroundColor")
        context.close()
    assert backgrounds == {"light": "rgb(245, 246, 249)", "dark": "rgb(14, 18, 24)"}


def test_favicon_is_linked_and_answered_at_favicon_ico(web, browser):
    context = browser.new_context()
    page = context.new_page()
    page.goto(web.url + "/login")
    icon = page.locator('link[rel="icon"]').get_attribute("href")
    for path in (icon, "/favicon.ico"):
        response = page.request.get(web.url + path)
        assert response.status == 200, path
        assert response.headers["content-type"].startswith("image/svg+xml"), path
        assert b"<svg" in response.body()
    context.close()
