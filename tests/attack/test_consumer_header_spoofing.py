"""A caller cannot tell an upstream who it is (F-AUTH-2): the consumer header is Junction's on every API.

Before, only authenticated APIs took a caller's ``X-Consumer-Id`` (or the API's ``consumer_header``) out;
on an API without caller auth it reached the upstream unchanged, so an upstream serving an open and an
authenticated API could not tell Junction's header from a caller's. Runs on the real pipeline against an
upstream that records every header it receives.
"""
from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import aiohttp
import pytest
import pytest_asyncio
from aiohttp import web

from core.settings import Settings
from tests.callerauth_support import (  # noqa: F401 - clear_ingress_blocks is a fixture
    clear_ingress_blocks, consumer_doc, new_key, publish_consumer, secure_api,
)
from tests.support import IngressInstance, Stage, post_raw, running_pipeline, serving, wait_until

pytestmark = pytest.mark.usefixtures("clear_ingress_blocks")

SPOOFED = "54eebaab-a50c-45f0-ba19-fd262c391b99"
# The script copies what it sees, so the test learns whether a spoofed header got as far as the script.
SEEING_SCRIPT = ("def transform_request(request, ctx):\n"
                 "    request.headers['X-Script-Saw'] = repr([request.headers.get_all('X-Consumer-Id'),\n"
                 "                                             request.headers.get_all('X-Caller')])\n")


@dataclass
class World:
    settings: Settings
    stage: Stage
    ingress: IngressInstance
    upstream: str
    received: list[list[tuple[str, str]]]  # every request's headers, in arrival order


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def world(settings: Settings) -> AsyncIterator[World]:
    received: list[list[tuple[str, str]]] = []

    async def record(request: web.Request) -> web.Response:
        received.append(list(request.headers.items()))
        return web.json_response({"ok": True})

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", record)
    async with running_pipeline(settings) as (stage, ingress), serving(app) as url:
        yield World(settings, stage, ingress, url, received)


def _values(headers: list[tuple[str, str]], name: str) -> list[str]:
    return [v for k, v in headers if k.lower() == name.lower()]


async def _get(w: World, org: str, headers: list[tuple[str, str]]) -> tuple[int, dict[str, Any], list[tuple[str, str]]]:
    before = len(w.received)
    async with aiohttp.ClientSession() as s, s.get(f"{w.ingress.url}/{org}/echo", headers=headers) as r:
        status, body = r.status, await r.json(content_type=None)
    return status, body, (w.received[before] if len(w.received) > before else [])


SPOOFS = [("X-Consumer-Id", SPOOFED), ("x-consumer-id", "admin"), ("X-Caller", "admin")]


@pytest.mark.parametrize("auth", [None, {"mode": "none"}, {"mode": "none", "consumer_header": "X-Caller"}])
async def test_an_anonymous_api_forwards_no_consumer_header_of_the_callers(world: World, auth: dict[str, Any] | None) -> None:
    staged = await world.stage.api(world.upstream + "/echo", script=SEEING_SCRIPT)
    if auth is not None:
        staged = await secure_api(world.stage, world.upstream, auth, world.ingress, staged=staged)
    else:
        await wait_until(lambda: staged["api"]["id"] in world.ingress.snapshot.apis)
    status, body, seen = await _get(world, staged["org"], SPOOFS)
    assert status == 200, body
    assert _values(seen, "X-Consumer-Id") == []
    configured = (auth or {}).get("consumer_header")
    if configured:
        assert _values(seen, configured) == []
    assert _values(seen, "X-Script-Saw") == [repr([[], [] if configured else ["admin"]])]


async def test_an_authenticated_api_sets_its_header_and_drops_the_default_one(world: World) -> None:
    staged = await world.stage.api(world.upstream + "/echo")
    key, entry = new_key()
    consumer = consumer_doc(staged, keys=[entry])
    await publish_consumer(world.stage, consumer, world.ingress)
    await secure_api(world.stage, world.upstream, {"mode": "api_key", "consumer_header": "X-Caller"}, world.ingress,
                     staged=staged)
    status, body, seen = await _get(world, staged["org"], [*SPOOFS, ("X-API-Key", key)])
    assert status == 200, body
    assert _values(seen, "X-Caller") == [consumer["id"]]
    assert _values(seen, "X-Consumer-Id") == []


async def test_a_producers_consumer_header_on_an_anonymous_api_stops_at_processors(world: World) -> None:
    """Processors are the authority: a call put straight on the requests topic is checked there too."""
    staged = await world.stage.api(world.upstream + "/echo")
    await wait_until(lambda: staged["api"]["id"] in world.ingress.snapshot.apis)
    before = len(world.received)
    now = int(time.time() * 1000)
    await post_raw(world.settings, {
        "correlation_id": uuid.uuid4().hex, "org": staged["org"], "api_id": staged["api"]["id"],
        "config_version": int(staged["api"]["version"]), "method": "GET", "path": "/echo", "path_params": {},
        "query": [], "headers": [{"name": "X-Consumer-Id", "value": SPOOFED}, {"name": "X-Marker", "value": "raw"}],
        "body": b"", "received_at_ms": now, "deadline_ms": now + 20_000, "reply_topic": None, "reply_partition": -1,
        "attempt": 1, "idempotency_key": None, "sealed_credentials": None, "respond_async": False,
    })
    await wait_until(lambda: any(_values(h, "X-Marker") == ["raw"] for h in world.received[before:]), timeout_s=20)
    seen = next(h for h in world.received[before:] if _values(h, "X-Marker") == ["raw"])
    assert _values(seen, "X-Consumer-Id") == []


async def test_a_key_given_twice_is_refused_naming_the_header(world: World) -> None:
    """F-ERR-2: the 401 names the header at fault in ``fields``."""
    staged = await world.stage.api(world.upstream + "/echo")
    key, entry = new_key()
    await publish_consumer(world.stage, consumer_doc(staged, keys=[entry]), world.ingress)
    await secure_api(world.stage, world.upstream, {"mode": "api_key"}, world.ingress, staged=staged)
    status, body, seen = await _get(world, staged["org"], [("X-API-Key", key), ("X-API-Key", "other")])
    assert status == 401 and body["code"] == "invalid_credential", body
    assert body["fields"] == [{"field": "X-API-Key", "message": "is given more than once"}]
    assert seen == [], "the upstream was called"
