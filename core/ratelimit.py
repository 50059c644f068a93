"""Sliding-window rate limits in Redis, exact across every instance that shares the Redis.

One Lua script per decision, so the check and the count are atomic: a sorted set per window key
holds one member per admitted request, scored by Redis's own clock (``TIME``), so instances with
drifting clocks still agree. Memory is one member per admitted request in the window: fine for the
limits a gateway sets per consumer (thousands per minute), not for millions.
"""
from __future__ import annotations

import math
import uuid
from collections.abc import Sequence
from dataclasses import dataclass

import redis.asyncio as aioredis

__all__ = ["Decision", "SlidingWindow", "Window"]

# KEYS: one window key per limit; ARGV: limit and window in ms for each key in turn, then a unique member id.
# A call is admitted only if every window has room, and only an admitted call is counted, in all of them: a
# call one limit refuses spends nothing of another (a consumer over its own limit does not eat the budget it
# shares with every other caller). Returns {admitted (0|1), then per key: remaining, ms until the oldest
# counted request leaves the window}.
_SCRIPT = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local n = #KEYS
local counts = {}
local admitted = 1
for i = 1, n do
  redis.call('ZREMRANGEBYSCORE', KEYS[i], '-inf', now - tonumber(ARGV[2 * i]))
  counts[i] = redis.call('ZCARD', KEYS[i])
  if counts[i] >= tonumber(ARGV[2 * i - 1]) then admitted = 0 end
end
local out = {admitted}
for i = 1, n do
  local limit = tonumber(ARGV[2 * i - 1])
  local window = tonumber(ARGV[2 * i])
  if admitted == 1 then
    redis.call('ZADD', KEYS[i], now, ARGV[2 * n + 1])
    counts[i] = counts[i] + 1
    redis.call('PEXPIRE', KEYS[i], window)
  end
  local reset = window
  local oldest = redis.call('ZRANGE', KEYS[i], 0, 0, 'WITHSCORES')
  if oldest[2] then reset = tonumber(oldest[2]) + window - now end
  out[#out + 1] = limit - counts[i]
  out[#out + 1] = reset
end
return out
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


@dataclass(frozen=True)
class Window:
    key: str  # a full Redis key, already carrying the run's prefix
    limit: int
    per_seconds: float


class SlidingWindow:
    """Admits or refuses one request against one window (``hit``) or several at once (``hit_all``)."""

    def __init__(self, redis: aioredis.Redis) -> None:
        self._script = redis.register_script(_SCRIPT)

    async def hit(self, key: str, limit: int, per_seconds: float) -> Decision:
        return (await self.hit_all([Window(key, limit, per_seconds)]))[0]

    async def hit_all(self, windows: Sequence[Window]) -> list[Decision]:
        """One decision per window, in one round trip: all admitted, counted in every window, or all refused,
        counted in none. A refused call's full windows are those with nothing remaining."""
        if not windows:
            return []
        args: list[object] = []
        for w in windows:
            args += [w.limit, max(int(w.per_seconds * 1000), 1)]
        admitted, *rest = await self._script(keys=[w.key for w in windows], args=[*args, uuid.uuid4().hex])
        return [Decision(bool(admitted), w.limit, int(rest[2 * i]), max(math.ceil(int(rest[2 * i + 1]) / 1000), 0))
                for i, w in enumerate(windows)]
