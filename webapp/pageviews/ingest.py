"""Page views sent to ``POST /api/pageviews``: validation, spooling, and rows.

A page view travels as one line of tab-separated fields, like a click:
event id, Unix time, response time in ms, url (last: the only long one; a
valid url has no tab or newline). A view from the tracker script
(``webapp.collect``) has three more before the url: its site id, its full
load time in ms and its referrer (tabs blanked); a line's field count says
which it is, so spools written before either kind are still read. The line is written to this process's
page-view spool (``PageViewLog``) before the request is answered 202, and
shipped from there to its own Redis Stream, so page views survive what
clicks survive: Redis down, or Redis restarting without its data.
Like the click buffer, the stream is built per app in its install's
namespace; ``PAGEVIEW_BUFFER`` and ``PAGEVIEW_DRAIN`` are the current app's.
"""

import math
import os
import time
from datetime import UTC, datetime

from flask import current_app
from sqlalchemy import insert, select
from werkzeug.local import LocalProxy

from webapp import spool, spool_files
from webapp.clicks.events import LINE_BREAKERS
from webapp.dedup import chunks, rows_not_yet_recorded
from webapp.drains import StreamDrain
from webapp.event_ids import new_event_id
from webapp.models import REFERRER_MAX_LENGTH, URL_MAX_LENGTH, PageView, Site
from webapp.pageviews import histograms
from webapp.redis_client import background_redis
from webapp.streams import StreamBuffer

MAX_BATCH = 1000
MAX_RESPONSE_MS = 3_600_000
MAX_AGE_SECONDS = 366 * 86400
MAX_FUTURE_SECONDS = 300
BUFFER_EXTENSION = "clickboard.pageview_buffer"
DRAIN_EXTENSION = "clickboard.pageview_drain"
PAGEVIEW_BUFFER = LocalProxy(lambda: current_app.extensions[BUFFER_EXTENSION])
PAGEVIEW_DRAIN = LocalProxy(lambda: current_app.extensions[DRAIN_EXTENSION])
PREFIX = "pageviews"
PAGEVIEW_LOG = spool.PAGEVIEW_LOG


class PageViewLog(spool.Spool):
    """One process's page-view spool, in the ``pageviews`` folder of ``CLICK_LOG_DIR``; handed
    the install's buffer itself, since its shipper thread runs outside any app context."""

    def __init__(self, click_log_dir, client, interval, buffer, **limits):
        super().__init__(spool_directory(click_log_dir), client, interval, buffer, PREFIX, **limits)


def spool_directory(click_log_dir):
    return os.path.join(click_log_dir, PREFIX)


def ship_orphans(click_log_dir, client, keep_bytes=spool.DEFAULT_KEEP_BYTES):
    """Ship page-view spools of processes that died, and settle kept ones; return views shipped."""
    directory = spool_directory(click_log_dir)
    shipped = spool_files.ship_orphans(directory, client, PAGEVIEW_BUFFER, PREFIX)
    spool_files.settle_kept(directory, client, PAGEVIEW_BUFFER, keep_bytes)
    return shipped


class InvalidPageView(ValueError):
    """A page view we cannot accept; the message says which and why."""


def lines_from_payload(payload, now=None):
    """Validate one page view or a list of them; return spool lines or raise."""
    items = payload if isinstance(payload, list) else [payload]
    if not items:
        raise InvalidPageView("send at least one page view")
    if len(items) > MAX_BATCH:
        raise InvalidPageView(f"send at most {MAX_BATCH} page views per request")
    now = now or time.time()
    labels = (
        f"page view {index}" if isinstance(payload, list) else "page view" for index in range(len(items))
    )
    return [line_from_item(item, where, now) for item, where in zip(items, labels, strict=True)]


def line_from_item(item, where, now):
    if not isinstance(item, dict):
        example = '{"url": "/blog/x", "response_time_ms": 120}'
        raise InvalidPageView(f"{where}: must be an object like {example}")
    unknown = set(item) - {"url", "response_time_ms", "ts"}
    if unknown:
        raise InvalidPageView(f"{where}: unknown fields {', '.join(sorted(map(str, unknown)))}")
    url = valid_url(item.get("url"), where)
    response_ms = valid_response_time(item.get("response_time_ms"), where)
    seconds = valid_timestamp(item.get("ts"), where, now)
    return f"{new_event_id()}\t{seconds:.3f}\t{response_ms}\t{url}"


def valid_url(url, where):
    if not isinstance(url, str) or not url.strip():
        raise InvalidPageView(f"{where}: url must be a non-empty string")
    if len(url) > URL_MAX_LENGTH:
        raise InvalidPageView(f"{where}: url is longer than {URL_MAX_LENGTH} characters")
    if any(ord(char) < 32 or ord(char) == 127 for char in url):
        raise InvalidPageView(f"{where}: url contains control characters")
    if not url.isascii():
        try:
            url.encode()
        except UnicodeEncodeError:
            raise InvalidPageView(f"{where}: url is not valid Unicode (a lone surrogate)") from None
    return url.strip()


