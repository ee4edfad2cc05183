"""SSRF guard for the ``http`` job: resolve a host once, refuse internal addresses, return the vetted IPs.

The caller connects to one of the returned IPs (never re-resolving the name), so DNS rebinding between
the check and the connection cannot sneak in an internal address.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

from tickr.core.errors import Permanent, Retry

if TYPE_CHECKING:
    from tickr.config import Settings

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
Resolver = Callable[[str, int], Awaitable[list[str]]]

_CGNAT = ipaddress.IPv4Network("100.64.0.0/10")
_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")
_METADATA = {ipaddress.ip_address("169.254.169.254"), ipaddress.ip_address("fd00:ec2::254")}


async def default_resolver(host: str, port: int) -> list[str]:
    """Resolve ``host`` with the event loop's ``getaddrinfo``; unique IP strings in resolver order."""
    loop = asyncio.get_running_loop()
    infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    ips: list[str] = []
    for family, _type, _proto, _canon, sockaddr in infos:
        if family not in (socket.AF_INET, socket.AF_INET6):
            continue
        ip = str(sockaddr[0])
        if ip not in ips:
            ips.append(ip)
    return ips


#: The name resolver the guard uses. Tests replace it to simulate names resolving to internal addresses.
resolver: Resolver = default_resolver


def refusal_reason(ip: IPAddress) -> str | None:
    """Why connecting to ``ip`` is refused by default (e.g. ``"loopback"``), or None if it is public."""
    if isinstance(ip, ipaddress.IPv6Address):
        # ::ffff:a.b.c.d is a.b.c.d; 6to4 and NAT64 addresses may reach the IPv4 address they embed.
        embedded = ip.ipv4_mapped or ip.sixtofour
        if embedded is None and ip in _NAT64:
            embedded = ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
        if embedded is not None:
            inner = refusal_reason(embedded)
            if inner is not None:
                return f"{inner} (embedded IPv4 {embedded})"
            if ip.ipv4_mapped is not None:
                return None
    checks: list[tuple[bool, str]] = [
        (ip.is_unspecified, "unspecified"),
        (ip.is_loopback, "loopback"),
        (ip in _METADATA, "link-local (cloud metadata endpoint)"),
        (ip.is_link_local, "link-local"),
        (isinstance(ip, ipaddress.IPv4Address) and ip in _CGNAT, "carrier-grade NAT (100.64.0.0/10)"),
        (ip.is_multicast, "multicast"),
        (isinstance(ip, ipaddress.IPv6Address) and ip.is_site_local, "site-local"),
        (ip.is_private, "private"),
        (ip.is_reserved, "reserved"),
        (not ip.is_global, "non-global"),
    ]
    for matched, reason in checks:
        if matched:
            return reason
    return None


def parse_allow_hosts(value: str) -> tuple[frozenset[str], tuple[IPNetwork, ...]]:
    """Split ``settings.http_allow_hosts`` into (lower-cased hostnames, networks)."""
    names: set[str] = set()
    networks: list[IPNetwork] = []
    for raw in value.split(","):
        entry = raw.strip().strip("[]").lower().rstrip(".")
        if not entry:
            continue
        try:
            networks.append(ipaddress.ip_network(entry, strict=False))
        except ValueError:
            names.add(entry)
    return frozenset(names), tuple(networks)


def _normalise_host(host: str) -> str:
    return host.strip().strip("[]").lower().rstrip(".")


def _literal_ip(host: str) -> IPAddress | None:
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        return None


async def resolve_and_check(host: str, port: int, settings: Settings) -> list[str]:
    """Resolve ``host`` and return its IPs if every one may be contacted.

    Raises ``Permanent`` when any address is loopback, private, link-local, CGNAT, multicast, reserved or
    otherwise not global - unless ``settings.http_allow_private`` is set, the host is listed in
    ``settings.http_allow_hosts``, or the address falls in a CIDR listed there. Raises ``Retry`` when the
    name cannot be resolved. Nothing is connected to here.
    """
    name = _normalise_host(host)
    if not name:
        raise Permanent("URL has no host")
    literal = _literal_ip(name)
    if literal is not None:
        addresses: list[IPAddress] = [literal]
    else:
        try:
            resolved = await resolver(name, port)
        except OSError as exc:
            raise Retry(f"cannot resolve {name!r}: {exc}") from exc
        if not resolved:
            raise Retry(f"cannot resolve {name!r}: no addresses")
        addresses = [ipaddress.ip_address(ip) for ip in resolved]

    allowed_names, allowed_networks = parse_allow_hosts(settings.http_allow_hosts)
    if not settings.http_allow_private and name not in allowed_names:
        for address in addresses:
            if any(address in network for network in allowed_networks):
                continue
            reason = refusal_reason(address)
            if reason is not None:
                where = f"{name!r}" if literal is not None else f"{name!r} resolves to {address}, which"
                article = "an" if reason[0] in "aeiou" else "a"
                raise Permanent(
                    f"refusing to connect: {where} is {article} {reason} address "
                    "(set TICKR_HTTP_ALLOW_PRIVATE or list it in TICKR_HTTP_ALLOW_HOSTS to allow it)"
                )
    return [str(address) for address in addresses]
