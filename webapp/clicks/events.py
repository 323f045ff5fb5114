"""A click as captured on the request path: pure functions, no I/O.

A click travels as a flat dict of short string fields (the Redis Stream
message, the spool line and the task arguments are the same shape):

    e  event id, made here, unique: what makes re-delivery harmless
    l  link id
    t  capture time, Unix seconds with milliseconds
    r  referrer (truncated)      u  user agent (truncated)
    i  client IP, anonymised     b  "1" for bots and HEAD requests
"""

import ipaddress
import re
import secrets
import time
from datetime import UTC, datetime

from webapp.models import REFERRER_MAX_LENGTH, USER_AGENT_MAX_LENGTH

# Crawlers, link previewers and monitors. curl, wget and HTTP libraries are
# deliberately absent: people test their links with them.
BOT_USER_AGENT = re.compile(
    r"bot\b|bot/|crawl|spider|slurp|facebookexternalhit|embedly|preview|whatsapp"
    r"|pingdom|uptimerobot|statuscake|headlesschrome|lighthouse|scrapy|ahrefs|semrush",
    re.IGNORECASE,
)


def new_event_id():
    return secrets.token_urlsafe(12)


def is_bot(user_agent, method):
    """HEAD requests and known bots are recorded but not counted as human clicks."""
    return method == "HEAD" or bool(user_agent and BOT_USER_AGENT.search(user_agent))


def parse_trusted_proxies(entries):
    """CIDRs or addresses from ``TRUSTED_PROXIES``; a bad entry fails at start-up."""
    return tuple(ipaddress.ip_network(entry, strict=False) for entry in entries)


def client_ip(remote_addr, forwarded_for, trusted_proxies):
    """The client's address, believing ``X-Forwarded-For`` only from trusted proxies.

    Walks the header from the right (the hop nearest us) past trusted proxies;
    the first address not among them is the client. Anything unparsable stops
    the walk, since a client can write whatever it likes on the left.
    """
    if not trusted_proxies or not is_trusted(remote_addr, trusted_proxies):
        return remote_addr
    hops = [hop.strip() for hop in (forwarded_for or "").split(",") if hop.strip()]
    candidate = remote_addr
    for hop in reversed(hops):
        try:
            ipaddress.ip_address(hop)
        except ValueError:
            break
        candidate = hop
        if not is_trusted(hop, trusted_proxies):
            break
    return candidate


def is_trusted(address, trusted_proxies):
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    return any(ip in network for network in trusted_proxies)


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


def make_click_event(method, referrer, user_agent, ip):
    """The message for one click, before the link id is known (see module doc)."""
    event = {"e": new_event_id(), "t": f"{time.time():.3f}"}
    if referrer:
        event["r"] = referrer[:REFERRER_MAX_LENGTH]
    if user_agent:
        event["u"] = user_agent[:USER_AGENT_MAX_LENGTH]
    anonymised = anonymise_ip(ip)
    if anonymised:
        event["i"] = anonymised
    if is_bot(user_agent, method):
        event["b"] = "1"
    return event


def click_row(event):
    """The ``click`` table row for a message, or None if the message is malformed."""
    try:
        created_at = datetime.fromtimestamp(float(event["t"]), UTC).replace(tzinfo=None)
        return {
            "event_id": str(event["e"])[:32],
            "link_id": int(event["l"]),
            "created_at": created_at,
            "referrer": event.get("r") or None,
            "user_agent": event.get("u") or None,
            "ip_anonymised": event.get("i") or None,
            "is_bot": event.get("b") == "1",
        }
    # OSError: the C library rejects some out-of-range times (e.g. -1e18).
    except (KeyError, TypeError, ValueError, OverflowError, OSError):
        return None
