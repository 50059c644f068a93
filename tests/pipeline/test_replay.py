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


async def test_a_replayed_call_of_an_api_with_caller_auth_is_checked_again_with_its_sealed_key(
    settings: Settings, ingress: IngressInstance, stage: Stage, tagged_upstream: tuple[str, list[bytes]]
) -> None:
    """Replay re-reads the InboundCall, sealed credential included (never in clear: only processors open it,
    and only for this correlation id). Processors check it again: a live key goes through, a revoked one is
    refused and dead-lettered, and the upstream is not called."""
    from tests.callerauth_support import consumer_doc, new_key, publish_consumer, secure_api

    good_url, bodies = tagged_upstream
    staged = await stage.api(f"http://127.0.0.1:{free_port()}/down", target_method="POST")
    staged = await secure_api(stage, "", {"mode": "api_key"}, ingress, staged=staged)
    key, entry = new_key()
    doc = consumer_doc(staged, keys=[entry])
    await publish_consumer(stage, doc, ingress)
    org = staged["org"]
    payloads = [f"paid-{i}-{uuid.uuid4().hex}".encode() for i in range(2)]
    cids = []
    async with aiohttp.ClientSession() as s:
        for payload in payloads:
            async with s.post(f"{ingress.url}/{org}/echo", data=payload, headers={"X-API-Key": key}) as r:
                assert r.status == 502, await r.text()
                cids.append((await r.json())["correlation_id"])
    letters: list = []
    for _ in range(50):
        letters[:] = await read_dead_letters(settings, org=org, correlation_ids=set(cids))
        if len(letters) == 2:
            break
    assert len(letters) == 2
    assert all(key.encode() not in v.letter["original"] for v in letters)  # the dead letters hold no key

    await stage.publish("connector", {**staged["connector"], "version": 2,
                                      "target": {"protocol": "rest", "url": good_url, "method": "POST"}}, org)
    await wait_until(lambda: ingress.snapshot.version_of("connector", staged["connector"]["id"]) == 2)
    first = next(v for v in letters if v.letter["correlation_id"] == cids[0])
    outcomes = await replay_dead_letters(settings, [first])
    assert [o.status for o in outcomes] == ["replayed"]
    await wait_until(lambda: payloads[0] in bodies, timeout_s=15)

    # The key is revoked; the second call's replay is refused by processors with the credential's reason.
    await publish_consumer(stage, {**doc, "keys": [], "version": 2}, ingress)
    # Processors apply config in topic order (one partition): an API published after the revocation and
    # served by them means they have the revocation too.
    probe = await stage.api(good_url, target_method="POST")
    await _until_served(f"{ingress.url}/{probe['org']}/echo")
    second = next(v for v in letters if v.letter["correlation_id"] == cids[1])
    outcomes = await replay_dead_letters(settings, [second])
    assert [o.status for o in outcomes] == ["replayed"]
    refused: list = []
    for _ in range(100):
        refused = [v for v in await read_dead_letters(settings, org=org, correlation_ids={cids[1]})
                   if v.letter["stage"] == "processors"]
        if refused:
            break
    assert refused, "the replay of a revoked key's call left no dead letter"
    assert refused[0].letter["error_code"] == "invalid_credential"
    assert payloads[1] not in bodies


async def _until_served(url: str) -> None:
    async with aiohttp.ClientSession() as s:
        for _ in range(200):
            async with s.post(url, data=b"probe") as r:
                if r.status == 200:
                    return
            await asyncio.sleep(0.05)
    raise AssertionError(f"{url} was not served")