def plain_number(value):
    """An int or float that converts to a finite float (10**400 does not: it raises)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return False
    return abs(value) < 1e18 if isinstance(value, int) else math.isfinite(value)


def valid_response_time(value, where):
    if not plain_number(value):
        raise InvalidPageView(f"{where}: response_time_ms must be a number")
    if not 0 <= value <= MAX_RESPONSE_MS:
        raise InvalidPageView(f"{where}: response_time_ms must be between 0 and {MAX_RESPONSE_MS}")
    return int(round(value))


def valid_timestamp(value, where, now):
    """ISO 8601 (an offset is honoured, none means UTC) or Unix seconds; default now."""
    if value is None:
        return now
    if isinstance(value, str):
        try:
            moment = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
        except ValueError:
            raise InvalidPageView(f"{where}: ts must be ISO 8601 or Unix seconds") from None
        seconds = (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).timestamp()
    elif plain_number(value):
        seconds = float(value)
    else:
        raise InvalidPageView(f"{where}: ts must be ISO 8601 or Unix seconds")
    if not now - MAX_AGE_SECONDS <= seconds <= now + MAX_FUTURE_SECONDS:
        raise InvalidPageView(f"{where}: ts is more than a year old or in the future")
    return seconds


def tracked_view_line(site_id, url, referrer, server_ms, load_ms, now=None):
    """The spool line of a view the tracker script sent (values already validated)."""
    referrer = (referrer or "")[:REFERRER_MAX_LENGTH].translate(LINE_BREAKERS)
    seconds = time.time() if now is None else now
    return f"{new_event_id()}\t{seconds:.3f}\t{server_ms}\t{site_id}\t{load_ms}\t{referrer}\t{url}"


def pageview_row(line):
    """The row of a spool line; None for a malformed one (a torn write)."""
    try:
        fields = line.split("\t")
        if len(fields) == 7:
            event_id, seconds, response_ms, site_id, load_ms, referrer, url = fields
        else:
            (event_id, seconds, response_ms, url), site_id, load_ms, referrer = (
                line.split("\t", 3),
                "",
                "",
                "",
            )
        return {
            "event_id": event_id[:32],
            "url": url,
            "response_time_ms": int(response_ms),
            "created_at": datetime.fromtimestamp(float(seconds), UTC).replace(tzinfo=None),
            "site_id": int(site_id) if site_id else None,
            "load_time_ms": int(load_ms) if load_ms else None,
            "referrer": referrer or None,
        }
    except (AttributeError, TypeError, ValueError, OverflowError):
        return None


def record_pageviews(conn, rows, check_duplicates):
    if check_duplicates:
        rows = rows_not_yet_recorded(conn, PageView.event_id, rows)
    forget_deleted_sites(conn, rows)
    if rows:
        conn.execute(insert(PageView), rows)
        histograms.record(conn, rows)  # same transaction: rows and their rollup commit together
    return len(rows)


def forget_deleted_sites(conn, rows):
    """A view whose site was deleted after it was taken is kept without its site: the site's
    row is gone, and its id would fail the foreign key and hold the drain up for good."""
    site_ids = {row["site_id"] for row in rows if row.get("site_id") is not None}
    if not site_ids:
        return
    existing = set()
    for chunk in chunks(site_ids):
        existing.update(conn.scalars(select(Site.id).where(Site.id.in_(chunk))))
    for row in rows:
        if row.get("site_id") is not None and row["site_id"] not in existing:
            row["site_id"] = None


def pageview_buffer_for(namespace):
    return StreamBuffer(namespace, "pageviews", "drain", field="p")


def init_app(app):
    """The app's page-view buffer, drain and spool (``PAGEVIEW_BUFFER``, ``PAGEVIEW_DRAIN``,
    ``clickboard.pageview_log``)."""
    cfg = app.config
    buffer = pageview_buffer_for(cfg["CLICKBOARD_NAMESPACE"])
    app.extensions[BUFFER_EXTENSION] = buffer
    app.extensions[DRAIN_EXTENSION] = StreamDrain(buffer, pageview_row, record_pageviews)
    app.extensions[PAGEVIEW_LOG] = PageViewLog(
        cfg["CLICK_LOG_DIR"],
        background_redis(app),
        cfg["CLICK_SHIP_INTERVAL"],
        buffer,
        keep_bytes=cfg["SPOOL_KEEP_MB"] << 20,
    )


def app_pageview_log(app=None):
    """This process's page-view spool."""
    return (app or current_app).extensions[PAGEVIEW_LOG]
