"""POST /api/links and GET /api/links/<slug> through the Flask test client."""

import json
import re
from datetime import datetime, timedelta

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.strategies import JSON_VALUES, url_like
from webapp.auth.tokens import issue_token, revoke_token
from webapp.auth.users import create_user
from webapp.clicks.events import click_row, encode_click
from webapp.clicks.store import record_clicks
from webapp.extensions import db
from webapp.links import service
from webapp.links.validation import GENERATED_SLUG_LENGTH, SLUG_ALPHABET
from webapp.models import ApiToken, utcnow

URL = "https://example.com/page"
FUZZ = settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


def bearer(user, name="tests"):
    return {"Authorization": f"Bearer {issue_token(user, name)[1]}"}


@pytest.fixture
def other_headers(app):
    return bearer(create_user("other@example.com", "another long password"))


@pytest.fixture
def admin_headers(app):
    return bearer(create_user("admin@example.com", "an admin's long password", is_admin=True))


def create(client, headers, body=None, **fields):
    return client.post("/api/links", json=fields if body is None else body, headers=headers)


def assert_json_error(response, status, message=""):
    assert response.status_code == status
    assert response.is_json
    assert message in response.get_json()["error"]


# --- creating ---------------------------------------------------------------


def test_create_link_returns_201_with_slug_url_and_short_url(client, api_headers):
    response = create(client, api_headers, url=URL, slug="launch")
    assert response.status_code == 201
    body = response.get_json()
    assert (body["slug"], body["url"], body["short_url"]) == ("launch", URL, "http://localhost/r/launch")


def test_create_link_stores_the_normalised_url(client, api_headers):
    response = create(client, api_headers, url="HTTPS://Example.COM:443/page#top")
    assert response.get_json()["url"] == URL


def test_create_link_without_slug_generates_one(client, api_headers):
    slug = create(client, api_headers, url=URL).get_json()["slug"]
    assert len(slug) == GENERATED_SLUG_LENGTH
    assert set(slug) <= set(SLUG_ALPHABET)


def test_custom_slug_is_stored_lower_case(client, api_headers):
    assert create(client, api_headers, url=URL, slug="Launch-Day").get_json()["slug"] == "launch-day"


def test_created_link_redirects_at_its_short_url(client, api_headers):
    short_url = create(client, api_headers, url=URL).get_json()["short_url"]
    response = client.get(short_url)
    assert (response.status_code, response.headers["Location"]) == (302, URL)


def test_short_url_uses_the_public_base_url(make_app, api_headers):
    other = make_app(PUBLIC_BASE_URL="https://cb.example/")
    response = create(other.test_client(), api_headers, url=URL, slug="launch")
    assert response.get_json()["short_url"] == "https://cb.example/r/launch"


def test_new_link_reports_the_default_redirect_code_and_no_clicks(client, api_headers):
    body = create(client, api_headers, url=URL).get_json()
    counts = {key: body[key] for key in ("redirect_code", "clicks", "bot_clicks", "last_click_at")}
    assert counts == {"redirect_code": 302, "clicks": 0, "bot_clicks": 0, "last_click_at": None}


@pytest.mark.parametrize("code", [301, 302, 307, 308])
def test_create_link_accepts_each_redirect_code(client, api_headers, code):
    response = create(client, api_headers, url=URL, redirect_code=code)
    assert (response.status_code, response.get_json()["redirect_code"]) == (201, code)


# --- one link per URL and owner ---------------------------------------------


def test_same_url_twice_returns_the_existing_link_with_200(client, api_headers):
    first = create(client, api_headers, url=URL).get_json()
    second = create(client, api_headers, url=URL)
    assert (second.status_code, second.get_json()["slug"]) == (200, first["slug"])


@pytest.mark.parametrize(
    "equivalent",
    [
        "https://EXAMPLE.com/page",
        "HTTPS://example.com/page",
        "https://example.com:443/page",
        "https://example.com/page#section",
        "https://example.com./page",
        "  https://example.com/page  ",
    ],
)
def test_equivalent_url_returns_the_existing_link(client, api_headers, equivalent):
    first = create(client, api_headers, url=URL).get_json()
    second = create(client, api_headers, url=equivalent)
    assert (second.status_code, second.get_json()["slug"]) == (200, first["slug"])


