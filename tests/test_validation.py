"""The pure rules for link targets and slugs (webapp/links/validation.py)."""

import re
import unicodedata

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from tests.strategies import url_like
from webapp.links.validation import (
    GENERATED_SLUG_LENGTH,
    SLUG_ALPHABET,
    InvalidLink,
    generate_slug,
    normalise_slug,
    normalise_url,
)
from webapp.models import SLUG_MAX_LENGTH, URL_MAX_LENGTH
from webapp.redirects import PLAUSIBLE_SLUG

# Inputs found to break a property once; kept so they are always tried.
TRICKY_URLS = [
    "http://a\u3002/",  # ideographic full stop: IDNA turns it into a trailing dot
    "http://a\xa0b/",  # IDNA maps a no-break space in the host to a plain space
    "http://a\xa8b/",  # ... and a diaeresis to a space and a combining mark
    "http://example.com/a\x85b",  # C1 control character in the path
    "http://example.com/a\u3000b",  # ideographic space in the path
    "http://example.com?" + "q" * (URL_MAX_LENGTH - len("http://example.com?")),  # "/" added
    "http://bücher.example/" + "p" * (URL_MAX_LENGTH - len("http://bücher.example/")),  # punycode
]


def accepted(raw):
    """The normalised URL, or None if it is rejected."""
    try:
        return normalise_url(raw)
    except InvalidLink:
        return None


def with_examples(urls):
    """Decorate a property test so each of ``urls`` is always among its examples."""

    def decorate(test):
        for url in urls:
            test = example(url)(test)
        return test

    return decorate


# --- normalise_url: rejected ------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ("javascript:alert(1)", "must start with http:// or https://"),
        ("data:text/html,<script>alert(1)</script>", "must start with http:// or https://"),
        ("ftp://x", "must start with http:// or https://"),
        ("example.com/page", "must start with http:// or https://"),
        ("//example.com/page", "must start with http:// or https://"),
        ("http://", "must include a host name"),
        ("https:///path", "must include a host name"),
        ("http://./", "must include a host name"),
        ("https://example.com/" + "a" * 5000, f"longer than {URL_MAX_LENGTH} characters"),
        ("https://exa mple.com/", "spaces or control characters"),
        ("https://example.com/a b", "spaces or control characters"),
        ("https://example.com/a\nb", "spaces or control characters"),
        ("https://example.com/a\rb", "spaces or control characters"),
        ("https://example.com/a\tb", "spaces or control characters"),
        ("https://example.com/\x00", "spaces or control characters"),
        ("https://example.com/\x1b[31m", "spaces or control characters"),
        ("https://example.com/\x7f", "spaces or control characters"),
        ("https://example.com/a\x85b", "spaces or control characters"),
        ("https://example.com/a\xa0b", "spaces or control characters"),
        ("https://example.com/a\u2028b", "spaces or control characters"),
        ("https://user:pass@example.com/", "must not contain a user name or password"),
        ("https://user@example.com/", "must not contain a user name or password"),
        ("https://example.com:abc/", "url is malformed"),
        ("https://example.com:99999/", "url is malformed"),
        ("https://example.com:-1/", "url is malformed"),
        ("http://[::1/", "url is malformed"),
        ("https://exa..mple.com/", "invalid host name"),
        ("https://" + "a" * 64 + ".example/", "invalid host name"),
        ("https://a\xa8b.example/", "invalid host name"),
        ("https://example\u3002\u3002/", "invalid host name"),
        ("https://example.com?" + "q" * (URL_MAX_LENGTH - 20), f"longer than {URL_MAX_LENGTH} characters"),
        ("", "url is required"),
        ("   ", "url is required"),
        (None, "url is required"),
        (42, "url is required"),
        (["https://example.com/"], "url is required"),
    ],
)
def test_normalise_url_rejects_with_a_useful_message(raw, message):
    with pytest.raises(InvalidLink, match=re.escape(message)):
        normalise_url(raw)


# --- normalise_url: hosts as browsers read them -----------------------------
# A stored target must mean the same host to the browser that follows the
# redirect as to us (and the link checker): the WHATWG URL standard decides.

