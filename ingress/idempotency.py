"""Idempotency keys at the edge: a call repeated with the same ``Idempotency-Key`` is answered from
the first one's stored response, without a second outbound call (Zilla's http-kafka binding, and the
IETF draft on the header).

A key is scoped by organisation, API and consumer (the caller's identity when the API has caller
auth; on an API without, the credentials the call carries to the upstream: :func:`caller_scope`), so two
tenants, two consumers or two callers never share one. The first call claims the key (``SET NX``)
with a fingerprint of what it asked (method, path, query, body) and its correlation id; its answer
replaces the claim. Then:

- the same key and the same request: the stored answer, with ``Idempotent-Replayed: true``;
- the same key and a different request: 422 ``idempotency_key_reused``;
- the same key while the first call is in flight: 409 ``idempotency_in_flight``, with the first
  call's ``Location`` (its result is kept there: ingress/async_results.py). Once that result is
  there, the key is completed from it and the next repetition is answered from it.

A claim whose call could not even be produced is released, so the caller may try again. Keys live
``idempotency_ttl_s`` (the API's ``idempotency.ttl_s`` overrides it).
"""
from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import redis.asyncio as aioredis

from core.errors import Conflict, FieldError, InvalidInput
from core.redaction import presented_credentials
from core.settings import Settings

__all__ = ["Claim", "IdempotencyKeys", "KEY_HEADER", "REPLAYED_HEADER", "fingerprint"]

KEY_HEADER = "Idempotency-Key"
REPLAYED_HEADER = "Idempotent-Replayed"
MAX_KEY_CHARS = 255


def fingerprint(method: str, path: str, query: list[tuple[str, str]], body: bytes) -> str:
    digest = hashlib.sha256()
    for part in (method.encode(), path.encode(), json.dumps(query).encode()):
        digest.update(len(part).to_bytes(8, "big") + part)
    digest.update(body)
    return digest.hexdigest()


@dataclass(frozen=True)
class Claim:
    """What a key holds: the first call's fingerprint and correlation id, and its answer once known."""

    redis_key: str
    fingerprint: str
    correlation_id: str
    answer: dict[str, Any] | None  # {"status", "headers": [[name, value]], "body" (base64)}


def caller_scope(consumer: str | None, headers: Iterable[tuple[str, str]]) -> str:
    """Whose keys a call's key is among: its consumer's on an API that authenticates callers; on one that does
    not, those of the callers presenting the same credentials upstream (Authorization, a cookie, an API key),
    so that nobody who learns another caller's key is answered with that caller's stored answer."""
    if consumer:
        return consumer
    presented = presented_credentials(headers)
    return "presented:" + hashlib.sha256(json.dumps(presented).encode()).hexdigest() if presented else ""


class IdempotencyKeys:
    def __init__(self, settings: Settings, redis: aioredis.Redis) -> None:
        self._settings = settings
        self._redis = redis

    def redis_key(self, org: str, api_id: str, consumer: str | None, key: str) -> str:
        if not key or len(key) > MAX_KEY_CHARS or not key.isprintable():
            raise InvalidInput(f"{KEY_HEADER} must be 1 to {MAX_KEY_CHARS} printable characters",
                               code="invalid_idempotency_key",
                               fields=[FieldError(KEY_HEADER, f"must be 1 to {MAX_KEY_CHARS} printable characters")])
        scoped = hashlib.sha256(f"{org}\n{api_id}\n{consumer or ''}\n{key}".encode()).hexdigest()
        return self._settings.redis_key("idem", scoped)

    async def claim(self, redis_key: str, fp: str, correlation_id: str, ttl_s: int) -> Claim | None:
        """Take the key for this call (None), or the claim an earlier call holds on it."""
        record = json.dumps({"fp": fp, "cid": correlation_id, "answer": None})
        if await self._redis.set(redis_key, record, nx=True, ex=ttl_s):
            return None
        raw = await self._redis.get(redis_key)
        if raw is None:  # expired in between: take it now
            return None if await self._redis.set(redis_key, record, nx=True, ex=ttl_s) else await self.claim(
                redis_key, fp, correlation_id, ttl_s)
        data = json.loads(raw)
        return Claim(redis_key, data["fp"], data["cid"], data.get("answer"))

    @staticmethod
    def check(claim: Claim, fp: str) -> None:
        """Refuse a different request under the same key (422)."""
        if claim.fingerprint != fp:
            raise InvalidInput(f"this {KEY_HEADER} was used for a different request", code="idempotency_key_reused",
                               fields=[FieldError(KEY_HEADER, "was used for a different request")],
                               extra={"correlation_id": claim.correlation_id})

    @staticmethod
    def in_flight(claim: Claim, location: str) -> Conflict:
        return Conflict(f"a call with this {KEY_HEADER} is still in flight", code="idempotency_in_flight",
                        headers={"Location": location, "Retry-After": "1"},
                        extra={"correlation_id": claim.correlation_id})

    async def complete(self, redis_key: str, fp: str, correlation_id: str, reply: dict[str, Any], ttl_s: int) -> None:
        answer = {"status": int(reply["status"]), "headers": [[h["name"], h["value"]] for h in reply["headers"]],
                  "body": base64.b64encode(bytes(reply["body"])).decode()}
        await self._redis.set(redis_key, json.dumps({"fp": fp, "cid": correlation_id, "answer": answer}), ex=ttl_s)

    async def settle(self, redis_key: str, fp: str, correlation_id: str, reply: dict[str, Any], ttl_s: int) -> None:
        """The key once its call is answered: kept with the answer, or, for a failure a retry may cure (a 5xx),
        freed, so that the next attempt with the key makes a new call."""
        if int(reply["status"]) < 500:
            await self.complete(redis_key, fp, correlation_id, reply, ttl_s)
        else:
            await self.release(redis_key, correlation_id)

    async def release(self, redis_key: str, correlation_id: str) -> None:
        """Give the key back (the call was never produced), unless another call holds it by now."""
        raw = await self._redis.get(redis_key)
        if raw is not None and json.loads(raw).get("cid") == correlation_id:
            await self._redis.delete(redis_key)
