"""Pure rules for link targets and slugs: validation, normalisation, generation.

Nothing here touches the database, so the rules can be tested exhaustively.
"""

import ipaddress
import re
import secrets
from datetime import UTC, datetime
from urllib.parse import unquote, urlsplit, urlunsplit

from webapp.models import SLUG_MAX_LENGTH, TAG_MAX_LENGTH, TITLE_MAX_LENGTH, URL_MAX_LENGTH

# No 0/o, 1/l/i: a generated slug read aloud or off paper is typed right.
SLUG_ALPHABET = "23456789abcdefghjkmnpqrstuvwxyz"
GENERATED_SLUG_LENGTH = 7
SLUG_PATTERN = re.compile(r"[a-z0-9](?:[a-z0-9_-]*[a-z0-9])?")
RESERVED_SLUGS = frozenset(
    """
    admin api app assets auth dashboard docs favicon.ico healthz help links
    login logout me metrics new ops r reports robots.txt settings signup static
    stats status tokens users www
    """.split()
)
DEFAULT_PORTS = {"http": 80, "https": 443}
# ASCII and Unicode whitespace, C0 and C1 controls.
CONTROL_CHARACTERS = re.compile(r"[\s\x00-\x1f\x7f-\x9f]")
# The WHATWG URL standard's forbidden domain code points: a browser refuses a
# host with one, or (for "\\", "/", "?", "#", "@", ":") ends the host there.
FORBIDDEN_HOST_CHARACTERS = re.compile(r"[\x00-\x20\x7f#%/:<>?@\[\\\]^|]")
# Scheme, the slashes after it and the authority as urlsplit ends it (at "/", "?"
# or "#"); browsers also end it at "\\" in http(s) URLs, and take "\\" for "/".
BEFORE_PATH = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*:([/\\]*)([^/?#]*)")


class InvalidLink(ValueError):
    """A target URL or slug that cannot be accepted; the message is for the user.

    ``field`` names the field it is about, where the caller knows it."""

    field = None


def normalise_url(raw):
    """Return the canonical form of a target URL, or raise ``InvalidLink``.

    Scheme and host are lower-cased, default ports and the fragment dropped,
    an empty path becomes ``/``, so equivalent URLs compare equal. The host
    is read as browsers read it (the WHATWG URL standard), so the one a
    browser follows the redirect to is the one stored, shown and checked:
    escapes decoded, IPv4 shorthand (``0x7f.1``) written as a dotted quad,
    IPv6 in its shortest form; a host browsers would refuse or cut short is
    refused.
    """
    if not isinstance(raw, str) or not raw.strip():
        raise InvalidLink("url is required")
    url = check_length(raw.strip())
    if CONTROL_CHARACTERS.search(url):
        raise InvalidLink("url contains spaces or control characters")
    if not is_encodable(url):
        raise InvalidLink("url is not valid Unicode (a lone surrogate)")
    check_before_path(url)
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise InvalidLink(f"url is malformed: {exc}") from None
    scheme = parts.scheme.lower()
    if scheme not in DEFAULT_PORTS:
        raise InvalidLink("url must start with http:// or https://")
    netloc = canonical_host(parts)
    if parts.username or parts.password:
        raise InvalidLink("url must not contain a user name or password")
    if port is not None and port != DEFAULT_PORTS[scheme]:
        netloc = f"{netloc}:{port}"
    # Checked again: punycode and the "/" of an empty path make a URL longer.
    return check_length(urlunsplit((scheme, netloc, parts.path or "/", parts.query, "")))


def check_length(url):
    if len(url) > URL_MAX_LENGTH:
        raise InvalidLink(f"url is longer than {URL_MAX_LENGTH} characters")
    return url


def check_before_path(url):
    """Refuse a backslash in the slashes or authority: browsers read it as "/", we would not."""
    match = BEFORE_PATH.match(url)
    if match and "\\" in match.group(1) + match.group(2):
        raise InvalidLink("url has a backslash before its path (browsers read it as '/')")


def canonical_host(parts):
    """The URL's host as browsers read it, ready for the netloc; or raise ``InvalidLink``."""
    hostname = parts.hostname or ""  # lower-cased, without port, user or brackets
    if "[" in parts.netloc.rpartition("@")[2]:
        return f"[{ipv6_host(hostname)}]"
    host = percent_decode_host(hostname)
    check_host_characters(host)
    host = host.rstrip(".")
    if not host:
        raise InvalidLink("url must include a host name")
    host = encode_host(host)
    check_host_characters(host)  # NFKC in IDNA makes "/" of U+FF0F, "@" of U+FF20
    return ipv4_host(host) or host


def percent_decode_host(host):
    """Browsers decode %-escapes in a host (``ex%61mple.com`` is example.com) before reading it."""
    try:
        return unquote(host, errors="strict")
    except UnicodeDecodeError:
        raise InvalidLink("url has an invalid host name (its %-escapes are not UTF-8)") from None


def check_host_characters(host):
    forbidden = FORBIDDEN_HOST_CHARACTERS.search(host)
    if forbidden:
        character = forbidden.group()
        raise InvalidLink(f"url's host contains {character!r}, which browsers do not allow in a host name")


def ipv6_host(host):
    try:
        address = ipaddress.IPv6Address(host)
    except ValueError:
        raise InvalidLink("url's host in brackets is not an IPv6 address") from None
    if address.scope_id:
        raise InvalidLink("url's IPv6 address must not name a zone (%)")
    return address.compressed


def ipv4_host(host):
    """The dotted quad of a host that ends in a number, None for a domain name.

    Browsers (the WHATWG IPv4 parser) and getaddrinfo alike take ``127.1``,
    ``0x7f.1``, ``0177.0.0.1`` and ``2130706433`` for 127.0.0.1; a host
    ending in a number that is no such address (``example.123``,
    ``256.1.1.1``) is no valid URL to a browser.
    """
    labels = host.split(".")
    if not ends_in_number(labels[-1]):
        return None
    numbers = [ipv4_number(label) for label in labels]
    if not fits_ipv4(numbers):
        raise InvalidLink(f"url's host {host!r} ends in a number but is not a valid IPv4 address")
    # The last part fills every byte the others leave: 127.1 is 127.0.0.1.
    value = numbers[-1] + sum(number << (8 * (3 - index)) for index, number in enumerate(numbers[:-1]))
    return str(ipaddress.IPv4Address(value))


def fits_ipv4(numbers):
    if len(numbers) > 4 or None in numbers:
        return False
    return all(number <= 255 for number in numbers[:-1]) and numbers[-1] < 256 ** (5 - len(numbers))


def ends_in_number(label):
    return (label.isascii() and label.isdigit()) or (label[:2] == "0x" and ipv4_number(label) is not None)


def ipv4_number(label):
    """One part of an IPv4 shorthand: decimal, 0x hex or 0-prefixed octal; None if it is none."""
    if label[:2] == "0x":
        digits, base = label[2:] or "0", 16  # "0x" alone is 0 to browsers
    elif len(label) > 1 and label[0] == "0":
        digits, base = label[1:], 8
    else:
        digits, base = label, 10
    allowed = "0123456789abcdef"[:base]
    if not digits or not all(char in allowed for char in digits):
        return None
    return int(digits, base)


def encode_host(host):
    try:
        encoded = host.encode("idna").decode("ascii").lower()
    except UnicodeError:
        raise InvalidLink("url has an invalid host name") from None
    # IDNA can map characters to ones checked for above: an ideographic full
    # stop to a (trailing) dot, a diaeresis to a space and a combining mark.
    encoded = encoded.rstrip(".")
    if not encoded or CONTROL_CHARACTERS.search(encoded):
        raise InvalidLink("url has an invalid host name")
    return encoded


def normalise_slug(raw):
    """Return the slug as stored (lower case), or raise ``InvalidLink``."""
    if not isinstance(raw, str) or not raw:
        raise InvalidLink("slug must be a non-empty string")
    slug = raw.strip().lower()
    if len(slug) > SLUG_MAX_LENGTH:
        raise InvalidLink(f"slug is longer than {SLUG_MAX_LENGTH} characters")
    if not SLUG_PATTERN.fullmatch(slug):
        raise InvalidLink(
            "slug may contain only letters, digits, '-' and '_', "
            "and must start and end with a letter or digit"
        )
    if slug in RESERVED_SLUGS:
        raise InvalidLink(f"slug '{slug}' is reserved")
    return slug


def generate_slug():
    return "".join(secrets.choice(SLUG_ALPHABET) for _ in range(GENERATED_SLUG_LENGTH))


# Tags are words people filter by: lower case, letters, digits, '-', '_' and inner spaces.
TAG_PATTERN = re.compile(r"[\w](?:[\w -]*[\w])?")
MAX_TAGS = 20
MAX_CLICK_LIMIT = 10**12


def normalise_title(raw):
    """A title as stored (None for none), or raise ``InvalidLink``."""
    if raw is None:
        return None
    if not isinstance(raw, str):
        raise InvalidLink("title must be a string or null")
    title = " ".join(raw.split())  # newlines and runs of spaces become one space
    if len(title) > TITLE_MAX_LENGTH:
        raise InvalidLink(f"title is longer than {TITLE_MAX_LENGTH} characters")
    if CONTROL_CHARACTERS.sub(" ", title) != title or not is_encodable(title):
        raise InvalidLink("title contains control characters or invalid Unicode")
    return title or None


def normalise_tags(raw):
    """Tags as stored: a sorted list of distinct lower-case tags, or raise ``InvalidLink``."""
    if raw is None:
        return []
    if isinstance(raw, str):
        raw = raw.split(",")  # the dashboard's field: "launch, spring 2027"
    if not isinstance(raw, list) or not all(isinstance(tag, str) for tag in raw):
        raise InvalidLink("tags must be a list of strings")
    tags = sorted({" ".join(tag.split()).lower() for tag in raw} - {""})
    if len(tags) > MAX_TAGS:
        raise InvalidLink(f"a link has at most {MAX_TAGS} tags")
    for tag in tags:
        if len(tag) > TAG_MAX_LENGTH:
            raise InvalidLink(f"tag '{tag[:20]}...' is longer than {TAG_MAX_LENGTH} characters")
        if not TAG_PATTERN.fullmatch(tag) or not is_encodable(tag):
            raise InvalidLink(f"tag '{tag}' may contain only letters, digits, spaces, '-' and '_'")
    return tags


def parse_expiry(raw):
    """``expires_at`` as naive UTC (None for never), from ISO 8601 text; or raise ``InvalidLink``.

    A time without an offset is taken as UTC, as everywhere in the API.
    """
    if raw is None or raw == "":
        return None
    if not isinstance(raw, str):
        raise InvalidLink("expires_at must be an ISO 8601 date-time string or null")
    try:
        moment = datetime.fromisoformat(raw.strip().replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        raise InvalidLink("expires_at must be an ISO 8601 date-time such as 2027-01-31T18:00:00Z") from None
    if moment.tzinfo is not None:
        moment = moment.astimezone(UTC).replace(tzinfo=None)
    if not 2000 <= moment.year <= 9998:
        raise InvalidLink("expires_at must be between the years 2000 and 9998")
    return moment


def validate_max_clicks(raw):
    """``max_clicks`` as stored (None for no limit), or raise ``InvalidLink``."""
    if raw is None or raw == "":
        return None
    if isinstance(raw, str):  # the dashboard's field
        text = raw.strip()
        if not (text.isascii() and text.isdigit()):  # "²" is a digit to str.isdigit, not to int()
            raise InvalidLink("max_clicks must be a whole number or null")
        raw = int(text) if len(text) <= 20 else MAX_CLICK_LIMIT + 1  # int() refuses very long text
    if isinstance(raw, bool) or not isinstance(raw, int):
        raise InvalidLink("max_clicks must be a whole number or null")
    if not 1 <= raw <= MAX_CLICK_LIMIT:
        raise InvalidLink(f"max_clicks must be between 1 and {MAX_CLICK_LIMIT:,}")
    return raw


def is_encodable(text):
    """False for text with lone surrogates (from JSON's \\ud800), which no database takes."""
    try:
        text.encode()
    except UnicodeEncodeError:
        return False
    return True
