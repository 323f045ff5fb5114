"""Links from another shortener's CSV export: YOURLS, Shlink, Kutt, Bitly, or Clickboard's own.

The format is told by the header row. An import is planned first (every
row read and validated, every slug checked against the database, nothing
written), which is what the preview shows; committing writes the plan's new
links, their tags and their imported click counts in one transaction, so a
failure leaves nothing half imported. Rows with errors are skipped and
listed. Imported clicks are a count on the link (the sources give no
times), so they show in its totals, not in its charts.

Written here rather than taken from a library: each source's columns are a
few lines of mapping, and no maintained package reads these exports.
"""

import csv
import io
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from urllib.parse import urlsplit

from sqlalchemy.exc import IntegrityError

from webapp.extensions import db
from webapp.links import cache, service
from webapp.links.validation import MAX_CLICK_LIMIT, InvalidLink, generate_slug
from webapp.models import Link, LinkAlias, LinkCounter, SlugTombstone

MAX_BYTES = 5 * 1024 * 1024
MAX_ROWS = 50_000
MAX_FIELD_CHARS = 10_000  # a URL is at most 2,048; a longer cell is not a link export
CHUNK = 500  # slugs per IN (...) query
TAG_SEPARATORS = re.compile(r"[|,;]")


class InvalidImport(ValueError):
    """The file as a whole cannot be imported; the message is for the user."""


@dataclass(frozen=True)
class Source:
    """One shortener's export: its name, and the header names of each field we read."""

    name: str
    label: str
    columns: dict  # field -> accepted header names, normalised (see header_key)
    required: tuple = ("url", "slug")
    tag_separator: re.Pattern = TAG_SEPARATORS


SOURCES = (
    Source(
        "clickboard",
        "Clickboard",
        {
            "slug": ("slug",),
            "url": ("url",),
            "title": ("title",),
            "tags": ("tags",),
            "redirect_code": ("redirectcode",),
            "enabled": ("enabled",),
            "expires_at": ("expiresat",),
            "max_clicks": ("maxclicks",),
            "clicks": ("clicks",),
            "created_at": ("createdat",),
        },
    ),  # fmt: skip
    Source(
        "yourls",
        "YOURLS",
        {
            "slug": ("keyword",),
            "url": ("url",),
            "title": ("title",),
            "clicks": ("clicks",),
            "created_at": ("timestamp",),
        },
    ),  # fmt: skip
    Source(
        "shlink",
        "Shlink",
        {
            "slug": ("shortcode",),
            "url": ("longurl",),
            "title": ("title",),
            "tags": ("tags",),
            "clicks": ("visits", "visitssummarytotal"),
            "created_at": ("createdat", "datecreated"),
        },
    ),  # fmt: skip
    Source(
        "kutt",
        "Kutt",
        {
            "slug": ("address",),
            "url": ("target",),
            "title": ("description",),
            "clicks": ("visitcount",),
            "created_at": ("createdat",),
        },
    ),  # fmt: skip
    Source(
        "bitly",
        "Bitly",
        {
            "slug": ("link", "bitlink", "shortlink", "shorturl"),
            "url": ("longurl",),
            "title": ("title",),
            "tags": ("tags",),
            "clicks": ("clicks", "totalclicks", "engagements"),
            "created_at": ("createdat", "datecreated", "created"),
        },
    ),  # fmt: skip
)
SOURCE_NAMES = tuple(source.name for source in SOURCES)


@dataclass
class ImportRow:
    line: int
    slug: str | None = None
    url: str | None = None
    title: str | None = None
    tags: list = field(default_factory=list)
    clicks: int = 0
    created_at: datetime | None = None
    fields: dict = field(default_factory=dict)  # validated service fields
    status: str = "new"  # new | existing | error
    error: str | None = None


@dataclass
class ImportPlan:
    source: Source
    rows: list

    def count(self, status):
        return sum(1 for row in self.rows if row.status == status)

    @property
    def errors(self):
        return [row for row in self.rows if row.status == "error"]

    @property
    def new_rows(self):
        return [row for row in self.rows if row.status == "new"]


def header_key(name):
    """``Long URL``, ``long_url`` and ``longUrl`` are one column."""
    return re.sub(r"[^a-z0-9]", "", name.lower())


