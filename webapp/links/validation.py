"""Pure rules for link targets and slugs: validation, normalisation, generation.

Nothing here touches the database, so the rules can be tested exhaustively.
"""

import re
import secrets
from datetime import UTC, datetime
from urllib.parse import urlsplit, urlunsplit

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


class InvalidLink(ValueError):
    """A target URL or slug that cannot be accepted; the message is for the user.

    ``field`` names the field it is about, where the caller knows it."""

    field = None


def normalise_url(raw):
    """Return the canonical form of a target URL, or raise ``InvalidLink``.

    Scheme and host are lower-cased, default ports and the fragment dropped,
    an empty path becomes ``/``, so equivalent URLs compare equal.
    """
    if not isinstance(raw, str) or not raw.strip():
        raise InvalidLink("url is required")
    url = check_length(raw.strip())
    if CONTROL_CHARACTERS.search(url):
        raise InvalidLink("url contains spaces or control characters")
    if not is_encodable(url):
        raise InvalidLink("url is not valid Unicode (a lone surrogate)")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise InvalidLink(f"url is malformed: {exc}") from None
    scheme = parts.scheme.lower()
    if scheme not in DEFAULT_PORTS:
        raise InvalidLink("url must start with http:// or https://")
    host = (parts.hostname or "").rstrip(".")
    if not host:
        raise InvalidLink("url must include a host name")
    host = encode_host(host)
    netloc = host if ":" not in host else f"[{host}]"
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
