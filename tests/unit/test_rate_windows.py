"""Several sliding windows decided at once, against the run's real Redis: a call is admitted only when every
window has room, and only an admitted call is counted, in every window."""
from __future__ import annotations

import uuid

import redis.asyncio as aioredis
from hypothesis import HealthCheck, given, settings as hsettings, strategies as st

from core.ratelimit import SlidingWindow, Window
from core.settings import Settings

HOUR = 3600.0  # longer than any example: nothing leaves a window while one runs


@hsettings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(limits=st.lists(st.integers(1, 6), min_size=1, max_size=3),
       calls=st.lists(st.sets(st.integers(0, 2), min_size=1), max_size=30))
async def test_a_call_is_counted_in_every_window_or_in_none(settings: Settings, limits: list[int],
                                                            calls: list[set[int]]) -> None:
    """``calls``: for each call, the windows it falls under (as one consumer's own limit sits beside the
    limit of each API it calls). Model: per window, the admitted calls so far."""
    redis = aioredis.from_url(settings.redis_dsn)
    try:
        window = SlidingWindow(redis)
        run = uuid.uuid4().hex[:8]
        windows = [Window(settings.redis_key("test", "windows", run, str(i)), n, HOUR) for i, n in enumerate(limits)]
        counted = [0] * len(limits)
        for under in calls:
            mine = sorted(i for i in under if i < len(limits))
            if not mine:
                continue
            decisions = await window.hit_all([windows[i] for i in mine])
            room = all(counted[i] < limits[i] for i in mine)
            assert {d.admitted for d in decisions} == {room}
            if room:
                for i in mine:
                    counted[i] += 1
            for i, d in zip(mine, decisions):
                assert d.limit == limits[i] and d.remaining == limits[i] - counted[i]
                assert 0 < d.reset_s <= HOUR
                if not room and d.remaining <= 0:  # the window that refused says when to come back
                    assert 1 <= int(d.headers()["Retry-After"]) <= HOUR
            for i, w in enumerate(windows):
                assert await redis.zcard(w.key) == counted[i]
    finally:
        await redis.aclose()


async def test_no_windows_is_no_decision_and_no_round_trip(settings: Settings) -> None:
    redis = aioredis.from_url("redis://127.0.0.1:1")  # nothing listens: a round trip would fail
    try:
        assert await SlidingWindow(redis).hit_all([]) == []
    finally:
        await redis.aclose()
