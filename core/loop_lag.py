"""Event-loop lag: how late the loop runs a timer that is due.

Everything a process does shares one loop, so a blocking call or a CPU-bound
burst delays every request at once. A sampler sleeps for a fixed interval and
records how much later than asked it woke up, in ``junction_event_loop_lag_seconds``.
One sampler runs per event loop however many listeners start one (tests serve
several applications in one process).
"""
from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator

from core.metrics import EVENT_LOOP_LAG
from core.tasks import cancel_and_wait

__all__ = ["sample_loop_lag"]

# Per loop: the running sampler and how many holders share it.
_running: dict[asyncio.AbstractEventLoop, tuple[asyncio.Task[None], int]] = {}


async def _sample(interval_s: float) -> None:
    while True:
        due = time.monotonic() + interval_s
        await asyncio.sleep(interval_s)
        EVENT_LOOP_LAG.observe(max(0.0, time.monotonic() - due))


@contextlib.asynccontextmanager
async def sample_loop_lag(interval_s: float) -> AsyncIterator[None]:
    """Sample this loop's lag every ``interval_s`` for the block (0: not at all)."""
    if interval_s <= 0:
        yield
        return
    loop = asyncio.get_running_loop()
    task, holders = _running.get(loop) or (asyncio.create_task(_sample(interval_s), name="loop-lag"), 0)
    _running[loop] = (task, holders + 1)
    try:
        yield
    finally:
        task, holders = _running[loop]
        if holders > 1:
            _running[loop] = (task, holders - 1)
        else:
            del _running[loop]
            await cancel_and_wait(task)
