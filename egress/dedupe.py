"""Which outbound calls already produced their reply.

A redelivered call (after a crash or rebalance) whose reply already went out
is not made again. Lookups are batched per fetched batch (one MGET) and
completions are written in batches every few milliseconds, so the cost is a
round trip per batch rather than two per call. A completion not yet flushed
when a worker crashes means that call may be made again: at least once, never
lost. Redis trouble fails open for the same reason.
"""
from __future__ import annotations

import asyncio
import logging

import redis.asyncio as aioredis

from core.messages import now_ms
from core.settings import Settings
from core.tasks import Supervised

__all__ = ["CompletedCalls"]

log = logging.getLogger(__name__)


class CompletedCalls:
    def __init__(self, settings: Settings, redis: aioredis.Redis, *, flush_every_s: float = 0.005) -> None:
        self._settings = settings
        self._redis = redis
        self._flush_every_s = flush_every_s
        self._pending: list[tuple[str, int]] = []
        self._wake = asyncio.Event()
        self._loop = Supervised("egress-dedupe-flush", self._flush_periodically)

    def _key(self, call_id: str) -> str:
        return self._settings.redis_key("egress-done", call_id)

    async def start(self) -> None:
        self._loop.start()

    async def stop(self) -> None:
        await self._loop.stop()
        await self.flush()

    @property
    def task(self) -> asyncio.Task[None] | None:
        return self._loop.task

    async def check(self) -> None:
        await self._loop.check()

    async def done(self, call_ids: list[str]) -> set[str]:
        """The ids among ``call_ids`` whose reply was already produced."""
        if not call_ids:
            return set()
        try:
            values = await self._redis.mget([self._key(c) for c in call_ids])
        except (aioredis.RedisError, OSError) as exc:
            log.warning("de-duplication unavailable, calling anyway: %s", exc)
            return set()
        return {c for c, v in zip(call_ids, values) if v is not None}

    def mark(self, call_id: str, deadline_ms: int) -> None:
        # Keep the record a minute past the deadline: later redeliveries are dropped as expired anyway.
        self._pending.append((call_id, max(deadline_ms - now_ms(), 1) + 60_000))
        self._wake.set()

    async def flush(self) -> None:
        if not self._pending:
            return
        batch, self._pending = self._pending, []
        try:
            async with self._redis.pipeline(transaction=False) as pipe:
                for call_id, ttl in batch:
                    pipe.set(self._key(call_id), b"1", px=ttl)
                await pipe.execute()
        except (aioredis.RedisError, OSError) as exc:
            log.warning("could not record %d completed calls: %s", len(batch), exc)

    async def _flush_periodically(self) -> None:
        # Sleeps while idle; once woken, waits a moment so completions batch up.
        while True:
            await self._wake.wait()
            await asyncio.sleep(self._flush_every_s)
            self._wake.clear()
            await self.flush()
