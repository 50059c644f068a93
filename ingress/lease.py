"""A lease on one reply partition, held in Redis with a heartbeat.

Each ingress instance owns one partition of the replies topic, so egress can
address its replies there and no other instance reads them. The lease is a
``SET NX PX`` key renewed by a heartbeat; a crashed instance's lease expires
and the partition is free again.
"""
from __future__ import annotations

import asyncio
import contextlib
import logging
import time

import redis.asyncio as aioredis

from core.settings import Settings
from core.tasks import cancel_and_wait

__all__ = ["NoPartitionFree", "PartitionLease"]

log = logging.getLogger(__name__)

# Renew or release only if we still hold it: never extend someone else's lease.
_RENEW = "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('pexpire', KEYS[1], ARGV[2]) else return 0 end"
_RELEASE = "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) else return 0 end"


class NoPartitionFree(RuntimeError):
    pass


class PartitionLease:
    def __init__(self, settings: Settings, redis: aioredis.Redis, owner: str) -> None:
        self._settings = settings
        self._redis = redis
        self.owner = owner
        self.partition: int | None = None
        self.lost = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def _key(self, partition: int) -> str:
        return self._settings.redis_key("reply-lease", self._settings.topics.replies, str(partition))

    async def acquire(self) -> int:
        """Lease a free partition (a new one after a loss) and keep it with a heartbeat."""
        await cancel_and_wait(self._task)
        self.lost = asyncio.Event()
        self.partition = None
        ttl = self._settings.reply_lease_ttl_ms
        for partition in range(self._settings.reply_partitions):
            if await self._redis.set(self._key(partition), self.owner, nx=True, px=ttl):
                self.partition = partition
                self._task = asyncio.create_task(self._heartbeat(), name="reply-lease-heartbeat")
                log.info("leased reply partition %s", partition)
                return partition
        raise NoPartitionFree(
            f"all {self._settings.reply_partitions} reply partitions are leased; "
            "raise JUNCTION_REPLY_PARTITIONS to run more ingress instances"
        )

    async def _heartbeat(self) -> None:
        ttl = self._settings.reply_lease_ttl_ms
        assert self.partition is not None
        renewed_at = time.monotonic()
        while True:
            await asyncio.sleep(ttl / 3000)
            try:
                renewed = await self._redis.eval(_RENEW, 1, self._key(self.partition), self.owner, ttl)
            except (aioredis.RedisError, OSError) as exc:
                if time.monotonic() - renewed_at < ttl / 1000:
                    log.warning("could not renew reply lease: %s", exc)
                    continue
                # Unrenewed past its lifetime: another instance may hold it by now.
                renewed = 0
            if not renewed:
                # Someone else holds it now: replies addressed to us may go to them.
                log.error("lost the lease on reply partition %s", self.partition)
                self.lost.set()
                return
            renewed_at = time.monotonic()

    @property
    def held(self) -> bool:
        """Whether the lease is ours and still being renewed (a crashed heartbeat renews nothing)."""
        alive = self._task is not None and not self._task.done()
        return self.partition is not None and not self.lost.is_set() and alive

    async def check(self) -> None:
        if not self.held:
            raise RuntimeError("no reply partition lease")

    async def release(self) -> None:
        await cancel_and_wait(self._task)
        self._task = None
        if self.partition is not None:
            with contextlib.suppress(aioredis.RedisError, OSError):
                await self._redis.eval(_RELEASE, 1, self._key(self.partition), self.owner)
            self.partition = None
