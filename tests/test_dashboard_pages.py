"""The dashboard's pages and fragments in-process, logged in, with CSRF protection on.

Links are created through the form; clicks are recorded the way the drain
records them (``record_clicks`` on encoded click lines), so the counters,
rollups and click rows the pages read are the real ones. Worker heartbeats
and task failures are written into the real Redis the way workers write them.
"""

import json
import re
import time
from datetime import UTC, datetime, timedelta

import pytest
from flask import current_app
from markupsafe import escape
from sqlalchemy import func, select

from tests.dashboard_helpers import (
    ADMIN_EMAIL,
    ADMIN_PASSWORD,
    CHROME,
    FIREFOX,
    GOOGLEBOT,
    IPHONE,
    at,
    chart_bars,
    csrf_token,
    csrf_token_in,
    location,
    logged_in,
    record,
    section,
    stat,
    table_rows,
)
from tests.processes import wait_for
from webapp.auth.users import create_user
from webapp.clicks.agents import referrer_host
from webapp.clicks.buffer import CLICK_BUFFER
from webapp.clicks.referrer_cap import MAX_REFERRERS_PER_DAY
from webapp.extensions import db
from webapp.links import service
from webapp.models import Link, LinkHourlyDimension
from webapp.ops import HEARTBEAT_TTL, failures_key, heartbeat_key

TARGET = "https://example.com/landing"


@pytest.fixture
def owner(app, user):
    return logged_in(app)


@pytest.fixture
def link(user):
    return service.create_link(TARGET, user, slug="launch")[0]


def post(client, path, data=None, page="/links", **kwargs):
    """POST a form as the page would: with the CSRF token from its hidden field."""
    return client.post(path, data={**(data or {}), "csrf_token": csrf_token(client, page)}, **kwargs)


def link_count():
    return db.session.scalar(select(func.count()).select_from(Link))


def listed_slugs(html):
    return re.findall(r'<a href="/links/([^"/]+)">/r/', html)


def utcnow():
    return datetime.now(UTC).replace(tzinfo=None)


# --- creating links -------------------------------------------------------------


def test_create_link_form_answers_303_to_the_new_link_page(owner):
    response = post(owner, "/links", {"url": TARGET, "slug": "launch"})
    assert response.status_code == 303
    assert location(response)[0] == "/links/launch"
    assert TARGET in owner.get("/links/launch").text


def test_created_link_appears_in_the_list(owner):
    post(owner, "/links", {"url": TARGET, "slug": "launch"})
    assert listed_slugs(owner.get("/links").text) == ["launch"]


def test_create_link_without_slug_generates_one(owner):
    response = post(owner, "/links", {"url": TARGET, "slug": ""})
    slug = location(response)[0].removeprefix("/links/")
    assert response.status_code == 303
    assert service.get_link(slug).target_url == TARGET


def test_create_link_with_an_invalid_url_rerenders_the_form_with_the_error(owner):
    response = post(owner, "/links", {"url": "example.com/page", "slug": "launch"})
    assert response.status_code == 400
    assert "url must start with http:// or https://" in response.text
    assert 'value="example.com/page"' in response.text  # what was typed is kept
    assert link_count() == 0


def validation_errors(client, url, slug=""):
    """{field: message} from the inline validation fragment."""
    html = post(client, "/links/validate", {"url": url, "slug": slug}).text
    return dict(re.findall(r'data-field="(\w+)" role="alert">([^<]*)</p>', html))


@pytest.mark.parametrize(
    ("url", "slug", "field", "message"),
    [
        ("example.com/page", "", "url", "url must start with http:// or https://"),
        ("ftp://example.com/file", "", "url", "url must start with http:// or https://"),
        ("https://", "", "url", "url must include a host name"),
        ("https://exa mple.com/", "", "url", "url contains spaces or control characters"),
        (TARGET, "admin", "slug", "slug 'admin' is reserved"),
        (TARGET, "login", "slug", "slug 'login' is reserved"),
        (TARGET, "launch", "slug", "slug 'launch' is already taken"),
        (TARGET, "-launch", "slug", "slug may contain only letters, digits"),
    ],
)
def test_inline_validation_shows_the_error(owner, link, url, slug, field, message):
    errors = validation_errors(owner, url, slug)
    assert list(errors) == [field]
    assert errors[field].startswith(str(escape(message)))


def test_inline_validation_shows_url_and_slug_errors_together(owner):
    assert set(validation_errors(owner, "example.com", "admin")) == {"url", "slug"}


