"""Fetch a link's target to see whether it is still there: status and page title.

The URLs are typed by users, so the fetch is the classic SSRF risk and is
fenced in accordingly:

- the host is resolved here and every address it resolves to must be a
  public one (``is_public``: no loopback, private, CGNAT, link-local (cloud
  metadata), site- or unique-local, multicast, documentation or reserved
  ranges, nor an IPv6 address that carries or routes to one of those:
  IPv4-mapped, NAT64, 6to4, Teredo), unless the host is in ``allowed_hosts``;
- the connection goes to the address that was checked, never to a second
  lookup that could answer differently (DNS rebinding), with TLS still
  verified against the host name;
- every redirect hop is checked the same way, up to ``MAX_REDIRECTS``;
- one wall-clock deadline covers the whole check (connect, TLS, every read,
  every redirect hop), and bytes read are capped; no cookies, tokens or
  credentials are sent.
"""

import contextlib
import html
import http.client
import ipaddress
import re
import socket
import ssl
import threading
import time
from dataclasses import asdict, dataclass
from urllib.parse import urljoin, urlsplit

MAX_REDIRECTS = 5
MAX_BYTES = 256 * 1024
USER_AGENT = "ClickboardLinkChecker/1.0 (+https://github.com/clickboard)"
TITLE = re.compile(rb"<title[^>]*>(.*?)</title>", re.IGNORECASE | re.DOTALL)
REDIRECTS = {301, 302, 303, 307, 308}


class UnsafeTarget(Exception):
    """The target resolves to an address we refuse to fetch."""


@dataclass
class CheckResult:
    ok: bool
    status: int | None = None
    final_url: str | None = None
    title: str | None = None
    error: str | None = None

    def as_dict(self):
        return asdict(self)


def check_url(url, allowed_hosts=(), timeout=5.0):
    """Follow ``url`` safely; a 2xx/3xx final answer is ``ok``. Never raises."""
    deadline = time.monotonic() + timeout
    try:
        for _ in range(MAX_REDIRECTS + 1):
            status, location, body = fetch_once(url, allowed_hosts, deadline)
            if status in REDIRECTS and location:
                url = urljoin(url, location)
                continue
            return CheckResult(ok=200 <= status < 400, status=status, final_url=url, title=page_title(body))
        return CheckResult(ok=False, final_url=url, error=f"more than {MAX_REDIRECTS} redirects")
    except UnsafeTarget as exc:
        return CheckResult(ok=False, final_url=url, error=str(exc))
    except (OSError, http.client.HTTPException, ValueError) as exc:
        return CheckResult(ok=False, final_url=url, error=f"{type(exc).__name__}: {exc}"[:300])


def fetch_once(url, allowed_hosts, deadline):
    """One request to a checked address: (status, Location header, first bytes of the body)."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise UnsafeTarget(f"refusing to fetch {parts.scheme or 'a relative'} URL")
    port = parts.port or (443 if parts.scheme == "https" else 80)
    address = safe_address(parts.hostname, port, allowed_hosts)
    timeout = remaining(deadline)
    if parts.scheme == "https":
        conn = PinnedHTTPSConnection(parts.hostname, port, address, timeout=timeout)
    else:
        conn = PinnedHTTPConnection(parts.hostname, port, address, timeout=timeout)
    # Socket timeouts bound each read, not their sum: a server sending a byte a
    # second would never trip one. The watchdog closes the socket at the deadline,
    # so connect, TLS, headers and body together never outlast it.
    watchdog = threading.Timer(timeout, abort, args=(conn,))
    watchdog.daemon = True
    watchdog.start()
    try:
        path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        conn.request("GET", path, headers={"User-Agent": USER_AGENT, "Accept": "text/html,*/*;q=0.5"})
        response = conn.getresponse()
        body = read_capped(response, deadline)
        return response.status, response.getheader("Location"), body
    except OSError:
        remaining(deadline)  # past the deadline, say so rather than "connection reset"
        raise
    finally:
        watchdog.cancel()
        conn.close()


def abort(conn):
    """Cut a connection that outlived the check's deadline: its blocked read returns at once.

    The TCP socket itself, kept at connect: http.client hands a closing
    connection's socket to the response and forgets it (``conn.sock`` is None).
    """
    sock = conn.tcp_socket
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_RDWR)


def safe_address(host, port, allowed_hosts):
    """The first address of ``host`` after checking that all of them are public."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        raise UnsafeTarget(f"cannot resolve {host}: {exc.strerror}") from None
    addresses = [info[4][0] for info in infos]
    if host not in allowed_hosts:
        for address in addresses:
            if not is_public(address):
                raise UnsafeTarget(f"{host} resolves to a non-public address ({address})")
    return addresses[0]


