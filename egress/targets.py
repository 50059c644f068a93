"""Which outbound addresses a connector may reach.

Unless ``JUNCTION_ALLOW_PRIVATE_TARGETS`` is set, a target whose host is, or
resolves to, a loopback, private, link-local, multicast or otherwise reserved
address is refused: a tenant's connector must not become a way into the
gateway's own network (SSRF). Resolutions are cached briefly; the check runs
before each call, so a changed DNS answer is seen within the cache's lifetime.
"""
from __future__ import annotations

import asyncio
import ipaddress
import socket
import time
from urllib.parse import urlsplit

from core.errors import UpstreamError

__all__ = ["TargetNotAllowed", "TargetPolicy"]


class TargetNotAllowed(UpstreamError):
    code = "target_not_allowed"


def _forbidden(ip: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return not ip.is_global or ip.is_multicast


class TargetPolicy:
    def __init__(self, *, allow_private: bool, cache_s: float = 30.0) -> None:
        self._allow_private = allow_private
        self._cache_s = cache_s
        self._verdicts: dict[str, tuple[float, str | None]] = {}

    async def check(self, url: str) -> None:
        """Raise :class:`TargetNotAllowed` if ``url`` may not be called."""
        if self._allow_private:
            return
        host = urlsplit(url).hostname or ""
        cached = self._verdicts.get(host)
        if cached is None or cached[0] < time.monotonic():
            cached = (time.monotonic() + self._cache_s, await self._verdict(host))
            self._verdicts[host] = cached
        if cached[1] is not None:
            raise TargetNotAllowed(cached[1])

    async def _verdict(self, host: str) -> str | None:
        try:
            addresses = [ipaddress.ip_address(host)]
        except ValueError:
            try:
                infos = await asyncio.get_running_loop().getaddrinfo(host, None, type=socket.SOCK_STREAM)
            except OSError:
                return None  # unresolvable: the call itself fails as unreachable
            addresses = [ipaddress.ip_address(info[4][0].split("%")[0]) for info in infos]
        for ip in addresses:
            if _forbidden(ip):
                return (f"target host {host!r} resolves to {ip}, a private or reserved address; "
                        "set JUNCTION_ALLOW_PRIVATE_TARGETS=1 to allow it")
        return None
