"""The ``flask`` commands: users, tokens, links and first-run setup."""

import json

import pytest
from sqlalchemy import func, select

from tests.processes import ClickLogWriter
from webapp.auth.users import create_user, find_user
from webapp.cli import setup as setup_command
from webapp.clicks import buffer
from webapp.clicks.buffer import CLICK_BUFFER
from webapp.clicks.events import encode_click
from webapp.extensions import db
from webapp.links import service
from webapp.models import ApiToken, Click, Link, LinkCounter, PageView, User

ADMIN_PASSWORD = "an admin's long password"


@pytest.fixture
def admin(app):
    return create_user("admin@example.com", ADMIN_PASSWORD, is_admin=True)


def count(model):
    return db.session.scalar(select(func.count()).select_from(model))


def post_link(client, token, slug="launch"):
    return client.post(
        "/api/links",
        json={"url": "https://example.com/", "slug": slug},
        headers={"Authorization": f"Bearer {token}"},
    )


# --- users create -----------------------------------------------------------


def test_users_create_adds_a_user_who_can_log_in(runner):
    result = runner.invoke(args=["users", "create", "New@Example.com", "--password", "long enough pw"])
    assert (result.exit_code, result.output.strip()) == (0, "created user new@example.com")
    assert find_user("new@example.com").check_password("long enough pw")


def test_users_create_admin_flag_makes_an_admin(runner):
    runner.invoke(args=["users", "create", "boss@example.com", "--password", "long enough pw", "--admin"])
    assert find_user("boss@example.com").is_admin


def test_users_create_without_admin_flag_makes_a_plain_user(runner):
    runner.invoke(args=["users", "create", "new@example.com", "--password", "long enough pw"])
    assert not find_user("new@example.com").is_admin


@pytest.mark.parametrize("email", ["not-an-email", "a@b", "two@@example.com", "spaced out@example.com"])
def test_users_create_rejects_a_bad_email_clearly(runner, email):
    result = runner.invoke(args=["users", "create", email, "--password", "long enough pw"])
    assert result.exit_code != 0
    assert "is not a valid email address" in result.output
    assert count(User) == 0


def test_users_create_rejects_a_short_password_clearly(runner):
    result = runner.invoke(args=["users", "create", "new@example.com", "--password", "short"])
    assert result.exit_code != 0
    assert "password must be at least 8 characters" in result.output
    assert count(User) == 0


def test_users_create_rejects_an_existing_email(runner, user):
    result = runner.invoke(args=["users", "create", "OWNER@example.com", "--password", "long enough pw"])
    assert result.exit_code != 0
    assert "already exists" in result.output


def test_users_create_prompts_for_the_password_twice(runner):
    result = runner.invoke(
        args=["users", "create", "new@example.com"], input="long enough pw\nlong enough pw\n"
    )
    assert result.exit_code == 0
    assert find_user("new@example.com").check_password("long enough pw")


# --- tokens -----------------------------------------------------------------


def test_tokens_create_prints_a_token_that_authenticates(runner, client, admin):
    result = runner.invoke(args=["tokens", "create", "deploy"])
    assert result.exit_code == 0
    assert post_link(client, result.output.strip()).status_code == 201


def test_tokens_create_belongs_to_the_first_admin_by_default(runner, client, user, admin):
    token = runner.invoke(args=["tokens", "create", "deploy"]).output.strip()
    post_link(client, token)
    assert service.get_link("launch").owner_id == admin.id


def test_tokens_create_for_a_named_user(runner, client, user, admin):
    token = runner.invoke(args=["tokens", "create", "deploy", "--user", "owner@example.com"]).output.strip()
    post_link(client, token)
    assert service.get_link("launch").owner_id == user.id


def test_tokens_create_without_any_admin_fails_clearly(runner):
    result = runner.invoke(args=["tokens", "create", "deploy"])
    assert result.exit_code != 0
    assert "no users yet" in result.output


def test_tokens_create_for_an_unknown_user_fails_clearly(runner, admin):
    result = runner.invoke(args=["tokens", "create", "deploy", "--user", "ghost@example.com"])
    assert result.exit_code != 0
    assert "no user ghost@example.com" in result.output


def test_tokens_list_shows_id_name_owner_and_state(runner, admin):
    runner.invoke(args=["tokens", "create", "deploy"])
    token_id = db.session.scalar(select(ApiToken.id))
    assert runner.invoke(args=["tokens", "list"]).output.splitlines() == [
        f"{token_id}\tdeploy\tadmin@example.com\tactive"
    ]


