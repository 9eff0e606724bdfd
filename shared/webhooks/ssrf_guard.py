"""Which addresses a webhook may connect to (the SSRF guard's rule, without any I/O).

A webhook URL comes from a client, so without a guard any client could make the service POST
to its own Redis, the cloud metadata service or a router's admin page. Refused: loopback,
private, link-local, unique-local, multicast, CGNAT (100.64.0.0/10), unspecified, reserved,
benchmarking and documentation ranges, cloud metadata addresses, and every IPv6 form that
embeds an IPv4 address (mapped, compatible, 6to4, NAT64, Teredo) of those. An operator may
allow networks (`webhook_allowed_networks`), e.g. a receiver on the same machine.

The rule is applied to the address actually connected to (see the worker's guarded HTTP
adapter), after DNS resolution, so a name resolving to a private address is refused too.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Iterable

IpAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IpNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

#: Ranges refused although `ipaddress` calls them global (or that it classifies loosely).
_EXTRA_FORBIDDEN: tuple[IpNetwork, ...] = tuple(ipaddress.ip_network(net) for net in (
    "0.0.0.0/8", "100.64.0.0/10", "192.0.0.0/24", "192.0.2.0/24", "198.18.0.0/15", "198.51.100.0/24",
    "203.0.113.0/24", "224.0.0.0/4", "240.0.0.0/4", "255.255.255.255/32",
    "169.254.169.254/32", "fd00:ec2::254/128", "fc00::/7", "fe80::/10", "fec0::/10", "ff00::/8",
    "::/128", "::1/128", "64:ff9b::/96", "64:ff9b:1::/48", "2001::/32", "2001:db8::/32", "2002::/16",
    "100::/64",
))


class AddressRefused(Exception):
    """The webhook's target is an address the service never connects to."""


def parse_networks(networks: Iterable[str]) -> tuple[IpNetwork, ...]:
    return tuple(ipaddress.ip_network(net, strict=False) for net in networks)


def _embedded_ipv4(address: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 form carries (mapped, compatible, 6to4, NAT64, Teredo)."""
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address.sixtofour is not None:
        return address.sixtofour
    if address.teredo is not None:
        return address.teredo[1]
    packed = address.packed
    if packed[:12] == bytes(12) and packed[12:] != bytes(4):  # ::a.b.c.d, IPv4-compatible
        return ipaddress.IPv4Address(packed[12:])
    if address in ipaddress.ip_network("64:ff9b::/96"):
        return ipaddress.IPv4Address(packed[12:])
    return None


def refusal_reason(address: IpAddress, allowed: tuple[IpNetwork, ...] = ()) -> str | None:
    """Why a connection to `address` is refused, or None when it is allowed."""
    if any(address.version == net.version and address in net for net in allowed):
        return None
    if isinstance(address, ipaddress.IPv6Address):
        embedded = _embedded_ipv4(address)
        if embedded is not None:
            inner = refusal_reason(embedded, allowed)
            return f"{address} embeds {embedded}: {inner}" if inner else "an IPv6 form of an IPv4 address"
    if address.is_loopback:
        return f"{address} is a loopback address"
    if address.is_link_local:
        return f"{address} is link-local (cloud metadata lives there)"
    if address.is_multicast:
        return f"{address} is a multicast address"
    if address.is_unspecified:
        return f"{address} is the unspecified address"
    if any(address.version == net.version and address in net for net in _EXTRA_FORBIDDEN):
        return f"{address} is in a reserved, shared (CGNAT) or special-purpose range"
    if address.is_private or address.is_reserved or not address.is_global:
        return f"{address} is a private or reserved address"
    return None


def literal_address(host: str) -> IpAddress | None:
    """The address a host names literally, in every form resolvers accept: dotted quad,
    `[v6]`, and the legacy decimal, octal and hex forms (`2130706433`, `0177.1`, `0x7f.1`)."""
    bare = host.strip("[]").rstrip(".")
    try:
        return ipaddress.ip_address(bare.split("%")[0])
    except ValueError:
        pass
    try:
        return ipaddress.IPv4Address(socket.inet_aton(bare))
    except (OSError, ValueError):
        return None
