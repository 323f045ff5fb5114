"""Importing other shorteners' CSV exports: each format told by its header, a preview
that writes nothing, per-row errors, whole-file limits, one transaction per import;
through ``flask links import`` and the dashboard."""

import pytest

from tests.dashboard_helpers import OTHER_EMAIL, OTHER_PASSWORD, csrf_token, logged_in
from webapp.auth.users import create_user
from webapp.extensions import db
from webapp.links import export, importer, service
from webapp.models import Link

YOURLS = """keyword,url,title,timestamp,ip,clicks
spring,https://example.com/spring,Spring sale,2024-03-01 10:00:00,203.0.113.1,42
guide,https://example.com/guide,,2024-03-02 11:00:00,203.0.113.2,0
"""
SHLINK = """createdAt,domain,shortCode,shortUrl,longUrl,title,tags,visits
2024-05-01T12:00:00+02:00,s.example,abc12,https://s.example/abc12,https://example.com/a,Page A,news|spring,7
2024-05-02T12:00:00+02:00,s.example,def34,https://s.example/def34,https://example.com/b,,,0
"""
KUTT = """address,target,description,visit_count,created_at
kutt1,https://example.com/k1,From Kutt,3,2024-01-01T00:00:00.000Z
"""
BITLY = """title,link,long_url,created_at,tags,clicks
My page,https://bit.ly/3AbCdEf,https://example.com/bitly,2023-06-01T08:00:00+0000,"one, two",12
"""


def import_cli(runner, text, *options):
    path = runner.app.instance_path + "/import.csv"
    with open(path, "w", encoding="utf-8") as file:
        file.write(text)
    return runner.invoke(args=["links", "import", path, "--owner", "owner@example.com", *options])


def links_by_slug():
    return {link.slug: link for link in db.session.scalars(db.select(Link))}


@pytest.mark.parametrize(
    ("text", "label", "expected"),
    [
        (YOURLS, "YOURLS", {"spring": ("https://example.com/spring", "Spring sale", [], 42)}),
        (SHLINK, "Shlink", {"abc12": ("https://example.com/a", "Page A", ["news", "spring"], 7)}),
        (KUTT, "Kutt", {"kutt1": ("https://example.com/k1", "From Kutt", [], 3)}),
        (BITLY, "Bitly", {"3abcdef": ("https://example.com/bitly", "My page", ["one", "two"], 12)}),
    ],
)
def test_each_format_is_told_by_its_header_and_imported_with_its_counts(runner, user, text, label, expected):
    result = import_cli(runner, text)
    assert result.exit_code == 0, result.output
    assert result.output.splitlines()[-1].startswith(f"{label} export")
    links = links_by_slug()
    for slug, (url, title, tags, clicks) in expected.items():
        link = links[slug]
        assert (link.target_url, link.title, link.tags) == (url, title, tags)
        assert (link.counter.clicks if link.counter else 0) == clicks
        assert link.owner_id == user.id


def test_the_source_creation_time_is_kept_in_utc(runner, user):
    import_cli(runner, SHLINK)
    assert links_by_slug()["abc12"].created_at.isoformat() == "2024-05-01T10:00:00"


def test_a_dry_run_writes_nothing_and_says_what_would_happen(runner, user):
    result = import_cli(runner, YOURLS, "--dry-run")
    assert result.exit_code == 0, result.output
    assert "would create 2" in result.output
    assert links_by_slug() == {}


def test_importing_twice_finds_the_links_already_here(runner, user):
    import_cli(runner, YOURLS)
    result = import_cli(runner, YOURLS)
    assert "created 0, 2 already here" in result.output
    assert len(links_by_slug()) == 2


def test_clickboard_export_round_trips_through_import(app, runner, user):
    service.create_link(
        "https://example.com/rt", user, slug="round", title="T", tags=["x"], max_clicks=9, redirect_code=301
    )
    exported = "".join(export.links_csv(db.session.scalars(db.select(Link)).all()))
    db.session.delete(service.get_link("round"))
    db.session.commit()
    result = import_cli(runner, exported)
    assert result.exit_code == 0 and "Clickboard export" in result.output, result.output
    link = service.get_link("round")
    assert (link.target_url, link.title, link.tags, link.max_clicks, link.redirect_code) == (
        "https://example.com/rt", "T", ["x"], 9, 301,
    )  # fmt: skip


def test_bad_rows_are_listed_by_line_and_skipped_while_good_rows_import(runner, user):
    other = create_user(OTHER_EMAIL, OTHER_PASSWORD)
    service.create_link("https://example.com/theirs", other, slug="taken")
    text = (
        "keyword,url,title,timestamp,ip,clicks\n"
        "good,https://example.com/good,,,,1\n"
        "bad-url,javascript:alert(1),,,,0\n"
        "Bad Slug!,https://example.com/x,,,,0\n"
        "good,https://example.com/again,,,,0\n"
        "taken,https://example.com/mine,,,,0\n"
        "many,https://example.com/m,,,,-5\n"
        "huge,https://example.com/h,,,,99999999999999999999999\n"
    )
    result = import_cli(runner, text)
    assert result.exit_code == 0, result.output
    assert "created 1, 0 already here, 6 with errors" in result.output
    for line, words in [
        (3, "http"),
        (4, "slug"),
        (5, "also on line 2"),
        (6, "already taken"),
        (7, "click"),
        (8, "click"),
    ]:
        assert any(msg.startswith(f"line {line}:") and words in msg for msg in result.output.splitlines()), (
            line
        )
    assert set(links_by_slug()) == {"good", "taken"}


