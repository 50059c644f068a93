"""A redelivered outbound call whose reply already went out is not made again (egress/dedupe.py)."""
from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest_asyncio
from aiohttp import web

from core.consume import read_topic
from core.kafka import make_producer
from core.metrics import DUPLICATES_SKIPPED
from core.redis import make_redis
from core.settings import Settings
from schemas import decode, encode
from tests.support import IngressInstance, Stage, header_recorder, serving, wait_until


@pytest_asyncio.fixture(loop_scope="session")
async def counting_upstream() -> AsyncIterator[tuple[str, list[str]]]:
    async with header_recorder("X-Tag") as recorded:
        yield recorded


async def test_a_call_redelivered_after_its_reply_is_skipped_and_counted(
    settings: Settings, ingress: IngressInstance, stage: Stage, counting_upstream: tuple[str, list[str]]
) -> None:
    url, seen = counting_upstream
    staged = await stage.api(url, timeout_ms=30_000)
    await wait_until(lambda: staged["api"]["id"] in ingress.snapshot.apis)
    tags = [f"once-{uuid.uuid4().hex[:8]}" for _ in range(3)]
    correlation_ids = []
    async with aiohttp.ClientSession() as s:
        for tag in tags:
            async with s.post(f"{ingress.url}/{staged['org']}/echo", headers={"X-Tag": tag}) as r:
                assert r.status == 200
                correlation_ids.append(r.headers["X-Correlation-Id"])
    outbound = {r.key.decode(): r.value for r in await read_topic(settings, settings.topics.calls)
                if r.key is not None and r.key.decode() in correlation_ids}
    assert set(outbound) == set(correlation_ids)
    call_ids = [decode(outbound[c], expected="OutboundCall")[1]["call_id"] for c in correlation_ids]

    redis = make_redis(settings, max_connections=2)
    try:
        keys = [settings.redis_key("egress-done", c) for c in call_ids]

        for _ in range(500):  # completions are written in batches, a few ms after the reply
            if all(v is not None for v in await redis.mget(keys)):
                break
            await asyncio.sleep(0.02)
        assert all(v is not None for v in await redis.mget(keys)), "egress recorded no completion"
        # Kept a minute past the call's deadline (30 s here), then forgotten.
        for key in keys:
            assert 60_000 < await redis.pttl(key) <= 90_000
    finally:
        await redis.aclose()

    # What a crash before the commit would do: the same OutboundCalls delivered again.
    skipped = DUPLICATES_SKIPPED._value.get()
    producer = make_producer(settings)
    await producer.start()
    try:
        for c in correlation_ids:
            await producer.send_and_wait(settings.topics.calls, outbound[c], key=c.encode())
    finally:
        await producer.stop()
    await wait_until(lambda: DUPLICATES_SKIPPED._value.get() >= skipped + len(tags), timeout_s=15)
    assert [seen.count(t) for t in tags] == [1, 1, 1]


async def test_a_copy_of_a_call_in_flight_is_not_made_twice(settings: Settings, egress: dict[str, Any]) -> None:
    """A producer's retry after a lost ack delivers the same call twice, back to back, to the same partition:
    the second copy comes while the first is being made, before any completion is recorded."""
    seen: list[str] = []

    async def slow(request: web.Request) -> web.Response:
        seen.append(request.query.get("t", ""))
        await asyncio.sleep(0.5)  # the upstream's own pace: the copy arrives while this call is in flight
        return web.Response(text="made")

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", slow)
    async with serving(app) as url:
        org, tag = f"o{uuid.uuid4().hex[:8]}", uuid.uuid4().hex
        call = encode("OutboundCall", {
            "correlation_id": f"{org}-{tag}", "call_id": f"{org}-{tag}.1", "org": org, "method": "POST",
            "url": f"{url}/once?t={tag}", "body": b"pay 10", "deadline_ms": int(time.time() * 1000) + 10_000,
            "reply_topic": settings.topics.replies, "reply_partition": 0})
        skipped = DUPLICATES_SKIPPED._value.get()
        producer = make_producer(settings)
        await producer.start()
        try:
            for _ in range(2):
                await producer.send_and_wait(settings.topics.calls, call, key=f"{org}-{tag}".encode())
        finally:
            await producer.stop()
        await wait_until(lambda: DUPLICATES_SKIPPED._value.get() >= skipped + 1, timeout_s=15)
        await wait_until(lambda: seen == [tag], timeout_s=15)
        replies: list[Any] = []
        for _ in range(100):
            replies = [r for r in await read_topic(settings, settings.topics.replies)
                       if r.key is not None and r.key.decode() == f"{org}-{tag}"]
            if replies:
                break
            await asyncio.sleep(0.1)
        # The copy was skipped (counted above) before the first was answered: one call, one reply.
        assert seen == [tag] and len(replies) == 1, (seen, len(replies))