def test_inline_validation_of_a_valid_form_is_empty(owner, link):
    html = post(owner, "/links/validate", {"url": TARGET, "slug": "another"}).text
    assert html.strip() == ""


def test_inline_validation_does_not_nag_about_an_empty_url(owner):
    assert validation_errors(owner, "", "") == {}


def test_inline_validation_creates_nothing(owner):
    post(owner, "/links/validate", {"url": TARGET, "slug": "launch"})
    assert link_count() == 0


# --- search, sort, pages --------------------------------------------------------


@pytest.fixture
def three_links(user):
    bravo = service.create_link("https://docs.example.org/guide", user, slug="bravo")[0]
    alpha = service.create_link("https://example.com/one", user, slug="alpha")[0]
    service.create_link("https://example.net/under_score", user, slug="charlie")
    record(bravo, 1)
    record(alpha, 5)


@pytest.mark.parametrize(
    ("q", "expected"),
    [
        ("alph", ["alpha"]),
        ("ALPHA", ["alpha"]),
        ("docs.example.org", ["bravo"]),
        ("example.com", ["alpha"]),
        ("under_", ["charlie"]),
        ("e_s", []),  # "_" is a literal underscore, not LIKE's any-character
        ("%", []),
    ],
)
def test_search_filters_by_slug_and_url(owner, three_links, q, expected):
    assert listed_slugs(owner.get("/links", query_string={"q": q}).text) == expected


def test_search_without_matches_says_so(owner, three_links):
    assert "No links match “nothing-here”." in owner.get("/links", query_string={"q": "nothing-here"}).text


def test_htmx_search_answers_with_the_table_fragment_only(owner, three_links):
    response = owner.get(
        "/links", query_string={"q": "alpha"}, headers={"HX-Request": "true", "HX-Target": "links-table"}
    )
    assert response.text.startswith('<div id="links-table">')
    assert "<html" not in response.text
    assert listed_slugs(response.text) == ["alpha"]


@pytest.mark.parametrize(
    ("sort", "expected"),
    [
        ("new", ["charlie", "alpha", "bravo"]),
        ("old", ["bravo", "alpha", "charlie"]),
        ("clicks", ["alpha", "bravo", "charlie"]),  # no clicks at all comes last
        ("slug", ["alpha", "bravo", "charlie"]),
        ("bogus", ["charlie", "alpha", "bravo"]),
    ],
)
def test_sort_orders_the_list(owner, three_links, sort, expected):
    assert listed_slugs(owner.get("/links", query_string={"sort": sort}).text) == expected


@pytest.fixture
def thirty_links(user):
    return [service.create_link(f"https://example.com/{n}", user, slug=f"link-{n:02}")[0] for n in range(30)]


def test_first_page_has_25_links_and_a_next_page(owner, thirty_links):
    html = owner.get("/links").text
    assert len(listed_slugs(html)) == 25
    assert re.search(r'href="/links\?[^"]*page=2">Next page', html)


def test_second_page_has_the_rest_and_no_next_page(owner, thirty_links):
    first = listed_slugs(owner.get("/links").text)
    html = owner.get("/links", query_string={"page": 2}).text
    second = listed_slugs(html)
    assert len(second) == 5
    assert sorted(first + second) == sorted(link.slug for link in thirty_links)
    assert "Next page" not in html
    assert "Newer page" in html


def test_next_page_link_keeps_the_search_and_sort(owner, thirty_links):
    html = owner.get("/links", query_string={"q": "link-", "sort": "slug"}).text
    next_href = re.search(r'href="([^"]+)">Next page', html).group(1).replace("&amp;", "&")
    assert listed_slugs(owner.get(next_href).text) == [f"link-{n}" for n in range(25, 30)]


@pytest.mark.parametrize("page", ["0", "-3", "abc"])
def test_bad_page_numbers_show_the_first_page(owner, thirty_links, page):
    html = owner.get("/links", query_string={"page": page}).text
    assert listed_slugs(html) == listed_slugs(owner.get("/links").text)


# --- disable, enable, delete -------------------------------------------------------


def test_disable_answers_303_to_the_link_page(owner, link):
    response = post(owner, "/links/launch/enabled", {"enabled": "0"})
    assert (response.status_code, location(response)[0]) == (303, "/links/launch")
    assert "answers 404" in owner.get("/links/launch").text


def test_disabled_link_redirect_answers_404(owner, link):
    assert owner.get("/r/launch").status_code == 302  # cached in this process first
    post(owner, "/links/launch/enabled", {"enabled": "0"})
    assert owner.get("/r/launch").status_code == 404


