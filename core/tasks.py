"""Background tasks owned by a component."""
from __future__ import annotations

import asyncio
import contextlib

__all__ = ["cancel_and_wait"]


async def cancel_and_wait(task: asyncio.Task[object] | None) -> None:
    """Cancel a component's own background task and wait until it has finished.

    The task's CancelledError is absorbed here; a cancellation of the caller
    itself still propagates.
    """
    if task is None or task.done():
        if task is not None and not task.cancelled():
            task.exception()  # retrieved, so a failure is not reported as "never retrieved"
        return
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
