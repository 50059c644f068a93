"""Sliding-window rate limits in Redis, exact across every instance that shares the Redis.

One Lua script per decision, so the check and the count are atomic: a sorted set per window key
holds one member per admitted request, scored by Redis's own clock (``TIME``), so instances with
drifting clocks still agree. Memory is one member per admitted request in the window: fine for the
limits a gateway sets per consumer (thousands per minute), not for millions.
"""
from __future__ import annotations

import math
import uuid
from dataclasses import dataclass

import redis.asyncio as aioredis

__all__ = ["Decision", "SlidingWindow"]

# KEYS[1] window key; ARGV: limit, window in ms, a unique member id.
# Returns {admitted (0|1), remaining, ms until the oldest counted request leaves the window}.
_SCRIPT = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local limit = tonumber(ARGV[1])
local window = tonumber(ARGV[2])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - window)
local count = redis.call('ZCARD', KEYS[1])
local admitted = 0
if count < limit then
  redis.call('ZADD', KEYS[1], now, ARGV[3])
  count = count + 1
  admitted = 1
end
redis.call('PEXPIRE', KEYS[1], window)
local reset = window
local oldest = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
if oldest[2] then reset = tonumber(oldest[2]) + window - now end
return {admitted, limit - count, reset}
"""


@dataclass(frozen=True)
class Decision:
    admitted: bool
    limit: int
    remaining: int
    reset_s: int  # seconds until a slot frees (RateLimit-Reset; Retry-After when refused)

    def headers(self) -> dict[str, str]:
        """The IETF draft's RateLimit-* headers, plus Retry-After when refused."""
        out = {"RateLimit-Limit": str(self.limit), "RateLimit-Remaining": str(max(self.remaining, 0)),
               "RateLimit-Reset": str(self.reset_s)}
        if not self.admitted:
            out["Retry-After"] = str(max(self.reset_s, 1))
        return out


class SlidingWindow:
    """``hit(key, limit, per_seconds)`` admits or refuses one request against the window of ``key``
    (a full Redis key, already carrying the run's prefix)."""

    def __init__(self, redis: aioredis.Redis) -> None:
        self._script = redis.register_script(_SCRIPT)

    async def hit(self, key: str, limit: int, per_seconds: float) -> Decision:
        window_ms = max(int(per_seconds * 1000), 1)
        admitted, remaining, reset_ms = await self._script(keys=[key], args=[limit, window_ms, uuid.uuid4().hex])
        return Decision(bool(admitted), limit, int(remaining), max(math.ceil(int(reset_ms) / 1000), 0))