def test_enabled_again_link_redirects_again(owner, link):
    post(owner, "/links/launch/enabled", {"enabled": "0"})
    assert owner.get("/r/launch").status_code == 404
    response = post(owner, "/links/launch/enabled", {"enabled": "1"})
    assert response.status_code == 303
    assert owner.get("/r/launch").status_code == 302


def test_delete_answers_303_to_the_list_without_the_link(owner, link):
    response = post(owner, "/links/launch/delete")
    assert (response.status_code, location(response)[0]) == (303, "/links")
    html = owner.get("/links").text
    assert "launch" not in listed_slugs(html)
    assert "Deleted /r/launch." in html


def test_deleted_link_page_is_404(owner, link):
    post(owner, "/links/launch/delete")
    assert owner.get("/links/launch").status_code == 404


def test_deleted_link_redirect_answers_404(owner, link):
    assert owner.get("/r/launch").status_code == 302
    post(owner, "/links/launch/delete")
    assert owner.get("/r/launch").status_code == 404


# --- totals, top links, chart ----------------------------------------------------------


def test_overview_totals_reflect_the_counters(owner, user, link):
    other = service.create_link("https://example.com/other", user, slug="other")[0]
    record(link, 3)
    record(link, 1, user_agent=GOOGLEBOT)
    record(other, 2, at=time.time() - 30 * 3600)  # outside the last 24 hours
    html = owner.get("/fragments/overview").text
    figures = {name: stat(html, name) for name in ("links", "clicks", "clicks-24h", "bots")}
    assert figures == {"links": 2, "clicks": 5, "clicks-24h": 3, "bots": 1}


def test_dashboard_page_shows_the_same_totals(owner, link):
    record(link, 4)
    assert stat(owner.get("/").text, "clicks") == 4


def test_dashboard_page_has_every_live_region(owner):
    html = owner.get("/").text
    for region in (
        'id="overview"',
        'id="clicks-chart"',
        'id="top-links"',
        'id="insight-tables"',
        'id="report-card"',
    ):
        assert region in html


def test_top_links_are_ordered_by_clicks(owner, user, link):
    second = service.create_link("https://example.com/second", user, slug="second")[0]
    service.create_link("https://example.com/unclicked", user, slug="unclicked")
    record(link, 2)
    record(second, 7)
    rows = table_rows(owner.get("/fragments/top-links").text)
    assert [(row[0], row[2]) for row in rows] == [("/r/second", "7"), ("/r/launch", "2")]


def test_top_links_without_clicks_show_the_empty_state(owner, link):
    assert "No clicks yet." in owner.get("/fragments/top-links").text


def chart(client, **params):
    return client.get("/fragments/clicks-chart", query_string=params).text


def test_today_has_an_hour_bucket_per_hour_so_far_with_the_clicks_in_their_hour(owner, link):
    now = utcnow()
    record(link, 3, at=at(now.replace(minute=1)))
    bars = chart_bars(chart(owner, range="today"))
    assert len(bars) == now.hour + 1
    assert [bar for bar in bars if bar[1]] == [(now.strftime("%H:00"), 3)]


def test_buckets_are_ordered_oldest_first(owner, link):
    today = datetime.combine(utcnow().date(), datetime.min.time())
    record(link, 2, at=at(today - timedelta(days=4, hours=-1)))
    record(link, 1, at=at(today - timedelta(days=1, hours=-1)))
    values = [value for _, value in chart_bars(chart(owner, range="7d"))]
    assert values.index(1) - values.index(2) == 3


def test_chart_counts_human_clicks_only(owner, link):
    record(link, 2)
    record(link, 5, user_agent=GOOGLEBOT)
    assert sum(value for _, value in chart_bars(chart(owner))) == 2


def test_seven_days_leave_out_older_clicks_and_sum_the_hours_of_each_day(owner, link):
    day = utcnow().date() - timedelta(days=2)
    midnight = datetime.combine(day, datetime.min.time())
    record(link, 2, at=at(midnight + timedelta(hours=1)))
    record(link, 3, at=at(midnight + timedelta(hours=20)))
    record(link, 4, at=at(midnight - timedelta(days=6)))
    bars = chart_bars(chart(owner, range="7d"))
    assert len(bars) == 7
    assert [bar for bar in bars if bar[1]] == [(day.strftime("%b %d"), 5)]
    assert bars[-3] == (day.strftime("%b %d"), 5)


def test_twelve_months_have_a_bucket_per_month(owner, link):
    first_of_month = utcnow().replace(day=1, hour=12, minute=0, second=0, microsecond=0)
    record(link, 3, at=at(first_of_month))
    bars = chart_bars(chart(owner, range="12mo"))
    assert len(bars) == 12
    assert bars[-1] == (first_of_month.strftime("%b %Y"), 3)


