"""Managing a link in the dashboard: edit with history, old slugs, QR codes, tags, many at once.

Through the test client with real sessions and CSRF tokens (``dashboard_helpers``),
on the real Redis and database.
"""

import pytest

from tests.dashboard_helpers import OTHER_EMAIL, OTHER_PASSWORD, csrf_token, logged_in, record
from webapp.auth.users import create_user
from webapp.extensions import db
from webapp.links import service
from webapp.links.qr import qr_code
from webapp.links.representation import etag

TARGET = "https://example.com/spring"


@pytest.fixture
def owner(app, user):
    return logged_in(app)


@pytest.fixture
def link(user):
    return service.create_link(TARGET, user, slug="spring", title="Spring sale", tags=["promo"])[0]


def edit_form(link, **changes):
    form = {
        "url": link.target_url,
        "slug": link.slug,
        "title": link.title or "",
        "tags": ", ".join(link.tags),
        "redirect_code": "",
        "enabled": "1",
        "expires_at": "",
        "max_clicks": "",
        "etag": etag(link),
    }
    return {**form, **changes}


def save(client, link, **changes):
    token = csrf_token(client, f"/links/{link.slug}/edit")
    return client.post(f"/links/{link.slug}/edit", data={**edit_form(link, **changes), "csrf_token": token})


def test_the_edit_page_shows_every_field_filled_in(owner, link):
    html = owner.get("/links/spring/edit").text
    for value in (TARGET, 'value="spring"', "Spring sale", 'value="promo"'):
        assert value in html


def test_saving_a_new_target_keeps_the_clicks_and_shows_the_change(owner, link):
    record(link, count=3)
    response = save(
        owner, link, url="https://example.com/summer", max_clicks="500", expires_at="2031-01-01T09:30"
    )
    assert response.status_code == 303
    page = owner.get("/links/spring").text
    assert "https://example.com/summer" in page
    assert "3 of 500 clicks" in page and "2031-01-01 09:30 UTC" in page
    assert f"{TARGET} → https://example.com/summer" in page  # the history
    db.session.expire_all()
    assert link.counter.clicks == 3


def test_a_bad_field_is_a_400_with_the_message_beside_that_field(owner, link):
    response = save(owner, link, max_clicks="-5")
    assert response.status_code == 400
    assert 'data-field="max_clicks"' in response.text
    assert service.history(link) == []


def test_a_taken_slug_is_a_409_beside_the_slug(owner, link, user):
    service.create_link("https://example.org/", user, slug="taken")
    response = save(owner, link, slug="taken")
    assert response.status_code == 409
    assert 'data-field="slug"' in response.text and "already taken" in response.text


def test_saving_over_someone_elses_change_is_refused(owner, link, user):
    stale = edit_form(link)
    service.update_link(link, {"title": "Changed meanwhile"}, user)
    token = csrf_token(owner, "/links/spring/edit")
    response = owner.post("/links/spring/edit", data={**stale, "title": "Mine", "csrf_token": token})
    assert response.status_code == 409
    assert "Someone changed this link" in response.text
    db.session.expire_all()
    assert link.title == "Changed meanwhile"


def test_user_text_in_the_history_is_escaped(owner, link):
    save(owner, link, title="<script>alert(1)</script>")
    page = owner.get("/links/spring").text
    assert "<script>alert(1)</script>" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page


def test_a_renamed_links_old_slug_is_listed_and_can_be_stopped(owner, link, client):
    save(owner, link, slug="summer")
    page = owner.get("/links/summer").text
    assert "/r/spring" in page
    token = csrf_token(owner, "/links/summer")
    assert owner.post("/links/summer/aliases/spring/delete", data={"csrf_token": token}).status_code == 303
    assert client.get("/r/spring").status_code == 404


@pytest.mark.parametrize(("image_format", "mimetype"), [("svg", "image/svg+xml"), ("png", "image/png")])
def test_qr_downloads_are_the_short_urls_code(owner, link, image_format, mimetype):
    response = owner.get(f"/links/spring/qr.{image_format}?download=1")
    assert response.mimetype == mimetype
    assert response.headers["Content-Disposition"] == f'attachment; filename="spring-qr.{image_format}"'
    assert response.data == qr_code("http://localhost/r/spring", image_format)[0]


def test_another_users_link_cannot_be_edited_or_its_qr_read(app, link):
    create_user(OTHER_EMAIL, OTHER_PASSWORD)
    other = logged_in(app, OTHER_EMAIL, OTHER_PASSWORD)
    assert other.get("/links/spring/edit").status_code == 404
    assert other.get("/links/spring/qr.svg").status_code == 404
    token = csrf_token(other, "/links")
    assert other.post("/links/spring/edit", data={**edit_form(link), "csrf_token": token}).status_code == 404


def test_the_list_filters_by_tag_and_searches_titles(owner, link, user):
    service.create_link("https://example.org/other", user, slug="other", tags=["news"])
    by_tag = owner.get("/links?tag=promo").text
    assert "/r/spring" in by_tag and "/r/other" not in by_tag
    by_title = owner.get("/links?q=spring+sale").text
    assert "/r/spring" in by_title and "/r/other" not in by_title


def test_the_create_form_takes_title_tags_and_limits(owner):
    token = csrf_token(owner, "/links")
    response = owner.post(
        "/links",
        data={
            "url": "https://example.com/new",
            "slug": "fresh",
            "title": "New",
            "tags": "a, b",
            "max_clicks": "9",
            "csrf_token": token,
        },
    )
    assert response.status_code == 303
    created = service.get_link("fresh")
    assert (created.title, created.tags, created.max_clicks) == ("New", ["a", "b"], 9)


def test_pasted_lines_give_one_result_each(owner, link):
    token = csrf_token(owner, "/links")
    lines = f"https://example.com/a alpha\n{TARGET}\nnot a url\n\nhttps://example.com/b spring"
    page = owner.post("/links/bulk", data={"lines": lines, "csrf_token": token}).text
    assert page.count('data-status="created"') == 1
    assert page.count('data-status="existing"') == 1
    assert page.count('data-status="error"') == 2
    assert "1 created, 1 you already had, 2 refused." in page
    assert service.get_link("alpha") is not None
