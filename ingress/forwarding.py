"""The X-Forwarded-* headers a call carries upstream: what an upstream may believe about its caller.

A caller's own ``X-Forwarded-For`` is a claim anyone can make; passed on as it came, an upstream that
trusts the header (many do, for logs, limits or allow-lists) would believe it. So the caller's forwarding
headers are replaced by what ingress saw, unless the peer is a proxy the deployment trusts
(``JUNCTION_INGRESS_TRUSTED_PROXIES``): then its chain is kept and extended with its address, as each proxy
of a chain does.
"""
from __future__ import annotations

from aiohttp import web

from core.callerauth.base import Pairs

__all__ = ["FORWARDING_HEADERS", "with_forwarding"]

# Every header by which a caller could claim an address, a scheme or a host.
FORWARDING_HEADERS = frozenset({"x-forwarded-for", "x-forwarded-proto", "x-forwarded-host", "x-forwarded-port",
                                "forwarded", "x-real-ip"})
_SET = ("x-forwarded-for", "x-forwarded-proto", "x-forwarded-host")


def with_forwarding(headers: Pairs, request: web.Request, *, trusted_peer: bool, send: bool) -> Pairs:
    """``headers`` with the forwarding headers the upstream gets; none at all when ``send`` is false."""
    if not send:
        return [(k, v) for k, v in headers if k.lower() not in FORWARDING_HEADERS]
    peer = request.remote or "unknown"
    # The Host header as sent, not request.host: without one, aiohttp would look up this machine's name,
    # a blocking call on the event loop.
    host = request.headers.get("Host")
    if not trusted_peer:
        kept = [(k, v) for k, v in headers if k.lower() not in FORWARDING_HEADERS]
        return kept + [("X-Forwarded-For", peer), ("X-Forwarded-Proto", request.scheme)] \
            + ([("X-Forwarded-Host", host)] if host else [])

    def first(name: str) -> str | None:
        return next((v.split(",")[0].strip() for k, v in headers if k.lower() == name and v.strip()), None)

    chain = ", ".join(v.strip() for k, v in headers if k.lower() == "x-forwarded-for" and v.strip())
    kept = [(k, v) for k, v in headers if k.lower() not in _SET]
    host = first("x-forwarded-host") or host
    return kept + [("X-Forwarded-For", f"{chain}, {peer}" if chain else peer),
                   ("X-Forwarded-Proto", first("x-forwarded-proto") or request.scheme)] \
        + ([("X-Forwarded-Host", host)] if host else [])
