"""The client's address behind trusted proxies: for click records and login throttling alike."""

import ipaddress

from flask import current_app


def parse_trusted_proxies(entries):
    """CIDRs or addresses from ``TRUSTED_PROXIES``; a bad entry fails at start-up."""
    return tuple(ipaddress.ip_network(entry, strict=False) for entry in entries)


def client_ip(remote_addr, forwarded_for, trusted_proxies):
    """The client's address, believing ``X-Forwarded-For`` only from trusted proxies.

    Walks the header from the right (the hop nearest us) past trusted proxies;
    the first address not among them is the client. Anything unparsable stops
    the walk, since a client can write whatever it likes on the left.
    """
    if not trusted_proxies or not is_trusted(remote_addr, trusted_proxies):
        return remote_addr
    hops = [hop.strip() for hop in (forwarded_for or "").split(",") if hop.strip()]
    candidate = remote_addr
    for hop in reversed(hops):
        try:
            ipaddress.ip_address(hop)
        except ValueError:
            break
        candidate = hop
        if not is_trusted(hop, trusted_proxies):
            break
    return candidate


def is_trusted(address, trusted_proxies):
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    return any(ip in network for network in trusted_proxies)


TRUSTED_PROXIES = "clickboard.trusted_proxies"


def trusted_proxies(app=None):
    """The app's ``TRUSTED_PROXIES``, parsed once at start-up."""
    return (app or current_app).extensions[TRUSTED_PROXIES]
