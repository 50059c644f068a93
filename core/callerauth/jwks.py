"""JWKS documents of external JWT issuers: fetched through the SSRF guard, cached, and refreshed
when a token names a key id the cache does not know (at most once per ``min_refresh_s`` per URL, so
tokens with made-up key ids cannot turn the gateway into a request amplifier).

The fetch uses the same guard as egress (core/ssrf.py, handed in by the service that owns the
settings): the resolver checks every address at connect time, the client middleware checks literal hosts.
"""
from __future__ import annotations

import asyncio
import json
import logging
import time
from dataclasses import dataclass
from typing import Any, Protocol

import aiohttp
from aiohttp.abc import AbstractResolver

from core.errors import ServiceUnavailable

__all__ = ["JwksCache", "JwksUnavailable", "TargetGuard"]

log = logging.getLogger(__name__)
MAX_DOCUMENT_BYTES = 256 * 1024


class JwksUnavailable(ServiceUnavailable):
    code = "jwks_unavailable"


class TargetGuard(Protocol):
    """What the JWKS fetch needs of the SSRF guard (core.ssrf.TargetPolicy)."""

    def resolver(self, inner: AbstractResolver | None = None) -> AbstractResolver: ...

    async def middleware(self, request: Any, handler: Any) -> Any: ...


@dataclass
class _Entry:
    keys: dict[str, dict[str, Any]]  # by kid ("" for a key without one)
    fetched_at: float


class JwksCache:
    def __init__(self, guard: TargetGuard | None, *, ttl_s: float = 300.0, min_refresh_s: float = 10.0,
                 timeout_s: float = 5.0) -> None:
        self._guard = guard
        self._ttl_s = ttl_s
        self._min_refresh_s = min_refresh_s
        self._timeout_s = timeout_s
        self._entries: dict[str, _Entry] = {}
        self._pending: dict[str, asyncio.Future[_Entry]] = {}
        self._session: aiohttp.ClientSession | None = None

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def key(self, url: str, kid: str | None) -> dict[str, Any] | None:
        """The JWK of ``kid`` (None: the document's only key) at ``url``, or None if it has none such."""
        entry = self._entries.get(url)
        now = time.monotonic()
        if entry is None or now - entry.fetched_at > self._ttl_s:
            entry = await self._refresh(url)
        found = self._pick(entry, kid)
        if found is None and time.monotonic() - entry.fetched_at >= self._min_refresh_s:
            found = self._pick(await self._refresh(url), kid)  # the issuer may have rotated its keys
        return found

    @staticmethod
    def _pick(entry: _Entry, kid: str | None) -> dict[str, Any] | None:
        if kid is not None:
            return entry.keys.get(kid)
        return next(iter(entry.keys.values())) if len(entry.keys) == 1 else None

    async def _refresh(self, url: str) -> _Entry:
        fut = self._pending.get(url)
        if fut is None:
            fut = self._pending[url] = asyncio.ensure_future(self._fetch(url))
            fut.add_done_callback(lambda _: self._pending.pop(url, None))
        try:
            return await asyncio.shield(fut)
        except JwksUnavailable:
            stale = self._entries.get(url)
            if stale is not None:  # an issuer briefly away must not lock every caller out
                return stale
            raise

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None:
            resolver = self._guard.resolver() if self._guard is not None else None
            middlewares = (self._guard.middleware,) if self._guard is not None else ()
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(resolver=resolver), middlewares=middlewares,
                timeout=aiohttp.ClientTimeout(total=self._timeout_s))
        return self._session

    async def _fetch(self, url: str) -> _Entry:
        try:
            async with self._client().get(url, allow_redirects=False) as r:
                if r.status != 200:
                    raise JwksUnavailable(f"the JWKS URL answered {r.status}")
                raw = await r.content.read(MAX_DOCUMENT_BYTES + 1)
            if len(raw) > MAX_DOCUMENT_BYTES:
                raise JwksUnavailable("the JWKS document is too large")
            doc = json.loads(raw)
            keys = {str(k.get("kid") or ""): k for k in doc.get("keys", []) if isinstance(k, dict)}
        except JwksUnavailable:
            raise
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001 - any failure to fetch is the same answer to the caller
            log.warning("JWKS fetch from %s failed: %s", url, type(exc).__name__)
            raise JwksUnavailable(f"the JWKS document could not be fetched ({type(exc).__name__})") from None
        entry = _Entry(keys, time.monotonic())
        self._entries[url] = entry
        return entry
