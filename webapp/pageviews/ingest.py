"""Page views sent to ``POST /api/pageviews``: validation, buffering, and rows.

A page view travels through its own Redis Stream as a flat message:
``e`` event id, ``u`` url, ``m`` response time in ms, ``t`` Unix time.
Like the click buffer, the stream is built per app in its install's
namespace; ``PAGEVIEW_BUFFER`` and ``PAGEVIEW_DRAIN`` are the current app's.
"""

import math
import time
from datetime import UTC, datetime

from flask import current_app
from sqlalchemy import insert
from werkzeug.local import LocalProxy

from webapp.clicks.events import new_event_id
from webapp.dedup import rows_not_yet_recorded
from webapp.models import URL_MAX_LENGTH, PageView
from webapp.streams import StreamBuffer, StreamDrain

MAX_BATCH = 1000
MAX_RESPONSE_MS = 3_600_000
MAX_AGE_SECONDS = 366 * 86400
MAX_FUTURE_SECONDS = 300
BUFFER_EXTENSION = "clickboard.pageview_buffer"
DRAIN_EXTENSION = "clickboard.pageview_drain"
PAGEVIEW_BUFFER = LocalProxy(lambda: current_app.extensions[BUFFER_EXTENSION])
PAGEVIEW_DRAIN = LocalProxy(lambda: current_app.extensions[DRAIN_EXTENSION])


class InvalidPageView(ValueError):
    """A page view we cannot accept; the message says which and why."""


def messages_from_payload(payload, now=None):
    """Validate one page view or a list of them; return stream messages or raise."""
    items = payload if isinstance(payload, list) else [payload]
    if not items:
        raise InvalidPageView("send at least one page view")
    if len(items) > MAX_BATCH:
        raise InvalidPageView(f"send at most {MAX_BATCH} page views per request")
    now = now or time.time()
    labels = (
        f"page view {index}" if isinstance(payload, list) else "page view" for index in range(len(items))
    )
    return [message_from_item(item, where, now) for item, where in zip(items, labels, strict=True)]


def message_from_item(item, where, now):
    if not isinstance(item, dict):
        example = '{"url": "/blog/x", "response_time_ms": 120}'
        raise InvalidPageView(f"{where}: must be an object like {example}")
    unknown = set(item) - {"url", "response_time_ms", "ts"}
    if unknown:
        raise InvalidPageView(f"{where}: unknown fields {', '.join(sorted(map(str, unknown)))}")
    return {
        "e": new_event_id(),
        "u": valid_url(item.get("url"), where),
        "m": str(valid_response_time(item.get("response_time_ms"), where)),
        "t": f"{valid_timestamp(item.get('ts'), where, now):.3f}",
    }


def valid_url(url, where):
    if not isinstance(url, str) or not url.strip():
        raise InvalidPageView(f"{where}: url must be a non-empty string")
    if len(url) > URL_MAX_LENGTH:
        raise InvalidPageView(f"{where}: url is longer than {URL_MAX_LENGTH} characters")
    if any(ord(char) < 32 or ord(char) == 127 for char in url):
        raise InvalidPageView(f"{where}: url contains control characters")
    return url.strip()


def valid_response_time(value, where):
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
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
    elif isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value):
        seconds = float(value)
    else:
        raise InvalidPageView(f"{where}: ts must be ISO 8601 or Unix seconds")
    if not now - MAX_AGE_SECONDS <= seconds <= now + MAX_FUTURE_SECONDS:
        raise InvalidPageView(f"{where}: ts is more than a year old or in the future")
    return seconds


def pageview_row(message):
    try:
        return {
            "event_id": str(message["e"])[:32],
            "url": message["u"],
            "response_time_ms": int(message["m"]),
            "created_at": datetime.fromtimestamp(float(message["t"]), UTC).replace(tzinfo=None),
        }
    except (KeyError, TypeError, ValueError, OverflowError):
        return None


def record_pageviews(conn, rows, check_duplicates):
    if check_duplicates:
        rows = rows_not_yet_recorded(conn, PageView.event_id, rows)
    if rows:
        conn.execute(insert(PageView), rows)
    return len(rows)


def init_app(app):
    buffer = StreamBuffer(app.config["CLICKBOARD_NAMESPACE"], "pageviews", "drain")
    app.extensions[BUFFER_EXTENSION] = buffer
    app.extensions[DRAIN_EXTENSION] = StreamDrain(buffer, pageview_row, record_pageviews)
