"""Management API usage: requests per user and per organisation, counted per UTC day in Redis.

A counter is one hash field per day (``HINCRBY``): cheap enough to bump on every authenticated
request, and kept ``KEEP_DAYS`` so a month can be read back.
"""
from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any

import redis.asyncio as aioredis

from core.settings import Settings

__all__ = ["KEEP_DAYS", "count_request", "org_usage", "today", "usage_of_day"]

KEEP_DAYS = 35


def today() -> date:
    return datetime.now(UTC).date()


def _key(settings: Settings, day: date, *parts: str) -> str:
    return settings.redis_key("control", "usage", day.isoformat(), *parts)


async def count_request(redis: aioredis.Redis, settings: Settings, user_id: str, org_id: str | None) -> None:
    day = today()
    ttl = KEEP_DAYS * 86400
    keys = [(_key(settings, day, "users"), user_id)]
    if org_id:
        keys += [(_key(settings, day, "orgs"), org_id), (_key(settings, day, "org", org_id), user_id)]
    async with redis.pipeline(transaction=False) as pipe:
        for key, field in keys:
            pipe.hincrby(key, field, 1)
            pipe.expire(key, ttl)
        await pipe.execute()


def _counts(raw: dict[Any, Any], name: str) -> list[dict[str, Any]]:
    items = [{name: k.decode() if isinstance(k, bytes) else k, "requests": int(v)} for k, v in raw.items()]
    return sorted(items, key=lambda i: (-i["requests"], i[name]))


async def usage_of_day(redis: aioredis.Redis, settings: Settings, day: date) -> dict[str, Any]:
    """Every organisation's and every user's count (global admins' too: they have no organisation)."""
    orgs = await redis.hgetall(_key(settings, day, "orgs"))
    users = await redis.hgetall(_key(settings, day, "users"))
    return {"day": day.isoformat(), "orgs": _counts(orgs, "org_id"), "users": _counts(users, "user_id")}


async def org_usage(redis: aioredis.Redis, settings: Settings, day: date, org_id: str) -> dict[str, Any]:
    total = await redis.hget(_key(settings, day, "orgs"), org_id)
    users = await redis.hgetall(_key(settings, day, "org", org_id))
    return {"day": day.isoformat(), "org_id": org_id, "requests": int(total or 0), "users": _counts(users, "user_id")}
