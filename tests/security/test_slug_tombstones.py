"""A deleted link's slugs (its own and its old ones) stay reserved: printed links never lead to
someone else's target. The owner may take them again."""

import pytest

from tests.dashboard_helpers import OTHER_EMAIL, OTHER_PASSWORD
from webapp.auth.tokens import issue_token
from webapp.auth.users import create_user
from webapp.links import importer, service


@pytest.fixture
def other(app):
    return create_user(OTHER_EMAIL, OTHER_PASSWORD)


@pytest.fixture
def deleted(user):
    link = service.create_link("https://example.com/mine", user, slug="poster")[0]
    service.update_link(link, {"slug": "poster-2"}, user)  # "poster" is now an alias
    service.delete_link(link)


def test_another_user_cannot_claim_a_deleted_links_slug_or_old_slug(deleted, other):
    for slug in ("poster", "poster-2"):
        with pytest.raises(service.SlugTaken):
            service.create_link("https://evil.example/", other, slug=slug)


def test_the_api_answers_409_for_a_reserved_slug(client, deleted, other):
    _, token = issue_token(other, "t")
    response = client.post(
        "/api/links",
        json={"url": "https://evil.example/", "slug": "poster"},
        headers={"Authorization": f"Bearer {token}"},
    )
    assert response.status_code == 409


def test_the_owner_may_take_their_deleted_slug_again(deleted, user):
    link, created = service.create_link("https://example.com/again", user, slug="poster")
    assert created and link.slug == "poster"


def test_a_removed_alias_stays_reserved_for_its_owner(user, other):
    link = service.create_link("https://example.com/a", user, slug="old-name")[0]
    service.update_link(link, {"slug": "new-name"}, user)
    service.remove_alias(link, "old-name", user)
    with pytest.raises(service.SlugTaken):
        service.create_link("https://evil.example/", other, slug="old-name")
    service.update_link(link, {"slug": "old-name"}, user)  # the owner renames back


def test_an_import_cannot_claim_a_reserved_slug(deleted, other):
    plan = importer.plan_import(b"keyword,url\nposter,https://evil.example/\n", other)
    (row,) = plan.rows
    assert row.status == "error" and "deleted link" in row.error
