"""Which request-path instances are running, and how far each has applied the configuration.

Every ingress, processors and egress instance reports itself in Redis: one field of a hash per
instance, holding what it is and the config topic position it has applied, and beside it a key
that expires when the instance stops reporting (Redis' own clock decides, so hosts' clocks never
matter). The control plane reads them to answer "has every instance applied my change?"
(``GET /api/v1/config/applied``), as Kong's control plane lists its data planes and their config.

Reporting is best-effort: an instance that cannot reach Redis serves on, and is only missing from
the list.
"""
from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import socket
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import redis.asyncio as aioredis

from core.redis import make_redis
from core.settings import Settings
from core.tasks import Supervised

__all__ = ["HEARTBEAT_S", "LIVE_S", "REQUEST_PATH", "SILENT_MS", "InstanceReporter", "InstanceState", "live_instances"]

log = logging.getLogger(__name__)

REQUEST_PATH = ("ingress", "processors", "egress")  # what a call passes through: each must have applied a change
HEARTBEAT_S = 1.0
LIVE_S = 5.0  # an instance that has not reported for this long is gone (killed, or cut off from Redis)
SILENT_MS = 2000  # an instance silent longer than two heartbeats is stalled or killed (until LIVE_S, still listed)


@dataclass(frozen=True)
class InstanceState:
    service: str
    instance: str
    host: str
    pid: int
    started_at_ms: int
    config_offset: int  # the config topic position applied: every record before it is in the snapshot
    synced: bool  # it has read the whole config topic once, and serves
    # Since its last report, on Redis' clock (its alive key's age): past SILENT_MS it is stalled or killed,
    # and it leaves the list at LIVE_S.
    last_seen_ms_ago: int = 0

    def to_dict(self) -> dict[str, Any]:
        return {"service": self.service, "instance": self.instance, "host": self.host, "pid": self.pid,
                "started_at_ms": self.started_at_ms, "config_offset": self.config_offset, "synced": self.synced,
                "last_seen_ms_ago": self.last_seen_ms_ago}


def _hash_key(settings: Settings) -> str:
    # Per config topic: instances of another deployment sharing the Redis prefix are not this one's.
    return settings.redis_key("instances", settings.topics.config)


def _alive_key(settings: Settings, field: str) -> str:
    return settings.redis_key("instance-alive", settings.topics.config, field)


class InstanceReporter:
    """Reports one instance's state every :data:`HEARTBEAT_S`, and as soon as ``moved`` says it changed."""

    def __init__(self, settings: Settings, service: str, state: Callable[[], tuple[int, bool]],
                 moved: Callable[[float], Awaitable[None]], *, instance: str | None = None) -> None:
        self._settings = settings
        self._state = state
        self._moved = moved
        name = instance or settings.instance_id or f"{service}-{socket.gethostname()}-{os.getpid()}"
        # A restart under the same name is a new field: a stale one of the killed process never masks it.
        self._field = f"{service}/{name}/{uuid.uuid4().hex[:8]}"
        self._identity = {"service": service, "instance": name, "host": socket.gethostname(), "pid": os.getpid(),
                          "started_at_ms": int(time.time() * 1000)}
        self._redis: aioredis.Redis | None = None
        self._loop: Supervised | None = None
        self._failing = False

    async def start(self) -> None:
        self._redis = make_redis(self._settings, max_connections=2)
        self._loop = Supervised(f"instance-report:{self._identity['service']}", self._run)
        self._loop.start()

    async def stop(self) -> None:
        if self._loop is not None:
            await self._loop.stop()
            self._loop = None
        if self._redis is not None:
            with contextlib.suppress(Exception):  # gone from the list now, not LIVE_S later
                async with self._redis.pipeline(transaction=False) as pipe:
                    pipe.hdel(_hash_key(self._settings), self._field)
                    pipe.delete(_alive_key(self._settings, self._field))
                    await pipe.execute()
            await self._redis.aclose()
            self._redis = None

    async def _run(self) -> None:
        while True:
            await self._report()
            with contextlib.suppress(asyncio.TimeoutError):
                await self._moved(HEARTBEAT_S)
            await asyncio.sleep(0.02)  # a cold start applies batch after batch: report them together

    async def _report(self) -> None:
        assert self._redis is not None
        offset, synced = self._state()
        value = json.dumps({**self._identity, "config_offset": offset, "synced": synced})
        try:
            async with self._redis.pipeline(transaction=True) as pipe:
                pipe.hset(_hash_key(self._settings), self._field, value)
                pipe.set(_alive_key(self._settings, self._field), b"1", px=int(LIVE_S * 1000))
                await pipe.execute()
        except (aioredis.RedisError, OSError) as exc:
            if not self._failing:  # once per outage, not once a second
                log.warning("instance report to Redis failed (the instance serves on; it is missing from "
                            "GET /api/v1/instances until Redis is back): %s", exc)
            self._failing = True
            return
        if self._failing:
            log.info("instance report to Redis works again")
        self._failing = False


async def live_instances(redis: aioredis.Redis, settings: Settings) -> list[InstanceState]:
    """Every instance that reported within :data:`LIVE_S`; those that did not are removed from the hash."""
    key = _hash_key(settings)
    fields = await redis.hgetall(key)
    if not fields:
        return []
    names = list(fields)
    async with redis.pipeline(transaction=False) as pipe:
        for n in names:
            pipe.pttl(_alive_key(settings, n.decode() if isinstance(n, bytes) else n))
        left_ms = await pipe.execute()
    out: list[InstanceState] = []
    gone: list[Any] = []
    for name, ttl in zip(names, left_ms):
        if ttl is None or ttl < 0:  # -2: expired or never set (-1, no expiry, is not one of ours either)
            gone.append(name)
            continue
        try:
            raw = json.loads(fields[name])
            out.append(InstanceState(service=str(raw["service"]), instance=str(raw["instance"]), host=str(raw["host"]),
                                     pid=int(raw["pid"]), started_at_ms=int(raw["started_at_ms"]),
                                     config_offset=int(raw["config_offset"]), synced=bool(raw["synced"]),
                                     last_seen_ms_ago=max(0, int(LIVE_S * 1000) - int(ttl))))
        except (ValueError, KeyError, TypeError):
            gone.append(name)  # not a report this version wrote
    if gone:
        await redis.hdel(key, *gone)
    return sorted(out, key=lambda s: (s.service, s.instance, s.started_at_ms))
