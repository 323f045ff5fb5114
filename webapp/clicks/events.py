"""A click as captured on the request path: pure functions, no I/O.

A click travels as one line of tab-separated fields. The same text is the
line in the local click log, the value of the Redis Stream message and the
per-click task's argument, so nothing is re-encoded on the way:

    event id  made here, time-ordered and unique: makes redelivery harmless
    link id
    time      Unix seconds with milliseconds
    bot       "1" for a HEAD request, "r" for a refused visit (410), else "";
              bots by their user agent are told by the drain (``click_row``),
              off the request path
    ip        the client's address, anonymised
    referrer  truncated, tabs and newlines blanked
    agent     the user agent, likewise
"""

import functools
import ipaddress
import math
import time
from datetime import datetime, timedelta

from webapp.clicks.agents import is_bot_agent
from webapp.event_ids import new_event_id
from webapp.models import REFERRER_MAX_LENGTH, USER_AGENT_MAX_LENGTH

EPOCH = datetime(1970, 1, 1)
LINE_BREAKERS = str.maketrans({"\t": " ", "\n": " ", "\r": " "})


def is_bot(user_agent, method):
    """HEAD requests and known bots are recorded but not counted as human clicks."""
    return method == "HEAD" or is_bot_agent(user_agent)


@functools.lru_cache(maxsize=4096)
def anonymise_ip(address):
    """Keep the network, drop the host: IPv4 to /24, IPv6 to /48."""
    try:
        ip = ipaddress.ip_address(address)
    except (TypeError, ValueError):
        return ""
    if ip.version == 6 and ip.ipv4_mapped:
        ip = ip.ipv4_mapped
    prefix = 24 if ip.version == 4 else 48
    return str(ipaddress.ip_network(f"{ip}/{prefix}", strict=False).network_address)


def clean(text, limit):
    """Truncate, and blank what would break the line format."""
    return header_text(text)[:limit].translate(LINE_BREAKERS) if text else ""


def header_text(text):
    """A header as its sender meant it: WSGI hands header bytes over decoded as Latin-1, so
    a browser's UTF-8 "Café" arrives as "CafÃ©". Bytes that are valid UTF-8 are read as
    such (before truncating, which could split a character); anything else stays as it is."""
    if text.isascii():
        return text
    try:
        return text.encode("latin-1").decode("utf-8")
    except UnicodeError:  # not Latin-1 text (already decoded) or not UTF-8 bytes
        return text


def encode_click(link_id, method, referrer, user_agent, ip, at=None, refused=False):
    """The line for one click (see the module doc); ``at`` defaults to now. A ``refused``
    visit (the link expired or reached its click limit) is marked "r" in the bot field."""
    return "\t".join(
        (
            new_event_id(),
            str(link_id),
            f"{time.time() if at is None else at:.3f}",
            "r" if refused else "1" if method == "HEAD" else "",
            anonymise_ip(ip),
            clean(referrer, REFERRER_MAX_LENGTH),
            clean(user_agent, USER_AGENT_MAX_LENGTH),
        )
    )


def split_seconds(seconds):
    """(whole seconds, microseconds) of a Unix time, rounded to the microsecond."""
    whole = math.floor(seconds)
    micro = round((seconds - whole) * 1_000_000)
    if micro == 1_000_000:
        whole, micro = whole + 1, 0
    return whole, micro


def parse_seconds(text):
    """``split_seconds`` of a line's time field. The lines' own form ("1732850000.123") is
    read as digits; anything else through float."""
    whole, _, fraction = text.partition(".")
    if whole.isdigit() and fraction.isdigit() and len(fraction) <= 6:
        return int(whole), int(fraction.ljust(6, "0"))
    return split_seconds(float(text))


# The drain turns every line's time into a datetime and its hour: a batch shares a
# handful of seconds and hours, so their parts are cached rather than computed per line.
@functools.lru_cache(maxsize=4096)
def second_fields(whole):
    moment = EPOCH + timedelta(seconds=whole)
    return moment.year, moment.month, moment.day, moment.hour, moment.minute, moment.second


@functools.lru_cache(maxsize=1024)
def hour_start(hours):
    """The start of the ``hours``-th hour since the epoch."""
    return EPOCH + timedelta(hours=hours)


def click_row(line):
    """The ``click`` table row for a line, or None if the line is malformed. Beside the
    columns: ``at`` (whole seconds, microseconds), ``hour`` (the hour it falls in) and
    ``refused``."""
    try:
        event_id, link_id, at, bot, ip, referrer, user_agent = line.split("\t")
        whole, micro = parse_seconds(at)
        return {
            "event_id": event_id[:32],
            "link_id": int(link_id),
            "at": (whole, micro),
            "created_at": datetime(*second_fields(whole), micro),
            "hour": hour_start(whole // 3600),
            "referrer": referrer or None,
            "user_agent": user_agent or None,
            "ip_anonymised": ip or None,
            "is_bot": bot == "1" or is_bot_agent(user_agent),
            "refused": bot == "r",
        }
    # OSError: the C library rejects some out-of-range times (e.g. -1e18).
    except (AttributeError, TypeError, ValueError, OverflowError, OSError):
        return None