BACKSLASH = "backslash before its path"
FORBIDDEN = "browsers do not allow in a host name"
NOT_IPV4 = "not a valid IPv4 address"


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        # Browsers read "\\" as "/" in http(s) URLs: these go to evil.com there.
        ("https://evil.com\\.example.com/", BACKSLASH),
        ("https://evil.com\\@example.com/", BACKSLASH),
        ("https://example.com\\", BACKSLASH),
        ("https://example.com:8080\\evil", BACKSLASH),
        ("https://\\\\evil.com/", BACKSLASH),
        ("https:/\\evil.com/", BACKSLASH),
        ("http:\\\\evil.com\\path", BACKSLASH),
        # Forbidden host code points, as typed or percent-encoded.
        ("https://exa<mple.com/", FORBIDDEN),
        ("https://exa>mple.com/", FORBIDDEN),
        ("https://exa^mple.com/", FORBIDDEN),
        ("https://exa|mple.com/", FORBIDDEN),
        ("https://a%2fb.example/", FORBIDDEN),  # /
        ("https://a%2Fb.example/", FORBIDDEN),
        ("https://a%5cb.example/", FORBIDDEN),  # \\
        ("https://a%40b.example/", FORBIDDEN),  # @
        ("https://a%3ab.example/", FORBIDDEN),  # :
        ("https://a%3fb.example/", FORBIDDEN),  # ?
        ("https://a%23b.example/", FORBIDDEN),  # #
        ("https://a%20b.example/", FORBIDDEN),  # space
        ("https://a%00b.example/", FORBIDDEN),  # NUL
        ("https://a%09b.example/", FORBIDDEN),  # tab
        ("https://a%7fb.example/", FORBIDDEN),  # DEL
        ("https://a%1bb.example/", FORBIDDEN),  # ESC
        ("https://a%3cb.example/", FORBIDDEN),  # <
        ("https://a%5bb.example/", FORBIDDEN),  # [
        ("https://a%5db.example/", FORBIDDEN),  # ]
        ("https://a%5eb.example/", FORBIDDEN),  # ^
        ("https://a%7cb.example/", FORBIDDEN),  # |
        ("https://a%2525b.example/", FORBIDDEN),  # decodes once, to a "%"
        ("https://a%zzb.example/", FORBIDDEN),  # not an escape: a bare "%"
        ("https://a%b.example/", FORBIDDEN),
        ("https://a%ffb.example/", "invalid host name"),  # not UTF-8
        # A host that ends in a number is an IPv4 address to browsers, or invalid.
        ("http://example.123/", NOT_IPV4),
        ("http://1.2.3.4.5/", NOT_IPV4),
        ("http://256.1.1.1/", NOT_IPV4),
        ("http://1.2.3.256/", NOT_IPV4),
        ("http://1.2.65536/", NOT_IPV4),
        ("http://4294967296/", NOT_IPV4),
        ("http://0x100000000/", NOT_IPV4),
        ("http://08/", NOT_IPV4),  # a leading 0 is octal, and 8 is no octal digit
        ("http://0x7g.1/", NOT_IPV4),
        ("http://1..2/", "invalid host name"),
        # IPv6 literals browsers refuse.
        ("http://[fe80::1%25eth0]/", "zone"),
        ("http://[v1.x]/", "IPv6"),
    ],
)
def test_normalise_url_rejects_hosts_browsers_read_differently(raw, message):
    with pytest.raises(InvalidLink, match=re.escape(message)):
        normalise_url(raw)


