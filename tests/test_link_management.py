"""Managing a link: edits with a history, slug changes with aliases, tags and titles,
and access limits (expiry, click limit) answered 410 on the redirect.

Against the real Redis and database, in process; the drain runs as the
worker runs it (``CLICK_DRAIN.drain``).
"""

from datetime import datetime, timedelta

import pytest

from webapp.clicks.click_log import app_click_log
from webapp.clicks.drain import CLICK_DRAIN
from webapp.extensions import db
from webapp.links import cache, service
from webapp.links.validation import InvalidLink
from webapp.models import LinkCounter, utcnow
from webapp.redis_client import worker_redis

FIREFOX = "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0"


@pytest.fixture
def link(user):
    return service.create_link("https://example.com/spring", user, slug="spring", title="Spring sale")[0]


def visit(client, slug):
    return client.get(f"/r/{slug}", headers={"User-Agent": FIREFOX})


def drain(app):
    app_click_log(app).ship_own()
    return CLICK_DRAIN.drain(worker_redis(), db.engine, "test-drain", 5000, 20, 3600)


def counter(link):
    db.session.expire_all()
    row = db.session.get(LinkCounter, link.id)
    return (row.clicks, row.refused) if row else (0, 0)


# --- edits and their history ------------------------------------------------------------


def test_changing_the_target_keeps_the_clicks_and_redirects_to_the_new_one(app, client, link, user):
    visit(client, "spring")
    drain(app)

    changes = service.update_link(link, {"url": "https://example.com/summer"}, user)

    assert changes == {"url": ["https://example.com/spring", "https://example.com/summer"]}
    assert visit(client, "spring").headers["Location"] == "https://example.com/summer"
    drain(app)
    assert counter(link) == (2, 0)


def test_every_edit_is_recorded_with_who_when_and_old_to_new(link, user):
    service.update_link(link, {"title": "Summer sale", "tags": ["Promo", "2027"]}, user)
    service.update_link(link, {"enabled": False}, None)

    newest, first = service.history(link)
    assert newest.changes == {"enabled": [True, False]} and newest.user_id is None
    assert first.changes == {"title": ["Spring sale", "Summer sale"], "tags": [[], ["2027", "promo"]]}
    assert first.user_id == user.id
    assert abs(first.changed_at - utcnow()) < timedelta(minutes=1)


def test_an_edit_that_changes_nothing_records_nothing(link, user):
    assert (
        service.update_link(link, {"url": "HTTPS://EXAMPLE.com/spring", "title": "Spring  sale"}, user) == {}
    )
    assert service.history(link) == []


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"url": "ftp://example.com"}, "http"),
        ({"slug": "admin"}, "reserved"),
        ({"title": 7}, "title"),
        ({"title": "x" * 201}, "longer than 200"),
        ({"tags": "a" * 41}, "longer than 40"),
        ({"tags": [1, 2]}, "list of strings"),
        ({"tags": ["no/slash"]}, "may contain only"),
        ({"redirect_code": 303}, "redirect_code"),
        ({"enabled": "yes"}, "enabled"),
        ({"expires_at": "next tuesday"}, "ISO 8601"),
        ({"expires_at": 1700000000}, "ISO 8601"),
        ({"max_clicks": 0}, "between 1 and"),
        ({"max_clicks": 10**30}, "between 1 and"),
        ({"max_clicks": True}, "whole number"),
        ({"title": "\ud800"}, "Unicode"),
        ({"colour": "red"}, "unknown fields: colour"),
    ],
)
def test_edits_are_validated_as_creation_is(link, user, fields, message):
    with pytest.raises(InvalidLink, match=message):
        service.update_link(link, fields, user)
    assert service.history(link) == []


# --- slugs and aliases --------------------------------------------------------------------


def test_a_new_slug_keeps_the_old_one_redirecting_as_an_alias(client, link, user):
    service.update_link(link, {"slug": "summer"}, user)

    assert visit(client, "summer").status_code == 302
    assert visit(client, "spring").headers["Location"] == "https://example.com/spring"
    assert [alias.slug for alias in link.aliases] == ["spring"]


def test_an_alias_the_owner_removes_stops_redirecting_and_is_free_again(client, link, user, app):
    service.update_link(link, {"slug": "summer"}, user)
    visit(client, "spring")  # cached in this process and in Redis

    assert service.remove_alias(link, "spring", user)

    assert visit(client, "spring").status_code == 404
    other, created = service.create_link("https://example.org/", user, slug="spring")
    assert created and other.slug == "spring"


def test_a_slug_another_link_has_or_keeps_as_an_alias_is_taken(link, user):
    other = service.create_link("https://example.org/", user, slug="autumn")[0]
    service.update_link(other, {"slug": "winter"}, user)  # "autumn" is now other's alias

    for slug in ("winter", "autumn"):
        with pytest.raises(service.SlugTaken):
            service.update_link(link, {"slug": slug}, user)
        with pytest.raises(service.SlugTaken):
            service.create_link("https://example.net/", user, slug=slug)


