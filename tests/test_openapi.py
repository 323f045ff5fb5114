"""The API's OpenAPI description matches the API, and the API keeps to it under fuzzing.

Two guards against drift: every ``/api`` route in the app is described
with exactly its methods (and nothing that does not exist is), and
schemathesis sends generated requests, valid and invalid, to a live
gunicorn over a real Redis and database and checks every answer: no 5xx,
and status, content type, headers and body as described.
"""

import collections
import re

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis.specs.openapi.checks import positive_data_acceptance

from webapp.api.openapi import spec
from webapp.auth.tokens import issue_token
from webapp.links import service

UNDESCRIBED = {"/api/openapi.json", "/api/docs"}  # the description itself and its page


def described_operations():
    return {
        (path, method.upper())
        for path, item in spec()["paths"].items()
        for method in item
        if method != "parameters"
    }


def routed_operations(app):
    operations = set()
    for rule in app.url_map.iter_rules():
        if rule.rule.startswith("/api/") and rule.rule not in UNDESCRIBED:
            path = re.sub(r"<(?:[^:>]+:)?([^>]+)>", r"{\1}", rule.rule)
            operations |= {(path, method) for method in rule.methods - {"HEAD", "OPTIONS"}}
    return operations


def test_every_api_route_is_described_with_its_methods_and_nothing_else(app):
    assert routed_operations(app) == described_operations()


def test_the_description_is_served_with_this_server_and_the_docs_page_renders_it(client):
    document = client.get("/api/openapi.json").get_json()
    assert document["openapi"] == "3.1.0"
    assert document["servers"] == [{"url": "http://localhost"}]
    page = client.get("/api/docs").text
    assert 'spec-url="/api/openapi.json"' in page
    assert "/static/vendor/redoc-" in page and "cdn" not in page.lower()


def test_the_description_is_a_valid_openapi_document():
    schemathesis.openapi.from_dict(spec("http://127.0.0.1")).validate()


@pytest.fixture
def live_api(app, user, processes):
    """The live API's description, served by gunicorn, with a token and one link (and an alias) to find."""
    web = processes.web(workers=2)
    _, token = issue_token(user, "fuzz")
    link = service.create_link("https://example.com/fuzz", user, slug="prelaunch", tags=["fuzz"])[0]
    service.update_link(link, {"slug": "launch"}, user)  # "prelaunch" stays as its alias
    return schemathesis.openapi.from_url(f"{web.url}/api/openapi.json"), {"Authorization": f"Bearer {token}"}


def realistic(operation):
    """Generated cases, half of them pointed at the link that exists and given a target URL the
    service accepts: random slugs and strings would only ever meet 404s and 400s."""
    return st.tuples(operation.as_strategy(), st.booleans(), st.integers(0, 10**6)).map(make_realistic)


def make_realistic(generated):
    case, realistic, number = generated
    if realistic:
        if "slug" in (case.path_parameters or {}):
            case.path_parameters["slug"] = "launch"
        if "alias" in (case.path_parameters or {}):
            case.path_parameters["alias"] = "prelaunch"
        items = case.body if isinstance(case.body, list) else [case.body]
        for item in items:
            if isinstance(item, dict) and "url" in item and "response_time_ms" not in item:
                item["url"] = f"https://example.com/{number}"
    return case


@pytest.mark.integration
@pytest.mark.parametrize(("path", "method"), sorted(described_operations()))
def test_the_api_answers_every_generated_request_as_described(live_api, path, method):
    schema, headers = live_api
    operation = schema[path][method]
    answered = []

    @given(case=realistic(operation))
    @settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
    def answers_as_described(case):
        # Schema-valid data may still be refused: "a" is a string, not a URL the
        # service accepts. Everything else schemathesis checks stays on.
        answered.append(case.call_and_validate(headers=headers, excluded_checks=[positive_data_acceptance]))

    answers_as_described()
    assert answered, "no request was generated"
    statuses = collections.Counter(response.status_code for response in answered)
    assert any(status < 300 for status in statuses), f"no request succeeded: {statuses}"
