"""Names for the link page's tables: a user agent's browser or bot, a referrer's host.

Deliberately coarse: a family name people recognise is what a link's owner
wants to see; the full strings stay on the click rows.
"""

import functools
import re
from urllib.parse import urlsplit

# Order matters: Edge and Opera also say "Chrome", Chrome also says "Safari".
FAMILIES = [
    ("Edge", r"edg(e|a|ios)?/"),
    ("Opera", r"opr/|opera"),
    ("Samsung Internet", r"samsungbrowser/"),
    ("Chrome", r"chrome/|crios/"),
    ("Firefox", r"firefox/|fxios/"),
    ("Safari", r"safari/"),
    ("curl", r"^curl/"),
    ("Wget", r"^wget/"),
    ("Python", r"python|aiohttp|httpx"),
    ("Google", r"googlebot|google-"),
    ("Bing", r"bingbot"),
    ("Facebook", r"facebookexternalhit|facebot"),
    ("Slack", r"slack"),
    ("Twitter", r"twitterbot"),
    ("LinkedIn", r"linkedinbot"),
    ("Discord", r"discordbot"),
    ("WhatsApp", r"whatsapp"),
    ("Telegram", r"telegrambot"),
]
FAMILY_PATTERNS = [(name, re.compile(pattern, re.IGNORECASE)) for name, pattern in FAMILIES]


@functools.lru_cache(maxsize=4096)
def agent_family(user_agent):
    if not user_agent:
        return "(none)"
    for name, pattern in FAMILY_PATTERNS:
        if pattern.search(user_agent):
            return name
    return "Other"


@functools.lru_cache(maxsize=4096)
def referrer_host(referrer):
    """The referring host without ``www.``; "" for a direct visit or an unreadable referrer."""
    if not referrer:
        return ""
    try:
        host = (urlsplit(referrer).hostname or "")[:255]
    except ValueError:
        return ""
    return host[4:] if host.startswith("www.") else host