def test_a_custom_range_covers_its_dates_both_included(owner, link):
    record(link, 2, at=at(datetime(2026, 3, 1, 0, 30)))
    record(link, 3, at=at(datetime(2026, 3, 3, 23, 30)))
    record(link, 7, at=at(datetime(2026, 3, 4, 0, 30)))
    html = chart(owner, range="custom", **{"from": "2026-03-01", "to": "2026-03-03"})
    assert chart_bars(html) == [("Mar 01", 2), ("Mar 02", 0), ("Mar 03", 3)]
    assert 'data-range="clicks">5<' in html


def test_the_period_before_is_shown_with_the_change(owner, link):
    record(link, 4, at=at(datetime(2026, 3, 2, 12)))
    record(link, 6, at=at(datetime(2026, 2, 27, 12)))  # the three days before
    html = chart(owner, range="custom", **{"from": "2026-03-01", "to": "2026-03-03"})
    assert 'data-range="clicks">4<' in html and 'data-range="previous">6<' in html
    assert 'data-range="change">-33.3 %<' in html


@pytest.mark.parametrize(
    ("params", "words"),
    [
        ({"range": "year"}, "range must be one of"),
        ({"range": "custom", "from": "2026-03-05", "to": "2026-03-01"}, "must not be after"),
        ({"range": "custom", "from": "not a date"}, "from must be a date"),
        ({"range": "custom", "from": "0001-01-01"}, "between the years"),
    ],
)
def test_a_bad_period_says_why_and_shows_the_default(owner, link, params, words):
    record(link, 1)
    html = chart(owner, **params)
    assert words in html and "data-period-problem" in html
    assert 'data-period="7d"' in html and len(chart_bars(html)) == 7


def test_days_and_hours_are_the_users_time_zone(owner, user, link):
    user.time_zone = "America/New_York"
    db.session.commit()
    record(link, 2, at=at(datetime(2026, 3, 3, 3, 30)))  # 22:30 on March 2 in New York (UTC-5)
    html = chart(owner, range="custom", **{"from": "2026-03-02", "to": "2026-03-03"})
    assert chart_bars(html)[22] == ("22:00", 2)
    assert "America/New_York" in html


def test_chart_keeps_polling_its_own_period_and_link(owner, link):
    html = chart(owner, range="30d", link=link.id)
    assert f'hx-get="/fragments/clicks-chart?range=30d&amp;link={link.id}" hx-trigger="cb:poll"' in html


def test_live_regions_poll_at_their_own_intervals_unless_one_is_configured(app, make_app, admin_user):
    live_region = re.compile(
        r'hx-trigger="cb:poll" data-live-seconds="(\d+)" hx-target="this" hx-swap="outerHTML"'
    )

    def intervals(client):
        return sorted(set(live_region.findall(client.get("/").text + client.get("/ops").text)))

    assert intervals(logged_in(app, ADMIN_EMAIL, ADMIN_PASSWORD)) == ["10", "15", "3", "5"]
    assert intervals(logged_in(make_app(DASHBOARD_POLL_SECONDS=1), ADMIN_EMAIL, ADMIN_PASSWORD)) == ["1"]


def test_the_ops_panel_is_for_admins_only(owner, operator):
    for path in ("/ops", "/fragments/ops"):
        assert owner.get(path).status_code == 404
        assert operator.get(path).status_code == 200
    assert 'href="/ops"' not in owner.get("/").text and 'href="/ops"' in operator.get("/").text


def test_link_chart_counts_only_that_link(owner, user, link):
    other = service.create_link("https://example.com/other", user, slug="other")[0]
    record(link, 2)
    record(other, 6)
    assert sum(value for _, value in chart_bars(chart(owner, link=link.id))) == 2
    assert sum(value for _, value in chart_bars(chart(owner))) == 8


def test_chart_without_clicks_shows_the_empty_state(owner):
    assert "No clicks in this period." in chart(owner)


# --- the link page ------------------------------------------------------------------


def test_link_page_lists_referrer_hosts_with_direct_visits(owner, link):
    record(link, 2, referrer="https://www.news.example/item?id=1")
    record(link, 1, referrer="https://forum.example.org/t/42")
    record(link, 1)
    record(link, 3, referrer="https://spam.example/", user_agent=GOOGLEBOT)  # bots are not referrals
    rows = table_rows(section(owner.get("/links/launch").text, "Referrers"))
    assert rows == [["news.example", "2"], ["(direct)", "1"], ["forum.example.org", "1"]]