def test_a_link_may_take_back_its_own_alias(client, link, user):
    service.update_link(link, {"slug": "summer"}, user)
    service.update_link(link, {"slug": "spring"}, user)

    assert link.slug == "spring"
    assert [alias.slug for alias in link.aliases] == ["summer"]
    assert visit(client, "summer").status_code == 302


# --- tags and titles ------------------------------------------------------------------------


def test_tags_are_stored_lower_case_sorted_and_once(user):
    link = service.create_link("https://example.com/t", user, tags=["Launch", "launch ", "Spring  2027"])[0]
    assert link.tags == ["launch", "spring 2027"]


def test_a_comma_separated_tag_field_is_a_list_of_tags(user):
    link = service.create_link("https://example.com/t", user, tags="news, blog,")[0]
    assert link.tags == ["blog", "news"]


# --- access limits ----------------------------------------------------------------------------


def test_an_expired_link_answers_410_in_the_site_layout_and_counts_a_refusal(app, client, user):
    past = (datetime.utcnow() - timedelta(minutes=1)).isoformat() + "Z"  # noqa: DTZ003 - naive UTC on purpose
    link = service.create_link("https://example.com/old", user, slug="old", expires_at=past)[0]

    response = visit(client, "old")

    assert response.status_code == 410
    assert "no longer available" in response.text and "<main" in response.text
    assert "Location" not in response.headers
    drain(app)
    assert counter(link) == (0, 1)


def test_a_link_expiring_later_redirects_until_then(client, user):
    soon = (datetime.utcnow() + timedelta(hours=1)).isoformat()  # noqa: DTZ003
    service.create_link("https://example.com/soon", user, slug="soon", expires_at=soon)
    assert visit(client, "soon").status_code == 302


def test_an_expiry_with_an_offset_is_kept_in_utc(user):
    link = service.create_link("https://example.com/z", user, expires_at="2030-01-01T02:00:00+02:00")[0]
    assert link.expires_at == datetime(2030, 1, 1)


def test_a_link_answers_410_once_the_drain_counted_its_click_limit(app, client, user):
    link = service.create_link("https://example.com/limited", user, slug="limited", max_clicks=3)[0]
    assert [visit(client, "limited").status_code for _ in range(3)] == [302] * 3
    assert visit(client, "limited").status_code == 302  # the limit overshoots until the drain runs

    drain(app)  # counts 4, crosses the limit, drops the cached entry everywhere

    assert visit(client, "limited").status_code == 410
    drain(app)
    assert counter(link) == (4, 1)


def test_raising_the_click_limit_opens_an_exhausted_link_again(app, client, user):
    link = service.create_link("https://example.com/more", user, slug="more", max_clicks=1)[0]
    visit(client, "more")
    drain(app)
    assert visit(client, "more").status_code == 410

    service.update_link(link, {"max_clicks": 5}, user)

    assert visit(client, "more").status_code == 302


def test_a_cache_entry_written_by_an_older_version_is_read_again_from_the_database(
    client, link, redis_client
):
    redis_client.set(cache.cache_key("spring"), f"{link.id}\t\thttps://example.com/stale")

    assert visit(client, "spring").headers["Location"] == "https://example.com/spring"


# --- the CLI ------------------------------------------------------------------------------------


def test_flask_links_edit_changes_the_link_and_records_it(runner, link):
    result = runner.invoke(
        args=[
            "links",
            "edit",
            "spring",
            "--url",
            "https://example.com/new",
            "--tags",
            "a, b",
            "--max-clicks",
            "9",
        ]
    )
    assert result.exit_code == 0, result.output
    assert '"url": "https://example.com/new"' in result.output
    db.session.expire_all()
    assert (link.target_url, link.tags, link.max_clicks) == ("https://example.com/new", ["a", "b"], 9)
    assert set(service.history(link)[0].changes) == {"url", "tags", "max_clicks"}


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["links", "edit", "nope", "--title", "x"], "no link with slug 'nope'"),
        (["links", "edit", "spring"], "say what to change"),
        (["links", "edit", "spring", "--expires-at", "soon"], "ISO 8601"),
        (["links", "edit", "spring", "--max-clicks", "-3"], "whole number"),
    ],
)
def test_flask_links_edit_errors_are_one_line(runner, link, args, message):
    result = runner.invoke(args=args)
    assert result.exit_code != 0
    assert message in result.output and "Traceback" not in result.output


@pytest.mark.parametrize("typed", ["²", "9" * 5000])
def test_a_click_limit_typed_as_odd_digits_is_a_clear_error(link, user, typed):
    with pytest.raises(InvalidLink, match="max_clicks"):
        service.update_link(link, {"max_clicks": typed}, user)