def test_different_path_case_is_a_different_link(client, api_headers):
    first = create(client, api_headers, url=URL).get_json()
    second = create(client, api_headers, url="https://example.com/PAGE")
    assert (second.status_code, second.get_json()["slug"] != first["slug"]) == (201, True)


def test_same_url_from_another_user_is_a_new_link(client, api_headers, other_headers):
    first = create(client, api_headers, url=URL).get_json()
    second = create(client, other_headers, url=URL)
    assert (second.status_code, second.get_json()["slug"] != first["slug"]) == (201, True)


def test_duplicate_slug_is_409(client, api_headers):
    create(client, api_headers, url=URL, slug="launch")
    assert_json_error(create(client, api_headers, url="https://example.org/", slug="launch"), 409, "taken")


def test_duplicate_slug_in_other_case_is_409(client, api_headers):
    create(client, api_headers, url=URL, slug="launch")
    assert_json_error(create(client, api_headers, url="https://example.org/", slug="LAUNCH"), 409, "taken")


def test_slug_taken_by_another_user_is_409(client, api_headers, other_headers):
    create(client, api_headers, url=URL, slug="launch")
    assert_json_error(create(client, other_headers, url=URL, slug="launch"), 409, "taken")


# --- authentication ---------------------------------------------------------


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": "Bearer cb_not-a-real-token"},
        {"Authorization": "Bearer "},
        {"Authorization": "Basic b3duZXI6cGFzcw=="},
        {"Authorization": "cb_not-a-real-token"},
    ],
    ids=["missing", "unknown", "empty", "basic", "no-scheme"],
)
def test_create_without_a_valid_token_is_401_json(client, user, headers):
    response = create(client, headers, url=URL)
    assert_json_error(response, 401, "API token")
    assert response.headers["WWW-Authenticate"].startswith("Bearer")


def test_revoked_token_is_401(client, user):
    token, plaintext = issue_token(user, "soon revoked")
    revoke_token(token)
    assert_json_error(create(client, {"Authorization": f"Bearer {plaintext}"}, url=URL), 401)


def test_show_without_a_token_is_401(client, api_headers):
    create(client, api_headers, url=URL, slug="launch")
    assert_json_error(client.get("/api/links/launch"), 401)


def test_rejected_token_creates_nothing(client, user):
    create(client, {"Authorization": "Bearer nope"}, url=URL, slug="launch")
    assert service.get_link("launch") is None


def last_used(token):
    return db.session.scalar(db.select(ApiToken.last_used_at).where(ApiToken.id == token.id))


def test_a_new_token_was_never_used(user):
    token, _ = issue_token(user, "fresh")
    assert last_used(token) is None


def test_an_accepted_call_records_when_its_token_was_used(client, user):
    token, plaintext = issue_token(user, "script")
    before = utcnow()
    create(client, {"Authorization": f"Bearer {plaintext}"}, url=URL)
    assert before <= last_used(token) <= utcnow()


def test_last_use_is_written_at_most_once_a_minute(client, user):
    token, plaintext = issue_token(user, "busy")
    headers = {"Authorization": f"Bearer {plaintext}"}
    create(client, headers, url=URL, slug="first")
    first = last_used(token)
    client.get("/api/links/first", headers=headers)
    assert last_used(token) == first  # within the minute: no write
    older = first - timedelta(minutes=2)
    db.session.execute(db.update(ApiToken).where(ApiToken.id == token.id).values(last_used_at=older))
    db.session.commit()
    client.get("/api/links/first", headers=headers)
    assert last_used(token) > first


def test_a_rejected_call_records_no_use(client, user):
    token, plaintext = issue_token(user, "soon revoked")
    revoke_token(token)
    create(client, {"Authorization": f"Bearer {plaintext}"}, url=URL)
    assert last_used(token) is None


# --- malformed requests -----------------------------------------------------