def test_link_page_separates_browsers_from_bots(owner, link):
    record(link, 2, user_agent=FIREFOX)
    record(link, 1, user_agent=CHROME)
    record(link, 4, user_agent=GOOGLEBOT)
    record(link, 1, user_agent=FIREFOX, method="HEAD")  # a HEAD request counts as a bot
    html = owner.get("/links/launch").text
    assert table_rows(section(html, "Browsers")) == [["Firefox", "2"], ["Chrome", "1"]]
    assert table_rows(section(html, "Bots")) == [["Googlebot", "4"], ["Firefox", "1"]]


def test_link_page_shows_countries_devices_and_systems(owner, link):
    record(link, 2, user_agent=IPHONE, ip="81.2.69.160")  # a GB network
    record(link, 1, user_agent=FIREFOX, ip="203.0.113.9")  # documentation range: no country
    html = owner.get("/links/launch").text
    assert table_rows(section(html, "Countries")) == [["GB", "2"], ["Unknown", "1"]]
    assert table_rows(section(html, "Devices")) == [["mobile", "2"], ["desktop", "1"]]
    assert table_rows(section(html, "Operating systems")) == [["iOS", "2"], ["Linux", "1"]]


def test_link_page_without_clicks_says_so_in_each_table(owner, link):
    html = owner.get("/links/launch").text
    for text in ("No human clicks in this period.", "No bots in this period.", "No clicks yet."):
        assert text in html


def test_every_table_and_the_chart_download_as_csv(owner, link):
    record(link, 2, referrer="https://www.news.example/", ip="81.2.69.160")
    record(link, 1, referrer="=cmd|' /C calc'!A0")
    country = owner.get(f"/export/stats.csv?table=country&range=7d&link={link.id}")
    assert country.mimetype == "text/csv" and "attachment" in country.headers["Content-Disposition"]
    assert country.text.splitlines() == ["country,clicks", "GB,2", "Unknown,1"]
    series = owner.get("/export/stats.csv?table=series&range=today").text.splitlines()
    assert (
        series[0] == "start,clicks,bot_clicks,time_zone"
        and sum(int(row.split(",")[1]) for row in series[1:]) == 3
    )
    assert owner.get("/export/stats.csv?table=nope").status_code == 404


def test_another_users_link_statistics_are_a_404(app, owner, link):
    create_user("other@example.com", "another long password")
    other = logged_in(app, "other@example.com", "another long password")
    assert other.get(f"/export/stats.csv?table=country&link={link.id}").status_code == 404


def test_link_page_shows_recent_clicks_newest_first(owner, link):
    record(link, 1, referrer="https://older.example/", at=time.time() - 120, ip="198.51.100.77")
    record(link, 1, referrer="https://newer.example/", user_agent=GOOGLEBOT, at=time.time() - 10)
    rows = table_rows(section(owner.get("/links/launch").text, "Recent clicks"))
    assert [row[1:] for row in rows] == [
        ["https://newer.example/", GOOGLEBOT, "203.0.113.0", "bot"],
        ["https://older.example/", FIREFOX, "198.51.100.0", ""],
    ]


def test_link_stats_fragment_is_the_live_region_of_the_link_page(owner, link):
    record(link, 1, referrer="https://www.news.example/")
    html = owner.get("/links/launch/stats").text
    assert html.lstrip().startswith('<div id="link-stats" hx-get="/links/launch/stats?range=7d"')
    assert table_rows(section(html, "Referrers")) == [["news.example", "1"]]


def test_link_page_shows_short_url_and_target(owner, link):
    html = owner.get("/links/launch").text
    assert '<code id="short-url">http://localhost/r/launch</code>' in html
    assert f'href="{TARGET}"' in html


# --- the ops panel ---------------------------------------------------------------------


def test_ops_panel_without_a_worker_says_no_worker_is_alive(owner, operator):
    response = operator.get("/ops")
    assert response.status_code == 200
    assert "No worker is alive" in response.text
    assert "data-worker=" not in response.text


def namespace():
    return current_app.config["CLICKBOARD_NAMESPACE"]


def write_heartbeat(redis_client, name="worker@ops-host", seen_ago=2, up_for=600):
    now = time.time()
    state = {"name": name, "queues": ["clicks", "default"], "started": now - up_for, "seen": now - seen_ago}
    redis_client.set(heartbeat_key(namespace(), name), json.dumps(state), ex=HEARTBEAT_TTL)


