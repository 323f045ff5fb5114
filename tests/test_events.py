"""Click capture's pure functions (webapp/clicks/events.py)."""

import time
from datetime import UTC, datetime

import pytest

from webapp.clicks.events import (
    anonymise_ip,
    click_row,
    client_ip,
    is_bot,
    make_click_event,
    new_event_id,
    parse_trusted_proxies,
)
from webapp.models import REFERRER_MAX_LENGTH, USER_AGENT_MAX_LENGTH

PROXIES = parse_trusted_proxies(["10.0.0.0/8", "fd00::/8"])
FIREFOX = "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0"

# --- client_ip --------------------------------------------------------------


def test_forwarded_for_is_ignored_without_trusted_proxies():
    assert client_ip("203.0.113.9", "198.51.100.7", ()) == "203.0.113.9"


def test_forwarded_for_is_ignored_from_an_untrusted_peer():
    assert client_ip("203.0.113.9", "198.51.100.7", PROXIES) == "203.0.113.9"


def test_trusted_proxy_forwarded_for_gives_the_client():
    assert client_ip("10.0.0.2", "198.51.100.7", PROXIES) == "198.51.100.7"


def test_chain_of_trusted_proxies_is_walked_to_the_first_untrusted_hop():
    assert client_ip("10.0.0.2", "198.51.100.7, 10.0.0.5, 10.0.0.3", PROXIES) == "198.51.100.7"


def test_spoofed_left_most_entries_are_ignored():
    assert client_ip("10.0.0.2", "1.2.3.4, 5.6.7.8, 198.51.100.7", PROXIES) == "198.51.100.7"


def test_garbage_forwarded_for_falls_back_to_the_proxy_address():
    assert client_ip("10.0.0.2", "not-an-address", PROXIES) == "10.0.0.2"


def test_garbage_left_of_the_client_is_ignored():
    assert client_ip("10.0.0.2", "<script>, 198.51.100.7", PROXIES) == "198.51.100.7"


def test_garbage_between_trusted_hops_stops_the_walk():
    assert client_ip("10.0.0.2", "198.51.100.7, bogus, 10.0.0.3", PROXIES) == "10.0.0.3"


def test_missing_forwarded_for_from_a_trusted_proxy_gives_the_proxy():
    assert client_ip("10.0.0.2", None, PROXIES) == "10.0.0.2"


def test_empty_entries_in_forwarded_for_are_skipped():
    assert client_ip("10.0.0.2", "198.51.100.7, , ", PROXIES) == "198.51.100.7"


def test_ipv6_proxy_and_client():
    assert client_ip("fd00::2", "2001:db8::7, fd00::3", PROXIES) == "2001:db8::7"


def test_unparsable_remote_address_is_not_trusted():
    assert client_ip("unix-socket", "198.51.100.7", PROXIES) == "unix-socket"


def test_bad_trusted_proxy_entry_fails_at_start_up():
    with pytest.raises(ValueError):
        parse_trusted_proxies(["10.0.0.0/8", "proxy.internal"])


# --- anonymise_ip -----------------------------------------------------------


@pytest.mark.parametrize(
    ("address", "anonymised"),
    [
        ("203.0.113.77", "203.0.113.0"),
        ("198.51.100.255", "198.51.100.0"),
        ("2001:db8:abcd:12:3456::1", "2001:db8:abcd::"),
        ("::ffff:203.0.113.77", "203.0.113.0"),
        ("::1", "::"),
    ],
)
def test_anonymise_ip_keeps_only_the_network(address, anonymised):
    assert anonymise_ip(address) == anonymised


@pytest.mark.parametrize("garbage", ["", "not-an-ip", "300.1.2.3", "203.0.113.77/24", None, 12.5])
def test_anonymise_ip_of_garbage_is_empty(garbage):
    assert anonymise_ip(garbage) == ""


# --- is_bot -----------------------------------------------------------------


@pytest.mark.parametrize(
    "user_agent",
    [
        "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)",
        "facebookexternalhit/1.1 (+http://www.facebook.com/externalhit_uatext.php)",
        "Slackbot-LinkExpanding 1.0 (+https://api.slack.com/robots)",
        "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) HeadlessChrome/126.0 Safari/537.36",
        "Mozilla/5.0 (compatible; bingbot/2.0; +http://www.bing.com/bingbot.htm)",
        "WhatsApp/2.23.20.0",
    ],
)
def test_known_bots_are_flagged(user_agent):
    assert is_bot(user_agent, "GET")


