"""Operators replay dead letters through the management API (a replay job) onto the topic they failed on."""
from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest_asyncio
from aiohttp import web

from control.replay import read_dead_letters
from core.settings import Settings
from junction.broker import free_port
from tests.replay_support import indexed_letters, new_org, replay, staged_api, wait_job
from tests.support import IngressInstance, Stage, serving, wait_until

# A call to a dead upstream is never sent, so it would be retried even as a POST, and its failures would open
# the upstream's breaker before the replays: one attempt each keeps these tests about replay.
ONE_ATTEMPT = {"attempts": 1}


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
    settings: Settings, control: Any, ingress: IngressInstance, stage: Stage, tagged_upstream: tuple[str, list[bytes]]
) -> None:
    good_url, bodies = tagged_upstream
    org = await new_org(control)
    staged = await staged_api(control, stage, f"http://127.0.0.1:{free_port()}/down", org=org, target_method="POST",
                              retry=ONE_ATTEMPT)
    await wait_until(lambda: staged["api"]["id"] in ingress.snapshot.apis)
    payload = f"order-{uuid.uuid4().hex}".encode()
    async with aiohttp.ClientSession() as s:
        async with s.post(f"{ingress.url}/{org}/echo", data=payload) as r:
            assert r.status == 502
            cid = (await r.json())["correlation_id"]

    [letter] = await indexed_letters(control, org, [cid])
    assert letter["stage"] == "egress" and letter["error_code"] == "upstream_unreachable"
    # The dead letter holds the OutboundCall, and points at the InboundCall it came from, which replay
    # sends through processors again (so the fixed connector applies).
    assert letter["original_topic"] == settings.topics.calls
    assert letter["inbound_partition"] >= 0 and letter["inbound_offset"] >= 0

    # The operator fixes the connector, then replays.
    await stage.publish("connector", {**staged["connector"], "version": 2,
                                      "target": {"protocol": "rest", "url": good_url, "method": "POST"}}, org)
    await wait_until(lambda: ingress.snapshot.version_of("connector", staged["connector"]["id"]) == 2)
    await _until_served(f"{ingress.url}/{org}/echo")  # processors route with the fixed connector too
    r = await replay(control, org, {"ids": [letter["id"]]})
    assert r.status == 201, r.body
    job = await wait_job(control, org, r.body["id"])
    assert [(i["outcome"], i["attempt"], i["topic"]) for i in job["items"]] == [("succeeded", 2, settings.topics.requests)]
    assert bodies.count(payload) == 1

    # Asked again, the job skips it: a later attempt already went through.
    again = await wait_job(control, org, (await replay(control, org, {"ids": [letter["id"]]})).body["id"])
    assert [i["outcome"] for i in again["items"]] == ["skipped_already_done"]
    assert bodies.count(payload) == 1


async def test_a_replayed_call_of_an_api_with_caller_auth_is_checked_again_with_its_sealed_key(
    settings: Settings, control: Any, ingress: IngressInstance, stage: Stage, tagged_upstream: tuple[str, list[bytes]]
) -> None:
    """Replay re-reads the InboundCall, sealed credential included (never in clear: only processors open it,
    and only for this correlation id). Processors check it again: a live key goes through, a revoked one is
    refused (the job records their 401), and the upstream is not called."""
    from tests.callerauth_support import consumer_doc, new_key, publish_consumer, secure_api

    good_url, bodies = tagged_upstream
    org = await new_org(control)
    staged = await staged_api(control, stage, f"http://127.0.0.1:{free_port()}/down", org=org, target_method="POST",
                              retry=ONE_ATTEMPT)
    staged = await secure_api(stage, "", {"mode": "api_key"}, ingress, staged=staged)
    key, entry = new_key()
    doc = consumer_doc(staged, keys=[entry])
    await publish_consumer(stage, doc, ingress)
    payloads = [f"paid-{i}-{uuid.uuid4().hex}".encode() for i in range(2)]
    cids = []
    async with aiohttp.ClientSession() as s:
        for payload in payloads:
            async with s.post(f"{ingress.url}/{org}/echo", data=payload, headers={"X-API-Key": key}) as r:
                assert r.status == 502, await r.text()
                cids.append((await r.json())["correlation_id"])
    letters = await indexed_letters(control, org, cids)
    raw = await read_dead_letters(settings, org=org, correlation_ids=set(cids))
    assert len(raw) == 2 and all(key.encode() not in v.letter["original"] for v in raw)  # the dead letters hold no key

    await stage.publish("connector", {**staged["connector"], "version": 2,
                                      "target": {"protocol": "rest", "url": good_url, "method": "POST"}}, org)
    await wait_until(lambda: ingress.snapshot.version_of("connector", staged["connector"]["id"]) == 2)
    first = await wait_job(control, org, (await replay(control, org, {"ids": [letters[0]["id"]]})).body["id"])
    assert [i["outcome"] for i in first["items"]] == ["succeeded"], first["items"]
    assert bodies.count(payloads[0]) == 1

    # The key is revoked; the second call's replay is refused by processors with the credential's reason.
    await publish_consumer(stage, {**doc, "keys": [], "version": 2}, ingress)
    # Processors apply config in topic order (one partition): an API published after the revocation and
    # served by them means they have the revocation too.
    probe = await stage.api(good_url, target_method="POST")
    await _until_served(f"{ingress.url}/{probe['org']}/echo")
    second = await wait_job(control, org, (await replay(control, org, {"ids": [letters[1]["id"]]})).body["id"])
    [item] = second["items"]
    assert (item["outcome"], item["status"], item["code"]) == ("failed", 401, "invalid_credential"), item
    # Its outcome is the Reply processors wrote to control's results topic (a refusal answered to someone
    # waiting is not dead-lettered); the upstream was not called.
    assert item["status"] == 401 and item["new_dead_letter_id"] is None
    assert payloads[1] not in bodies


async def _until_served(url: str) -> None:
    async with aiohttp.ClientSession() as s:
        for _ in range(200):
            async with s.post(url, data=b"probe") as r:
                if r.status == 200:
                    return
            await asyncio.sleep(0.05)
    raise AssertionError(f"{url} was not served")