def decode(data):
    if len(data) > MAX_BYTES:
        raise InvalidImport(
            f"the file is larger than {MAX_BYTES // (1024 * 1024)} MB: split it and import each part"
        )
    try:
        text = data.decode("utf-8-sig")  # spreadsheets put a byte-order mark first
    except UnicodeDecodeError as exc:
        raise InvalidImport(f"the file is not UTF-8 text (byte {exc.start}): save it as UTF-8 CSV") from None
    if "\x00" in text:
        raise InvalidImport("the file is not valid CSV: it contains NUL bytes (a spreadsheet's own format?)")
    return text


def read_table(text):
    """(header, [(line number, cells)]) of a comma-, semicolon- or tab-separated file."""
    try:
        dialect = csv.Sniffer().sniff(text[:4096], delimiters=",;\t")
    except csv.Error:
        dialect = csv.excel
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=dialect.delimiter, strict=True)
    rows = []
    try:
        header = next(reader, None)
        for cells in reader:
            if not any(cell.strip() for cell in cells):
                continue
            if len(rows) >= MAX_ROWS:
                raise InvalidImport(
                    f"the file has more than {MAX_ROWS:,} rows: split it and import each part"
                )
            if any(len(cell) > MAX_FIELD_CHARS for cell in cells):
                raise InvalidImport(
                    f"line {reader.line_num}: a cell is longer than {MAX_FIELD_CHARS:,} characters"
                )
            rows.append((reader.line_num, cells))
    except csv.Error as exc:
        raise InvalidImport(f"the file is not valid CSV (line {reader.line_num}): {exc}") from None
    if not header:
        raise InvalidImport("the file is empty: it needs a header row naming its columns")
    return header, rows


def detect(header):
    """The source whose columns the header names, and where each field's column is."""
    keys = [header_key(name) for name in header]
    for source in SOURCES:
        positions = {}
        for field_name, names in source.columns.items():
            found = next((keys.index(name) for name in names if name in keys), None)
            if found is not None:
                positions[field_name] = found
        if all(name in positions for name in source.required):
            return source, positions
    known = "; ".join(
        f"{source.label}: {', '.join(source.columns['slug'] + source.columns['url'])}" for source in SOURCES
    )
    raise InvalidImport(f"unknown export format: the header names none of the known column pairs ({known})")


def parse(data):
    """(source, [ImportRow]) read from the file's bytes, each row's values still raw text."""
    header, table = read_table(decode(data))
    source, positions = detect(header)
    rows = []
    for line, cells in table:
        raw = {name: cells[index].strip() if index < len(cells) else "" for name, index in positions.items()}
        rows.append(read_row(source, line, raw))
    return source, rows


def read_row(source, line, raw):
    row = ImportRow(line=line, url=raw.get("url") or None, title=raw.get("title") or None)
    try:
        row.slug = slug_of(source, raw.get("slug", ""))
        row.tags = [tag for tag in source.tag_separator.split(raw.get("tags", "")) if tag.strip()]
        row.clicks = click_count(raw.get("clicks", ""))
        row.created_at = created_at(raw.get("created_at", ""))
        fields = {"url": row.url, "title": row.title, "tags": row.tags, **clickboard_fields(source, raw)}
        if row.slug:
            fields["slug"] = row.slug
        row.fields = service.clean_fields(fields)
        row.slug = row.fields.get("slug")
        row.url = row.fields["url"]
    except InvalidLink as exc:
        row.status, row.error = "error", str(exc)
    return row


def slug_of(source, text):
    """The slug in a slug column, or the path of a short URL (Bitly's ``bit.ly/3xYz``)."""
    if source.name == "bitly" and text:
        text = urlsplit(text if "//" in text else "//" + text).path.strip("/")
    return text or None


def click_count(text):
    if not text:
        return 0
    if not (text.isascii() and text.isdigit()) or len(text) > 13 or int(text) > MAX_CLICK_LIMIT:
        raise InvalidLink(
            f"the click count must be a whole number up to {MAX_CLICK_LIMIT:,}, not '{text[:20]}'"
        )
    return int(text)


def created_at(text):
    """The source's creation time as naive UTC; None (import time) when missing or unreadable."""
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    if moment.tzinfo is not None:
        moment = moment.astimezone(UTC).replace(tzinfo=None)
    return moment if 1990 <= moment.year <= 9998 else None