def test_ops_panel_shows_a_worker_from_its_heartbeat(owner, redis_client, operator):
    write_heartbeat(redis_client)
    redis_client.set(CLICK_BUFFER.last_drain_key, f"{time.time():.3f}")
    html = operator.get("/fragments/ops").text
    rows = table_rows(section(html, "Workers"))
    assert rows == [["worker@ops-host", "clicks, default", "just now", "10 min ago"]]
    assert 'data-worker="worker@ops-host"' in html
    assert "No worker is alive" not in html


def test_ops_panel_says_no_worker_is_alive_when_one_beats_but_no_drain_runs(owner, redis_client, operator):
    # The same rule as /healthz (ops.drain_state): a worker that does not drain counts for nothing.
    write_heartbeat(redis_client)
    assert "No worker is alive: no drain has run yet" in operator.get("/fragments/ops").text


def test_ops_panel_lists_each_live_worker(owner, redis_client, operator):
    write_heartbeat(redis_client, "worker@b")
    write_heartbeat(redis_client, "worker@a")
    html = operator.get("/fragments/ops").text
    assert re.findall(r'data-worker="([^"]+)"', html) == ["worker@a", "worker@b"]


def test_ops_panel_forgets_a_worker_whose_heartbeat_expired(owner, redis_client, operator):
    write_heartbeat(redis_client)
    redis_client.pexpire(heartbeat_key(namespace(), "worker@ops-host"), 1)
    wait_for(
        lambda: not redis_client.exists(heartbeat_key(namespace(), "worker@ops-host")), 5, 0.01, "the expiry"
    )
    assert "No worker is alive" in operator.get("/fragments/ops").text


def test_ops_panel_shows_a_recorded_task_failure(owner, redis_client, operator):
    failure = {
        "task": "tasks.clicks.drain_click_buffer",
        "id": "f00d",
        "error": "OperationalError: database is locked",
        "at": time.time() - 90,
    }
    redis_client.lpush(failures_key(namespace()), json.dumps(failure))
    rows = table_rows(section(operator.get("/ops").text, "Recent task failures"))
    assert rows == [["1 min ago", "tasks.clicks.drain_click_buffer", "OperationalError: database is locked"]]


def test_ops_panel_without_failures_says_none(owner, operator):
    assert '<p class="muted">None.</p>' in section(operator.get("/ops").text, "Recent task failures")


def test_ops_panel_shows_queue_depths_from_the_broker(owner, app, operator):
    from tasks.clicks import drain_click_buffer

    drain_click_buffer.apply_async()  # queued; no worker takes it
    figures = section(operator.get("/ops").text, "Queues")
    assert "<dt>clicks</dt><dd>1</dd>" in figures
    assert "<dt>reports</dt><dd>0</dd>" in figures


def dead_broker(monkeypatch, url):
    # Celery reads CELERY_BROKER_URL from the environment before its own configuration.
    monkeypatch.setenv("CELERY_BROKER_URL", url)


def test_ops_panel_renders_when_the_broker_is_dead(make_app, monkeypatch, admin_user, dead_redis_url):
    dead_broker(monkeypatch, dead_redis_url)
    client = logged_in(make_app(CELERY_BROKER_URL=dead_redis_url), ADMIN_EMAIL, ADMIN_PASSWORD)
    response = client.get("/ops")
    assert response.status_code == 200
    assert "Could not read queues:" in response.text
    assert "The broker does not answer." in response.text
    assert "No worker is alive" in response.text  # Redis itself still answers


def test_ops_panel_renders_when_redis_is_dead(make_app, monkeypatch, admin_user, dead_redis_url):
    dead_broker(monkeypatch, dead_redis_url)
    client = logged_in(
        make_app(REDIS_URL=dead_redis_url, CELERY_BROKER_URL=dead_redis_url), ADMIN_EMAIL, ADMIN_PASSWORD
    )
    response = client.get("/fragments/ops")
    assert response.status_code == 200
    for name in ("clicks", "workers", "failures", "queues"):
        assert f"Could not read {name}:" in response.text
    assert "No worker is alive" not in response.text  # unknown, not absent


def test_overview_says_live_counts_are_unavailable_when_redis_is_dead(
    make_app, monkeypatch, user, dead_redis_url
):
    dead_broker(monkeypatch, dead_redis_url)
    client = logged_in(make_app(REDIS_URL=dead_redis_url, CELERY_BROKER_URL=dead_redis_url))
    response = client.get("/fragments/overview")
    assert response.status_code == 200
    assert "Live counts are unavailable" in response.text


