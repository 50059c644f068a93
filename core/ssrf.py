"""Which outbound addresses a connector may reach (the SSRF guard).

Unless ``JUNCTION_ALLOW_PRIVATE_TARGETS`` is set, egress refuses to connect to
a loopback, private, link-local, shared (CGNAT), documentation, benchmarking,
multicast, unspecified or otherwise reserved address, including those reached
through an IPv6 form that embeds an IPv4 address (IPv4-mapped, NAT64, 6to4)
and the IPv6 ranges with no global meaning (unique-local, site-local, Teredo,
IPv4-compatible, …): a tenant's connector must not become a way into the
gateway's own network.

The guard sits where the connection is made, not beside it:

* :meth:`TargetPolicy.resolver` wraps the aiohttp resolver of the egress
  session's connector. Every name is resolved once, every address of the answer
  is checked, and the connector connects to exactly the addresses it returned:
  there is no second lookup for a DNS rebinding to slip through. If any address
  of the answer is refused, the whole name is refused.
* aiohttp does not call the resolver for a host that looks like an IP literal,
  so :meth:`TargetPolicy.middleware` (a client middleware on the same session)
  checks every request's host before it connects, redirect hops included. It
  knows the legacy numeric forms too (``2130706433``, ``0x7f000001``, ``127.1``).

Every request on that session is covered: REST calls, each redirect hop that is
followed, the WSDL fetch, the documents it imports and the SOAP envelope's POST.
A refusal is a 502 ``target_not_allowed`` naming the host as given, never the
address it resolved to.

:meth:`TargetPolicy.check` is a cheap pre-flight on a URL (literal addresses
and ``localhost`` names, no DNS); the connect-time check is the one that counts.
"""
from __future__ import annotations

import ipaddress
import re
import socket
from collections.abc import Awaitable, Callable, Iterable
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from aiohttp.abc import AbstractResolver, ResolveResult

from core.errors import UpstreamError

if TYPE_CHECKING:
    from aiohttp import ClientRequest, ClientResponse

__all__ = ["GuardedResolver", "TargetNotAllowed", "TargetPolicy", "forbidden_address", "literal_address"]

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

HINT = "JUNCTION_ALLOW_PRIVATE_TARGETS is off"


class TargetNotAllowed(UpstreamError):
    code = "target_not_allowed"


# Explicit, so the verdict does not depend on the Python version's notion of is_global.
_BLOCKED_V4 = tuple(ipaddress.IPv4Network(n) for n in (
    "0.0.0.0/8",        # "this network", unspecified
    "10.0.0.0/8",       # private
    "100.64.0.0/10",    # shared address space (CGNAT)
    "127.0.0.0/8",      # loopback
    "169.254.0.0/16",   # link-local (cloud metadata services)
    "172.16.0.0/12",    # private
    "192.0.0.0/24",     # IETF protocol assignments
    "192.0.2.0/24",     # documentation
    "192.88.99.0/24",   # 6to4 relay anycast
    "192.168.0.0/16",   # private
    "198.18.0.0/15",    # benchmarking
    "198.51.100.0/24",  # documentation
    "203.0.113.0/24",   # documentation
    "224.0.0.0/4",      # multicast
    "240.0.0.0/4",      # reserved, and the limited broadcast address
))
_BLOCKED_V6 = tuple(ipaddress.IPv6Network(n) for n in (
    "::/96",            # unspecified, loopback and the deprecated IPv4-compatible addresses
    "::ffff:0:0:0/96",  # IPv4-translated (SIIT)
    "64:ff9b:1::/48",   # local-use NAT64: the translation is the local network's own
    "100::/64",         # discard
    "2001::/23",        # IETF protocol assignments, Teredo (2001::/32) included
    "2001:db8::/32",    # documentation
    "3fff::/20",        # documentation
    "5f00::/16",        # segment routing SIDs
    "fc00::/7",         # unique local
    "fe80::/10",        # link-local
    "fec0::/10",        # site-local (deprecated)
    "ff00::/8",         # multicast
))
_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")

# What inet_aton() (and so getaddrinfo()) takes for an IPv4 address: one to
# four parts, each decimal, octal (leading 0) or hexadecimal (0x).
_LEGACY_V4 = re.compile(r"(?:0x[0-9a-f]*|[0-9]+)(?:\.(?:0x[0-9a-f]*|[0-9]+)){0,3}", re.IGNORECASE | re.ASCII)


class _Unparseable(ValueError):
    pass


def forbidden_address(ip: IPAddress) -> bool:
    """Whether ``ip`` is not a public unicast address."""
    if isinstance(ip, ipaddress.IPv6Address):
        # Forms that carry an IPv4 address are judged by it.
        if ip.ipv4_mapped is not None:
            return forbidden_address(ip.ipv4_mapped)
        if ip in _NAT64:
            return forbidden_address(ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF))
        if ip.sixtofour is not None:
            return forbidden_address(ip.sixtofour)
        if any(ip in net for net in _BLOCKED_V6):
            return True
        if ip.is_site_local:
            return True
    elif any(ip in net for net in _BLOCKED_V4):
        return True
    return (not ip.is_global or ip.is_multicast or ip.is_private or ip.is_loopback or ip.is_link_local
            or ip.is_reserved or ip.is_unspecified)


