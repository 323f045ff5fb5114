"""The link target checker's fences, against a local HTTP server the test starts.

The checker fetches URLs users typed, so what matters most is what it
refuses: non-public addresses (before and after redirects), endless
redirects, huge or slow answers, and sending anything of ours.
"""

import threading

import pytest

from tests.local_site import Drip, LocalSite
from webapp.links import checker
from webapp.links.checker import check_url, is_public

LOCAL = ("127.0.0.1",)


@pytest.fixture
def server():
    with LocalSite() as site:
        yield site


@pytest.mark.parametrize(
    "address",
    ["127.0.0.1", "10.1.2.3", "172.16.0.1", "192.168.1.1", "169.254.169.254", "0.0.0.0", "::1", "fd00:ec2::254",
     "fe80::1", "224.0.0.1", "::ffff:127.0.0.1", "100.64.0.1"],
)  # fmt: skip
def test_non_public_addresses_are_refused(address):
    assert not is_public(address)


@pytest.mark.parametrize("address", ["93.184.215.14", "2606:2800:21f:cb07:6820:80da:af6b:8b2c", "8.8.8.8"])
def test_public_addresses_are_allowed(address):
    assert is_public(address)


@pytest.mark.parametrize(
    "url",
    ["http://127.0.0.1/", "http://localhost/", "http://[::1]/", "http://169.254.169.254/latest/meta-data/",
     "http://10.0.0.1/", "http://0x7f000001/", "http://2130706433/"],
)  # fmt: skip
def test_loopback_private_and_metadata_targets_are_not_fetched(url):
    result = check_url(url, timeout=2)
    assert result.ok is False
    assert "non-public address" in result.error or "cannot resolve" in result.error


def test_an_allowed_local_server_is_fetched_with_its_status_and_title(server):
    server.route("/page", body=b"<html><head><title> Hello &amp; welcome </title></head></html>")
    result = check_url(server.base + "/page", LOCAL)
    assert (result.ok, result.status, result.title) == (True, 200, "Hello & welcome")


def test_a_missing_page_is_not_ok(server):
    result = check_url(server.base + "/gone/missing", LOCAL)
    assert (result.ok, result.status) == (False, 404)


def test_redirects_are_followed_to_the_final_page(server):
    server.route("/old", 301, Location="/new")
    server.route("/new", body=b"<title>New</title>")
    result = check_url(server.base + "/old", LOCAL)
    assert (result.ok, result.status, result.title, result.final_url) == (
        True,
        200,
        "New",
        server.base + "/new",
    )


def test_a_redirect_to_a_non_public_host_is_refused(server):
    server.route("/sneaky", 302, Location="http://169.254.169.254/latest/meta-data/")
    result = check_url(server.base + "/sneaky", LOCAL)
    assert result.ok is False
    assert "169.254.169.254" in result.error


def test_a_redirect_to_another_scheme_is_refused(server):
    server.route("/file", 302, Location="file:///etc/passwd")
    result = check_url(server.base + "/file", LOCAL)
    assert result.ok is False
    assert "refusing" in result.error


def test_endless_redirects_stop(server):
    server.route("/loop", 302, Location="/loop")
    result = check_url(server.base + "/loop", LOCAL)
    assert result.ok is False
    assert "redirects" in result.error
    assert len(server.requests) == checker.MAX_REDIRECTS + 1


def test_a_huge_answer_is_read_only_up_to_the_cap(server, monkeypatch):
    monkeypatch.setattr(checker, "MAX_BYTES", 1024)
    server.route("/huge", body=b"<title>Big</title>" + b"x" * 200_000)
    result = check_url(server.base + "/huge", LOCAL)
    assert (result.ok, result.title) == (True, "Big")


def test_a_title_beyond_the_cap_is_not_seen(server, monkeypatch):
    monkeypatch.setattr(checker, "MAX_BYTES", 1024)
    server.route("/late-title", body=b"x" * 5000 + b"<title>Too late</title>")
    assert check_url(server.base + "/late-title", LOCAL).title is None


def test_a_slow_answer_is_cut_off_by_the_time_cap(server):
    check_gave_up = threading.Event()

    def slow():
        check_gave_up.wait(30)  # no answer until the check has returned
        return b"<title>Slow</title>"

    server.route("/slow", body=slow)
    result = check_url(server.base + "/slow", LOCAL, timeout=0.5)
    check_gave_up.set()
    assert result.ok is False
    assert result.title is None
    assert "timed out" in result.error or "deadline" in result.error, result.error


def test_nothing_of_ours_is_sent(server):
    server.route("/page", body=b"<title>x</title>")
    check_url(server.base + "/page", LOCAL)
    (request,) = server.requests
    headers = request["headers"]
    assert not {"Cookie", "Authorization"} & set(headers)
    assert headers["User-Agent"].startswith("ClickboardLinkChecker/")


def test_an_unresolvable_host_is_reported_not_raised():
    result = check_url("http://no-such-host.invalid/", timeout=2)
    assert result.ok is False
    assert "cannot resolve" in result.error


def test_a_target_dripping_a_byte_at_a_time_is_cut_off_at_the_deadline(server):
    # Each byte arrives well within any socket timeout; only a deadline over the
    # whole fetch stops it (200 bytes at 0.1 s would take 20 s).
    drip = Drip(b"<title>" + b"x" * 193, interval=0.1)
    server.routes["/drip"] = (200, {"Content-Type": "text/html"}, drip)

    result = check_url(server.base + "/drip", LOCAL, timeout=1.0)

    assert result.ok is False
    assert "deadline" in result.error, result.error
    assert drip.hung_up.wait(10), "the check did not hang up"
    assert drip.sent < len(drip.body)
