"""How the bench picks an outside server (PostgreSQL, RabbitMQ): one rule for both.

``<ENV_VAR>`` unset: the local server if it answers, else none (with why).
``<ENV_VAR>=off``: none. ``<ENV_VAR>=<url>``: that server, and an error if it
does not answer, since the user asked for it.
"""

import os

from kombu.utils.url import maybe_sanitize_url

OFF = "off"


class Unreachable(Exception):
    """The server did not answer ``probe``."""


def find_server(env_var, local_url, what, probe):
    """(URL, None) or (None, why not). ``probe(url)`` raises ``Unreachable``, or ``ValueError``
    for a server the bench must not use; a ``ValueError`` from here stops the bench."""
    configured = os.environ.get(env_var, "").strip()
    if configured.lower() == OFF:
        return None, f"{env_var}=off"
    url = configured or local_url
    try:
        probe(url)
    except Unreachable as exc:
        if configured:
            raise ValueError(f"{env_var}: cannot connect to {hidden(url)}: {exc}") from exc
        return None, f"no {what} answers at {hidden(local_url)} (set {env_var} to use another)"
    return url, None


def hidden(url):
    """The URL with its password masked, for messages."""
    return maybe_sanitize_url(url, mask="***")