def literal_address(host: str) -> IPAddress | None:
    """The address ``host`` names literally, or None for a name.

    Takes what a URL can carry and a connect would accept: bracketed or bare
    IPv6 (a zone id is dropped), dotted IPv4 with a trailing dot, and the legacy
    numeric IPv4 forms. Raises ``ValueError`` for a host that looks like an
    address but is none (aiohttp would not resolve it as a name either).
    """
    h = host.strip()
    if h.startswith("[") and h.endswith("]"):
        h = h[1:-1]
    if ":" in h:
        h = h.split("%", 1)[0]  # zone id, raw (%25eth0) or decoded (%eth0)
        try:
            return ipaddress.IPv6Address(h)
        except ValueError:
            raise _Unparseable(host) from None
    if h.endswith("."):
        h = h[:-1]
    try:
        return ipaddress.IPv4Address(h)
    except ValueError:
        pass
    if _LEGACY_V4.fullmatch(h):
        try:
            return ipaddress.IPv4Address(socket.inet_aton(h))
        except OSError:
            raise _Unparseable(host) from None
    if h.replace(".", "").isdigit():  # aiohttp's own test for "an IP literal, do not resolve"
        raise _Unparseable(host)
    return None


def _is_localhost(host: str) -> bool:
    name = host.rstrip(".").lower()
    return name == "localhost" or name.endswith(".localhost")  # RFC 6761: always loopback


class TargetPolicy:
    """The guard. ``allow_networks`` lists networks that stay reachable while
    private targets are refused (e.g. one internal service an operator trusts)."""

    def __init__(self, *, allow_private: bool, allow_networks: Iterable[str | IPNetwork] = ()) -> None:
        self._allow_private = allow_private
        self._allowed = tuple(ipaddress.ip_network(n) if isinstance(n, str) else n for n in allow_networks)

    @property
    def allow_private(self) -> bool:
        return self._allow_private

    def allows(self, ip: IPAddress) -> bool:
        if self._allow_private or any(ip.version == net.version and ip in net for net in self._allowed):
            return True
        return not forbidden_address(ip)

    def check_host(self, host: str) -> None:
        """Refuse ``host`` if it is a refused address written literally, or a
        ``localhost`` name. Other names are for the resolver to judge."""
        if self._allow_private:
            return
        try:
            ip = literal_address(host)
        except ValueError:
            raise TargetNotAllowed(f"target host {host!r} is not a usable address") from None
        if ip is None:
            if _is_localhost(host):
                raise TargetNotAllowed(f"target host {host!r} is a loopback name; {HINT}")
            return
        if not self.allows(ip):
            raise TargetNotAllowed(f"target host {host!r} is a private or reserved address; {HINT}")

    def check_resolved(self, host: str, addresses: Iterable[str]) -> None:
        """Refuse ``host`` unless every address it resolved to is allowed. The
        message names the host only, not what it resolved to."""
        if self._allow_private:
            return
        for address in addresses:
            try:
                ip = ipaddress.ip_address(address.split("%", 1)[0])
            except ValueError:
                raise TargetNotAllowed(f"target host {host!r} resolves to an unusable address") from None
            if not self.allows(ip):
                raise TargetNotAllowed(f"target host {host!r} resolves to a private or reserved address; {HINT}")

    async def check(self, url: str) -> None:
        """Pre-flight on a URL: raise :class:`TargetNotAllowed` if its host is a
        refused literal address or a loopback name. No DNS lookup: a name is
        checked where it is resolved, at connect time (see :meth:`resolver`)."""
        self.check_host(urlsplit(url).hostname or "")

    def resolver(self, inner: AbstractResolver | None = None) -> "GuardedResolver":
        """An aiohttp resolver for the egress connector: ``inner``'s answers
        (default aiohttp's ThreadedResolver, getaddrinfo), each checked."""
        return GuardedResolver(self, inner)

    async def middleware(self, request: "ClientRequest", handler: Callable[["ClientRequest"], Awaitable["ClientResponse"]]) -> "ClientResponse":
        """aiohttp client middleware: runs before every connect of the session,
        each redirect hop included, and checks the literal host the resolver never sees."""
        url = request.url
        for host in {url.raw_host or "", url.host or ""}:
            self.check_host(host)
        return await handler(request)


class GuardedResolver(AbstractResolver):
    """Resolves through ``inner`` and returns the answer only if every address
    in it is allowed. The connector connects to exactly these addresses."""

    def __init__(self, policy: TargetPolicy, inner: AbstractResolver | None = None) -> None:
        from aiohttp import ThreadedResolver

        self._policy = policy
        self._inner = inner if inner is not None else ThreadedResolver()

    async def resolve(self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET) -> list[ResolveResult]:
        self._policy.check_host(host)  # aiohttp hands literals over only if it misjudged one
        results = await self._inner.resolve(host, port, family)
        self._policy.check_resolved(host, [str(r["host"]) for r in results])
        return results

    async def close(self) -> None:
        await self._inner.close()
