"""Where a request comes from: the client's address for throttling password guesses.

The address is the TCP peer's (the ASGI scope's ``client``). Behind a reverse proxy every peer is the
proxy, so ``X-Forwarded-For`` is honoured, but only when the peer is one of the configured
``trusted_proxies``: the header is then read from the right, skipping the trusted proxies that
appended to it, and the first address that is not one of them is the client. Anyone else's header is
ignored, since a client can write whatever it likes there.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Sequence

from fastapi import Request

IpNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
FORWARDED_HOPS_MAX = 20  # addresses read from X-Forwarded-For before giving up on it


def parse_networks(values: Iterable[str]) -> tuple[IpNetwork, ...]:
    """``["10.0.0.1", "192.168.0.0/16"]`` → networks; a value that is not an address or network raises."""
    return tuple(ipaddress.ip_network(value.strip(), strict=False) for value in values)


def _address(value: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        parsed = ipaddress.ip_address(value.strip())
    except ValueError:
        return None
    mapped = parsed.ipv4_mapped if isinstance(parsed, ipaddress.IPv6Address) else None
    return mapped or parsed


def _trusted(address: ipaddress.IPv4Address | ipaddress.IPv6Address, proxies: Sequence[IpNetwork]) -> bool:
    return any(address.version == network.version and address in network for network in proxies)


def resolve(peer: str | None, forwarded_for: Sequence[str], proxies: Sequence[IpNetwork]) -> str | None:
    """The client's address, as a string, from the peer and the ``X-Forwarded-For`` header values."""
    if peer is None:
        return None
    client = _address(peer)
    if client is None:
        return peer  # not an IP address (a test client, a Unix socket): the peer as it is
    if not _trusted(client, proxies):
        return str(client)
    hops = [hop for value in forwarded_for for hop in value.split(",")][-FORWARDED_HOPS_MAX:]
    for hop in reversed(hops):
        address = _address(hop)
        if address is None:
            return str(client)  # a garbled header: the last trusted hop is all we know
        if not _trusted(address, proxies):
            return str(address)
        client = address
    return str(client)


def client_address(request: Request) -> str | None:
    proxies: Sequence[IpNetwork] = getattr(request.app.state, "trusted_proxies", ())
    peer = request.client.host if request.client else None
    return resolve(peer, request.headers.getlist("x-forwarded-for"), proxies)