@pytest.mark.parametrize(
    ("data", "content_type"),
    [
        ("url=https://example.com/page", "application/x-www-form-urlencoded"),
        ('{"url": "https://example.com/page"}', "text/plain"),
        ('{"url": "https://example.com/page"', "application/json"),
        ("", "application/json"),
        (b"\xff\xfe{}", "application/json"),
    ],
    ids=["form", "json-as-text", "truncated", "empty", "bad-utf8"],
)
def test_body_that_is_not_json_is_400_json(client, api_headers, data, content_type):
    response = client.post("/api/links", data=data, content_type=content_type, headers=api_headers)
    assert_json_error(response, 400, "JSON object")


@pytest.mark.parametrize("body", [["https://example.com/page"], "https://example.com/page", None, 42, True])
def test_json_body_that_is_not_an_object_is_400(client, api_headers, body):
    response = client.post(
        "/api/links", data=json.dumps(body), content_type="application/json", headers=api_headers
    )
    assert_json_error(response, 400, "JSON object")


@pytest.mark.parametrize("depth", [5_000, 100_000])
def test_deeply_nested_json_body_is_400(client, api_headers, depth):
    response = client.post(
        "/api/links", data="[" * depth, content_type="application/json", headers=api_headers
    )
    assert_json_error(response, 400, "JSON object")


def test_unknown_fields_are_400_and_named(client, api_headers):
    assert_json_error(create(client, api_headers, url=URL, owner_id=1, clicks=9), 400, "clicks, owner_id")


def test_body_over_the_size_limit_is_413_json(client, api_headers):
    body = '{"url": "https://example.com/?q=' + "x" * (2 * 1024 * 1024) + '"}'
    response = client.post("/api/links", data=body, content_type="application/json", headers=api_headers)
    assert_json_error(response, 413)


OK = "https://example.com/ok"


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"url": "javascript:alert(1)"}, "must start with http:// or https://"),
        ({"url": "data:text/html,<script>alert(1)</script>"}, "must start with http:// or https://"),
        ({"url": "ftp://example.com/file"}, "must start with http:// or https://"),
        ({"url": "example.com"}, "must start with http:// or https://"),
        ({"url": "http://"}, "must include a host name"),
        ({"url": "https:///path"}, "must include a host name"),
        ({"url": "https://example.com/" + "a" * 5000}, "longer than 2048 characters"),
        ({"url": "https://example.com/a b"}, "spaces or control characters"),
        ({"url": "https://example.com/\nSet-Cookie: x=1"}, "spaces or control characters"),
        ({"url": "https://user:pass@example.com/"}, "must not contain a user name or password"),
        ({"url": "https://example.com:99999/"}, "malformed"),
        ({"url": "https://exa..mple.com/"}, "invalid host name"),
        ({}, "url is required"),
        ({"url": ""}, "url is required"),
        ({"url": None}, "url is required"),
        ({"url": 42}, "url is required"),
        ({"url": {"href": OK}}, "url is required"),
        ({"url": OK, "slug": "-launch"}, "must start and end with a letter or digit"),
        ({"url": OK, "slug": "launch day"}, "may contain only letters, digits"),
        ({"url": OK, "slug": "café"}, "may contain only letters, digits"),
        ({"url": OK, "slug": "a" * 65}, "longer than 64 characters"),
        ({"url": OK, "slug": ""}, "non-empty string"),
        ({"url": OK, "slug": 7}, "non-empty string"),
        ({"url": OK, "slug": "api"}, "reserved"),
        ({"url": OK, "slug": "Metrics"}, "reserved"),
        ({"url": OK, "slug": "healthz"}, "reserved"),
        ({"url": OK, "redirect_code": 303}, "redirect_code must be one of 301, 302, 307, 308"),
        ({"url": OK, "redirect_code": "301"}, "redirect_code must be one of"),
        ({"url": OK, "redirect_code": True}, "redirect_code must be one of"),
        ({"url": OK, "redirect_code": 301.5}, "redirect_code must be one of"),
        ({"url": OK, "redirect_code": [301]}, "redirect_code must be one of"),
    ],
    ids=lambda value: re.sub(r"\W+", "-", str(value))[:40] if isinstance(value, dict) else None,
)
def test_invalid_link_is_400_with_a_useful_message(client, api_headers, body, message):
    assert_json_error(create(client, api_headers, body=body), 400, message)


