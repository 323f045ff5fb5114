"""Sites of the page-view tracker: created with a public key and the origins their pages are
served from; the snippet a site embeds; the checks the collect endpoint applies.

The key is public (it is in the site's HTML): it names the site, it does not
authenticate anyone. What keeps strangers from filling a site's report is
that browsers send views only with the page's Origin, which must be one of
the site's, plus the rate limits in ``webapp.collect``.
"""

import secrets
import threading
import time
from typing import NamedTuple
from urllib.parse import urlsplit

from markupsafe import escape

from webapp.extensions import db
from webapp.links.representation import public_base
from webapp.models import Site

SCRIPT_PATH = "/static/js/cb-1.js"  # versioned: a new script is a new name, old pages keep theirs
MAX_ORIGINS = 20
NAME_MAX_LENGTH = 100


class InvalidSite(ValueError):
    """A site we cannot create; the message is for the user."""


def normalise_origin(text):
    """``https://www.example.com`` (scheme, host, port if not the default), or raise."""
    if not isinstance(text, str) or not text.strip():
        raise InvalidSite("an origin is required, e.g. https://www.example.com")
    try:
        parts = urlsplit(text.strip())
        port = parts.port
    except ValueError:
        raise InvalidSite(f"'{text[:100]}' is not an origin such as https://www.example.com") from None
    if parts.scheme not in ("http", "https") or not parts.hostname or parts.username or parts.password:
        raise InvalidSite(f"'{text[:100]}' is not an origin such as https://www.example.com")
    if parts.path not in ("", "/") or parts.query or parts.fragment:
        raise InvalidSite(f"'{text[:100]}' has a path: an origin is only scheme, host and port")
    default = {"http": 80, "https": 443}[parts.scheme]
    host = parts.hostname.lower()
    host = f"[{host}]" if ":" in host else host
    return f"{parts.scheme}://{host}" + (f":{port}" if port and port != default else "")


def create_site(name, origins, owner):
    name = " ".join((name or "").split())
    if not name or len(name) > NAME_MAX_LENGTH:
        raise InvalidSite(f"give the site a name of 1 to {NAME_MAX_LENGTH} characters")
    if not origins:
        raise InvalidSite("give at least one origin its pages are served from, e.g. https://www.example.com")
    if len(origins) > MAX_ORIGINS:
        raise InvalidSite(f"a site has at most {MAX_ORIGINS} origins")
    cleaned = sorted({normalise_origin(origin) for origin in origins})
    site = Site(name=name, origins=cleaned, owner=owner, public_key=secrets.token_urlsafe(12))
    db.session.add(site)
    db.session.commit()
    return site


def site_with_key(key):
    if not isinstance(key, str) or len(key) > 32:
        return None
    return db.session.execute(db.select(Site).where(Site.public_key == key)).scalar_one_or_none()


class KnownSite(NamedTuple):
    id: int
    origins: frozenset


KNOWN_SECONDS = 10  # a deleted site's key is taken this long by other processes (the drain copes)
known = {}  # key -> (KnownSite or None, expiry): this process's, so a view costs no query
known_lock = threading.Lock()


def known_site(key):
    """The site of a public key as the collect endpoint needs it, read at most every
    ``KNOWN_SECONDS`` per key and process; None for no such site."""
    now = time.monotonic()
    with known_lock:
        found = known.get(key)
    if found is not None and found[1] > now:
        return found[0]
    site = site_with_key(key)
    entry = KnownSite(site.id, frozenset(site.origins)) if site else None
    with known_lock:
        if len(known) > 10_000:  # random keys must not grow the process
            known.clear()
        known[key] = (entry, now + KNOWN_SECONDS)
    return entry


def visible_sites(user):
    query = db.select(Site).order_by(Site.name, Site.id)
    if not user.is_admin:
        query = query.where(Site.owner_id == user.id)
    return db.session.scalars(query).all()


def snippet(site):
    """The exact tag a site embeds (escaped: a key is URL-safe, but this is HTML)."""
    return f'<script defer src="{escape(public_base() + SCRIPT_PATH)}" data-site="{escape(site.public_key)}"></script>'


def delete_site(site):
    """Its page views stay (without a site): they are the install's history."""
    db.session.delete(site)
    db.session.commit()
