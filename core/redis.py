"""Redis client factory. Keys always go through ``Settings.redis_key`` so a run's
prefix isolates it."""
from __future__ import annotations

import asyncio
from collections.abc import Iterable
from typing import Any

import redis.asyncio as aioredis
from redis.exceptions import TimeoutError as RedisTimeoutError

from core.settings import Settings

__all__ = ["make_redis"]


class _CancellableWrites:
    """A connection whose writes keep a cancellation.

    With a ``socket_timeout``, redis-py bounds each write with ``asyncio.wait_for``. On Python 3.11 that
    swallows a cancellation which arrives as the write completes (CPython gh-86296, fixed in 3.12): the
    cancelled task carries on as if nothing had happened. Measured here, cancelling a loop of pipelined
    MGETs was lost three times in four, and a stop of egress waited for ever on its consume loop, which
    looks up completed calls in Redis between fetches. The same bound is kept, with ``asyncio.timeout``,
    which tells its own expiry from a cancellation.
    """

    socket_timeout: float | None

    async def send_packed_command(self, command: bytes | str | Iterable[bytes], check_health: bool = True) -> None:
        bound, self.socket_timeout = self.socket_timeout, None  # the write below takes redis-py's unbounded path
        try:
            async with asyncio.timeout(bound):
                await super().send_packed_command(command, check_health)  # type: ignore[misc]
        except TimeoutError:
            raise RedisTimeoutError("Timeout writing to socket") from None
        finally:
            self.socket_timeout = bound


_cancellable: dict[type, type] = {}


def _with_cancellable_writes(connection_class: type) -> type:
    if connection_class not in _cancellable:
        _cancellable[connection_class] = type(f"Cancellable{connection_class.__name__}",
                                              (_CancellableWrites, connection_class), {})
    return _cancellable[connection_class]


def make_redis(settings: Settings, *, max_connections: int = 64) -> aioredis.Redis:
    # A blocking pool makes bursts wait for a connection instead of failing.
    pool: Any = aioredis.BlockingConnectionPool.from_url(
        settings.redis_dsn, max_connections=max_connections, timeout=5, health_check_interval=30,
        # No command blocks by design (no BLPOP, no XREAD BLOCK): one that outlasts this, Redis is not answering.
        socket_timeout=settings.store_timeout_ms / 1000, socket_connect_timeout=settings.store_timeout_ms / 1000,
    )
    # Whatever class the URL chose (TCP, TLS, a Unix socket).
    pool.connection_class = _with_cancellable_writes(pool.connection_class)
    # from_pool: the client owns the pool and disconnects it on aclose() (a plain Redis(connection_pool=...)
    # leaves its connections open, to be reported unclosed when collected).
    return aioredis.Redis.from_pool(pool)
