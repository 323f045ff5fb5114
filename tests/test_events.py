"""Click capture's pure functions (webapp/clicks/events.py).

A click travels as one line of seven tab-separated fields (event id, link
id, time, bot flag, anonymised ip, referrer, user agent); ``fields`` below
names them so the tests read like the format.
"""

import time
from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.strategies import HEADER_TEXT
from webapp.clicks.events import (
    anonymise_ip,
    click_row,
    encode_click,
    header_text,
    is_bot,
    parse_seconds,
    split_seconds,
)
from webapp.client_address import client_ip, parse_trusted_proxies
from webapp.event_ids import new_event_id
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


# --- encode_click -------------------------------------------------------------

FIELDS = ("event_id", "link_id", "time", "bot", "ip", "referrer", "user_agent")


def fields(line):
    """The line's fields by name; fails unless there are exactly seven."""
    return dict(zip(FIELDS, line.split("\t"), strict=True))


def test_click_line_is_seven_tab_separated_fields_in_order():
    line = encode_click(7, "GET", "https://news.example/", FIREFOX, "203.0.113.9", at=1700000000.25)
    assert fields(line) == {
        "event_id": fields(line)["event_id"],
        "link_id": "7",
        "time": "1700000000.250",
        "bot": "",
        "ip": "203.0.113.0",
        "referrer": "https://news.example/",
        "user_agent": FIREFOX,
    }


def test_click_line_is_one_line():
    line = encode_click(7, "GET", "https://news.example/", FIREFOX, "203.0.113.9")
    assert "\n" not in line and "\r" not in line


def test_click_line_truncates_the_referrer_to_the_column():
    line = encode_click(7, "GET", "https://example.com/" + "r" * 1000, FIREFOX, "203.0.113.9")
    assert len(fields(line)["referrer"]) == REFERRER_MAX_LENGTH


def test_click_line_truncates_the_user_agent_to_the_column():
    line = encode_click(7, "GET", None, "Mozilla/5.0 " + "u" * 1000, "203.0.113.9")
    assert len(fields(line)["user_agent"]) == USER_AGENT_MAX_LENGTH


def test_click_line_stores_only_the_anonymised_ip():
    line = encode_click(7, "GET", None, FIREFOX, "203.0.113.9")
    assert fields(line)["ip"] == "203.0.113.0"
    assert "203.0.113.9" not in line


def test_click_line_leaves_absent_fields_empty():
    parsed = fields(encode_click(7, "GET", "", None, "garbage"))
    assert {key: parsed[key] for key in ("bot", "ip", "referrer", "user_agent")} == {
        "bot": "",
        "ip": "",
        "referrer": "",
        "user_agent": "",
    }


@pytest.mark.parametrize("breaker", ["\t", "\n", "\r", "\r\n", "\t\t"])
def test_tabs_and_newlines_in_referrer_and_agent_are_blanked(breaker):
    line = encode_click(7, "GET", f"https://news.example/{breaker}x", f"Agent{breaker}1.0", "203.0.113.9")
    parsed = fields(line)
    assert (parsed["referrer"], parsed["user_agent"]) == (
        "https://news.example/" + " " * len(breaker) + "x",
        "Agent" + " " * len(breaker) + "1.0",
    )


def test_blanking_happens_after_truncation_so_the_column_limit_holds():
    line = encode_click(7, "GET", "\t" * 1000, "\n" * 1000, "203.0.113.9")
    parsed = fields(line)
    assert (len(parsed["referrer"]), len(parsed["user_agent"])) == (
        REFERRER_MAX_LENGTH,
        USER_AGENT_MAX_LENGTH,
    )


def test_click_line_flags_head_requests():
    assert fields(encode_click(7, "HEAD", None, FIREFOX, "203.0.113.9"))["bot"] == "1"


def test_bots_are_told_by_the_drain_not_on_the_request_path():
    googlebot = "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)"
    line = encode_click(7, "GET", None, googlebot, "203.0.113.9")
    assert fields(line)["bot"] == ""  # the redirect only marks HEAD
    assert click_row(line)["is_bot"] is True


def test_click_line_of_a_person_has_an_empty_bot_flag():
    assert fields(encode_click(7, "GET", None, FIREFOX, "203.0.113.9"))["bot"] == ""


def test_click_line_time_is_now_in_unix_seconds():
    before = time.time()
    line = encode_click(7, "GET", None, FIREFOX, "203.0.113.9")
    assert before - 0.01 <= float(fields(line)["time"]) <= time.time() + 0.01


def test_click_line_time_keeps_milliseconds_of_a_given_time():
    assert fields(encode_click(7, "GET", None, FIREFOX, "203.0.113.9", at=1700000000.1234))["time"] == (
        "1700000000.123"
    )


def test_each_click_line_has_its_own_event_id():
    lines = [encode_click(7, "GET", None, FIREFOX, "203.0.113.9") for _ in range(100)]
    assert len({fields(line)["event_id"] for line in lines}) == 100


# --- new_event_id ---------------------------------------------------------------


def test_event_ids_are_unique_and_fit_the_column():
    ids = {new_event_id() for _ in range(1000)}
    assert len(ids) == 1000
    assert max(len(event_id) for event_id in ids) <= 32


def test_event_id_is_13_hex_digits_of_microseconds_then_12_random_hex_digits():
    before = time.time_ns() // 1000
    event_id = new_event_id()
    after = time.time_ns() // 1000
    assert len(event_id) == 25
    assert all(char in "0123456789abcdef" for char in event_id)
    assert before <= int(event_id[:13], 16) <= after


