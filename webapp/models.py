"""Database tables. Times are naive UTC throughout (SQLite has no time zones).

Click rows are written only by the click drain (``webapp.clicks.store``);
``LinkCounter`` and ``LinkHourlyClicks`` are the rollups it keeps beside them
so that nothing on a request path ever counts click rows.
"""

from datetime import UTC, date, datetime

from flask import current_app
from flask_login import UserMixin
from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Date,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship
from werkzeug.security import check_password_hash, generate_password_hash

from webapp.extensions import db

# SQLite only auto-increments a column declared exactly INTEGER.
BigId = BigInteger().with_variant(Integer, "sqlite")

URL_MAX_LENGTH = 2048
SLUG_MAX_LENGTH = 64
REFERRER_MAX_LENGTH = 512
USER_AGENT_MAX_LENGTH = 512
TITLE_MAX_LENGTH = 200
TAG_MAX_LENGTH = 40


def utcnow():
    return datetime.now(UTC).replace(tzinfo=None)


class User(UserMixin, db.Model):
    id: Mapped[int] = mapped_column(primary_key=True)
    email: Mapped[str] = mapped_column(String(254), unique=True)
    password_hash: Mapped[str] = mapped_column(String(256))
    is_admin: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    # Part of the id every session carries: sessions are signed cookies that
    # the server cannot delete, so ending them means changing this number.
    session_epoch: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    # IANA name (Europe/Paris): the days and hours of this user's charts. None: the
    # browser's zone is taken at the next login.
    time_zone: Mapped[str | None] = mapped_column(String(64))

    def get_id(self):
        return f"{self.id}:{self.session_epoch or 0}"

    @staticmethod
    def session_id_parts(session_id):
        """(user id, session epoch) of a session id ``get_id`` made, or None if it is not one
        (a session from before epochs, or a forged one)."""
        user_id, _, epoch = str(session_id).partition(":")
        if not (user_id.isdigit() and epoch.isdigit()):
            return None
        return int(user_id), int(epoch)

    def end_sessions(self):
        """Make every session of this user, on any browser, invalid from now on."""
        self.session_epoch = (self.session_epoch or 0) + 1

    def set_password(self, password):
        self.password_hash = generate_password_hash(
            password, method=current_app.config["PASSWORD_HASH_METHOD"]
        )
        self.end_sessions()  # a new password logs out whoever knew the old one

    def check_password(self, password):
        return check_password_hash(self.password_hash, password)


class ApiToken(db.Model):
    """A bearer token; only its SHA-256 is stored, the token is shown once."""

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("user.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(100))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    last_used_at: Mapped[datetime | None] = mapped_column(DateTime)
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime)

    user: Mapped[User] = relationship()


class Link(db.Model):
    id: Mapped[int] = mapped_column(primary_key=True)
    slug: Mapped[str] = mapped_column(String(SLUG_MAX_LENGTH), unique=True)
    target_url: Mapped[str] = mapped_column(String(URL_MAX_LENGTH))
    owner_id: Mapped[int | None] = mapped_column(ForeignKey("user.id", ondelete="SET NULL"), index=True)
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    # None: use the deployment's REDIRECT_STATUS_CODE.
    redirect_code: Mapped[int | None] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow, onupdate=utcnow)

    # The last check of the target (see webapp.links.checker); None until checked.
    target_ok: Mapped[bool | None] = mapped_column(Boolean)
    target_status: Mapped[int | None] = mapped_column(Integer)
    target_title: Mapped[str | None] = mapped_column(String(300))
    target_error: Mapped[str | None] = mapped_column(String(300))
    checked_at: Mapped[datetime | None] = mapped_column(DateTime, index=True)

    # What people call the link; tags to find it by (``LinkTag``).
    title: Mapped[str | None] = mapped_column(String(TITLE_MAX_LENGTH))
    # Access limits: after ``expires_at`` (naive UTC), or once ``max_clicks`` human
    # clicks are counted, the redirect answers 410 and counts a refusal instead.
    expires_at: Mapped[datetime | None] = mapped_column(DateTime)
    max_clicks: Mapped[int | None] = mapped_column(BigInteger)

    owner: Mapped[User | None] = relationship()
    counter: Mapped["LinkCounter | None"] = relationship(lazy="joined", viewonly=True)
    tag_rows: Mapped[list["LinkTag"]] = relationship(
        lazy="selectin", cascade="all, delete-orphan", order_by="LinkTag.tag"
    )
    aliases: Mapped[list["LinkAlias"]] = relationship(
        lazy="selectin", cascade="all, delete-orphan", order_by="LinkAlias.slug"
    )

    @property
    def tags(self):
        return [row.tag for row in self.tag_rows]


class LinkTag(db.Model):
    link_id: Mapped[int] = mapped_column(ForeignKey("link.id", ondelete="CASCADE"), primary_key=True)
    tag: Mapped[str] = mapped_column(String(TAG_MAX_LENGTH), primary_key=True, index=True)


