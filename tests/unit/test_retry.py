"""The retry policy on its own: planned waits, Retry-After, and the deadline."""
from __future__ import annotations

import asyncio
import random
import time
from datetime import UTC, datetime
from email.utils import format_datetime

from hypothesis import given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from core.errors import UpstreamError, UpstreamNotConnected, UpstreamUnreachable
from core.settings import Settings
from egress.retry import (
    Attempts,
    RetryPolicy,
    backoff_s,
    may_retry,
    next_wait_s,
    parse_retry_after,
    policy_for,
    with_retries,
)

policies = st.builds(RetryPolicy, attempts=st.integers(1, 10), base_ms=st.integers(0, 5000), cap_ms=st.integers(0, 60_000))


@hsettings(max_examples=300, deadline=None)
@given(policy=policies, budget_ms=st.integers(0, 120_000), seed=st.integers(0, 2**32),
       durations=st.lists(st.integers(0, 5000), min_size=10, max_size=10),
       retry_afters=st.lists(st.none() | st.floats(0, 200, allow_nan=False), min_size=10, max_size=10))
def test_planned_waits_never_pass_the_deadline_nor_the_attempts(
    policy: RetryPolicy, budget_ms: int, seed: int, durations: list[int], retry_afters: list[float | None]
) -> None:
    """Each attempt fails after some time; the waits the policy plans never carry a retry past the deadline."""
    rng = random.Random(seed)
    now, deadline = 1_000_000.0, 1_000_000 + budget_ms
    made, waited = 0, 0.0
    while True:
        made += 1
        now += durations[made - 1]
        wait = next_wait_s(policy, made, now, deadline, retry_afters[made - 1], rng)
        if wait is None:
            break
        assert wait >= 0
        if retry_afters[made - 1] is None:
            assert wait <= policy.cap_ms / 1000
        else:
            assert wait == retry_afters[made - 1]  # a Retry-After is honoured as given
        now += wait * 1000
        waited += wait * 1000
        assert now < deadline  # every retry starts before the deadline
    assert made <= policy.attempts
    assert waited <= max(0, budget_ms)


@given(policy=policies, made=st.integers(1, 40), seed=st.integers(0, 2**32))
def test_backoff_is_jittered_under_its_exponential_ceiling(policy: RetryPolicy, made: int, seed: int) -> None:
    wait = backoff_s(policy, made, random.Random(seed))
    assert 0 <= wait <= min(policy.cap_ms, policy.base_ms * 2 ** (made - 1)) / 1000


def test_a_retry_after_past_the_deadline_means_no_retry() -> None:
    policy = RetryPolicy(attempts=5, base_ms=10, cap_ms=100)
    assert next_wait_s(policy, 1, 0, 2000, 1.5) == 1.5
    assert next_wait_s(policy, 1, 0, 2000, 3.0) is None
    assert next_wait_s(policy, 5, 0, 2000, None) is None  # no attempt left


def test_retry_after_reads_seconds_and_http_dates() -> None:
    now = 1_700_000_000.0
    assert parse_retry_after("7", now) == 7.0
    date = format_datetime(datetime.fromtimestamp(now + 30, tz=UTC), usegmt=True)
    assert parse_retry_after(date, now) == 30.0
    assert parse_retry_after(format_datetime(datetime.fromtimestamp(now - 30, tz=UTC), usegmt=True), now) == 0.0
    assert parse_retry_after("soon", now) is None
    assert parse_retry_after(None, now) is None


def test_only_idempotent_methods_or_calls_with_an_idempotency_key_may_be_retried() -> None:
    assert may_retry("GET", []) and may_retry("put", []) and may_retry("DELETE", [])
    assert not may_retry("POST", []) and not may_retry("PATCH", [("Idempotency-Key", "")])
    assert may_retry("POST", [("idempotency-key", "k-1")])


def test_the_connectors_policy_overrides_the_settings_defaults() -> None:
    s = Settings().with_overrides(retry_attempts=4, retry_base_ms=20, retry_cap_ms=300)
    assert policy_for(None, s) == RetryPolicy(4, 20, 300)
    assert policy_for({"retry": {"attempts": 2}}, s) == RetryPolicy(2, 20, 300)
    assert policy_for({"retry": {"attempts": 99, "base_ms": 5, "cap_ms": 50}}, s) == RetryPolicy(10, 5, 50)


@hsettings(max_examples=150, deadline=None)
@given(attempts=st.integers(1, 5), failures=st.integers(0, 6), kind=st.sampled_from(["permanent", "sent", "not_sent"]),
       retryable=st.booleans())
def test_with_retries_calls_until_success_a_permanent_error_or_the_last_attempt(
    attempts: int, failures: int, kind: str, retryable: bool
) -> None:
    """The first attempt runs outside tenacity; whatever path it takes, the call count and the tally agree. A call
    that may not be repeated (a POST) is still retried when it was never sent: no connection was made."""
    calls = []
    errors = {"permanent": lambda: UpstreamError("refused for good", code="bad"),
              "sent": lambda: UpstreamUnreachable("reset after sending"),
              "not_sent": lambda: UpstreamNotConnected("connection refused")}

    async def fn() -> str:
        calls.append(1)
        if len(calls) <= failures:
            raise errors[kind]()
        return "ok"

    tally = Attempts()
    policy = RetryPolicy(attempts=attempts, base_ms=0, cap_ms=0)
    coro = with_retries(fn, policy=policy, may_retry=retryable, deadline_ms=int(time.time() * 1000) + 60_000, attempts=tally)
    allowed = attempts if retryable or kind == "not_sent" else 1
    try:
        result = asyncio.run(coro)
    except UpstreamError as exc:
        # Failed: a permanent error at once, or a transient one on the last attempt allowed.
        assert failures >= 1
        expected = 1 if kind == "permanent" else allowed
        assert failures >= expected
        assert isinstance(exc, UpstreamUnreachable) is (kind != "permanent")
        assert len(calls) == tally.made == expected
    else:
        assert result == "ok"
        assert failures < allowed and not (kind == "permanent" and failures)
        assert len(calls) == tally.made == failures + 1
