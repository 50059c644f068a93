"""Redelivery policy for outbound calls (Camel's redelivery, in tenacity terms).

Only failures marked ``retriable`` are retried, and only for idempotent
methods or calls carrying an idempotency key, with exponential backoff and
jitter, and never past the call's deadline.
"""
from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

from tenacity import AsyncRetrying, RetryCallState, retry_if_exception, stop_after_attempt, wait_exponential_jitter

from core.errors import JunctionError

__all__ = ["IDEMPOTENT_METHODS", "with_retries"]

T = TypeVar("T")
IDEMPOTENT_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "DELETE"})


def _retriable(exc: BaseException) -> bool:
    return isinstance(exc, JunctionError) and exc.retriable


async def with_retries(fn: Callable[[], Awaitable[T]], *, may_retry: bool, deadline_ms: int, max_attempts: int = 3) -> T:
    if not may_retry:
        return await fn()

    def past_deadline(state: RetryCallState) -> bool:
        # Stop when the next wait would end after the deadline.
        upcoming = state.upcoming_sleep or 0
        return time.time() * 1000 + upcoming * 1000 >= deadline_ms

    async for attempt in AsyncRetrying(
        retry=retry_if_exception(_retriable),
        stop=stop_after_attempt(max_attempts) | past_deadline,
        wait=wait_exponential_jitter(initial=0.05, max=1.0, jitter=0.05),
        reraise=True,
    ):
        with attempt:
            return await fn()
    raise AssertionError("unreachable")  # pragma: no cover
