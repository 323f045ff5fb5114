"""Exports: a link's clicks as CSV (streamed a chunk at a time), every link as CSV or JSON,
through the API, the dashboard and ``flask links export``."""

import csv
import io
import json

import pytest

from tests.dashboard_helpers import logged_in, record
from webapp.links import export, service


@pytest.fixture
def link(user):
    return service.create_link(
        "https://example.com/x", user, slug="exported", title="=cmd|' /C calc'!A0", tags=["a"]
    )[0]


def rows_of(text):
    return list(csv.reader(io.StringIO(text)))


def test_the_api_streams_every_click_as_csv_in_chunks(client, api_headers, link, monkeypatch):
    monkeypatch.setattr(export, "CHUNK", 7)  # many chunks from few clicks
    record(link, count=30, referrer="https://news.example/")
    response = client.get("/api/links/exported/clicks?format=csv", headers=api_headers)
    assert response.is_streamed and response.mimetype == "text/csv"
    rows = rows_of(response.get_data(as_text=True))
    assert rows[0] == list(export.CLICK_COLUMNS)
    assert len(rows) == 31
    assert {row[1] for row in rows[1:]} == {"https://news.example/"}


def test_an_unknown_clicks_format_is_a_400(client, api_headers, link):
    response = client.get("/api/links/exported/clicks?format=xml", headers=api_headers)
    assert response.status_code == 400 and "format" in response.get_json()["error"]


def test_formula_cells_are_neutralised(link):
    (header, row) = rows_of("".join(export.links_csv([link])))
    assert row[header.index("title")].startswith("'=")


def test_links_export_as_json_round_trips_the_contract_fields(runner, link):
    result = runner.invoke(args=["links", "export", "--format", "json"])
    assert result.exit_code == 0, result.output
    (exported,) = json.loads(result.output)
    assert (exported["slug"], exported["url"], exported["tags"]) == (
        "exported",
        "https://example.com/x",
        ["a"],
    )


def test_links_export_as_csv_has_a_row_per_link(runner, link, user):
    service.create_link("https://example.com/y", user, slug="second")
    rows = rows_of(runner.invoke(args=["links", "export"]).output)
    assert rows[0] == list(export.LINK_COLUMNS)
    assert [row[0] for row in rows[1:]] == ["exported", "second"]


def test_the_dashboard_exports_only_the_users_links_and_their_clicks(app, link, user):
    record(link, count=3)
    owner = logged_in(app)
    links = owner.get("/export/links.csv")
    assert links.headers["Content-Disposition"] == 'attachment; filename="clickboard-links.csv"'
    assert len(rows_of(links.get_data(as_text=True))) == 2
    clicks = owner.get("/links/exported/clicks.csv")
    assert len(rows_of(clicks.get_data(as_text=True))) == 4
    assert owner.get("/export/links.xml").status_code == 404


def test_flask_links_clicks_writes_every_click_of_the_link(runner, link, user, monkeypatch):
    monkeypatch.setattr(export, "CHUNK", 4)
    other = service.create_link("https://example.com/other", user, slug="other")[0]
    record(link, count=9, user_agent="=HYPERLINK(1)")
    record(other, count=3)
    result = runner.invoke(args=["links", "clicks", "exported"])
    assert result.exit_code == 0, result.output
    rows = rows_of(result.output)
    assert rows[0] == list(export.CLICK_COLUMNS) and len(rows) == 10
    assert {row[2] for row in rows[1:]} == {"'=HYPERLINK(1)"}


def test_flask_links_clicks_of_an_unknown_slug_is_one_line(runner):
    result = runner.invoke(args=["links", "clicks", "nope"])
    assert result.exit_code == 1 and "no link with slug 'nope'" in result.output