@pytest.mark.parametrize(
    ("raw", "normalised"),
    [
        # Numeric shortcuts, written as the dotted quad browsers (and getaddrinfo) take them for.
        ("http://0x7f.1/", "http://127.0.0.1/"),
        ("http://0x7F.1/", "http://127.0.0.1/"),
        ("http://2130706433/", "http://127.0.0.1/"),
        ("http://0x7f000001/", "http://127.0.0.1/"),
        ("http://017700000001/", "http://127.0.0.1/"),
        ("http://0177.0.0.1/", "http://127.0.0.1/"),
        ("http://127.1/", "http://127.0.0.1/"),
        ("http://127.0.1/", "http://127.0.0.1/"),
        ("http://10.0x10.1/", "http://10.16.0.1/"),
        ("http://192.168.0x1.01/", "http://192.168.1.1/"),
        ("http://0x8.0x8.0x8.0x8:8080/dns", "http://8.8.8.8:8080/dns"),
        ("http://1.2.3.0x/", "http://1.2.3.0/"),  # "0x" alone is 0 to browsers
        ("http://4294967295/", "http://255.255.255.255/"),
        ("http://8.8.8.8./", "http://8.8.8.8/"),
        ("https://１２７.０.０.１/", "https://127.0.0.1/"),  # full-width digits
        ("https://8.8.8.8/", "https://8.8.8.8/"),
        # Percent-escapes in a host are decoded, as browsers do.
        ("https://ex%61mple.com/", "https://example.com/"),
        ("https://EX%41MPLE.com/", "https://example.com/"),
        ("https://b%C3%BCcher.example/", "https://xn--bcher-kva.example/"),
        ("https://example.com%2e/", "https://example.com/"),
        ("https://%31%32%37.1/", "https://127.0.0.1/"),
        # Full-width letters are the same letters; underscores are allowed.
        ("https://ＥＸＡＭＰＬＥ.com/", "https://example.com/"),
        ("https://under_score.example/", "https://under_score.example/"),
        ("https://0abc.example/", "https://0abc.example/"),  # a number only in a label that is not last
        ("https://1.example/", "https://1.example/"),
        ("https://example.0a/", "https://example.0a/"),  # "0a" is no number
        # IPv6 literals in their shortest form.
        ("http://[0:0:0:0:0:0:0:1]/", "http://[::1]/"),
        ("http://[::FFFF:127.0.0.1]/", "http://[::ffff:7f00:1]/"),
        ("http://[2001:DB8:0::1]:8080/a", "http://[2001:db8::1]:8080/a"),
        # A backslash after the host is the path's business: same host either way.
        ("https://example.com/a\\b", "https://example.com/a\\b"),
        ("https://example.com/?q=a\\b", "https://example.com/?q=a\\b"),
    ],
)
def test_normalise_url_writes_hosts_as_browsers_read_them(raw, normalised):
    assert normalise_url(raw) == normalised


@pytest.mark.parametrize("char", ["\uff0f", "\uff20", "\uff1a", "\uff03", "\uff1f", "\ufe6b"])
def test_full_width_delimiters_in_the_host_are_refused(char):
    # NFKC, which IDNA applies, turns these into "/", "@", ":", "#", "?" and "@":
    # accepted, they would move the host's end once the URL is written out.
    assert accepted(f"https://example.com{char}evil.example/") is None


# --- normalise_url: accepted ------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "normalised"),
    [
        ("https://example.com/page", "https://example.com/page"),
        ("HTTPS://Example.COM/Page", "https://example.com/Page"),
        ("http://example.com:80/a", "http://example.com/a"),
        ("https://example.com:443/a", "https://example.com/a"),
        ("http://example.com:443/a", "http://example.com:443/a"),
        ("https://example.com:80/a", "https://example.com:80/a"),
        ("https://example.com:8443/a", "https://example.com:8443/a"),
        ("https://example.com/page#section", "https://example.com/page"),
        ("https://example.com", "https://example.com/"),
        ("https://example.com?q=1", "https://example.com/?q=1"),
        ("https://example.com/search?q=a+b&page=2", "https://example.com/search?q=a+b&page=2"),
        ("https://bücher.example/katalog", "https://xn--bcher-kva.example/katalog"),
        ("https://BÜCHER.example/", "https://xn--bcher-kva.example/"),
        ("https://example.com./", "https://example.com/"),
        ("https://example\u3002com\u3002/", "https://example.com/"),
        ("http://[2001:DB8::1]:8080/", "http://[2001:db8::1]:8080/"),
        ("http://127.0.0.1:80/", "http://127.0.0.1/"),
        ("  https://example.com/padded  ", "https://example.com/padded"),
    ],
)
def test_normalise_url_canonical_form(raw, normalised):
    assert normalise_url(raw) == normalised


def test_normalise_url_accepts_exactly_the_maximum_length():
    url = "https://example.com/" + "a" * (URL_MAX_LENGTH - len("https://example.com/"))
    assert normalise_url(url) == url


@pytest.mark.parametrize("raw", TRICKY_URLS[-2:])
def test_normalised_url_is_never_longer_than_the_column(raw):
    normalised = accepted(raw)
    assert normalised is None or len(normalised) <= URL_MAX_LENGTH


# --- normalise_url: properties ----------------------------------------------


