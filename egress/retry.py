"""Redelivery policy for outbound calls (Camel's redelivery, in tenacity terms).

Only transient failures are retried: an unreachable upstream (connect error) and the answers
429, 502, 503 and 504; and only for idempotent methods or calls carrying an ``Idempotency-Key``,
or calls that were never sent (no connection was made: the upstream cannot have acted on them).
Waits grow exponentially with full jitter (a random wait up to ``min(cap, base * 2**n)``), a 429's
``Retry-After`` is honoured as given, and no attempt is started that could not begin before the
call's deadline: a wait ending past it ends the retries instead.
"""
from __future__ import annotations

import random
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from typing import Any, TypeVar

from tenacity import AsyncRetrying, RetryCallState, retry_if_exception

from core.errors import JunctionError, UpstreamError, UpstreamNotConnected
from core.metrics import UPSTREAM_RETRIES
from core.settings import Settings

__all__ = ["IDEMPOTENT_METHODS", "TRANSIENT_STATUSES", "Attempts", "RetryPolicy", "TransientAnswer", "backoff_s",
           "may_retry", "next_wait_s", "parse_retry_after", "policy_for", "with_retries"]

T = TypeVar("T")
IDEMPOTENT_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "DELETE"})
TRANSIENT_STATUSES = frozenset({429, 502, 503, 504})
MAX_ATTEMPTS = 10
_jitter = random.Random()


@dataclass(frozen=True)
class RetryPolicy:
    attempts: int  # the first included
    base_ms: int
    cap_ms: int


def policy_for(connector: Mapping[str, Any] | None, settings: Settings) -> RetryPolicy:
    """The connector's ``retry`` over the settings' defaults."""
    own = (connector or {}).get("retry") or {}
    return RetryPolicy(
        attempts=max(1, min(MAX_ATTEMPTS, int(own.get("attempts", settings.retry_attempts)))),
        base_ms=max(0, int(own.get("base_ms", settings.retry_base_ms))),
        cap_ms=max(0, int(own.get("cap_ms", settings.retry_cap_ms))),
    )


def may_retry(method: str, headers: list[tuple[str, str]]) -> bool:
    """Idempotent methods, or a call the upstream can recognise when it comes again."""
    return method.upper() in IDEMPOTENT_METHODS or any(k.lower() == "idempotency-key" and v for k, v in headers)


class TransientAnswer(UpstreamError):
    """An upstream's transient answer (429, 502, 503, 504), raised so it can be retried; after the
    last attempt the answer itself goes back to the caller."""

    retriable = True

    def __init__(self, response: Any, status: int, retry_after_s: float | None) -> None:
        super().__init__(f"upstream answered {status}", code="upstream_unavailable", status=status)
        self.response = response
        self.retry_after_s = retry_after_s


def parse_retry_after(value: str | None, now_s: float) -> float | None:
    """Seconds to wait from a ``Retry-After`` (delta-seconds or an HTTP date); None if absent or unreadable."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        return None  # an HTTP date is always GMT; anything else is not one
    return max(0.0, when.timestamp() - now_s)


def backoff_s(policy: RetryPolicy, attempts_made: int, rng: random.Random = _jitter) -> float:
    """Full jitter: uniformly up to ``min(cap, base * 2**(attempts_made - 1))``."""
    ceiling_ms = min(policy.cap_ms, policy.base_ms * 2 ** min(attempts_made - 1, 30))
    return rng.uniform(0, ceiling_ms) / 1000


def next_wait_s(policy: RetryPolicy, attempts_made: int, now_ms: float, deadline_ms: int, retry_after_s: float | None,
                rng: random.Random = _jitter) -> float | None:
    """The wait before the next attempt, or None: no attempt left, or none that could start before the deadline."""
    if attempts_made >= policy.attempts:
        return None
    wait = retry_after_s if retry_after_s is not None else backoff_s(policy, attempts_made, rng)
    if now_ms + wait * 1000 >= deadline_ms:
        return None
    return wait


class Attempts:
    """How many attempts :func:`with_retries` made, readable after it returned or raised."""

    def __init__(self) -> None:
        self.made = 0
        self.gave_up: TransientAnswer | None = None  # the last transient answer, when the retries ran out


def _retriable(exc: BaseException, may_retry: bool) -> bool:
    """A transient failure is retried if the call may be repeated, or if it was never sent (no connection was
    made): the upstream cannot have acted on a request it never got, whatever its method."""
    return isinstance(exc, JunctionError) and exc.retriable and (may_retry or isinstance(exc, UpstreamNotConnected))


async def with_retries(fn: Callable[[], Awaitable[T]], *, policy: RetryPolicy, may_retry: bool, deadline_ms: int,
                       attempts: Attempts | None = None) -> T:
    """``fn`` until it succeeds, fails for good, or the policy or the deadline stops it; the last error is raised."""
    tally = attempts if attempts is not None else Attempts()
    tally.made = 1
    if policy.attempts <= 1:
        return await fn()
    # The first attempt runs outside tenacity, whose machinery costs about 18 µs a call, and most
    # calls succeed at once. A retriable failure is handed to tenacity as its first attempt's outcome.
    try:
        return await fn()
    except Exception as exc:  # noqa: BLE001 - re-raised below, or by tenacity
        if not _retriable(exc, may_retry):
            raise
        first: BaseException | None = exc

    async def attempt_fn() -> T:
        nonlocal first
        if first is not None:
            failed, first = first, None
            raise failed
        return await fn()

    planned: dict[int, float | None] = {}

    def wait(state: RetryCallState) -> float:
        exc = state.outcome.exception() if state.outcome else None
        retry_after = exc.retry_after_s if isinstance(exc, TransientAnswer) else None
        planned[state.attempt_number] = next_wait_s(policy, state.attempt_number, time.time() * 1000, deadline_ms,
                                                    retry_after)
        return planned[state.attempt_number] or 0.0

    def stop(state: RetryCallState) -> bool:
        return planned.get(state.attempt_number) is None

    def count(state: RetryCallState) -> None:
        exc = state.outcome.exception() if state.outcome else None
        UPSTREAM_RETRIES.labels(str(exc.status) if isinstance(exc, TransientAnswer) else "unreachable").inc()

    async for attempt in AsyncRetrying(retry=retry_if_exception(lambda e: _retriable(e, may_retry)), wait=wait, stop=stop,
                                       before_sleep=count, reraise=True):
        with attempt:
            tally.made = attempt.retry_state.attempt_number
            return await attempt_fn()
    raise AssertionError("unreachable")  # pragma: no cover
