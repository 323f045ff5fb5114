"""What a click's user agent, address and referrer say: browser, OS, device, bot, country, host.

Read by the drain, never on the redirect's path: the redirect only marks
HEAD requests. Browsers, operating systems and devices come from ua-parser
(the uap-core rules, compiled by ua-parser-rs); bots from crawlerdetect's
list, and ua-parser's "Spider" devices. Countries from iptocc, an offline
copy of the regional registries' delegations, looked up on the address as
stored: anonymised to its /24 (IPv4) or /48 (IPv6), which no registry
delegates more finely, so the country is the full address's. Each answer is
cached: the same agents and networks come back all day, and a parse costs
tens of microseconds (a crawler check, a few hundred).
"""

import functools
from typing import NamedTuple
from urllib.parse import urlsplit

import ua_parser
from crawlerdetect import CrawlerDetect
from iptocc import country_code

CACHE_SIZE = 65_536
UNKNOWN = ""  # shown as "Unknown"; stored as "" so it groups like any value
# Crawler detection keeps state per instance (its last matches): one per process, used
# only by the drain's thread.
CRAWLERS = CrawlerDetect()
MOBILE_OSES = {"Android", "iOS", "Windows Phone", "KaiOS", "BlackBerry OS", "Symbian OS", "Tizen"}
TABLET_WORDS = ("ipad", "tablet", "kindle", "silk", "playbook")
# crawlerdetect lists command-line tools and HTTP libraries; a short link's owner
# tests it with them, and apps fetch with them, so they count as people here (as
# they always have in Clickboard). Its match for each, lower-cased.
PEOPLES_TOOLS = frozenset(
    """curl wget httpie python-requests python-httpx python-urllib aiohttp/ go-http-client okhttp
    axios/ node-fetch postmanruntime""".split()
)


class Agent(NamedTuple):
    browser: str
    os: str
    device: str  # desktop | mobile | tablet | bot | unknown
    bot: str  # the bot's name, "" for people


@functools.lru_cache(maxsize=CACHE_SIZE)
def describe_agent(user_agent):
    if not user_agent:
        return Agent(UNKNOWN, UNKNOWN, "unknown", "")
    parsed = ua_parser.parse(user_agent)
    browser = known(parsed.user_agent.family if parsed.user_agent else None)
    os_family = known(parsed.os.family if parsed.os else None)
    spider = parsed.device is not None and parsed.device.family == "Spider"
    if spider:
        return Agent(browser, os_family, "bot", browser or "Unknown bot")
    if CRAWLERS.isCrawler(user_agent):
        match = str(CRAWLERS.getMatches() or "")
        if match.lower() not in PEOPLES_TOOLS:
            return Agent(browser, os_family, "bot", (match.rstrip("/") or browser or "Unknown bot")[:64])
    return Agent(browser, os_family, device_type(user_agent, parsed, os_family), "")


def known(family):
    """ua-parser says "Other" for what it does not know; so do we, as unknown."""
    return "" if not family or family == "Other" else family[:64]


def device_type(user_agent, parsed, os_family):
    """ua-parser names devices but not their kind: tablets and phones by OS and wording
    (Android tablets omit "Mobile"; its rules brand some "Generic_Android_Tablet")."""
    lowered = user_agent.lower()
    brand = (parsed.device.brand or "") if parsed.device else ""
    if any(word in lowered for word in TABLET_WORDS) or "tablet" in brand.lower():
        return "tablet"
    if os_family == "Android" and "mobile" not in lowered:
        return "tablet"
    if os_family in MOBILE_OSES or "mobile" in lowered:
        return "mobile"
    return "desktop" if os_family else "unknown"


def is_bot_agent(user_agent):
    return bool(user_agent) and describe_agent(user_agent).device == "bot"


@functools.lru_cache(maxsize=CACHE_SIZE)
def country(address):
    """The ISO 3166 code of an (anonymised) address, "" where the registries give none."""
    if not address:
        return UNKNOWN
    return country_code(address) or UNKNOWN


@functools.lru_cache(maxsize=CACHE_SIZE)
def referrer_host(referrer):
    """The referring host without ``www.``; "" for a direct visit or an unreadable referrer."""
    if not referrer:
        return ""
    try:
        host = (urlsplit(referrer).hostname or "")[:255]
    except ValueError:
        return ""
    return host[4:] if host.startswith("www.") else host
