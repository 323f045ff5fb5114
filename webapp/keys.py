"""Every name an install uses in Redis and on the broker, under its namespace.

Two installs may share one Redis or one broker, on purpose (a shared
server) or by accident (a second checkout on the same laptop). Each must
see only its own clicks, tasks and heartbeats, so every Redis key is
``cb:<namespace>:<name>`` and every Celery queue ``cb.<namespace>.<name>``,
and nothing else in the code spells a key or a queue name.

The namespace is ``CLICKBOARD_NAMESPACE`` if set, else a short hash of the
database URL with its password removed: clicks belong to the database they
are counted in, every host of one deployment reaches the same database, and
two installs with different databases differ. Hosts that reach one database
by different URLs (a hostname here, an address there) must set the same
``CLICKBOARD_NAMESPACE`` explicitly.
"""

import hashlib
import re

from flask import current_app
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

PREFIX = "cb"
NAMESPACE_PATTERN = re.compile(r"[A-Za-z0-9_-]{1,32}")


def namespace_for(database_uri):
    """The default namespace: 10 hex digits of the database URL without its password."""
    try:
        text = make_url(database_uri).render_as_string(hide_password=True)  # "***" for any password
    except ArgumentError:
        text = database_uri
    return hashlib.sha256(text.encode()).hexdigest()[:10]


def is_valid_namespace(namespace):
    return bool(NAMESPACE_PATTERN.fullmatch(namespace))


def key(namespace, *parts):
    """A Redis key of the install ``namespace``: ``key(ns, "clicks")`` is ``cb:<ns>:clicks``."""
    return ":".join((PREFIX, namespace, *parts))


def app_key(*parts):
    """A Redis key of the current app's install (inside an app context)."""
    return key(current_app.config["CLICKBOARD_NAMESPACE"], *parts)


def queue_name(namespace, name):
    """A Celery queue (or exchange) of the install: ``cb.<ns>.clicks``."""
    return f"{PREFIX}.{namespace}.{name}"