def test_lag_banner_appears_when_the_oldest_click_is_old(owner, redis_client):
    redis_client.xadd(CLICK_BUFFER.stream, {"c": "waiting"}, id="1000-0")
    redis_client.xadd(CLICK_BUFFER.stream, {"c": "waiting"})
    html = owner.get("/fragments/overview").text
    assert re.search(r"Counts are [\d,]+ s behind: 2 clicks are waiting to be counted", html)


def test_no_lag_banner_when_the_waiting_clicks_are_fresh(owner, redis_client):
    redis_client.xadd(CLICK_BUFFER.stream, {"c": "waiting"})
    assert "behind" not in owner.get("/fragments/overview").text


def test_ops_panel_shows_the_click_backlog(owner, redis_client, operator):
    redis_client.xadd(CLICK_BUFFER.stream, {"c": "waiting"}, id="1000-0")
    html = operator.get("/fragments/ops").text
    assert '<dd data-ops="click-backlog">1</dd>' in html
    lag = float(re.search(r'data-ops="click-lag">([\d.]+) s<', html).group(1))
    assert lag > time.time() - 1001


# --- API tokens -------------------------------------------------------------------------


def create_token(client, name="deploy script"):
    return post(client, "/tokens", {"name": name}, page="/tokens")


def new_token(html):
    return re.search(r'<code id="new-token">([^<]+)</code>', html).group(1)


def test_created_token_is_shown_once_and_never_cached(owner):
    response = create_token(owner)
    assert response.status_code == 201
    assert response.headers["Cache-Control"] == "no-store"
    plaintext = new_token(response.text)
    assert plaintext.startswith("cb_")
    assert plaintext not in owner.get("/tokens").text


def test_created_token_works_on_the_api(app, owner, link):
    plaintext = new_token(create_token(owner).text)
    response = app.test_client().get("/api/links/launch", headers={"Authorization": f"Bearer {plaintext}"})
    assert response.status_code == 200


def test_tokens_page_lists_tokens_newest_first(owner):
    create_token(owner, "first")
    create_token(owner, "second")
    rows = table_rows(owner.get("/tokens").text)
    assert [(row[0], row[2]) for row in rows] == [("second", "active"), ("first", "active")]


def test_tokens_page_shows_when_each_token_was_last_used(app, owner, link):
    plaintext = new_token(create_token(owner, "used").text)
    create_token(owner, "idle")
    app.test_client().get("/api/links/launch", headers={"Authorization": f"Bearer {plaintext}"})
    rows = {row[0]: row[3] for row in table_rows(owner.get("/tokens").text)}
    assert rows["idle"] == "never"
    used = datetime.strptime(rows["used"], "%Y-%m-%d %H:%M").replace(tzinfo=UTC)
    assert abs(used.timestamp() - time.time()) < 120


def test_revoking_a_token_answers_303_and_marks_it_revoked(owner):
    create_token(owner, "deploy")
    html = owner.get("/tokens").text
    token_id = re.search(r'action="/tokens/(\d+)/revoke"', html).group(1)
    response = post(owner, f"/tokens/{token_id}/revoke", page="/tokens")
    assert (response.status_code, location(response)[0]) == (303, "/tokens")
    html = owner.get("/tokens").text
    assert [row[2] for row in table_rows(html)] == ["revoked"]
    assert "/revoke" not in html  # no button for a revoked token


@pytest.mark.parametrize("name", ["", "   ", "x" * 101])
def test_token_needs_a_name_of_1_to_100_characters(owner, name):
    response = create_token(owner, name)
    assert response.status_code == 400
    assert "Give the token a name of 1 to 100 characters." in response.text
    assert "new-token" not in response.text


# --- escaping ---------------------------------------------------------------------------

SCRIPT = "<script>alert(1)</script>"
ATTRIBUTE = '" onmouseover="alert(1)'
HOSTILE_TARGET = f'https://example.com/?q="><{SCRIPT[1:]}'
HOSTILE_REFERRER = f"http://{SCRIPT}/{ATTRIBUTE}"
HOSTILE_AGENT = f"Mozilla/5.0 {SCRIPT}{ATTRIBUTE}"
# What must never reach a page unescaped.
RAW = ["<script>alert(1)", 'onmouseover="alert(1)', '"><script']
ESCAPED_TARGET = str(escape(HOSTILE_TARGET))
ESCAPED_REFERRER = str(escape(HOSTILE_REFERRER))
ESCAPED_AGENT = str(escape(HOSTILE_AGENT))
ESCAPED_HOST = str(escape(referrer_host(HOSTILE_REFERRER)))


@pytest.fixture
def hostile(user):
    link = service.create_link(HOSTILE_TARGET, user, slug="xss")[0]
    assert link.target_url == HOSTILE_TARGET
    record(link, 2, referrer=HOSTILE_REFERRER, user_agent=HOSTILE_AGENT)
    return link