def test_tokens_list_never_shows_the_secret(runner, admin):
    token = runner.invoke(args=["tokens", "create", "deploy"]).output.strip()
    assert token not in runner.invoke(args=["tokens", "list"]).output


def test_tokens_revoke_marks_the_token_revoked(runner, admin):
    runner.invoke(args=["tokens", "create", "deploy"])
    token_id = db.session.scalar(select(ApiToken.id))
    result = runner.invoke(args=["tokens", "revoke", str(token_id)])
    assert (result.exit_code, result.output.strip()) == (0, f"revoked token {token_id} (deploy)")
    assert runner.invoke(args=["tokens", "list"]).output.strip().endswith("\trevoked")


def test_revoked_token_no_longer_authenticates(runner, client, admin):
    token = runner.invoke(args=["tokens", "create", "deploy"]).output.strip()
    runner.invoke(args=["tokens", "revoke", str(db.session.scalar(select(ApiToken.id)))])
    assert post_link(client, token).status_code == 401


def test_revoking_one_token_leaves_the_others_working(runner, client, admin):
    runner.invoke(args=["tokens", "create", "old"])
    kept = runner.invoke(args=["tokens", "create", "new"]).output.strip()
    runner.invoke(args=["tokens", "revoke", str(db.session.scalar(select(func.min(ApiToken.id))))])
    assert post_link(client, kept).status_code == 201


def test_tokens_revoke_unknown_id_fails_clearly(runner, admin):
    result = runner.invoke(args=["tokens", "revoke", "999"])
    assert result.exit_code != 0
    assert "no token with id 999" in result.output


# --- links ------------------------------------------------------------------


def test_links_create_prints_the_link_as_json(runner, admin):
    result = runner.invoke(args=["links", "create", "HTTPS://Example.com/page#top", "--slug", "Launch"])
    assert result.exit_code == 0
    body = json.loads(result.output)
    assert (body["slug"], body["url"], body["short_url"]) == (
        "launch",
        "https://example.com/page",
        "http://127.0.0.1:8000/r/launch",
    )


def test_links_create_owner_is_the_first_admin(runner, admin):
    runner.invoke(args=["links", "create", "https://example.com/", "--slug", "launch"])
    assert service.get_link("launch").owner_id == admin.id


def test_links_create_rejects_an_invalid_url_clearly(runner, admin):
    result = runner.invoke(args=["links", "create", "javascript:alert(1)", "--slug", "launch"])
    assert result.exit_code != 0
    assert "must start with http:// or https://" in result.output
    assert service.get_link("launch") is None


def test_links_create_rejects_a_taken_slug_clearly(runner, admin):
    runner.invoke(args=["links", "create", "https://example.com/", "--slug", "launch"])
    result = runner.invoke(args=["links", "create", "https://example.org/", "--slug", "launch"])
    assert result.exit_code != 0
    assert "already taken" in result.output


def test_links_show_prints_the_link_with_its_counts(runner, admin):
    runner.invoke(args=["links", "create", "https://example.com/", "--slug", "launch"])
    result = runner.invoke(args=["links", "show", "LAUNCH"])
    body = json.loads(result.output)
    assert (result.exit_code, body["slug"], body["clicks"], body["bot_clicks"]) == (0, "launch", 0, 0)


def test_links_show_unknown_slug_fails_clearly(runner):
    result = runner.invoke(args=["links", "show", "nothing-here"])
    assert result.exit_code != 0
    assert "no link with slug 'nothing-here'" in result.output


# --- clicks -----------------------------------------------------------------


def click_lines(link, count):
    return [encode_click(link.id, "GET", None, "Mozilla/5.0", "203.0.113.9") for _ in range(count)]


def test_clicks_drain_records_the_buffered_clicks(runner, user, redis_client):
    link, _ = service.create_link("https://example.com/", user, slug="launch")
    CLICK_BUFFER.append(redis_client, click_lines(link, 3))
    result = runner.invoke(args=["clicks", "drain"])
    assert (result.exit_code, result.output.strip()) == (0, "recorded 3 clicks")
    assert count(Click) == 3
    assert redis_client.get(CLICK_BUFFER.last_drain_key)


