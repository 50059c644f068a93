"""Background tasks owned by a component, and the supervision of long-lived ones."""
from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable

from core.metrics import TASK_CRASHES

__all__ = ["Supervised", "bounded", "cancel_and_wait", "finish_or_cancel"]

log = logging.getLogger(__name__)

UNWIND_S = 1.0  # how long a step that ran out is given to unwind once cancelled, before it is abandoned


async def bounded(what: str, step: Awaitable[object], timeout_s: float) -> bool:
    """Await one step of a shutdown for at most ``timeout_s``; whether it finished, and without an error.

    A step that runs out is cancelled, given :data:`UNWIND_S` to unwind, and abandoned; one that fails is
    logged. Either way the shutdown goes on to its next step: one stuck client (a commit retrying a group
    coordinator that is away, a leave-group request nobody answers) must not keep the others open, nor
    hold a service's stop past its supervisor's patience. A cancellation of the caller itself goes on, and
    cancels the step.
    """
    task = asyncio.ensure_future(step)
    try:
        await asyncio.wait({task}, timeout=timeout_s)
    except asyncio.CancelledError:
        task.cancel()
        raise
    if not task.done():
        task.cancel()
        await asyncio.wait({task}, timeout=UNWIND_S)
        # Retrieved whenever it ends, so an abandoned step's error is not reported as "never retrieved".
        task.add_done_callback(lambda t: None if t.cancelled() else t.exception())
        log.warning("%s did not finish within %.1f s; abandoned", what, timeout_s)
        return False
    if task.cancelled():
        log.warning("%s was cancelled from inside", what)
        return False
    if (exc := task.exception()) is not None:
        log.warning("%s failed: %r", what, exc)
        return False
    return True


async def finish_or_cancel(tasks: set[asyncio.Task[None]], grace_s: float, unwind_s: float = UNWIND_S) -> None:
    """Let a component's work in flight finish for ``grace_s``; cancel what is left, and give it ``unwind_s``
    to unwind before it is abandoned."""
    if not tasks:
        return
    _, pending = await asyncio.wait(set(tasks), timeout=grace_s)
    for task in pending:
        task.cancel()
    if pending:
        await asyncio.wait(pending, timeout=unwind_s)


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


class Supervised:
    """A long-lived loop that is restarted when it crashes, and says so.

    A crash is logged with its traceback, counted in ``junction_task_crashes_total``,
    and makes :meth:`check` (and so ``/readyz``) fail until the loop has run again for
    ``settle_s`` without crashing. Restarts back off from ``min_backoff_s`` to
    ``max_backoff_s``. A loop that returns normally is finished and not restarted.
    """

    def __init__(self, name: str, run: Callable[[], Awaitable[None]], *, min_backoff_s: float = 0.1,
                 max_backoff_s: float = 5.0, settle_s: float = 2.0) -> None:
        self.name = name
        self._run = run
        self._min_backoff_s = min_backoff_s
        self._max_backoff_s = max_backoff_s
        self._settle_s = settle_s
        self._task: asyncio.Task[None] | None = None
        self._last_crash: float | None = None
        self._running_since: float | None = None
        self.crashes = 0
        self.last_error: BaseException | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._supervise(), name=f"supervised:{self.name}")

    async def stop(self) -> None:
        await cancel_and_wait(self._task)
        self._task = None

    @property
    def task(self) -> asyncio.Task[None] | None:
        return self._task

    async def check(self) -> None:
        if self._task is None or self._task.done():
            raise RuntimeError(f"{self.name} is not running")
        if self._running_since is None:
            raise RuntimeError(f"{self.name} crashed ({self.last_error!r}) and is restarting")
        if self._last_crash is not None and time.monotonic() - self._running_since < self._settle_s:
            raise RuntimeError(f"{self.name} restarted after a crash ({self.last_error!r})")

    async def _supervise(self) -> None:
        backoff = self._min_backoff_s
        while True:
            self._running_since = time.monotonic()
            try:
                await self._run()
                return
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - a supervisor's job is to survive what it supervises
                self._running_since = None
                now = time.monotonic()
                self.crashes += 1
                self.last_error = exc
                TASK_CRASHES.labels(self.name).inc()
                log.error("%s crashed; restarting in %.1fs", self.name, backoff, exc_info=exc)
                # A loop that ran a good while before crashing starts its backoff afresh.
                if self._last_crash is not None and now - self._last_crash > 10 * self._max_backoff_s:
                    backoff = self._min_backoff_s
                self._last_crash = now
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, self._max_backoff_s)
