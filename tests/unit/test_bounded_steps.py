"""core.tasks.bounded: one step of a shutdown, never longer than its bound, whatever the step does."""
from __future__ import annotations

import asyncio
import logging

import pytest

from core.tasks import bounded


async def test_a_step_that_finishes_in_time_is_awaited_to_its_end() -> None:
    done: list[str] = []

    async def step() -> None:
        await asyncio.sleep(0.01)
        done.append("closed")

    assert await bounded("closing", step(), 5) is True
    assert done == ["closed"]


async def test_a_stuck_step_is_cancelled_named_and_abandoned(caplog: pytest.LogCaptureFixture) -> None:
    cancelled = asyncio.Event()

    async def stuck() -> None:
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            cancelled.set()
            raise

    with caplog.at_level(logging.WARNING, logger="core.tasks"):
        assert await bounded("leaving the group", stuck(), 0.05) is False
    assert cancelled.is_set()
    assert [r.getMessage() for r in caplog.records] == ["leaving the group did not finish within 0.1 s; abandoned"]


async def test_a_step_that_swallows_its_cancellation_is_abandoned_after_the_unwind_time() -> None:
    """Python 3.11's wait_for would wait for such a step for ever; the next steps must still run."""
    release = asyncio.Event()

    async def deaf() -> None:
        while not release.is_set():
            try:
                await asyncio.sleep(3600)
            except asyncio.CancelledError:
                continue

    assert await bounded("a deaf step", deaf(), 0.05) is False  # returned at all: 3.11's wait_for never would
    abandoned = [t for t in asyncio.all_tasks() if t.get_coro().__name__ == "deaf"]
    assert len(abandoned) == 1 and not abandoned[0].done()  # still running: abandoned, not awaited
    release.set()
    abandoned[0].cancel()  # it now ends: the loop checks release after the cancellation
    await asyncio.wait(abandoned)


async def test_a_failing_step_is_logged_and_the_shutdown_goes_on(caplog: pytest.LogCaptureFixture) -> None:
    async def failing() -> None:
        raise ConnectionResetError("broker went away")

    with caplog.at_level(logging.WARNING, logger="core.tasks"):
        assert await bounded("flushing", failing(), 5) is False
    assert "flushing failed: ConnectionResetError('broker went away')" in caplog.text


async def test_the_callers_own_cancellation_goes_on_and_cancels_the_step() -> None:
    step_cancelled = asyncio.Event()
    running = asyncio.Event()

    async def step() -> None:
        running.set()
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            step_cancelled.set()
            raise

    outer = asyncio.create_task(bounded("closing", step(), 60))
    await running.wait()
    outer.cancel()
    with pytest.raises(asyncio.CancelledError):
        await outer
    await asyncio.wait_for(step_cancelled.wait(), 5)