class LinkAlias(db.Model):
    """A slug the link had before: it keeps redirecting to the link until its owner removes it."""

    slug: Mapped[str] = mapped_column(String(SLUG_MAX_LENGTH), primary_key=True)
    link_id: Mapped[int] = mapped_column(ForeignKey("link.id", ondelete="CASCADE"), index=True)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)


class LinkChange(db.Model):
    """One edit of a link: who, when, and each changed field as [old, new]."""

    id: Mapped[int] = mapped_column(primary_key=True)
    link_id: Mapped[int] = mapped_column(ForeignKey("link.id", ondelete="CASCADE"))
    user_id: Mapped[int | None] = mapped_column(ForeignKey("user.id", ondelete="SET NULL"))
    changed_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    changes: Mapped[dict] = mapped_column(JSON)

    user: Mapped[User | None] = relationship()

    __table_args__ = (Index("ix_link_change_link_changed", "link_id", "changed_at"),)


class DeletedLink(db.Model):
    """A link that existed and was deleted: its late clicks are dropped, not kept aside.

    Links are deleted outright; without this record the drain could not tell
    a deleted link's clicks from clicks of a link this database never had
    (another install's, sharing a Redis), which it keeps as dead letters.
    """

    link_id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    deleted_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)


class SlugTombstone(db.Model):
    """A slug of a deleted link (its own or an alias): reserved, so that printed links
    never lead to someone else's target. Its owner may take it again."""

    slug: Mapped[str] = mapped_column(String(SLUG_MAX_LENGTH), primary_key=True)
    owner_id: Mapped[int | None] = mapped_column(ForeignKey("user.id", ondelete="SET NULL"))
    deleted_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)


class Click(db.Model):
    """One click. Raw rows go after ``RETENTION_DAYS`` (``webapp.retention``).

    On PostgreSQL the table is partitioned by month on ``created_at`` (migration
    0012), and a unique key there must hold the partition key: the primary key is
    (id, created_at) and the event id is unique with ``created_at``. The mapping
    keeps ``id`` alone as the ORM's key: ids still come from one sequence, and
    SQLite's table (not partitioned) keeps ``id`` as its rowid.
    """

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    # Made when the click is captured; unique (with created_at on PostgreSQL, which a
    # replay repeats: it is in the click line) so that a batch delivered twice
    # (drain killed after commit, spool replayed twice) is counted once.
    event_id: Mapped[str] = mapped_column(String(32), unique=True)
    link_id: Mapped[int] = mapped_column(ForeignKey("link.id", ondelete="CASCADE"))
    created_at: Mapped[datetime] = mapped_column(DateTime)
    referrer: Mapped[str | None] = mapped_column(String(REFERRER_MAX_LENGTH))
    user_agent: Mapped[str | None] = mapped_column(String(USER_AGENT_MAX_LENGTH))
    ip_anonymised: Mapped[str | None] = mapped_column(String(64))
    is_bot: Mapped[bool] = mapped_column(Boolean, default=False)

    __table_args__ = (Index("ix_click_link_created", "link_id", "created_at"),)


class LinkCounter(db.Model):
    """Running totals per link, upserted once per link per drained batch."""

    link_id: Mapped[int] = mapped_column(ForeignKey("link.id", ondelete="CASCADE"), primary_key=True)
    clicks: Mapped[int] = mapped_column(BigInteger, default=0)
    bot_clicks: Mapped[int] = mapped_column(BigInteger, default=0)
    last_click_at: Mapped[datetime | None] = mapped_column(DateTime)
    # Visits answered 410 (expired or exhausted): not clicks, counted apart.
    refused: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")


class LinkHourlyClicks(db.Model):
    """Clicks per link per UTC hour: the source of every chart."""

    link_id: Mapped[int] = mapped_column(ForeignKey("link.id", ondelete="CASCADE"), primary_key=True)
    hour: Mapped[datetime] = mapped_column(DateTime, primary_key=True)
    clicks: Mapped[int] = mapped_column(BigInteger, default=0)
    bot_clicks: Mapped[int] = mapped_column(BigInteger, default=0)

    __table_args__ = (Index("ix_link_hourly_clicks_hour", "hour"),)


class PipelineCounter(db.Model):
    """Drained and dropped totals of the click and page-view buffers, kept by the drain in
    its own transaction: exact, and still there after Redis restarted empty. A few shards
    per name, so concurrent drains do not queue for one row; /metrics adds them up."""

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    shard: Mapped[int] = mapped_column(Integer, primary_key=True)
    value: Mapped[int] = mapped_column(BigInteger, default=0)


