"""A body of exactly the limit goes through every stage and comes back intact; one byte more is 413."""
from __future__ import annotations

import hashlib
import io
import os
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest_asyncio
from aiohttp import web

from core.kafka import make_consumer, message_limit, topic_partitions
from core.settings import Settings
from tests.support import IngressInstance, Stage, serving, wait_until


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def raw_echo() -> AsyncIterator[str]:
    """Answers with the very bytes it received."""

    async def echo(request: web.Request) -> web.Response:
        return web.Response(body=await request.read(), content_type="application/octet-stream")

    app = web.Application(client_max_size=64 * 1024 * 1024)
    app.router.add_post("/raw", echo)
    async with serving(app) as url:
        yield url + "/raw"


async def _largest_call_record(settings: Settings, correlation_id: str) -> int:
    """Size of the OutboundCall written for ``correlation_id`` (0 if none)."""
    tps = await topic_partitions(settings, settings.topics.calls)
    consumer = make_consumer(settings, max_partition_fetch_bytes=message_limit(settings))
    await consumer.start()
    try:
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        largest = 0
        for _ in range(60):
            batches = await consumer.getmany(timeout_ms=200)
            for records in batches.values():
                for rec in records:
                    if rec.key == correlation_id.encode():
                        largest = max(largest, len(rec.value))
            if largest and not batches:
                break
        return largest
    finally:
        await consumer.stop()


async def test_a_body_at_the_limit_round_trips_and_one_byte_more_is_413(
    settings: Settings, ingress: IngressInstance, stage: Stage, raw_echo: str
) -> None:
    staged = await stage.api(raw_echo, methods=["POST"], path="/raw", timeout_ms=30_000)
    await wait_until(lambda: staged["api"]["id"] in ingress.snapshot.apis)
    body = os.urandom(settings.max_body_bytes)
    url = f"{ingress.url}/{staged['org']}/raw"
    async with aiohttp.ClientSession() as s:
        async with s.post(url, data=io.BytesIO(body), timeout=aiohttp.ClientTimeout(total=60)) as r:
            got = await r.read()
            status, correlation_id = r.status, r.headers.get("X-Correlation-Id", "")
        assert status == 200, got[:300]
        assert len(got) == len(body) and hashlib.sha256(got).digest() == hashlib.sha256(body).digest()
        async with s.post(url, data=io.BytesIO(body + b"x")) as r:
            assert r.status == 413
            refused = await r.json()
            assert refused["code"] == "body_too_large" and [f["field"] for f in refused["fields"]] == ["(body)"], refused
    # The call on the calls topic carries the body once, not a copy of the InboundCall besides.
    size: Any = await _largest_call_record(settings, correlation_id)
    assert settings.max_body_bytes < size < settings.max_body_bytes * 1.1, size