def assert_escaped(html, *expected):
    for raw in RAW:
        assert raw not in html
    for text in expected:
        assert text in html


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("/links", [ESCAPED_TARGET]),
        ("/links?q=script", [ESCAPED_TARGET]),
        ("/links/xss", [ESCAPED_TARGET, ESCAPED_REFERRER, ESCAPED_AGENT, ESCAPED_HOST]),
        ("/links/xss/stats", [ESCAPED_REFERRER, ESCAPED_AGENT, ESCAPED_HOST]),
        ("/fragments/top-links", [ESCAPED_TARGET]),
        ("/", [ESCAPED_TARGET]),
    ],
)
def test_hostile_target_referrer_and_agent_are_escaped(owner, hostile, path, expected):
    response = owner.get(path)
    assert response.status_code == 200
    assert_escaped(response.text, *expected)


def test_search_text_is_escaped_where_it_is_shown_again(owner, hostile):
    html = owner.get("/links", query_string={"q": f"{SCRIPT}{ATTRIBUTE}"}).text
    assert_escaped(html, str(escape(f"{SCRIPT}{ATTRIBUTE}")))


def test_rejected_form_input_is_escaped_in_the_form(owner):
    hostile_input = f'"><{SCRIPT[1:]}{ATTRIBUTE}'
    response = post(owner, "/links", {"url": hostile_input, "slug": hostile_input})
    assert response.status_code == 400
    assert_escaped(response.text, f'value="{escape(hostile_input)}"')


def test_inline_validation_message_echoing_input_is_escaped(owner):
    html = post(owner, "/links/validate", {"url": f"http://example.com:{SCRIPT}/", "slug": ""}).text
    assert_escaped(html, "url is malformed: Port could not be cast to integer value as &#39;&lt;script&gt;")


@pytest.mark.parametrize(("field", "ok"), [("target_title", True), ("target_error", False)])
def test_target_check_text_from_the_remote_site_is_escaped(owner, link, field, ok):
    # The title comes from whatever page the target serves.
    link.target_ok, link.target_status, link.checked_at = ok, 200 if ok else 502, utcnow()
    setattr(link, field, SCRIPT + ATTRIBUTE)
    db.session.commit()
    assert_escaped(owner.get("/links/launch").text, str(escape(SCRIPT + ATTRIBUTE)))


def test_token_name_is_escaped(owner):
    create_token(owner, SCRIPT + ATTRIBUTE)
    assert_escaped(owner.get("/tokens").text, str(escape(SCRIPT + ATTRIBUTE)))


def test_task_failure_text_is_escaped_on_the_ops_panel(owner, redis_client, operator):
    failure = {"task": SCRIPT, "id": "x", "error": f"ValueError: {ATTRIBUTE}", "at": time.time()}
    redis_client.lpush(failures_key(namespace()), json.dumps(failure))
    assert_escaped(operator.get("/fragments/ops").text, str(escape(SCRIPT)), str(escape(ATTRIBUTE)))


def test_every_form_on_a_page_carries_the_csrf_token(owner, link):
    for page in ("/links", "/links/launch", "/tokens"):
        html = owner.get(page).text
        token = csrf_token_in(html)
        forms = re.findall(r"<form method=\"post\".*?</form>", html, re.DOTALL)
        assert forms and all(token in form for form in forms), page


def test_a_link_keeps_at_most_a_hundred_referrer_hosts_a_day_and_counts_the_rest_as_other(owner, link):
    today = datetime.combine(utcnow().date(), datetime.min.time()) + timedelta(hours=1)
    for n in range(MAX_REFERRERS_PER_DAY + 5):
        record(link, 2 if n < 3 else 1, referrer=f"https://forged-{n}.example/", at=at(today))
    record(link, 1, referrer="https://forged-0.example/", at=at(today))  # a known host stays exact
    rows = db.session.execute(
        select(LinkHourlyDimension.value, LinkHourlyDimension.clicks).where(
            LinkHourlyDimension.dimension == "referrer"
        )
    ).all()
    hosts = dict(rows)
    assert len(hosts) == MAX_REFERRERS_PER_DAY + 1
    assert hosts["(other)"] == 5 and hosts["forged-0.example"] == 3
    assert sum(hosts.values()) == MAX_REFERRERS_PER_DAY + 5 + 3 + 1
    csv_rows = owner.get(f"/export/stats.csv?table=referrer&range=today&link={link.id}").text.splitlines()
    assert "(other),5" in csv_rows