# Ranges never fetched, whatever the running Python's ``is_global`` says: its
# tables changed between patch releases (192.0.0.0/24, 3fff::/20 and fec0::/10
# were "global" in some), and this list is the rule's floor.
NON_PUBLIC_NETWORKS = tuple(
    ipaddress.ip_network(network)
    for network in (
        "0.0.0.0/8", "10.0.0.0/8", "100.64.0.0/10", "127.0.0.0/8", "169.254.0.0/16", "172.16.0.0/12",
        "192.0.0.0/24", "192.0.2.0/24", "192.88.99.0/24", "192.168.0.0/16", "198.18.0.0/15",
        "198.51.100.0/24", "203.0.113.0/24", "224.0.0.0/4", "240.0.0.0/4",
        "::/8", "64:ff9b:1::/48", "100::/64", "2001::/23", "2001:db8::/32", "3fff::/20", "5f00::/16",
        "fc00::/7", "fe80::/10", "fec0::/10", "ff00::/8",
    )
)  # fmt: skip
IPV4_MAPPED = ipaddress.ip_network("::ffff:0:0/96")
NAT64 = ipaddress.ip_network("64:ff9b::/96")
NAT64_LOCAL = ipaddress.ip_network("64:ff9b:1::/48")
IPV4_COMPATIBLE = ipaddress.ip_network("::/96")


def is_public(address):
    """Whether the checker may connect to ``address``: the one home of that rule.

    An address is public when it is globally routable unicast and so is every
    IPv4 address it carries: a mapped or NAT64 address is judged by the IPv4
    address it reaches, and 6to4, Teredo, local NAT64 and IPv4-compatible
    addresses must pass both as themselves and by what they carry.
    """
    ip = ipaddress.ip_address(address.split("%", 1)[0])  # a zone (fe80::1%eth0) changes nothing
    if ip.version == 6 and (ip in IPV4_MAPPED or ip in NAT64):
        return is_routable(last_32_bits(ip))  # the packet goes to that IPv4 host, nowhere else
    return is_routable(ip) and all(is_routable(carried) for carried in embedded_ipv4(ip))


def is_routable(ip):
    """Globally routable unicast by the ipaddress module's properties and our own floor."""
    special = ip.is_multicast or ip.is_reserved or ip.is_private or ip.is_loopback or ip.is_link_local
    special = special or ip.is_unspecified or getattr(ip, "is_site_local", False)
    return ip.is_global and not special and not any(ip in network for network in NON_PUBLIC_NETWORKS)


def embedded_ipv4(ip):
    """The IPv4 addresses an IPv6 address carries (where a tunnel or translator sends it)."""
    if ip.version == 4:
        return []
    if ip.sixtofour:  # 2002:AABB:CCDD::/48 is relayed to AA.BB.CC.DD
        return [ip.sixtofour]
    if ip.teredo:  # (server, client); ipaddress undoes the client's bit flip
        return list(ip.teredo)
    if ip in IPV4_MAPPED or ip in NAT64 or ip in NAT64_LOCAL:
        return [last_32_bits(ip)]
    if ip in IPV4_COMPATIBLE and int(ip) > 1:  # ::a.b.c.d, but not :: or ::1
        return [last_32_bits(ip)]
    return []


def last_32_bits(ip):
    return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)


def remaining(deadline):
    left = deadline - time.monotonic()
    if left <= 0:
        raise TimeoutError("the check passed its deadline (LINK_CHECK_TIMEOUT)")
    return left


def read_capped(response, deadline):
    chunks, size = [], 0
    while size < MAX_BYTES:
        remaining(deadline)
        chunk = response.read(min(16 * 1024, MAX_BYTES - size))
        if not chunk:
            break
        chunks.append(chunk)
        size += len(chunk)
    return b"".join(chunks)


def page_title(body):
    match = TITLE.search(body or b"")
    if not match:
        return None
    title = html.unescape(match.group(1).decode("utf-8", errors="replace"))
    return " ".join(title.split())[:300] or None


class PinnedHTTPConnection(http.client.HTTPConnection):
    """Connects to an address we checked, sending the real host name."""

    def __init__(self, host, port, address, timeout):
        super().__init__(host, port, timeout=timeout)
        self.address = address
        self.tcp_socket = None

    def connect(self):
        self.sock = self.tcp_socket = socket.create_connection((self.address, self.port), self.timeout)


class PinnedHTTPSConnection(http.client.HTTPSConnection):
    """Like ``PinnedHTTPConnection``, with TLS verified against the host name."""

    def __init__(self, host, port, address, timeout):
        super().__init__(host, port, timeout=timeout, context=ssl.create_default_context())
        self.address = address
        self.tcp_socket = None

    def connect(self):
        self.tcp_socket = socket.create_connection((self.address, self.port), self.timeout)
        # wrap_socket takes the file descriptor over: from here on, the TLS socket is the one to cut.
        self.sock = self.tcp_socket = self._context.wrap_socket(self.tcp_socket, server_hostname=self.host)