def clickboard_fields(source, raw):
    """The fields only Clickboard's own export carries, as ``service.clean_fields`` takes them."""
    if source.name != "clickboard":
        return {}
    fields = {"expires_at": raw.get("expires_at") or None, "max_clicks": raw.get("max_clicks") or None}
    if raw.get("redirect_code"):
        code = raw["redirect_code"]
        fields["redirect_code"] = int(code) if code.isascii() and code.isdigit() and len(code) < 4 else code
    if raw.get("enabled"):
        fields["enabled"] = {"true": True, "1": True, "false": False, "0": False}.get(
            raw["enabled"].lower(), raw["enabled"]
        )
    return fields


def plan_import(data, owner):
    """Read and check a file; nothing is written. Raises ``InvalidImport`` for the file as a whole."""
    source, rows = parse(data)
    mark_repeated_slugs(rows)
    mark_taken_slugs(rows, owner)
    mark_owned_urls(rows, owner)
    return ImportPlan(source, rows)


def mark_repeated_slugs(rows):
    first_line = {}
    for row in rows:
        if row.status == "error" or not row.slug:
            continue
        if row.slug in first_line:
            row.status, row.error = "error", f"slug '{row.slug}' is also on line {first_line[row.slug]}"
        else:
            first_line[row.slug] = row.line


def mark_taken_slugs(rows, owner):
    """A slug already here is the same link (skipped as existing) or another's (an error)."""
    wanted = {row.slug: row for row in rows if row.status == "new" and row.slug}
    slugs = list(wanted)
    owner_id = owner.id if owner else None
    for start in range(0, len(slugs), CHUNK):
        chunk = slugs[start : start + CHUNK]
        links = db.session.execute(
            db.select(Link.slug, Link.target_url, Link.owner_id).where(Link.slug.in_(chunk))
        ).all()
        for slug, target, link_owner in links:
            row = wanted[slug]
            if target == row.url and link_owner == owner_id:
                row.status = "existing"
            else:
                row.status, row.error = "error", f"slug '{slug}' is already taken"
        aliases = db.session.scalars(db.select(LinkAlias.slug).where(LinkAlias.slug.in_(chunk))).all()
        for slug in aliases:
            wanted[slug].status, wanted[slug].error = "error", f"slug '{slug}' is already taken (an old slug)"
        reserved = db.session.scalars(
            db.select(SlugTombstone.slug).where(
                SlugTombstone.slug.in_(chunk), SlugTombstone.owner_id.is_distinct_from(owner_id)
            )
        ).all()
        for slug in reserved:
            wanted[slug].status, wanted[slug].error = (
                "error",
                f"slug '{slug}' is already taken (a deleted link's)",
            )


def mark_owned_urls(rows, owner):
    """A row without a slug is a URL to shorten, as on create: one the owner has is existing."""
    for row in rows:
        if row.status == "new" and not row.slug and service.find_owned_link(row.url, owner) is not None:
            row.status = "existing"


def commit_import(plan, owner):
    """Write the plan's new links in one transaction; return how many were created."""
    created = []
    for row in plan.new_rows:
        fields = dict(row.fields)
        if "slug" not in fields:
            fields["slug"] = free_generated_slug(row)
        link = service.new_link(fields, owner)
        service.forget_tombstone(link.slug)
        if row.created_at:
            link.created_at = row.created_at
        db.session.add(link)
        created.append((link, row.clicks))
    try:
        db.session.flush()
        db.session.add_all(LinkCounter(link_id=link.id, clicks=clicks) for link, clicks in created if clicks)
        db.session.commit()
    except IntegrityError:
        db.session.rollback()
        raise InvalidImport(
            "a slug in the file was taken while importing: nothing was imported, try again"
        ) from None
    cache.invalidate_many([link.slug for link, _ in created])  # drops cached "no such link"
    return len(created)


def free_generated_slug(row):
    for _ in range(service.GENERATE_ATTEMPTS):
        slug = generate_slug()
        if not service.slug_in_use(slug):
            row.slug = slug
            return slug
    raise InvalidImport("could not generate free slugs: the slug space is nearly full")
