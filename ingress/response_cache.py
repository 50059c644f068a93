"""An API's response cache, in Redis (docs/caching.md).

An API with ``cache: {"ttl_s", "methods", "vary"}`` has its upstream's answers kept for up to
``ttl_s`` and served by ingress with no call on the broker and none upstream. An entry is keyed by
organisation, API and its version, connector and its version, method, path, query (in order), the
values of the headers the API names in ``vary``, and the consumer when the API authenticates
callers. A new version of the API or of its connector therefore reads other keys: the old entries
are never read again and expire with their TTL.

Not cached: a request with an ``Idempotency-Key`` or ``Prefer: respond-async`` (the gateway does not
ask: those have answers of their own), one carrying a credential (``Authorization``, ``Cookie``, an API
key or any header named like one, core/redaction.py) to an API that does not authenticate callers, unless
``vary`` names it (it went upstream: the answer may be that caller's), and one whose consumer is not known on an API that authenticates callers.

Stored: the statuses in :data:`STORED_STATUSES`, unless the upstream says ``Cache-Control:
no-store``, ``private`` or ``no-cache``, sets a cookie, varies on a header ``vary`` does not name,
or sends a body larger than ``cache_max_entry_bytes``. ``s-maxage`` or ``max-age`` (less any
``Age``) shortens the TTL. A caller's ``Cache-Control: no-cache`` skips the lookup and stores the
fresh answer; ``no-store`` lets nothing be stored. Answers of cacheable requests carry
``X-Cache: HIT`` or ``MISS``; hits carry ``Age`` too.

Upstream calls of a cacheable request ask for ``Accept-Encoding: identity``: one entry then serves
every caller, and ingress encodes for each (ingress/compression.py).
"""
from __future__ import annotations

import base64
import hashlib
import json
import logging
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import redis.asyncio as aioredis
from aiohttp import web
from multidict import CIMultiDict
from redis.exceptions import RedisError

from core.headers import upstream_answer_headers
from core.metrics import CACHE_HITS, CACHE_MISSES
from core.redaction import presented_credentials
from core.settings import Settings
from core.snapshot import RouteMatch
from ingress.auth import Admission
from ingress.compression import add_vary

__all__ = ["CACHE_HEADER", "DEFAULT_METHODS", "STORED_STATUSES", "Lookup", "ResponseCache"]

log = logging.getLogger(__name__)

CACHE_HEADER = "X-Cache"
DEFAULT_METHODS = ("GET", "HEAD")
# Cacheable by default (RFC 9110 §15.1) less 206 (ranges), 405, 414 and 501 (about the request, not the
# resource) and 308: the answers that describe the resource itself.
STORED_STATUSES = frozenset({200, 203, 204, 300, 301, 404, 410})
_UNCACHED = frozenset({"no-store", "private", "no-cache"})


@dataclass(frozen=True)
class Lookup:
    """One cacheable request: where its entry is, and what may be done with it."""

    redis_key: str
    org: str
    ttl_s: int
    vary: tuple[str, ...]  # lower-case header names
    read: bool  # false with the caller's Cache-Control: no-cache
    write: bool  # false with the caller's Cache-Control: no-store
    api: str = ""  # the API's id, for the metrics' label


def _directives(values: Iterable[str]) -> dict[str, str]:
    """Cache-Control directives by lower-case name ("" for those without a value)."""
    out: dict[str, str] = {}
    for value in values:
        for item in value.split(","):
            name, _, arg = item.partition("=")
            if name.strip():
                out[name.strip().lower()] = arg.strip().strip('"')
    return out


def _seconds(value: str) -> int:
    try:
        return max(int(value), 0)
    except ValueError:
        return 0  # unreadable: stale at once (RFC 9111 §4.2.1)


def _digest(parts: Iterable[str]) -> str:
    digest = hashlib.sha256()
    for part in parts:
        raw = part.encode()
        digest.update(len(raw).to_bytes(8, "big") + raw)
    return digest.hexdigest()