def test_event_ids_are_time_ordered():
    ids = []
    for _ in range(200):
        ids.append(new_event_id())
        time.sleep(0.00002)
    assert ids == sorted(ids)


# --- click_row --------------------------------------------------------------


def captured(method="GET", referrer="https://news.example/", user_agent=FIREFOX, link_id=7, at=None):
    """A click line as the redirect captures it."""
    return encode_click(link_id, method, referrer, user_agent, "203.0.113.9", at)


def test_click_row_time_matches_the_line_time_to_the_microsecond():
    line = captured()
    expected = datetime.fromtimestamp(float(fields(line)["time"]), UTC).replace(tzinfo=None)
    assert click_row(line)["created_at"] == expected


def test_click_row_whole_seconds_and_microseconds_are_its_time():
    row = click_row(captured(at=1700000000.999))
    assert row["at"] == (1700000000, 999000)
    assert row["created_at"] == datetime(2023, 11, 14, 22, 13, 20, 999000)


def test_click_row_round_trips_every_field():
    line = captured(at=1700000000.25)
    row = click_row(line)
    assert row == {
        "event_id": fields(line)["event_id"],
        "link_id": 7,
        "at": (1700000000, 250000),
        "created_at": datetime(2023, 11, 14, 22, 13, 20, 250000),
        "hour": datetime(2023, 11, 14, 22),
        "referrer": "https://news.example/",
        "user_agent": FIREFOX,
        "ip_anonymised": "203.0.113.0",
        "is_bot": False,
        "refused": False,
    }


@pytest.mark.parametrize(
    "text", ["1700000000.25", "1700000000.250", "1700000000", "1.7e9", "1700000000.9999995"]
)
def test_the_lines_time_reads_alike_through_digits_or_float(text):
    assert parse_seconds(text) == split_seconds(float(text))


def test_click_row_time_is_naive_utc():
    row = click_row("x\t1\t0\t\t\t\t")
    assert row["created_at"] == datetime(1970, 1, 1)


def test_click_row_of_a_bot_click_is_flagged():
    assert click_row(captured(method="HEAD"))["is_bot"] is True


def test_click_row_of_a_minimal_line_has_empty_optional_fields():
    row = click_row("abc\t3\t1700000000.5\t\t\t\t")
    optional = {key: row[key] for key in ("referrer", "user_agent", "ip_anonymised", "is_bot")}
    assert optional == {"referrer": None, "user_agent": None, "ip_anonymised": None, "is_bot": False}


def test_click_row_truncates_an_overlong_event_id_to_the_column():
    assert click_row("e" * 40 + "\t3\t1700000000.5\t\t\t\t")["event_id"] == "e" * 32


def test_click_row_of_an_encoded_line_keeps_blanked_text():
    row = click_row(captured(referrer="https://news.example/\tx", user_agent="Agent\n1.0"))
    assert (row["referrer"], row["user_agent"]) == ("https://news.example/ x", "Agent 1.0")


@given(
    link_id=st.integers(min_value=1, max_value=2**62),
    method=st.sampled_from(["GET", "HEAD"]),
    referrer=st.one_of(st.none(), HEADER_TEXT),
    user_agent=st.one_of(st.none(), HEADER_TEXT),
    ip=st.one_of(st.ip_addresses().map(str), st.text(max_size=20)),
    at=st.floats(min_value=0, max_value=4e9),
)
def test_every_encoded_click_parses_back(link_id, method, referrer, user_agent, ip, at):
    row = click_row(encode_click(link_id, method, referrer, user_agent, ip, at))
    assert row is not None
    assert row["link_id"] == link_id
    assert row["ip_anonymised"] == (anonymise_ip(ip) or None)
    blanked = {"referrer": referrer, "user_agent": user_agent}
    for key, limit in (("referrer", REFERRER_MAX_LENGTH), ("user_agent", USER_AGENT_MAX_LENGTH)):
        text = header_text(blanked[key] or "")[:limit]  # UTF-8 sent as Latin-1 is read as UTF-8
        expected = text.replace("\t", " ").replace("\n", " ").replace("\r", " ")
        assert row[key] == (expected or None)
    assert row["is_bot"] == is_bot(row["user_agent"], method)
    assert abs((row["created_at"] - datetime(1970, 1, 1)).total_seconds() - at) < 0.001


@pytest.mark.parametrize(
    "line",
    [
        "x\t1\t1700000000\t\t\t",  # six fields
        "x\t1\t1700000000\t\t\t\t\t",  # eight fields
        "x\t1\t1700000000",
        "",
        "x\tseven\t1700000000\t\t\t\t",
        "x\t1.5\t1700000000\t\t\t\t",
        "x\t\t1700000000\t\t\t\t",
        "x\t1\tsoon\t\t\t\t",
        "x\t1\t\t\t\t\t",
        "x\t1\tinf\t\t\t\t",
        "x\t1\tnan\t\t\t\t",
        "x\t1\t1e20\t\t\t\t",
        "x\t1\t-1e18\t\t\t\t",
        "e=x l=1 t=0",
        None,
        [],
        {},
        7,
        b"x\t1\t1700000000\t\t\t\t",
    ],
    ids=repr,
)
def test_click_row_of_a_malformed_line_is_none(line):
    assert click_row(line) is None


def test_a_refused_visit_is_marked_r_and_read_back_as_refused_not_bot():
    row = click_row(encode_click(7, "GET", None, FIREFOX, "203.0.113.9", refused=True))
    assert (row["refused"], row["is_bot"]) == (True, False)
