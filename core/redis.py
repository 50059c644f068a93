"""Redis client factory. Keys always go through ``Settings.redis_key`` so a run's
prefix isolates it."""
from __future__ import annotations

import redis.asyncio as aioredis

from core.settings import Settings

__all__ = ["make_redis"]


def make_redis(settings: Settings, *, max_connections: int = 64) -> aioredis.Redis:
    # A blocking pool makes bursts wait for a connection instead of failing.
    pool = aioredis.BlockingConnectionPool.from_url(
        settings.redis_dsn, max_connections=max_connections, timeout=5, health_check_interval=30,
        # No command blocks by design (no BLPOP, no XREAD BLOCK): one that outlasts this, Redis is not answering.
        socket_timeout=settings.store_timeout_ms / 1000, socket_connect_timeout=settings.store_timeout_ms / 1000,
    )
    # from_pool: the client owns the pool and disconnects it on aclose() (a plain Redis(connection_pool=...)
    # leaves its connections open, to be reported unclosed when collected).
    return aioredis.Redis.from_pool(pool)