@pytest.mark.parametrize(
    "user_agent",
    [
        FIREFOX,
        "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) "
        "Version/17.5 Mobile/15E148 Safari/604.1",
        "curl/8.5.0",
        "Wget/1.21.4",
        "python-requests/2.32.3",
        "",
        None,
    ],
)
def test_people_and_their_tools_are_not_flagged(user_agent):
    assert not is_bot(user_agent, "GET")


def test_head_request_is_always_flagged():
    assert is_bot(FIREFOX, "HEAD")


# --- make_click_event -------------------------------------------------------


def test_click_event_truncates_the_referrer_to_the_column():
    event = make_click_event("GET", "https://example.com/" + "r" * 1000, FIREFOX, "203.0.113.9")
    assert len(event["r"]) == REFERRER_MAX_LENGTH


def test_click_event_truncates_the_user_agent_to_the_column():
    event = make_click_event("GET", None, "Mozilla/5.0 " + "u" * 1000, "203.0.113.9")
    assert len(event["u"]) == USER_AGENT_MAX_LENGTH


def test_click_event_stores_only_the_anonymised_ip():
    event = make_click_event("GET", None, FIREFOX, "203.0.113.9")
    assert event["i"] == "203.0.113.0"


def test_click_event_omits_absent_fields():
    event = make_click_event("GET", "", None, "garbage")
    assert set(event) == {"e", "t"}


def test_click_event_flags_head_requests():
    assert make_click_event("HEAD", None, FIREFOX, "203.0.113.9")["b"] == "1"


def test_click_event_of_a_person_has_no_bot_flag():
    assert "b" not in make_click_event("GET", None, FIREFOX, "203.0.113.9")


def test_click_event_time_is_now_in_unix_seconds():
    before = time.time()
    event = make_click_event("GET", None, FIREFOX, "203.0.113.9")
    assert before - 0.01 <= float(event["t"]) <= time.time() + 0.01


def test_event_ids_are_unique_and_fit_the_column():
    ids = {new_event_id() for _ in range(1000)}
    assert len(ids) == 1000
    assert max(len(event_id) for event_id in ids) <= 32


# --- click_row --------------------------------------------------------------


def captured(method="GET", referrer="https://news.example/", user_agent=FIREFOX, link_id=7):
    """A click event as the redirect captures it, as strings (what Redis gives back)."""
    return {**make_click_event(method, referrer, user_agent, "203.0.113.9"), "l": str(link_id)}


def test_click_row_round_trips_every_field():
    event = captured()
    row = click_row(event)
    assert row == {
        "event_id": event["e"],
        "link_id": 7,
        "created_at": datetime.fromtimestamp(float(event["t"]), UTC).replace(tzinfo=None),
        "referrer": "https://news.example/",
        "user_agent": FIREFOX,
        "ip_anonymised": "203.0.113.0",
        "is_bot": False,
    }


def test_click_row_time_is_naive_utc():
    row = click_row({"e": "x", "l": "1", "t": "0"})
    assert row["created_at"] == datetime(1970, 1, 1)


def test_click_row_of_a_bot_click_is_flagged():
    assert click_row(captured(method="HEAD"))["is_bot"] is True


def test_click_row_of_a_minimal_event_has_empty_optional_fields():
    row = click_row({"e": "abc", "l": "3", "t": "1700000000.5"})
    optional = {key: row[key] for key in ("referrer", "user_agent", "ip_anonymised", "is_bot")}
    assert optional == {"referrer": None, "user_agent": None, "ip_anonymised": None, "is_bot": False}


@pytest.mark.parametrize(
    "event",
    [
        {"l": "1", "t": "1700000000"},
        {"e": "x", "t": "1700000000"},
        {"e": "x", "l": "1"},
        {"e": "x", "l": "seven", "t": "1700000000"},
        {"e": "x", "l": "1.5", "t": "1700000000"},
        {"e": "x", "l": None, "t": "1700000000"},
        {"e": "x", "l": "1", "t": "soon"},
        {"e": "x", "l": "1", "t": None},
        {"e": "x", "l": "1", "t": "inf"},
        {"e": "x", "l": "1", "t": "nan"},
        {"e": "x", "l": "1", "t": "1e20"},
        {"e": "x", "l": "1", "t": "-1e18"},
        {},
        None,
        [],
        "e=x l=1 t=0",
    ],
    ids=repr,
)
def test_click_row_of_a_malformed_message_is_none(event):
    assert click_row(event) is None
