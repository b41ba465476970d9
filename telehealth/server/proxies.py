"""Who the client is behind a reverse proxy: `X-Forwarded-*` headers count only when the proxy that sent them
is one the settings trust; from anyone else they are the client's own claim and are ignored."""

from __future__ import annotations

import functools
import ipaddress

from aiohttp import web

from telehealth.server import keys

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
Address = ipaddress.IPv4Address | ipaddress.IPv6Address


@functools.cache
def networks(proxies: tuple[str, ...]) -> tuple[Network, ...]:
    """The trusted proxies' networks (settings have checked that each parses)."""
    return tuple(ipaddress.ip_network(p, strict=False) for p in proxies)


def _address(text: str) -> Address | None:
    try:
        address = ipaddress.ip_address(text.strip())
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def _trusted(address: Address | None, trusted: tuple[Network, ...]) -> bool:
    return address is not None and any(address.version == n.version and address in n for n in trusted)


def forwarded_client(remote: str, forwarded_for: list[str], trusted: tuple[Network, ...]) -> str:
    """The client's address: the peer's own, unless the peer is a trusted proxy; then the X-Forwarded-For hops
    are read from the right (the hop nearest this server) past every trusted proxy, and the first other address
    is the client. A hop that is not an address ends the walk: what lies left of it cannot be vouched for."""
    peer = _address(remote)
    if not forwarded_for or not _trusted(peer, trusted):
        return str(peer) if peer is not None else remote
    client: Address | None = peer
    for hop in reversed(",".join(forwarded_for).split(",")):
        address = _address(hop)
        if address is None:
            break
        client = address
        if not _trusted(address, trusted):
            break
    return str(client)


def client_address(request: web.Request) -> str:
    """The address of the client behind the configured proxies (`security.trusted_proxies`)."""
    trusted = networks(request.app[keys.SETTINGS].security.trusted_proxies)
    return forwarded_client(request.remote or "", request.headers.getall("X-Forwarded-For", []), trusted)


def forwarded_host(request: web.Request) -> str:
    """The Host the browser used: a trusted proxy's X-Forwarded-Host, else the request's own."""
    trusted = networks(request.app[keys.SETTINGS].security.trusted_proxies)
    if _trusted(_address(request.remote or ""), trusted):
        return request.headers.get("X-Forwarded-Host") or request.host
    return request.host
