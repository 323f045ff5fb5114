"""Which addresses the link checker may connect to (``webapp.links.checker.is_public``).

A table, because the rule is a list of ranges and tunnels: every row is an
address a link target's host may resolve to, and whether a fetch may go
there. IPv6 forms that carry an IPv4 address (mapped, NAT64, 6to4, Teredo,
IPv4-compatible) are private when the IPv4 address they carry or route to is.
"""

import ipaddress

import pytest

from webapp.links.checker import embedded_ipv4, is_public

PRIVATE, PUBLIC = False, True

ADDRESS_RULES = [
    # IPv4: ordinary public hosts.
    ("8.8.8.8", PUBLIC),
    ("1.1.1.1", PUBLIC),
    ("93.184.215.14", PUBLIC),
    ("100.63.255.255", PUBLIC),  # just below CGNAT
    ("100.128.0.0", PUBLIC),  # just above CGNAT
    ("198.20.0.1", PUBLIC),  # just above the benchmarking range
    ("223.255.255.254", PUBLIC),  # just below multicast
    # IPv4: special-purpose ranges.
    ("0.0.0.0", PRIVATE),  # unspecified; "this host" on Linux
    ("0.1.2.3", PRIVATE),  # 0.0.0.0/8, "this network"
    ("10.1.2.3", PRIVATE),
    ("100.64.0.1", PRIVATE),  # CGNAT, 100.64.0.0/10
    ("100.127.255.254", PRIVATE),
    ("127.0.0.1", PRIVATE),
    ("127.255.255.254", PRIVATE),
    ("169.254.169.254", PRIVATE),  # cloud metadata, link-local
    ("172.16.0.1", PRIVATE),
    ("172.31.255.254", PRIVATE),
    ("192.0.0.9", PRIVATE),  # 192.0.0.0/24, IETF protocol assignments
    ("192.0.0.170", PRIVATE),
    ("192.0.2.1", PRIVATE),  # TEST-NET-1
    ("192.88.99.1", PRIVATE),  # the deprecated 6to4 relay anycast
    ("192.168.1.1", PRIVATE),
    ("198.18.0.1", PRIVATE),  # benchmarking, 198.18.0.0/15
    ("198.19.255.254", PRIVATE),
    ("198.51.100.1", PRIVATE),  # TEST-NET-2
    ("203.0.113.1", PRIVATE),  # TEST-NET-3
    ("224.0.0.1", PRIVATE),  # multicast
    ("239.255.255.250", PRIVATE),
    ("240.0.0.1", PRIVATE),  # reserved, 240.0.0.0/4
    ("255.255.255.255", PRIVATE),  # broadcast
    # IPv6: ordinary public hosts.
    ("2606:2800:21f:cb07:6820:80da:af6b:8b2c", PUBLIC),
    ("2001:4860:4860::8888", PUBLIC),
    ("2a00:1450:4001:81c::200e", PUBLIC),
    # IPv6: special-purpose ranges.
    ("::", PRIVATE),
    ("::1", PRIVATE),
    ("fe80::1", PRIVATE),  # link-local
    ("fe80::1%eth0", PRIVATE),  # with a zone, as getaddrinfo may give it
    ("fec0::1", PRIVATE),  # site-local (deprecated, still routed by some stacks)
    ("feff:ffff::1", PRIVATE),  # the top of site-local
    ("fc00::1", PRIVATE),  # unique-local
    ("fd00:ec2::254", PRIVATE),  # AWS's metadata service over IPv6
    ("ff02::1", PRIVATE),  # multicast
    ("ff0e::1", PRIVATE),  # global-scope multicast is still multicast
    ("2001:db8::1", PRIVATE),  # documentation
    ("3fff::1", PRIVATE),  # documentation (RFC 9637)
    ("100::1", PRIVATE),  # discard-only
    ("2001:2::1", PRIVATE),  # benchmarking
    ("2001:10::1", PRIVATE),  # ORCHID
    ("5f00::1", PRIVATE),  # SRv6 segment identifiers
    # IPv4-mapped (::ffff:0:0/96): a socket to it reaches the IPv4 address.
    ("::ffff:8.8.8.8", PUBLIC),
    ("::ffff:127.0.0.1", PRIVATE),
    ("::ffff:10.0.0.1", PRIVATE),
    ("::ffff:169.254.169.254", PRIVATE),
    ("::ffff:100.64.0.1", PRIVATE),
    ("::ffff:0.0.0.0", PRIVATE),
    # IPv4-compatible (::/96, deprecated): never a destination of ours.
    ("::127.0.0.1", PRIVATE),
    ("::10.0.0.1", PRIVATE),
    ("::8.8.8.8", PRIVATE),
    # NAT64, well-known prefix (64:ff9b::/96): the translator connects to the IPv4 address.
    ("64:ff9b::8.8.8.8", PUBLIC),
    ("64:ff9b::808:808", PUBLIC),
    ("64:ff9b::127.0.0.1", PRIVATE),
    ("64:ff9b::a00:1", PRIVATE),  # 10.0.0.1
    ("64:ff9b::a9fe:a9fe", PRIVATE),  # 169.254.169.254
    ("64:ff9b::c0a8:101", PRIVATE),  # 192.168.1.1
    # NAT64, local-use prefix (64:ff9b:1::/48): a translator inside someone's network.
    ("64:ff9b:1::8.8.8.8", PRIVATE),
    ("64:ff9b:1::127.0.0.1", PRIVATE),
    # 6to4 (2002::/16): relayed to the IPv4 address in its second and third groups.
    ("2002:808:808::1", PUBLIC),
    ("2002:7f00:1::", PRIVATE),  # 127.0.0.1
    ("2002:7f00:1::1", PRIVATE),
    ("2002:a00:1::1", PRIVATE),  # 10.0.0.1
    ("2002:a9fe:a9fe::1", PRIVATE),  # 169.254.169.254
    ("2002:c0a8:101::1", PRIVATE),  # 192.168.1.1
    ("2002:6440:1::1", PRIVATE),  # 100.64.0.1
    ("2002::1", PRIVATE),  # 0.0.0.0
    # Teredo (2001::/32): server and (obfuscated) client IPv4 addresses, and a private prefix.
    ("2001:0:4136:e378:8000:63bf:3fff:fdd2", PRIVATE),  # public server and client, still Teredo
    ("2001:0:7f00:1:8000:63bf:3fff:fdd2", PRIVATE),  # server 127.0.0.1
    ("2001:0:4136:e378:8000:63bf:80ff:fffe", PRIVATE),  # client 127.0.0.1
    ("2001::1", PRIVATE),
]


