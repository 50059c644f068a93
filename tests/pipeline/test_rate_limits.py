"""Rate limits on the request path (issue 9, item 3): exact across two ingress instances under
concurrent load, 429 with Retry-After and RateLimit-* headers, the headers on admitted calls too,
and the organisation's default where an API sets none."""
from __future__ import annotations

import asyncio
from collections import Counter
from typing import Any

import aiohttp
import pytest

from core.settings import Settings
from tests.callerauth_support import clear_ingress_blocks, consumer_doc, new_key, publish_consumer, secure_api  # noqa: F401
from tests.support import IngressInstance, Stage, wait_until

pytestmark = pytest.mark.usefixtures("clear_ingress_blocks")

LIMIT = 60
SENT = 150
CONCURRENCY = 24


async def test_two_instances_hold_the_limit_exactly_under_concurrent_load(stage: Stage, ingress: IngressInstance,
                                                                          upstream: str, settings: Settings) -> None:
    second = IngressInstance(settings)
    await second.start()
    try:
        staged = await stage.api(upstream + "/echo")
        key, entry = new_key()
        await publish_consumer(stage, consumer_doc(staged, keys=[entry]), ingress, second)
        # A window far longer than the test: every admitted call of the run counts against it.
        await secure_api(stage, upstream, {"mode": "api_key"}, ingress, second, staged=staged,
                         rate_limit={"requests": LIMIT, "per_seconds": 3600, "by": "consumer"})
        gate = asyncio.Semaphore(CONCURRENCY)
        answers: list[tuple[int, dict[str, str], dict[str, Any]]] = []

        async def one(s: aiohttp.ClientSession, i: int) -> None:
            base = (ingress, second)[i % 2].url
            async with gate, s.get(f"{base}/{staged['org']}/echo", headers={"X-API-Key": key}) as r:
                answers.append((r.status, dict(r.headers), await r.json(content_type=None)))

        async with aiohttp.ClientSession() as s:
            await asyncio.gather(*(one(s, i) for i in range(SENT)))
        statuses = Counter(status for status, _, _ in answers)
        assert set(statuses) <= {200, 429}, statuses
        assert abs(statuses[200] - LIMIT) <= LIMIT * 0.01, statuses
        for status, headers, body in answers:
            assert headers["RateLimit-Limit"] == str(LIMIT)
            assert 0 <= int(headers["RateLimit-Remaining"]) < LIMIT
            assert 0 < int(headers["RateLimit-Reset"]) <= 3600
            if status == 429:
                assert body["code"] == "rate_limited" and headers["RateLimit-Remaining"] == "0"
                assert 0 < int(headers["Retry-After"]) <= 3600
            else:
                assert "Retry-After" not in headers
        remaining = sorted(int(h["RateLimit-Remaining"]) for s, h, _ in answers if s == 200)
        assert remaining == list(range(LIMIT)), "each admitted call saw its own place in the window"
    finally:
        await second.stop()


async def test_the_organisation_default_applies_where_the_api_sets_none(stage: Stage, ingress: IngressInstance,
                                                                        upstream: str) -> None:
    staged = await stage.api(upstream + "/echo")
    org = {"id": staged["org_id"], "slug": staged["org"], "name": staged["org"], "version": 2,
           "rate_limit": {"requests": 3, "per_seconds": 3600, "by": "org"}}
    await stage.publish("org", org, staged["org"])
    await wait_until(lambda: (ingress.snapshot.orgs.get(staged["org"]) or {}).get("rate_limit") is not None)
    async with aiohttp.ClientSession() as s:
        statuses = []
        for _ in range(5):
            async with s.get(f"{ingress.url}/{staged['org']}/echo") as r:
                statuses.append(r.status)
                last = dict(r.headers)
    assert statuses == [200, 200, 200, 429, 429]
    assert last["RateLimit-Limit"] == "3" and int(last["Retry-After"]) >= 1
    # The API's own limit wins over the default.
    await secure_api(stage, upstream, {"mode": "none"}, ingress, staged=staged,
                     rate_limit={"requests": 100, "per_seconds": 3600, "by": "ip"})
    async with aiohttp.ClientSession() as s, s.get(f"{ingress.url}/{staged['org']}/echo") as r:
        assert r.status == 200 and r.headers["RateLimit-Limit"] == "100"
