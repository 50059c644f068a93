"""Operators replay dead letters onto the topic they failed on."""
from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import aiohttp
import pytest_asyncio
from aiohttp import web

from control.replay import read_dead_letters, replay_dead_letters
from core.settings import Settings
from junction.broker import free_port
from tests.support import IngressInstance, Stage, serving, wait_until


@pytest_asyncio.fixture(loop_scope="session")
async def tagged_upstream() -> AsyncIterator[tuple[str, list[bytes]]]:
    bodies: list[bytes] = []

    async def record(request: web.Request) -> web.Response:
        bodies.append(await request.read())
        return web.json_response({"ok": True})

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", record)
    async with serving(app) as url:
        yield url + "/in", bodies


async def test_a_dead_letter_replayed_after_the_upstream_is_fixed_is_delivered_once(
    settings: Settings, ingress: IngressInstance, stage: Stage, tagged_upstream: tuple[str, list[bytes]]
) -> None:
    good_url, bodies = tagged_upstream
    org = f"o{uuid.uuid4().hex[:8]}"
    staged = await stage.api(f"http://127.0.0.1:{free_port()}/down", org=org, target_method="POST")
    await wait_until(lambda: staged["api"]["id"] in ingress.snapshot.apis)
    payload = f"order-{uuid.uuid4().hex}".encode()
    async with aiohttp.ClientSession() as s:
        async with s.post(f"{ingress.url}/{org}/echo", data=payload) as r:
            assert r.status == 502
            cid = (await r.json())["correlation_id"]

    letters: list = []

    async def dead_letter_arrived() -> bool:
        letters[:] = await read_dead_letters(settings, org=org, correlation_ids={cid})
        return bool(letters)

    for _ in range(50):
        if await dead_letter_arrived():
            break
    assert letters, "the failed call left no dead letter"
    view = letters[0].to_dict()
    assert view["stage"] == "egress" and view["error_code"] == "upstream_unreachable"
    # The dead letter holds the OutboundCall, and points at the InboundCall it came from, which replay
    # sends through processors again (so the fixed connector applies).
    assert view["original_topic"] == settings.topics.calls
    assert view["inbound_partition"] >= 0 and view["inbound_offset"] >= 0

    # The operator fixes the connector, then replays.
    await stage.publish("connector", {**staged["connector"], "version": 2,
                                      "target": {"protocol": "rest", "url": good_url, "method": "POST"}}, org)
    await wait_until(lambda: ingress.snapshot.version_of("connector", staged["connector"]["id"]) == 2)
    # A live call succeeding shows processors route with the fixed connector too.
    async with aiohttp.ClientSession() as s:
        for _ in range(100):
            async with s.post(f"{ingress.url}/{org}/echo", data=b"probe") as r:
                if r.status == 200:
                    break
            await asyncio.sleep(0.05)
        assert r.status == 200
    outcomes = await replay_dead_letters(settings, letters)
    assert [o.status for o in outcomes] == ["replayed"]
    assert outcomes[0].attempt == 2
    await wait_until(lambda: payload in bodies, timeout_s=15)

    again = await replay_dead_letters(settings, letters)
    assert [o.status for o in again] == ["already_replayed"]
    assert bodies.count(payload) == 1