@pytest.mark.parametrize(("address", "public"), ADDRESS_RULES)
def test_address_rule(address, public):
    assert is_public(address) is public


def test_the_table_covers_both_answers_in_every_family():
    families = {
        (ipaddress.ip_address(address.split("%")[0]).version, public) for address, public in ADDRESS_RULES
    }
    assert families == {(4, True), (4, False), (6, True), (6, False)}


@pytest.mark.parametrize(
    ("address", "carried"),
    [
        ("::ffff:127.0.0.1", ["127.0.0.1"]),
        ("::10.0.0.1", ["10.0.0.1"]),
        ("64:ff9b::a9fe:a9fe", ["169.254.169.254"]),
        ("64:ff9b:1::c0a8:101", ["192.168.1.1"]),
        ("2002:c0a8:101::1", ["192.168.1.1"]),
        # Teredo: the server, then the client with its bits flipped back.
        ("2001:0:4136:e378:8000:63bf:3fff:fdd2", ["65.54.227.120", "192.0.2.45"]),
        ("2606:2800:21f:cb07:6820:80da:af6b:8b2c", []),
        ("2001:4860:4860::8888", []),
        ("::1", []),  # loopback, not an IPv4-compatible 0.0.0.1
        ("::", []),
        ("8.8.8.8", []),
    ],
)
def test_embedded_ipv4_addresses_are_found(address, carried):
    assert [str(ip) for ip in embedded_ipv4(ipaddress.ip_address(address))] == carried
