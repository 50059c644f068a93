"""Circuit breaker state per organisation and upstream origin, shared by every egress instance through Redis.

Per organisation: a breaker counts the failures of calls one tenant's connectors made, so no tenant's
failing calls (or its callers' requests for a path the upstream answers 500) take a shared upstream
away from another tenant.

pybreaker's ``CircuitRedisStorage`` does not fit: it needs the synchronous redis client (a blocking
round trip on the event loop at every state read) and its transitions are read-modify-write from
each process, so two instances can both let a trial through or lose a failure. Here every
transition is one Lua script, atomic in Redis, and the state is derived the same way everywhere:

- closed: ``failures`` below the threshold (reset by any success);
- open: ``opened_at`` set and less than the reset timeout ago: calls are refused;
- half-open: the reset timeout has passed: one trial call at a time holds a lease
  (``trial_until``, bounded by the trial's deadline, so a crashed trial frees it); its success
  closes the breaker, its failure opens it again.

Egress moves the state (egress/breaker.py); the management API only reads it. Times are the
callers' epoch milliseconds: egress instances share a clock closely enough for second-long timeouts.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Literal
from urllib.parse import urlsplit

import redis.asyncio as aioredis

from core.settings import Settings

__all__ = ["BreakerState", "BreakerStore", "State", "origin_of", "target_origins"]

State = Literal["closed", "open", "half_open"]
# Untouched for a day, an origin's state is forgotten (a closed breaker with a few old failures).
_IDLE_TTL_MS = 86_400_000

# KEYS[1] breaker; ARGV now, reset_ms, lease_ms. -> {verdict, wait_ms, failures}: verdict 0 closed, 1 trial,
# 2 refused; failures counted so far (0 lets a healthy call skip the success write: one round trip per call).
_ACQUIRE = """
local h = redis.call('HMGET', KEYS[1], 'opened_at', 'trial_until', 'failures')
local opened = tonumber(h[1])
if not opened then return {0, 0, tonumber(h[3]) or 0} end
local now = tonumber(ARGV[1])
local reopen = opened + tonumber(ARGV[2])
if now < reopen then return {2, reopen - now} end
local trial = tonumber(h[2])
if trial and trial > now then return {2, trial - now} end
redis.call('HSET', KEYS[1], 'trial_until', now + tonumber(ARGV[3]))
redis.call('PEXPIRE', KEYS[1], ARGV[4])
return {1, 0}
"""
# ARGV trial (0/1). A success of a call let through while closed does not close a breaker another
# instance opened meanwhile: only the trial's does.
_SUCCESS = """
if ARGV[1] == '1' or not redis.call('HGET', KEYS[1], 'opened_at') then redis.call('DEL', KEYS[1]) end
return 0
"""
# ARGV now, fail_max, trial, ttl -> 1 if the breaker is open after this failure.
_FAILURE = """
local opened = redis.call('HGET', KEYS[1], 'opened_at')
if ARGV[3] == '1' or (not opened and redis.call('HINCRBY', KEYS[1], 'failures', 1) >= tonumber(ARGV[2])) then
  redis.call('HSET', KEYS[1], 'opened_at', ARGV[1])
  redis.call('HDEL', KEYS[1], 'trial_until')
  opened = ARGV[1]
end
redis.call('PEXPIRE', KEYS[1], ARGV[4])
if opened then return 1 end
return 0
"""
# A trial that ended without a verdict (deadline, cancellation): let the next one through.
_RELEASE = "redis.call('HDEL', KEYS[1], 'trial_until') return 0"


def origin_of(url: str) -> str:
    """``scheme://host:port`` of a URL: one breaker for every path of an upstream."""
    parts = urlsplit(url)
    return f"{parts.scheme.lower()}://{parts.netloc.lower()}"


def target_origins(target: dict[str, object]) -> list[str]:
    """The origins whose breakers a connector's calls go through: a REST target's ``origins`` when it lists
    some, else where its calls go (a SOAP connector's ``address``, else, not knowing the WSDL's
    ``soap:address`` here, its WSDL's origin, the service's own in nearly every deployment)."""
    listed = target.get("origins") if target.get("protocol", "rest") == "rest" else None
    if isinstance(listed, list) and listed:
        return list(dict.fromkeys(origin_of(str(o)) for o in listed))
    return [origin_of(str(target.get("address") or target.get("url", "")))]


@dataclass(frozen=True)
class BreakerState:
    origin: str
    state: State
    failures: int
    opened_at_ms: int | None
    retry_after_ms: int  # until a trial may go through (0 unless open)

    def to_dict(self) -> dict[str, object]:
        return {"origin": self.origin, "state": self.state, "failures": self.failures,
                "opened_at_ms": self.opened_at_ms, "retry_after_ms": self.retry_after_ms}


class BreakerStore:
    def __init__(self, redis: aioredis.Redis, settings: Settings, *, fail_max: int | None = None,
                 reset_ms: int | None = None) -> None:
        self._redis = redis
        self._settings = settings
        self.fail_max = fail_max if fail_max is not None else settings.breaker_fail_max
        self.reset_ms = reset_ms if reset_ms is not None else settings.breaker_reset_ms
        self._acquire = redis.register_script(_ACQUIRE)
        self._success = redis.register_script(_SUCCESS)
        self._failure = redis.register_script(_FAILURE)
        self._release = redis.register_script(_RELEASE)

    def key(self, org: str, origin: str) -> str:
        """``org``: the organisation's slug. A renamed organisation starts with closed breakers, as a restart
        would: their state lasts seconds, and a slug is what every stage and reader of a call knows."""
        return self._settings.redis_key("breaker", org, origin)

    async def acquire(self, org: str, origin: str, now_ms: int,
                      lease_ms: int) -> tuple[Literal["closed", "trial", "refused"], int, int]:
        """Whether a call may go now (as a trial when half-open), else how long until one may; and the
        failures counted so far."""
        verdict, wait, *rest = await self._acquire(keys=[self.key(org, origin)],
                                                   args=[now_ms, self.reset_ms, max(lease_ms, 1), _IDLE_TTL_MS])
        failures = int(rest[0]) if rest else 0
        return ("closed", "trial", "refused")[int(verdict)], int(wait), failures  # type: ignore[return-value]

    async def succeeded(self, org: str, origin: str, *, trial: bool) -> None:
        await self._success(keys=[self.key(org, origin)], args=[int(trial)])

    async def failed(self, org: str, origin: str, now_ms: int, *, trial: bool) -> bool:
        """Count a failure; True if the breaker is open after it."""
        return bool(await self._failure(keys=[self.key(org, origin)], args=[now_ms, self.fail_max, int(trial), _IDLE_TTL_MS]))

    async def release(self, org: str, origin: str) -> None:
        await self._release(keys=[self.key(org, origin)])

    async def read(self, org: str, origin: str, now_ms: int) -> BreakerState:
        raw = await self._redis.hgetall(self.key(org, origin))  # type: ignore[misc]
        fields = {k.decode(): int(v) for k, v in raw.items()}
        opened = fields.get("opened_at")
        if opened is None:
            return BreakerState(origin, "closed", fields.get("failures", 0), None, 0)
        reopen = opened + self.reset_ms
        if now_ms < reopen:
            return BreakerState(origin, "open", fields.get("failures", 0), opened, reopen - now_ms)
        return BreakerState(origin, "half_open", fields.get("failures", 0), opened, 0)
