"""Metrics and request logs computed from the pipeline's topics (docs/observability.md).

``install`` adds the observe stage to the processors' faust app: a supervised task with its own
consumer group and its own database pool, off the request path.
"""
from __future__ import annotations

import asyncio
from typing import Any

from core.db import make_pool
from core.settings import Settings
from core.snapshot import ConfigSnapshot
from core.tasks import Supervised
from processors.observe.stage import ObserveStage

__all__ = ["ObserveStage", "install"]


def install(app: Any, settings: Settings, snapshot: ConfigSnapshot, ready: asyncio.Event) -> None:
    """Run the observe stage in ``app``'s worker once ``ready`` (config synced) is set."""

    @app.task
    async def observe() -> None:
        # Synced first: organisations are named by slug on the wire and stored by id.
        await ready.wait()
        db = await make_pool(settings, min_size=1, max_size=2)
        stage = Supervised("observe", ObserveStage(settings, snapshot, db).run)
        stage.start()
        try:
            await asyncio.Event().wait()  # until the worker stops and cancels this task
        finally:
            await stage.stop()
            await db.close()
