"""The edge's fast path for caller authentication and rate limits.

For an API that takes a credential: refuse a source or credential that is blocked (429
``source_blocked``), authenticate with the same :mod:`core.callerauth` modules processors use (401 /
403 without touching Kafka), count failures per credential and per source address, and take the
credential out of what is forwarded (it travels sealed, for processors only). Then, for every API,
the rate limit (429 ``rate_limited``) with ``RateLimit-*`` headers on every answer.

Before any of it, the organisation's ``ip_restriction``, then the API's (403 ``ip_not_allowed``, naming the
one that refused): a caller must be admitted by both.

Processors check again: this is where bad calls are turned away cheaply, not where trust is decided.
A source address is the peer's, or behind a trusted proxy the one it saw (core/client_address.py).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import redis.asyncio as aioredis
from aiohttp import web

from core.callerauth import MISSING, CallerAuth, Credential, Principal, consumer_headers, limits_for, mode_of, without
from core.callerauth.base import Pairs
from core.client_address import AddressRule, client_address, is_trusted, trusted_networks
from core.errors import FieldError, Forbidden, RateLimited, Unauthorized
from core.ratelimit import SlidingWindow, Window
from core.security import ViolationTracker, record_security_event
from core.settings import Settings
from core.snapshot import RouteMatch
from ingress.forwarding import with_forwarding
from ingress.per_version import PerVersion

__all__ = ["Admission", "EdgeAuth", "SourceBlocked"]

_address_rules = PerVersion("ip_restriction", AddressRule.of)
_org_address_rules = PerVersion("ip_restriction", AddressRule.of)


class SourceBlocked(RateLimited):
    code = "source_blocked"


@dataclass(frozen=True)
class Admission:
    """What may travel on for an admitted call."""

    headers: Pairs
    query: Pairs
    credential: Credential | None = field(repr=False)
    principal: Principal
    response_headers: dict[str, str]


class EdgeAuth:
    def __init__(self, settings: Settings, redis: aioredis.Redis, caller_auth: CallerAuth) -> None:
        self._settings = settings
        self._redis = redis
        self.caller_auth = caller_auth
        self.tracker = ViolationTracker(redis, settings, "ingress")
        self._window = SlidingWindow(redis)
        self._proxies = trusted_networks(settings.ingress_trusted_proxies, "JUNCTION_INGRESS_TRUSTED_PROXIES")

    def source(self, request: web.Request) -> str:
        """The caller's address: the peer's, or behind a trusted proxy the one it saw."""
        return client_address(request.remote or "unknown", request.headers.getall("X-Forwarded-For", []), self._proxies)

    async def admit(self, request: web.Request, match: RouteMatch) -> Admission:
        """Check the caller's address, authenticate and rate-limit one call; raises Unauthorized, Forbidden or
        RateLimited."""
        api, org = match.api, match.org
        source = self.check_address(request, org, api)
        # Hop-by-hop headers are dropped in egress (core/headers.py), except Proxy-Authorization: a credential
        # for the hop to us, which must not sit in clear on a topic.
        headers = with_forwarding([(k, v) for k, v in request.headers.items() if k.lower() != "proxy-authorization"],
                                  request, trusted_peer=is_trusted(request.remote or "", self._proxies),
                                  send=self._settings.forwarded_headers)
        query = list(request.query.items())
        credential: Credential | None = None
        principal = Principal(None)
        if self.caller_auth.requires_credential(api):
            extracted = self.caller_auth.extract(api, headers, query)
            credential = extracted.credential
            subjects = self.subjects(org, source, credential)
            await self.refuse_if_blocked(*subjects)
            try:
                principal = await self.caller_auth.authenticate(api, org, extracted)
            except Unauthorized as err:
                if err.code != MISSING:  # no credential at all is no guess
                    await self.failed(org, source, credential, subjects, detail={"api_id": str(api.get("id")),
                                                                                  "mode": mode_of(api).NAME, "code": err.code})
                raise
            if credential is not None:
                await self.tracker.success(subjects[1])
            # The credential goes on sealed, never in clear.
            headers, query = without(headers, extracted.strip_headers), without(query, extracted.strip_query)
        # A caller's own consumer header is not believed, whatever the mode: only Junction says who called.
        headers = without(headers, consumer_headers(api.get("auth") or {}))
        response_headers = await self.rate_limit(api, org, principal, source)
        return Admission(headers, query, credential, principal, response_headers)

    def check_address(self, request: web.Request, org: dict[str, Any] | None, api: dict[str, Any] | None) -> str:
        """The caller's address, once the organisation's ``ip_restriction`` and the API's (of those given) admit
        it; else Forbidden naming the one that refused (deny wins at either)."""
        source = self.source(request)
        for doc, rules, whose, what in ((org, _org_address_rules, "the organisation's", "this organisation's APIs"),
                                        (api, _address_rules, "the API's", "this API")):
            rule = rules.of(doc) if doc is not None else None
            if rule is not None and not rule.admits(source):
                raise Forbidden(f"calls from {source[:64]} may not use {what}", code="ip_not_allowed",
                                fields=[FieldError("(address)", f"is not admitted by {whose} ip_restriction")])
        return source

    @staticmethod
    def subjects(org: dict[str, Any], source: str, credential: Credential | None) -> tuple[str, str]:
        """The violation subjects of an attempt: its source address, and its credential (by the
        credential's public name, within the organisation; "" when none was presented)."""
        named = f"cred:{org.get('slug')}:{credential.mode}:{credential.subject}" if credential is not None else ""
        return f"ip:{source}", named

    async def refuse_if_blocked(self, *subjects: str) -> None:
        retry = await self.tracker.blocked_for(*subjects, source=subjects[0])
        if retry > 0:
            raise SourceBlocked("too many failed attempts: try again later", headers={"Retry-After": str(retry)},
                                extra={"retry_after_s": retry})

    async def failed(self, org: dict[str, Any], source: str, credential: Credential | None, subjects: tuple[str, ...],
                     *, detail: dict[str, Any]) -> None:
        """Count a refused credential and record it; a subject this failure blocks is recorded too."""
        subject = credential.subject if credential is not None else None
        slug = str(org.get("slug", ""))
        await record_security_event(self._redis, self._settings, "auth_failure", org=slug, source=source,
                                    subject=subject, detail=detail)
        for blocked in await self.tracker.failure(*subjects, source=subjects[0]):
            await record_security_event(self._redis, self._settings, "source_blocked", org=slug, source=source,
                                        subject=subject if blocked.startswith("cred:") else source,
                                        detail={**detail, "blocked": blocked.split(":", 1)[0],
                                                "block_s": self.tracker.block_s})

    async def rate_limit(self, api: dict[str, Any], org: dict[str, Any], principal: Principal, source: str) -> dict[str, str]:
        """429 over any limit of the call; else the RateLimit-* headers of the one with the fewest calls left."""
        limits = limits_for(api, org, principal.consumer, source)
        decisions = await self._window.hit_all([Window(self._settings.redis_key(*limit.window), limit.requests,
                                                       limit.per_seconds) for limit in limits])
        if decisions and not decisions[0].admitted:
            # Retry-After: when every full window has room again.
            full = max((d for d in decisions if d.remaining <= 0), key=lambda d: d.reset_s, default=decisions[0])
            limit = limits[decisions.index(full)]
            raise RateLimited(f"over the limit of {limit.requests} requests per {limit.per_seconds:g} s",
                              headers=full.headers(), extra={"retry_after_s": int(full.headers()["Retry-After"])})
        tightest = min(decisions, key=lambda d: d.remaining, default=None)
        return tightest.headers() if tightest is not None else {}