def test_invalid_link_creates_nothing(client, api_headers):
    create(client, api_headers, url="javascript:alert(1)", slug="launch")
    assert service.get_link("launch") is None


# --- reading ----------------------------------------------------------------


def record(link, humans, bots, at=datetime(2026, 3, 1, 9, 30)):
    seconds = (at - datetime(1970, 1, 1)).total_seconds()
    rows = [
        click_row(encode_click(link.id, "HEAD" if number >= humans else "GET", None, None, "", at=seconds))
        for number in range(humans + bots)
    ]
    with db.engine.begin() as conn:
        record_clicks(conn, rows, check_duplicates=False)


def test_show_link_returns_it_with_no_clicks_at_first(client, api_headers):
    create(client, api_headers, url=URL, slug="launch")
    body = client.get("/api/links/launch", headers=api_headers).get_json()
    assert (body["slug"], body["url"], body["clicks"], body["bot_clicks"]) == ("launch", URL, 0, 0)


def test_show_link_returns_the_recorded_counts(client, api_headers):
    create(client, api_headers, url=URL, slug="launch")
    record(service.get_link("launch"), humans=3, bots=2)
    body = client.get("/api/links/launch", headers=api_headers).get_json()
    assert (body["clicks"], body["bot_clicks"], body["last_click_at"]) == (3, 2, "2026-03-01T09:30:00Z")


def test_show_link_slug_is_case_insensitive(client, api_headers):
    create(client, api_headers, url=URL, slug="launch")
    assert client.get("/api/links/LAUNCH", headers=api_headers).get_json()["slug"] == "launch"


@pytest.mark.parametrize("slug", ["nothing-here", "a.b", "api", "x" * 80])
def test_show_unknown_slug_is_404_json(client, api_headers, slug):
    assert_json_error(client.get(f"/api/links/{slug}", headers=api_headers), 404, "no link")


def test_show_another_users_link_is_404(client, api_headers, other_headers):
    create(client, other_headers, url=URL, slug="theirs")
    assert_json_error(client.get("/api/links/theirs", headers=api_headers), 404, "no link with slug 'theirs'")


def test_admin_sees_any_users_link(client, api_headers, admin_headers):
    create(client, api_headers, url=URL, slug="launch")
    response = client.get("/api/links/launch", headers=admin_headers)
    assert (response.status_code, response.get_json()["slug"]) == (200, "launch")


# --- never a 500 ------------------------------------------------------------

LINK_BODIES = st.fixed_dictionaries(
    {},
    optional={
        "url": st.one_of(url_like(), st.text(max_size=40), JSON_VALUES),
        "slug": st.one_of(
            st.text(max_size=70), st.from_regex(r"[A-Za-z0-9_-]{1,70}", fullmatch=True), JSON_VALUES
        ),
        "redirect_code": st.one_of(st.sampled_from([301, 302, 307, 308]), JSON_VALUES),
    },
)


def assert_handled(response):
    assert response.status_code in (200, 201, 400, 409)
    body = response.get_json()
    assert ("error" in body) if response.status_code >= 400 else ("slug" in body)


@FUZZ
@given(body=JSON_VALUES)
def test_any_json_body_gets_a_json_answer(client, api_headers, body):
    assert_handled(create(client, api_headers, body=body))


@FUZZ
@given(body=LINK_BODIES)
def test_any_link_shaped_body_gets_a_json_answer(client, api_headers, body):
    assert_handled(create(client, api_headers, body=body))


@FUZZ
@given(data=st.one_of(st.binary(max_size=200), st.text(max_size=200)))
def test_any_raw_body_gets_a_json_answer(client, api_headers, data):
    response = client.post("/api/links", data=data, content_type="application/json", headers=api_headers)
    assert_handled(response)