def test_clicks_ship_orphans_ships_the_log_of_a_dead_process(app, runner, user, redis_client):
    link, _ = service.create_link("https://example.com/", user, slug="launch")
    lines = click_lines(link, 4)
    ClickLogWriter(app.config["CLICK_LOG_DIR"], lines).exit()
    result = runner.invoke(args=["clicks", "ship-orphans"])
    assert (result.exit_code, result.output.strip()) == (0, "shipped 4 clicks")
    assert CLICK_BUFFER.waiting_lines(redis_client) == lines
    assert buffer.counters(redis_client)["clicks_shipped_late"] == 4


def test_clicks_ship_orphans_leaves_a_live_process_log_alone(app, runner, user, redis_client):
    link, _ = service.create_link("https://example.com/", user, slug="launch")
    writer = ClickLogWriter(app.config["CLICK_LOG_DIR"], click_lines(link, 2))
    try:
        assert runner.invoke(args=["clicks", "ship-orphans"]).output.strip() == "shipped 0 clicks"
    finally:
        writer.exit()
    assert redis_client.xlen(CLICK_BUFFER.stream) == 0


def test_clicks_ship_orphans_before_any_click_was_logged_ships_nothing(runner):
    result = runner.invoke(args=["clicks", "ship-orphans"])
    assert (result.exit_code, result.output.strip()) == (0, "shipped 0 clicks")


# --- setup ------------------------------------------------------------------


@pytest.fixture(autouse=True)
def fewer_demo_pageviews(monkeypatch):
    # 200,000 demo page views take a second per setup run; a few show the same.
    monkeypatch.setattr(setup_command, "DEMO_PAGEVIEWS", 500)


@pytest.fixture
def admin_settings(app, monkeypatch):
    for name, value in {"ADMIN_EMAIL": "boss@example.com", "ADMIN_PASSWORD": "the boss's password"}.items():
        monkeypatch.setenv(name, value)
        monkeypatch.setitem(app.config, name, value)


def totals():
    return {model.__name__: count(model) for model in (User, ApiToken, Link, Click, LinkCounter, PageView)}


def test_setup_creates_the_admin_from_the_settings(runner, admin_settings):
    assert runner.invoke(args=["setup"]).exit_code == 0
    boss = find_user("boss@example.com")
    assert boss.is_admin
    assert boss.check_password("the boss's password")


def test_setup_does_not_print_a_password_it_was_given(runner, admin_settings):
    assert "the boss's password" not in runner.invoke(args=["setup"]).output


def test_setup_without_a_password_prints_a_generated_one_that_works(runner, monkeypatch, app):
    monkeypatch.setitem(app.config, "ADMIN_PASSWORD", None)
    output = runner.invoke(args=["setup", "--no-demo"]).output
    password = output.split("with password: ", 1)[1].split()[0]
    assert find_user(app.config["ADMIN_EMAIL"]).check_password(password)


def test_setup_adds_demo_links_with_counted_clicks(runner, admin_settings):
    runner.invoke(args=["setup"])
    links = db.session.scalars(select(Link).order_by(Link.slug)).all()
    assert [link.slug for link in links] == ["celery-docs", "flask-docs", "htmx"]
    assert all(link.counter.clicks > 0 and link.counter.bot_clicks > 0 for link in links)
    assert sum(link.counter.clicks + link.counter.bot_clicks for link in links) == count(Click)


def test_setup_adds_demo_page_views(runner, admin_settings):
    runner.invoke(args=["setup"])
    assert count(PageView) > 0


def test_setup_demo_links_redirect(runner, client, admin_settings):
    runner.invoke(args=["setup"])
    response = client.get("/r/htmx")
    assert (response.status_code, response.headers["Location"]) == (302, "https://htmx.org/")


def test_setup_prints_a_demo_token_that_authenticates(runner, client, admin_settings):
    output = runner.invoke(args=["setup"]).output
    token = output.split("(shown once): ", 1)[1].split()[0]
    assert post_link(client, token).status_code == 201


def test_setup_a_second_time_adds_nothing(runner, admin_settings):
    runner.invoke(args=["setup"])
    before = totals()
    result = runner.invoke(args=["setup"])
    assert (result.exit_code, result.output, totals()) == (0, "", before)


def test_setup_adds_no_demo_data_to_a_database_with_links(runner, admin_settings, user):
    service.create_link("https://example.com/", user, slug="mine")
    runner.invoke(args=["setup"])
    assert (count(Link), count(Click), find_user("boss@example.com")) == (1, 0, None)


def test_setup_no_demo_creates_only_the_admin(runner, admin_settings):
    runner.invoke(args=["setup", "--no-demo"])
    assert (count(User), count(Link), count(ApiToken)) == (1, 0, 0)
