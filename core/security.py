"""Security violations: failures counted per subject (a credential, an account, a source address),
a cool-down block past a threshold, and the security-event stream global admins read.

Everything lives in Redis, so every instance sees the same counts and blocks, and the control
plane lists the events that ingress, processors and control recorded. The stream is capped
(``XADD MAXLEN ~``): it is an audit feed for operators, not a store of record.
"""
from __future__ import annotations

import json
import time
from collections.abc import Collection
from dataclasses import dataclass
from typing import Any

import redis.asyncio as aioredis

from core.settings import Settings

__all__ = ["SecurityEvent", "ViolationTracker", "list_security_events", "record_security_event"]

STREAM_MAXLEN = 100_000


@dataclass(frozen=True)
class SecurityEvent:
    id: str  # the stream id: ordered, and the pagination cursor
    at_ms: int
    kind: str  # e.g. "auth_failure", "source_blocked", "login_failure", "login_blocked"
    org: str | None
    source: str | None  # the client address
    subject: str | None  # what was tried: a key prefix, a username, an e-mail; never a secret
    detail: dict[str, Any]

    def to_json(self) -> dict[str, Any]:
        return {"id": self.id, "at_ms": self.at_ms, "kind": self.kind, "org": self.org,
                "source": self.source, "subject": self.subject, "detail": self.detail}


def _stream(settings: Settings) -> str:
    return settings.redis_key("security-events")


async def record_security_event(redis: aioredis.Redis, settings: Settings, kind: str, *, org: str | None = None,
                                source: str | None = None, subject: str | None = None,
                                detail: dict[str, Any] | None = None) -> None:
    fields = {"kind": kind, "at_ms": str(int(time.time() * 1000)), "org": org or "", "source": source or "",
              "subject": subject or "", "detail": json.dumps(detail or {})}
    await redis.xadd(_stream(settings), fields, maxlen=STREAM_MAXLEN, approximate=True)  # type: ignore[arg-type]


async def list_security_events(redis: aioredis.Redis, settings: Settings, *, limit: int = 100,
                               before: str | None = None, org: str | Collection[str] | None = None,
                               kind: str | None = None) -> tuple[list[SecurityEvent], str | None]:
    """Newest first; ``before`` is the ``next_cursor`` of the previous page. ``org``: one name of the
    organisation, or several (its id and its slug: control records the id, ingress the slug)."""
    orgs = {org} if isinstance(org, str) else set(org or ())
    out: list[SecurityEvent] = []
    high = f"({before}" if before else "+"
    while len(out) < limit:
        batch = await redis.xrevrange(_stream(settings), max=high, min="-", count=limit * 2)
        if not batch:
            return out, None
        for raw_id, raw in batch:
            sid = raw_id.decode() if isinstance(raw_id, bytes) else raw_id
            high = f"({sid}"
            f = {(k.decode() if isinstance(k, bytes) else k): (v.decode() if isinstance(v, bytes) else v) for k, v in raw.items()}
            if (orgs and f.get("org") not in orgs) or (kind and f.get("kind") != kind):
                continue
            out.append(SecurityEvent(sid, int(f.get("at_ms") or 0), f.get("kind", ""), f.get("org") or None,
                                     f.get("source") or None, f.get("subject") or None, json.loads(f.get("detail") or "{}")))
            if len(out) == limit:
                return out, sid
    return out, None


class ViolationTracker:
    """Failures per subject in a fixed window; ``max_failures`` within ``window_s`` blocks the
    subject for ``block_s``. ``scope`` keeps the counters of different surfaces apart
    (``"ingress"``, ``"login"``)."""

    def __init__(self, redis: aioredis.Redis, settings: Settings, scope: str) -> None:
        self._redis = redis
        self._settings = settings
        self._scope = scope
        self.max_failures = settings.security_max_failures
        self.window_s = settings.security_window_s
        self.block_s = settings.security_block_s

    def _key(self, kind: str, subject: str) -> str:
        return self._settings.redis_key("sec", self._scope, kind, subject)

    async def blocked_for(self, *subjects: str, source: str = "") -> int:
        """Seconds left on the longest block among ``subjects`` that holds against ``source``; 0 when none does.

        A block holds against everyone, except that with a ``source`` (the subject of the caller's address) a
        blocked subject other than that address (a credential, an account) holds only against the sources that
        failed for it: whoever knows a consumer's name or an admin's e-mail cannot lock its owner out by failing
        on purpose from elsewhere, and a guesser gets one more try per new address, not ten."""
        wanted = [s for s in subjects if s]
        if not wanted:
            return 0
        async with self._redis.pipeline(transaction=False) as pipe:
            for s in wanted:
                pipe.pttl(self._key("block", s))
                pipe.sismember(self._key("from", s), source)
            answers = await pipe.execute()
        longest = 0
        for i, s in enumerate(wanted):
            ttl, failed_from_here = answers[2 * i], answers[2 * i + 1]
            if ttl and ttl > 0 and (not source or s == source or failed_from_here):
                longest = max(longest, ttl)
        return -(-longest // 1000)

    async def failure(self, *subjects: str, source: str = "") -> list[str]:
        """Count one failure for each subject (and note ``source`` as one that failed for it); returns the
        subjects this failure blocked."""
        newly: list[str] = []
        for s in subjects:
            if not s:
                continue
            key = self._key("fail", s)
            count = await self._redis.incr(key)
            if int(count) == 1:  # the window starts at the first failure (Redis 6.2 has no EXPIRE NX)
                await self._redis.expire(key, self.window_s)
            if source and s != source:
                sources = self._key("from", s)
                async with self._redis.pipeline(transaction=False) as pipe:
                    pipe.sadd(sources, source)
                    pipe.expire(sources, self.window_s + self.block_s)
                    await pipe.execute()
            if int(count) >= self.max_failures:
                if await self._redis.set(self._key("block", s), "1", ex=self.block_s, nx=True):
                    newly.append(s)
        return newly

    async def success(self, *subjects: str) -> None:
        """A success clears the failure count (not a block: that runs its course)."""
        keys = [self._key("fail", s) for s in subjects if s]
        if keys:
            await self._redis.delete(*keys)