@settings(max_examples=200)
@given(url_like())
@with_examples(TRICKY_URLS)
def test_normalise_url_is_idempotent(raw):
    normalised = accepted(raw)
    if normalised is not None:
        assert normalise_url(normalised) == normalised


@settings(max_examples=200)
@given(url_like())
@with_examples(TRICKY_URLS)
def test_accepted_url_is_http_without_control_characters_spaces_or_fragment(raw):
    normalised = accepted(raw)
    if normalised is None:
        return
    assert normalised.startswith(("http://", "https://"))
    assert not any(unicodedata.category(char) == "Cc" or char.isspace() for char in normalised)
    assert "#" not in normalised
    assert len(normalised) <= URL_MAX_LENGTH


@settings(max_examples=200)
@given(st.text())
def test_normalise_url_raises_only_invalid_link_for_arbitrary_text(raw):
    result = accepted(raw)  # anything but InvalidLink propagates and fails the test
    assert result is None or isinstance(result, str)


@settings(max_examples=200)
@given(url_like())
def test_normalise_url_raises_only_invalid_link_for_url_like_text(raw):
    result = accepted(raw)  # anything but InvalidLink propagates and fails the test
    assert result is None or isinstance(result, str)


# --- normalise_slug ---------------------------------------------------------

SLUG_RULES = "may contain only letters, digits, '-' and '_'"


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ("-abc", SLUG_RULES),
        ("abc-", SLUG_RULES),
        ("_abc", SLUG_RULES),
        ("a b", SLUG_RULES),
        ("a/b", SLUG_RULES),
        ("a.b", SLUG_RULES),
        ("é", SLUG_RULES),
        ("<script>", SLUG_RULES),
        ("a" * (SLUG_MAX_LENGTH + 1), f"longer than {SLUG_MAX_LENGTH} characters"),
        ("", "non-empty string"),
        ("   ", SLUG_RULES),
        (None, "non-empty string"),
        (42, "non-empty string"),
        (["abc"], "non-empty string"),
    ],
)
def test_normalise_slug_rejects_bad_slugs(raw, message):
    with pytest.raises(InvalidLink, match=re.escape(message)):
        normalise_slug(raw)


@pytest.mark.parametrize("raw", ["api", "R", "Login", "metrics", "healthz", "STATIC", "Users"])
def test_normalise_slug_rejects_reserved_words_in_any_case(raw):
    with pytest.raises(InvalidLink, match="is reserved"):
        normalise_slug(raw)


@pytest.mark.parametrize(
    ("raw", "normalised"),
    [
        ("launch", "launch"),
        ("Launch-2024", "launch-2024"),
        ("MY_Link", "my_link"),
        ("a", "a"),
        ("7", "7"),
        ("a" * SLUG_MAX_LENGTH, "a" * SLUG_MAX_LENGTH),
        ("  padded ", "padded"),
    ],
)
def test_normalise_slug_accepts_and_lowercases(raw, normalised):
    assert normalise_slug(raw) == normalised


@settings(max_examples=200)
@given(st.one_of(st.text(), st.from_regex(r"[A-Za-z0-9_-]{1,70}", fullmatch=True)))
def test_normalise_slug_is_idempotent(raw):
    try:
        slug = normalise_slug(raw)
    except InvalidLink:
        return
    assert normalise_slug(slug) == slug


@settings(max_examples=200)
@given(st.one_of(st.text(), st.from_regex(r"[A-Za-z0-9_-]{1,70}", fullmatch=True)))
def test_every_accepted_slug_is_reachable_through_the_redirect_route(raw):
    try:
        slug = normalise_slug(raw)
    except InvalidLink:
        return
    assert PLAUSIBLE_SLUG.fullmatch(slug)


# --- generate_slug ----------------------------------------------------------

GENERATED = [generate_slug() for _ in range(500)]


def test_generated_slugs_have_the_documented_length():
    assert {len(slug) for slug in GENERATED} == {GENERATED_SLUG_LENGTH}


def test_generated_slugs_use_only_the_unambiguous_alphabet():
    used = set("".join(GENERATED))
    assert used <= set(SLUG_ALPHABET)
    assert not used & set("0o1li")


def test_generated_slugs_are_valid_slugs():
    assert all(normalise_slug(slug) == slug for slug in GENERATED)


def test_generated_slugs_vary():
    assert len(set(GENERATED)) > 490