class Site(db.Model):
    """A website that sends page views with the tracker script: its public key is printed in
    the site's pages (it only lets browsers send views) and views come only from ``origins``."""

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(100))
    public_key: Mapped[str] = mapped_column(String(32), unique=True)
    origins: Mapped[list] = mapped_column(JSON)  # ["https://www.example.com", ...]
    owner_id: Mapped[int | None] = mapped_column(ForeignKey("user.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)

    owner: Mapped[User | None] = relationship()


class PageView(db.Model):
    """One page view reported by a site: its URL, when, and how long the server took; the
    event id makes a view delivered twice count once. Views from the tracker script carry
    their site, referrer and full load time; views sent to the API have none of them.
    Partitioned by month on PostgreSQL like ``Click`` (keys with ``created_at``)."""

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    url: Mapped[str] = mapped_column(String(URL_MAX_LENGTH))
    created_at: Mapped[datetime] = mapped_column(DateTime, index=True)
    response_time_ms: Mapped[int] = mapped_column(Integer)
    # Set for views that came through the ingest buffer (dedup on redelivery);
    # NULL for seeded rows, which a unique index allows any number of.
    event_id: Mapped[str | None] = mapped_column(String(32))
    site_id: Mapped[int | None] = mapped_column(ForeignKey("site.id", ondelete="SET NULL"))
    referrer: Mapped[str | None] = mapped_column(String(REFERRER_MAX_LENGTH))
    load_time_ms: Mapped[int | None] = mapped_column(Integer)

    __table_args__ = (
        Index("ix_page_view_site_created", "site_id", "created_at"),
        # Partial, so bulk-seeded rows (no event id) cost the index nothing.
        Index(
            "ux_page_view_event_id",
            "event_id",
            unique=True,
            sqlite_where=text("event_id IS NOT NULL"),
            postgresql_where=text("event_id IS NOT NULL"),
        ),
    )


class PageViewHistogram(db.Model):
    """Page views per UTC day, site (0: none), page and response time in ms: the slow-page
    report's rollup, written by the page-view drain in the transaction of the raw rows.
    Counts per exact millisecond, so percentiles and thresholds read from it are exact;
    the page is the md5 of its url (``PageViewUrl`` has the url), which keeps the key
    short enough for a B-tree whatever the url's length. The key's order (day, page, site)
    lets a day's rows of the pages a filter matches be read by one index range per page;
    the (day, response time) index lets the slowest pages be ranked from a day's slow
    rows only. ``views`` is in neither, so the drain's increments stay HOT updates."""

    __table_args__ = (Index("ix_page_view_histogram_day_ms", "day", "response_time_ms"),)

    day: Mapped[date] = mapped_column(Date, primary_key=True)
    url_key: Mapped[str] = mapped_column(String(32), primary_key=True)
    site_id: Mapped[int] = mapped_column(Integer, primary_key=True)
    response_time_ms: Mapped[int] = mapped_column(Integer, primary_key=True)
    views: Mapped[int] = mapped_column(BigInteger)


class PageViewDayHistogram(db.Model):
    """``PageViewHistogram`` without the page: views per UTC day, site (0: none) and
    response time in ms. A day's totals, slow count and percentiles with no page filter
    (the report's default) read a few thousand rows here instead of one per page and
    time there, which at a hundred million views is the difference between milliseconds
    and seconds per day. Written with the page histogram, in the same transaction."""

    day: Mapped[date] = mapped_column(Date, primary_key=True)
    site_id: Mapped[int] = mapped_column(Integer, primary_key=True)
    response_time_ms: Mapped[int] = mapped_column(Integer, primary_key=True)
    views: Mapped[int] = mapped_column(BigInteger)


class PageViewUrl(db.Model):
    """The url of each ``PageViewHistogram.url_key``."""

    url_key: Mapped[str] = mapped_column(String(32), primary_key=True)
    url: Mapped[str] = mapped_column(String(URL_MAX_LENGTH))


class ReportRun(db.Model):
    """One computation of a report, written by the task's link/link_error callbacks."""

    id: Mapped[int] = mapped_column(primary_key=True)
    report: Mapped[str] = mapped_column(String(64))
    params: Mapped[dict] = mapped_column(JSON)
    task_id: Mapped[str | None] = mapped_column(String(64), index=True)
    status: Mapped[str] = mapped_column(String(16), default="queued")  # queued|running|done|failed|skipped
    enqueued_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow, index=True)
    started_at: Mapped[datetime | None] = mapped_column(DateTime)
    finished_at: Mapped[datetime | None] = mapped_column(DateTime)
    duration_ms: Mapped[int | None] = mapped_column(Integer)
    result: Mapped[dict | None] = mapped_column(JSON)
    error: Mapped[str | None] = mapped_column(Text)


class LinkHourlyDimension(db.Model):
    """Clicks per link per UTC hour per value of one dimension: the link tables.

    ``dimension`` is one of ``DIMENSIONS``; bots are counted under ``bot`` (by
    name) only, people under the others, so each dimension's rows add up to the
    link's human clicks (``bot``: its bot clicks). "" is "unknown".
    """

    link_id: Mapped[int] = mapped_column(ForeignKey("link.id", ondelete="CASCADE"), primary_key=True)
    dimension: Mapped[str] = mapped_column(String(16), primary_key=True)
    hour: Mapped[datetime] = mapped_column(DateTime, primary_key=True)
    value: Mapped[str] = mapped_column(String(255), primary_key=True)
    clicks: Mapped[int] = mapped_column(BigInteger, default=0)


DIMENSIONS = ("referrer", "country", "device", "os", "browser", "bot")
