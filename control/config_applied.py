"""Has every running instance applied the configuration changed so far?

A change is committed to PostgreSQL, relayed by the outbox to the config topic, and applied by each
ingress, processors and egress instance as it reads the topic (core/config_feed.py). Each instance
reports the topic position it has applied (core/instances.py). So a change made before the question
is applied everywhere once (1) the outbox has relayed every row up to it (and, after a start or a lost
broker, re-published the whole configuration), and (2) every live instance has applied the topic up
to its end as it was after (1). That is what a user, a script or a test waits on instead of sleeping
(``junction wait``).
"""
from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from typing import Any

import asyncpg
from aiokafka import TopicPartition
from aiokafka.errors import KafkaError
from redis.exceptions import RedisError

from control.store.outbox import last_id, pending_up_to
from core.errors import ServiceUnavailable
from core.instances import REQUEST_PATH, SILENT_MS, InstanceState, live_instances
from core.kafka import make_consumer, partition_end, start_client, stop_consumer
from core.settings import Settings

__all__ = ["MAX_WAIT_S", "ConfigApplied", "is_applied"]

MAX_WAIT_S = 60.0
POLL_S = 0.05
MAX_WAITERS = 16  # long polls at once; past it, a question is answered at once without waiting


class ConfigApplied:
    def __init__(self, settings: Settings, pool: asyncpg.Pool, redis: Any, relay_resynced: Callable[[], bool]) -> None:
        """``relay_resynced``: the outbox relay is connected and has re-published the configuration (after a
        start or a lost broker, the topic may hold none of it until then)."""
        self._settings = settings
        self._relay_resynced = relay_resynced
        self._pool = pool
        self._redis = redis
        self._tp = TopicPartition(settings.topics.config, 0)
        self._consumer: Any = None
        self._started = False
        self._end_lock = asyncio.Lock()  # one consumer: one connect and one seek at a time
        self._waiters = asyncio.Semaphore(MAX_WAITERS)

    async def start(self) -> None:
        """Connects now if the broker answers, else at the first question: control starts and serves its
        API while the broker is down (the outbox keeps the changes)."""
        self._started = True
        with contextlib.suppress(KafkaError):
            await self._connect()

    async def stop(self) -> None:
        self._started = False
        consumer, self._consumer = self._consumer, None
        if consumer is not None:
            await stop_consumer(consumer)

    async def _connect(self) -> Any:
        if self._consumer is None:
            consumer = await start_client(make_consumer(self._settings, background=True))
            consumer.assign([self._tp])
            consumer.pause(self._tp)  # fetched only while asked: an assigned partition is otherwise polled for ever
            self._consumer = consumer
        return self._consumer

    async def instances(self) -> tuple[int, list[InstanceState]]:
        """The config topic's end now, and every live instance."""
        return await self._topic_end(), await self._live()

    async def status(self, wait_s: float) -> dict[str, Any]:
        """Whether every change committed before now is applied by every live instance; waits up to
        ``wait_s`` for it. Each request-path service must have at least one live instance."""
        started = time.monotonic()
        if wait_s <= 0 or self._waiters.locked():  # enough waiters already: a look, not a wait
            return await self._look(started, started)
        async with self._waiters:
            return await self._look(started, started + min(wait_s, MAX_WAIT_S))

    async def _look(self, started: float, deadline: float) -> dict[str, Any]:
        # A connection per look, not held while waiting: waiters must not starve the API of the pool.
        latest = await last_id(self._pool)
        while not self._relay_resynced() or await pending_up_to(self._pool, latest):
            if time.monotonic() >= deadline:
                return _answer(None, [], started, relayed=False)
            await asyncio.sleep(POLL_S)
        target = await self._topic_end()
        while True:
            live = await self._live()
            answer = _answer(target, live, started, relayed=True)
            if answer["applied"] or time.monotonic() >= deadline:
                return answer
            await asyncio.sleep(POLL_S)

    async def _live(self) -> list[InstanceState]:
        try:
            return await live_instances(self._redis, self._settings)
        except (RedisError, OSError) as exc:
            raise ServiceUnavailable(f"the instances report in Redis, which cannot be read: {exc}") from exc

    async def _topic_end(self) -> int:
        if not self._started:
            raise ServiceUnavailable("control is starting or stopping")
        async with self._end_lock:
            try:
                return await partition_end(self._settings, await self._connect(), self._tp)
            except KafkaError as exc:
                raise ServiceUnavailable(f"the config topic's end cannot be read from the broker: {exc}") from exc


def _answer(target: int | None, live: list[InstanceState], started: float, *, relayed: bool) -> dict[str, Any]:
    services: dict[str, dict[str, int]] = {}
    for name in REQUEST_PATH:
        mine = [s for s in live if s.service == name]
        behind = [s for s in mine if target is None or not is_applied(s, target)]
        services[name] = {"instances": len(mine), "applied": len(mine) - len(behind),
                          # Of those behind, the ones no longer reporting: most likely killed, so the wait
                          # holds until their report expires (LIVE_S), not until they catch up.
                          "silent": sum(1 for s in behind if s.last_seen_ms_ago > SILENT_MS)}
    missing = [name for name, n in services.items() if n["instances"] == 0]
    done = relayed and not missing and all(n["applied"] == n["instances"] for n in services.values())
    return {"applied": done, "relayed": relayed, "config_offset": target, "services": services, "missing": missing,
            "waited_ms": int((time.monotonic() - started) * 1000)}


def is_applied(state: InstanceState, target: int) -> bool:
    return state.synced and state.config_offset >= target
