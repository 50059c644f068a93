"""Expired work is dropped at every stage; async producers post straight onto the topic."""
from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator

import aiohttp
import pytest_asyncio

from core.kafka import make_producer
from core.settings import Settings
from schemas import encode
from tests.support import IngressInstance, Stage, header_recorder, wait_until


@pytest_asyncio.fixture(loop_scope="session")
async def recorder() -> AsyncIterator[tuple[str, list[str]]]:
    """An upstream that records the X-Tag of every call it receives."""
    async with header_recorder("X-Tag") as recorded:
        yield recorded


def _inbound(org: str, tag: str, deadline_ms: int, api_id: str = "") -> bytes:
    return encode("InboundCall", {
        "correlation_id": uuid.uuid4().hex, "org": org, "api_id": api_id, "method": "POST", "path": "/echo",
        "headers": [{"name": "X-Tag", "value": tag}], "body": b"{}", "deadline_ms": deadline_ms,
    })


async def test_expired_calls_never_reach_the_upstream(
    settings: Settings, ingress: IngressInstance, stage: Stage, recorder: tuple[str, list[str]]
) -> None:
    url, seen = recorder
    staged = await stage.api(url)
    await wait_until(lambda: staged["api"]["id"] in ingress.snapshot.apis)
    # One synchronous call first: once it is answered, processors know the API too.
    async with aiohttp.ClientSession() as s:
        async with s.post(f"{ingress.url}/{staged['org']}/echo", headers={"X-Tag": "sync"}) as r:
            assert r.status == 200
    from core.metrics import EXPIRED_DROPPED

    dropped_by_egress = EXPIRED_DROPPED.labels("egress")._value.get()
    producer = make_producer(settings)
    await producer.start()
    try:
        now = int(time.time() * 1000)
        # Expired before processors see it.
        await producer.send_and_wait(settings.topics.requests, _inbound(staged["org"], "expired-in", now - 1))
        # Expired before egress sees it: an OutboundCall straight onto the calls topic.
        await producer.send_and_wait(settings.topics.calls, encode("OutboundCall", {
            "correlation_id": uuid.uuid4().hex, "call_id": uuid.uuid4().hex, "org": staged["org"], "method": "POST",
            "url": url + "/x", "headers": [{"name": "X-Tag", "value": "expired-out"}], "deadline_ms": now - 1,
        }))
        # A live async call with no reply_to, naming only org, method and path: it is delivered.
        await producer.send_and_wait(settings.topics.requests, _inbound(staged["org"], "live", now + 10_000))
        await wait_until(lambda: "live" in seen, timeout_s=15)
        # Egress runs in this process: its drop counter shows it saw and dropped the expired call.
        await wait_until(lambda: EXPIRED_DROPPED.labels("egress")._value.get() > dropped_by_egress, timeout_s=10)
        await asyncio.sleep(0.5)  # give any wrongly forwarded expired call time to arrive
    finally:
        await producer.stop()
    assert "expired-in" not in seen
    assert "expired-out" not in seen
    assert seen.count("live") == 1 and seen.count("sync") == 1


async def test_an_async_call_to_an_unknown_route_is_dead_lettered_not_lost(settings: Settings, ingress: IngressInstance) -> None:
    from control.replay import read_dead_letters

    org = f"nobody-{uuid.uuid4().hex[:6]}"
    producer = make_producer(settings)
    await producer.start()
    try:
        await producer.send_and_wait(settings.topics.requests, _inbound(org, "lost?", int(time.time() * 1000) + 10_000))
    finally:
        await producer.stop()
    letters: list = []
    for _ in range(50):
        letters = await read_dead_letters(settings, org=org)
        if letters:
            break
    assert letters, "an undeliverable async call left no trace"
    assert letters[0].letter["error_code"] == "org_not_found"
    assert letters[0].letter["stage"] == "processors"
