"""Metrics and request logs computed from the pipeline's topics (docs/observability.md).

The stage runs in control, not on the request path: reading and decoding every topic again costs
about as much CPU per call as routing it, and its database flushes would stall a stage's event loop.
:class:`ObserveService` is the stage with what it needs: a config snapshot of its own (organisations
are named by slug on the wire and stored by id), a small database pool, and a supervisor.
"""
from __future__ import annotations

import asyncpg

from control.observe.stage import ObserveStage
from core.config_feed import ConfigFollower
from core.db import make_pool
from core.settings import Settings
from core.snapshot import ConfigSnapshot
from core.tasks import Supervised

__all__ = ["ObserveService", "ObserveStage"]


class ObserveService:
    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self.snapshot = ConfigSnapshot()
        self._follower = ConfigFollower(settings, self.snapshot)
        self._db: asyncpg.Pool | None = None
        self._stage: Supervised | None = None

    async def start(self) -> None:
        """Returns once the snapshot is synced and the stage reads; stop() undoes a partial start."""
        await self._follower.start()
        await self._follower.wait_synced()
        self._db = await make_pool(self._settings, min_size=1, max_size=2)
        self._stage = Supervised("observe", ObserveStage(self._settings, self.snapshot, self._db).run)
        self._stage.start()

    async def stop(self) -> None:
        if self._stage is not None:
            await self._stage.stop()
            self._stage = None
        await self._follower.stop()
        if self._db is not None:
            await self._db.close()
            self._db = None

    async def check(self) -> None:
        """Readiness: the snapshot follows the config topic and the stage runs."""
        await self._follower.ready()
        if self._stage is None:
            raise RuntimeError("observe stage not started")
        await self._stage.check()
