"""Results of calls whose caller does not wait for them, kept in Redis for their ``Location``.

Two kinds of call end here: one sent with ``Prefer: respond-async`` (answered 202 at once), and one
whose synchronous caller gave up at its deadline (answered 504, with the same ``Location``). Either
way the call goes on, and its reply, when it comes, is kept rather than dropped.

Two keys per call, under the run's Redis prefix, both with the result TTL:
- ``async:owner:<correlation id>``: who may read the result (organisation, API, and the consumer
  when the API authenticates its callers). Written before the call is produced (respond-async) or
  when the caller gives up.
- ``async:result:<correlation id>``: the Reply, as the Avro bytes it came in. Written by the reply
  reader for every reply that finds no waiter, owner or not, so a reply that overtakes the owner
  record is not lost; without an owner nobody can read it, and it expires.

The correlation id is 128 random bits, so the location is not guessable; an API with caller auth
also requires the same consumer's credential to read it.
"""
from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from typing import Any

import redis.asyncio as aioredis

from core.settings import Settings
from schemas import CodecError, decode, encode

__all__ = ["AsyncResults", "Owner", "RESULTS_PATH", "location", "parse_prefer", "wait_seconds"]

RESULTS_PATH = "/_async"  # an org slug starts with a letter, so no organisation's path can be this
POLL_S = (0.05, 0.1, 0.2, 0.25)  # long-poll intervals: quick at first, then steady


def location(correlation_id: str) -> str:
    return f"{RESULTS_PATH}/{correlation_id}"


def parse_prefer(values: list[str]) -> dict[str, str]:
    """The preferences of ``Prefer`` headers (RFC 7240): ``respond-async`` and ``wait=N``, by lower-case name;
    parameters after ``;`` are ignored, and the first of a repeated preference wins."""
    found: dict[str, str] = {}
    for value in values:
        for item in value.split(","):
            name, _, rest = item.split(";", 1)[0].strip().partition("=")
            if name:
                found.setdefault(name.strip().lower(), rest.strip().strip('"'))
    return found


def wait_seconds(prefer: dict[str, str], cap_s: float) -> float:
    """``Prefer: wait=N`` as seconds within ``[0, cap_s]``; anything else is no wait."""
    try:
        return max(0.0, min(float(prefer.get("wait", "0")), cap_s))
    except ValueError:
        return 0.0


@dataclass(frozen=True)
class Owner:
    org: str
    api_id: str
    consumer: str | None


class AsyncResults:
    def __init__(self, settings: Settings, redis: aioredis.Redis) -> None:
        self._settings = settings
        self._redis = redis
        self.ttl_s = settings.async_result_ttl_s

    def _key(self, kind: str, correlation_id: str) -> str:
        return self._settings.redis_key("async", kind, correlation_id)

    async def register(self, correlation_id: str, owner: Owner) -> None:
        await self._redis.set(self._key("owner", correlation_id),
                              json.dumps({"org": owner.org, "api_id": owner.api_id, "consumer": owner.consumer}),
                              ex=self.ttl_s)

    async def owner(self, correlation_id: str) -> Owner | None:
        raw = await self._redis.get(self._key("owner", correlation_id))
        if raw is None:
            return None
        data = json.loads(raw)
        return Owner(str(data["org"]), str(data["api_id"]), data.get("consumer"))

    async def keep(self, reply: dict[str, Any]) -> None:
        """Keep a reply that found no waiter, for whoever owns its call."""
        await self._redis.set(self._key("result", reply["correlation_id"]), encode("Reply", reply), ex=self.ttl_s)

    async def result(self, correlation_id: str) -> dict[str, Any] | None:
        raw = await self._redis.get(self._key("result", correlation_id))
        if raw is None:
            return None
        try:
            return decode(raw, expected="Reply")[1]
        except CodecError:
            return None

    async def wait(self, correlation_id: str, wait_s: float) -> dict[str, Any] | None:
        """The result, waiting up to ``wait_s`` for it (``Prefer: wait=N``)."""
        loop = asyncio.get_running_loop()
        until = loop.time() + wait_s
        for attempt in range(1_000_000):
            found = await self.result(correlation_id)
            left = until - loop.time()
            if found is not None or left <= 0:
                return found
            await asyncio.sleep(min(POLL_S[min(attempt, len(POLL_S) - 1)], left))
        return None