@pytest.mark.parametrize(
    ("data", "words"),
    [
        (b"", "empty"),
        (b"name,address\nx,y\n", "unknown export format"),
        (b"keyword,url\n\xff\xfe,https://e.com\n", "not UTF-8"),
        (b'keyword,url\n"unterminated,https://e.com\n', "not valid CSV"),
        (b"keyword,url\nk\x00,https://e.com\n", "not valid CSV"),
        (b"keyword,url\n" + b"x" * (importer.MAX_FIELD_CHARS + 1) + b",https://e.com\n", "longer than"),
        (b"keyword,url\n" + b"k,https://e.com/\n" * (importer.MAX_ROWS + 1), "more than 50,000 rows"),
        (b"keyword,url\n" + b"a,b\n" * 1_000_000, "more than 50,000 rows"),  # 1M rows, under the size cap
        (b"keyword,url\n" + b"k" * (10 * 1024 * 1024), "larger than 5 MB"),
    ],
)
def test_a_file_that_cannot_be_imported_is_refused_whole(app, user, data, words):
    with pytest.raises(importer.InvalidImport, match=words):
        importer.plan_import(data, user)


def test_the_cli_refuses_a_bad_file_with_one_line_and_writes_nothing(runner, user):
    result = import_cli(runner, "name,address\nx,y\n")
    assert result.exit_code == 1 and "Error: unknown export format" in result.output
    assert links_by_slug() == {}


def test_a_slug_taken_between_preview_and_commit_leaves_nothing_half_imported(app, user):
    plan = importer.plan_import(YOURLS.encode(), user)
    service.create_link("https://example.com/elsewhere", user, slug="guide")  # taken meanwhile
    with pytest.raises(importer.InvalidImport, match="nothing was imported"):
        importer.commit_import(plan, user)
    assert set(links_by_slug()) == {"guide"}


def test_an_imported_slug_redirects_even_if_it_was_looked_up_before(app, client, runner, user):
    assert client.get("/r/spring").status_code == 404  # "no such link" is now cached
    import_cli(runner, YOURLS)
    response = client.get("/r/spring")
    assert response.status_code in (301, 302) and response.location == "https://example.com/spring"


def upload(client, text, name="export.csv"):
    """POST the file as a browser's form would; the body is built here, as the test client
    would spool a large one to a temporary file it never closes."""
    data = text if isinstance(text, bytes) else text.encode()
    token = csrf_token(client, "/links/import").encode()
    body = (
        b'--b\r\nContent-Disposition: form-data; name="csrf_token"\r\n\r\n' + token + b"\r\n"
        b'--b\r\nContent-Disposition: form-data; name="file"; filename="' + name.encode() + b'"\r\n'
        b"Content-Type: text/csv\r\n\r\n" + data + b"\r\n--b--\r\n"
    )
    return client.post("/links/import", data=body, content_type="multipart/form-data; boundary=b")


def staged_token(html):
    return html.split('name="token" value="')[1].split('"')[0]


def test_the_dashboard_previews_then_imports_what_it_showed(app, user):
    owner = logged_in(app)
    preview = upload(owner, YOURLS + "bad,ftp://example.com,,,,0\n")
    assert preview.status_code == 200
    assert "Preview: YOURLS export" in preview.text
    assert "2 to create, 0 already here" in preview.text and "Line 4:" in preview.text
    assert links_by_slug() == {}  # a preview writes nothing
    done = owner.post(
        "/links/import/commit",
        data={"csrf_token": csrf_token(owner, "/links/import"), "token": staged_token(preview.text)},
    )
    assert done.status_code == 303
    assert set(links_by_slug()) == {"spring", "guide"}
    page = owner.get("/links").text
    assert "Imported 2 links from the YOURLS export" in page


def test_a_preview_can_be_imported_once_and_only_by_its_user(app, user):
    create_user(OTHER_EMAIL, OTHER_PASSWORD)
    owner, other = logged_in(app), logged_in(app, OTHER_EMAIL, OTHER_PASSWORD)
    token = staged_token(upload(owner, KUTT).text)
    stolen = other.post(
        "/links/import/commit", data={"csrf_token": csrf_token(other, "/links/import"), "token": token}
    )
    assert stolen.status_code == 400 and "expired" in stolen.text
    form = {"csrf_token": csrf_token(owner, "/links/import"), "token": token}
    assert owner.post("/links/import/commit", data=form).status_code == 303
    again = owner.post("/links/import/commit", data=form)
    assert again.status_code == 400 and "upload the file again" in again.text
    assert len(links_by_slug()) == 1


@pytest.mark.parametrize(
    ("data", "status", "words"),
    [
        (b"keyword,url\n" + b"k" * (10 * 1024 * 1024), 413, "413"),
        (b"no,format\n1,2\n", 400, "unknown export format"),
        (b'keyword,url\n"k,https://e.com\n', 400, "not valid CSV"),
    ],
)
def test_the_dashboard_answers_a_bad_file_with_a_page_not_a_500(app, user, data, status, words):
    response = upload(logged_in(app), data)
    assert response.status_code == status
    assert words in response.text and "Traceback" not in response.text
