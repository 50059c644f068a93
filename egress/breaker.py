"""One circuit breaker per organisation and upstream origin, shared by every egress instance
(core/breaker_state.py): one tenant's failing calls never take an upstream away from another.

pybreaker decides what counts as a failure (its ``exclude`` list, as before); the state lives in
Redis, so N failures seen by any mix of instances open the breaker for all of them. Unreachable
upstreams and 5xx answers count as failures; client errors, SOAP faults and refused targets are
answers; a call cut short by its own deadline or a shutdown says nothing either way.
While open, calls fail at once with 503 ``circuit_open`` instead of waiting on a dead upstream.

When Redis does not answer, the breaker fails open: calls go ahead as through a closed breaker,
and the outage is logged (at most every ``STORE_WARNING_EVERY_S``) and counted. A gateway that
refused every call because its breaker store is away would turn a Redis outage into a total one.
"""
from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict
from dataclasses import dataclass

import pybreaker
import redis.asyncio as aioredis

from core.breaker_state import BreakerState, BreakerStore, origin_of
from core.errors import CircuitOpen, ClientError, DeadlineExceeded, JunctionError
from core.messages import now_ms
from core.metrics import BREAKER_STATE, BREAKER_STORE_ERRORS
from core.settings import Settings

# Refusals and answers that say nothing about the upstream's health: they never open its breaker.
_NOT_THE_UPSTREAMS_FAULT = frozenset({"soap_fault", "target_not_allowed", "too_many_redirects"})
# Origins with a state gauge in this process: beyond it the least recently used one is dropped,
# so /metrics stays bounded however many upstreams the connectors name.
MAX_GAUGED_ORIGINS = 100
MAX_CACHED_ORIGINS = 10_000
_GAUGE_VALUE = {"closed": 0, "half_open": 1, "open": 2}
STORE_WARNING_EVERY_S = 10.0
_STORE_ERRORS = (aioredis.RedisError, OSError)

log = logging.getLogger(__name__)

__all__ = ["MAX_GAUGED_ORIGINS", "Breakers", "Ticket"]


@dataclass(frozen=True)
class Ticket:
    """Leave to call an origin, from :meth:`Breakers.acquire`."""

    org: str
    origin: str
    trial: bool
    clean: bool = False  # no failure was counted when it was given: a success has nothing to reset


class Breakers:
    def __init__(self, redis: aioredis.Redis, settings: Settings, *, fail_max: int | None = None,
                 reset_ms: int | None = None) -> None:
        self.store = BreakerStore(redis, settings, fail_max=fail_max, reset_ms=reset_ms)
        # Only its classification is used: the state is the store's.
        self._classifier = pybreaker.CircuitBreaker(exclude=[
            ClientError, DeadlineExceeded, asyncio.CancelledError,
            lambda e: isinstance(e, JunctionError) and e.code in _NOT_THE_UPSTREAMS_FAULT,
        ])
        self._gauged: OrderedDict[tuple[str, str], None] = OrderedDict()
        # Origins last seen healthy in Redis, until when (monotonic ms): the healthy path skips the round trip,
        # which profiling showed was a sixth of egress's CPU per call.
        self._cache_ms = settings.breaker_cache_ms
        self._healthy_until: OrderedDict[tuple[str, str], float] = OrderedDict()
        self._next_store_warning = 0.0

    async def acquire(self, org: str, url: str, lease_ms: int) -> Ticket:
        """Leave for ``org`` (an organisation's slug) to call ``url``'s origin now, or :class:`CircuitOpen` at
        once. ``lease_ms`` bounds how long a half-open trial holds the breaker (the call's remaining time)."""
        origin = origin_of(url)
        cached = (org, origin)
        until = self._healthy_until.get(cached)
        if until is not None and time.monotonic() * 1000 < until:
            return Ticket(org, origin, False, clean=True)
        try:
            verdict, wait_ms, failures = await self.store.acquire(org, origin, now_ms(), lease_ms)
        except _STORE_ERRORS as exc:
            self._store_unavailable(exc)
            return Ticket(org, origin, False, clean=True)
        if verdict == "closed" and failures == 0 and self._cache_ms > 0:
            self._healthy_until[cached] = time.monotonic() * 1000 + self._cache_ms
            self._healthy_until.move_to_end(cached)
            while len(self._healthy_until) > MAX_CACHED_ORIGINS:
                self._healthy_until.popitem(last=False)
        else:
            self._healthy_until.pop(cached, None)
        if verdict == "refused":
            self._gauge(org, origin, "open")
            raise CircuitOpen(f"circuit open for {origin}: too many recent failures",
                              extra={"retry_after_s": round(wait_ms / 1000, 3)})
        self._gauge(org, origin, "half_open" if verdict == "trial" else "closed")
        return Ticket(org, origin, verdict == "trial", clean=verdict == "closed" and failures == 0)

    def is_failure(self, exc: BaseException) -> bool:
        return self._classifier.is_system_error(exc)  # type: ignore[arg-type]

    async def succeeded(self, ticket: Ticket) -> None:
        if ticket.clean:
            # The healthy path: nothing to reset, so no second round trip. (A failure another instance
            # counts meanwhile is then reset by the next success that sees it, not by this one.)
            return
        try:
            await self.store.succeeded(ticket.org, ticket.origin, trial=ticket.trial)
        except _STORE_ERRORS as exc:
            self._store_unavailable(exc)
            return
        if ticket.trial:
            self._gauge(ticket.org, ticket.origin, "closed")

    async def failed(self, ticket: Ticket) -> None:
        self._healthy_until.pop((ticket.org, ticket.origin), None)  # this instance's own failure is never hidden by the cache
        try:
            opened = await self.store.failed(ticket.org, ticket.origin, now_ms(), trial=ticket.trial)
        except _STORE_ERRORS as exc:
            self._store_unavailable(exc)
            return
        if opened:
            self._gauge(ticket.org, ticket.origin, "open")

    async def abandoned(self, ticket: Ticket) -> None:
        """The call ended without telling anything about the upstream (its deadline passed)."""
        if ticket.trial:
            try:
                await self.store.release(ticket.org, ticket.origin)
            except _STORE_ERRORS as exc:
                self._store_unavailable(exc)  # the trial's lease runs out by itself

    async def state(self, org: str, url: str) -> BreakerState:
        return await self.store.read(org, origin_of(url), now_ms())

    def _store_unavailable(self, exc: BaseException) -> None:
        BREAKER_STORE_ERRORS.inc()
        now = time.monotonic()
        if now >= self._next_store_warning:
            self._next_store_warning = now + STORE_WARNING_EVERY_S
            log.warning("circuit breakers unavailable (Redis: %s); calls go ahead as through closed breakers", exc)

    def _gauge(self, org: str, origin: str, state: str) -> None:
        labels = (org, origin)
        self._gauged[labels] = None
        self._gauged.move_to_end(labels)
        BREAKER_STATE.labels(*labels).set(_GAUGE_VALUE[state])
        while len(self._gauged) > MAX_GAUGED_ORIGINS:
            dropped, _ = self._gauged.popitem(last=False)
            BREAKER_STATE.remove(*dropped)
