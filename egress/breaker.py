"""One circuit breaker per upstream origin (pybreaker).

Unreachable upstreams and 5xx answers count as failures; client errors,
SOAP faults and deadline expiries do not.
While open, calls fail fast with 503 ``circuit_open`` instead of waiting on a
dead upstream.
"""
from __future__ import annotations

from urllib.parse import urlsplit

import pybreaker

import asyncio

from core.errors import CircuitOpen, ClientError, DeadlineExceeded, JunctionError

# Refusals and answers that say nothing about the upstream's health: they never open its breaker.
_NOT_THE_UPSTREAMS_FAULT = frozenset({"soap_fault", "target_not_allowed", "too_many_redirects"})

__all__ = ["Breakers"]


class Breakers:
    def __init__(self, *, fail_max: int = 5, reset_timeout_s: float = 10.0) -> None:
        self._fail_max = fail_max
        self._reset = reset_timeout_s
        self._by_origin: dict[str, pybreaker.CircuitBreaker] = {}

    def for_url(self, url: str) -> pybreaker.CircuitBreaker:
        parts = urlsplit(url)
        origin = f"{parts.scheme}://{parts.netloc}"
        breaker = self._by_origin.get(origin)
        if breaker is None:
            breaker = pybreaker.CircuitBreaker(
                fail_max=self._fail_max, reset_timeout=self._reset, name=origin,
                # A refused argument or a SOAP fault is an answer, not an outage; a call
                # cut short by its own deadline or cancelled by a shutdown says nothing
                # about the upstream's health.
                exclude=[ClientError, DeadlineExceeded, asyncio.CancelledError,
                         lambda e: isinstance(e, JunctionError) and e.code in _NOT_THE_UPSTREAMS_FAULT],
            )
            self._by_origin[origin] = breaker
        return breaker

    @staticmethod
    def open_error(breaker: pybreaker.CircuitBreaker) -> CircuitOpen:
        return CircuitOpen(f"circuit open for {breaker.name}: too many recent failures", extra={"retry_after_s": breaker.reset_timeout})
