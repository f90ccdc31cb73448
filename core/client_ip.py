"""The client's address when requests arrive through our own proxies (the gateway).

Behind the gateway every request comes from the gateway's address, so per-IP rate limits would
be shared by everyone and audit records would name the gateway. When the peer is one of
IDP_TRUSTED_PROXIES, the client is the right-most X-Forwarded-For hop that is not a trusted
proxy: hops further left were written by the client and are not believed. REMOTE_ADDR is
replaced for everything after this middleware; the peer stays in IDP_PEER_ADDR.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable
from functools import lru_cache

from django.conf import settings
from django.http import HttpRequest, HttpResponse

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


@lru_cache(maxsize=8)
def _networks(configured: tuple[str, ...]) -> tuple[Network, ...]:
    return tuple(ipaddress.ip_network(entry, strict=False) for entry in configured)


def _trusted(address: str, networks: tuple[Network, ...]) -> bool:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    return any(ip in network for network in networks)


def client_ip(peer: str, forwarded_for: str) -> str:
    networks = _networks(tuple(settings.IDP_TRUSTED_PROXIES))
    if not networks or not _trusted(peer, networks):
        return peer
    for hop in reversed([hop.strip() for hop in forwarded_for.split(",") if hop.strip()]):
        try:
            ipaddress.ip_address(hop)
        except ValueError:
            return peer  # a garbled chain: trust nothing in it
        if not _trusted(hop, networks):
            return hop
    return peer


class ClientIPMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        peer = request.META.get("REMOTE_ADDR", "")
        request.META["IDP_PEER_ADDR"] = peer
        request.META["REMOTE_ADDR"] = client_ip(peer, request.META.get("HTTP_X_FORWARDED_FOR", ""))
        return self.get_response(request)