class ResponseCache:
    def __init__(self, settings: Settings, redis: aioredis.Redis) -> None:
        self._settings = settings
        self._redis = redis

    def plan(self, request: web.Request, path: str, match: RouteMatch, admission: Admission, *,
             authenticated: bool) -> Lookup | None:
        """The lookup for this request, or None when its API does not cache it. ``authenticated``: the API
        authenticates callers, and entries are then kept per consumer."""
        api, cache = match.api, match.api.get("cache")
        if not cache or api.get("protocol") == "soap" or request.method not in (cache.get("methods") or DEFAULT_METHODS):
            return None
        vary = tuple(sorted({str(name).lower() for name in cache.get("vary") or ()}))
        consumer = admission.principal.consumer_id
        if authenticated and not consumer:
            return None
        if not authenticated and any(name not in vary for name, _ in presented_credentials(request.headers.items())):
            return None
        connector = match.connector or {}
        org = str(match.org.get("slug", ""))
        digest = _digest([
            str(api.get("version", 0)), str(connector.get("id", "")), str(connector.get("version", 0)),
            request.method, path, json.dumps(admission.query),
            json.dumps([[name, request.headers.getall(name, [])] for name in vary]),
            consumer or "",
        ])
        directives = _directives(request.headers.getall("Cache-Control", []))
        no_cache = "no-cache" in directives or (not directives and request.headers.get("Pragma", "").lower() == "no-cache")
        return Lookup(self._settings.redis_key("cache", org, str(api.get("id", "")), digest), org,
                      int(cache["ttl_s"]), vary, read=not no_cache, write="no-store" not in directives,
                      api=str(api.get("id", "")))

    async def lookup(self, plan: Lookup) -> web.Response | None:
        """The stored answer (a hit), or None (a miss: the call goes upstream)."""
        raw = None
        if plan.read:
            try:
                raw = await self._redis.get(plan.redis_key)
            except RedisError as exc:  # a cache that is away is a miss, never a failed call
                log.warning("response cache unavailable, lookup skipped: %s", exc)
        if raw is None:
            CACHE_MISSES.labels(plan.org, plan.api).inc()
            return None
        CACHE_HITS.labels(plan.org, plan.api).inc()
        entry = json.loads(raw)
        headers: CIMultiDict[str] = CIMultiDict((str(k), str(v)) for k, v in entry["headers"])
        headers["Age"] = str(max(int(time.time()) - int(entry["at"]), 0))
        response = web.Response(status=int(entry["status"]), body=base64.b64decode(entry["body"]), headers=headers)
        self.mark(plan, response, hit=True)
        return response

    @staticmethod
    def mark(plan: Lookup, response: web.StreamResponse, *, hit: bool = False) -> None:
        response.headers[CACHE_HEADER] = "HIT" if hit else "MISS"
        for name in plan.vary:  # caches downstream must key on them too
            add_vary(response, name)

    def _ttl(self, plan: Lookup, reply: dict[str, Any], headers: CIMultiDict[str]) -> int:
        """How long the reply may be kept: 0 for not at all."""
        if reply.get("error_code") or int(reply["status"]) not in STORED_STATUSES or not plan.write:
            return 0  # an error of Junction's own is about this call, not the resource
        if len(reply["body"]) > self._settings.cache_max_entry_bytes or "Set-Cookie" in headers:
            return 0
        if headers.get("Content-Encoding", "identity").lower() != "identity":
            return 0  # asked for identity, answered encoded: not fit for every caller
        varies = {v.strip().lower() for value in headers.getall("Vary", []) for v in value.split(",") if v.strip()}
        if varies - set(plan.vary) - {"accept-encoding"}:
            return 0  # "*", or a header the key does not hold
        directives = _directives(headers.getall("Cache-Control", []))
        if _UNCACHED & directives.keys():
            return 0
        ttl = plan.ttl_s
        fresh_for = directives.get("s-maxage", directives.get("max-age"))
        if fresh_for is not None:
            ttl = min(ttl, _seconds(fresh_for) - _seconds(headers.get("Age", "0")))
        return max(ttl, 0)

    async def store(self, plan: Lookup, reply: dict[str, Any]) -> None:
        """Keep the reply if it and its upstream allow it."""
        headers: CIMultiDict[str] = CIMultiDict(upstream_answer_headers((h["name"], h["value"]) for h in reply["headers"]))
        ttl = self._ttl(plan, reply, headers)
        if ttl <= 0:
            return
        headers["X-Correlation-Id"] = reply["correlation_id"]  # the call that made the answer
        entry = {"status": int(reply["status"]), "headers": [[k, v] for k, v in headers.items()],
                 "body": base64.b64encode(bytes(reply["body"])).decode(), "at": int(time.time())}
        try:
            await self._redis.set(plan.redis_key, json.dumps(entry), ex=ttl)
        except RedisError as exc:
            log.warning("response cache unavailable, answer not stored: %s", exc)
