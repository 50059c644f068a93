"""Async callers over HTTP and idempotency keys, through the whole pipeline (ingress → broker →
processors → egress → a counting upstream on loopback).

``Prefer: respond-async`` answers 202 with a Location at once; a GET there answers 202 while the call
is pending and its result once it exists (``Prefer: wait=N`` long-polls). A reply that comes after its
synchronous caller gave up is kept at the Location the 504 named. Only the caller that made the call
may read it. An ``Idempotency-Key`` answers a repeat from the first call's answer, with no second
outbound call; a different request under the same key is a 422, a repeat while the first is in flight a 409.
"""
from __future__ import annotations

import asyncio
import json
import uuid
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import pytest_asyncio
from aiohttp import web
from multidict import CIMultiDict

from control.replay import read_dead_letters
from core.messages import now_ms
from core.redis import make_redis
from core.settings import Settings
from ingress.app import READER
from ingress.async_results import AsyncResults
from tests.callerauth_support import consumer_doc, new_key, publish_consumer, secure_api
from tests.support import IngressInstance, Stage, post_raw, serving, wait_until

TAG = "X-Tag"


@dataclass
class Counting:
    url: str
    calls: Counter[str] = field(default_factory=Counter)


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def counting() -> AsyncIterator[Counting]:
    """An upstream that counts calls per X-Tag; ``?ms=N`` answers after N ms, ``?status=N`` with that status."""
    found = Counting("")

    async def handle(request: web.Request) -> web.Response:
        found.calls[request.headers.get(TAG, "")] += 1
        await asyncio.sleep(int(request.query.get("ms", "0")) / 1000)
        body = await request.read()
        return web.json_response({"tag": request.headers.get(TAG), "body": body.decode(), "n": found.calls[request.headers.get(TAG, "")]},
                                 status=int(request.query.get("status", "200")))

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handle)
    async with serving(app) as url:
        found.url = url
        yield found


async def _api(stage: Stage, ingress: IngressInstance, upstream: Counting, *, timeout_ms: int = 5000,
               **api_fields: Any) -> dict[str, Any]:
    staged = await stage.api(upstream.url + "/up", path="/up", timeout_ms=timeout_ms)
    if api_fields:
        api = {**staged["api"], "org_id": staged["org_id"], **api_fields, "version": 2}
        await stage.publish("api", api, staged["org"])
        staged = {**staged, "api": api}
        await wait_until(lambda: (ingress.snapshot.version_of("api", api["id"]) or 0) >= 2)
    else:
        await wait_until(lambda: staged["api"]["id"] in ingress.snapshot.apis)
    return staged


async def _send(ingress: IngressInstance, method: str, path: str, *, headers: dict[str, str] | None = None,
                body: bytes = b"", query: str = "") -> tuple[int, CIMultiDict[str], Any]:
    async with aiohttp.ClientSession() as s:
        async with s.request(method, f"{ingress.url}{path}{query}", headers=headers or {}, data=body,
                             timeout=aiohttp.ClientTimeout(total=30)) as r:
            raw = await r.read()
            try:
                parsed: Any = json.loads(raw)
            except ValueError:
                parsed = raw
            return r.status, CIMultiDict(r.headers), parsed


async def test_respond_async_answers_202_and_the_location_answers_the_result(
    ingress: IngressInstance, stage: Stage, counting: Counting
) -> None:
    staged = await _api(stage, ingress, counting)
    tag = uuid.uuid4().hex
    status, headers, body = await _send(ingress, "POST", f"/{staged['org']}/up", query="?ms=700", body=b"hello",
                                        headers={"Prefer": "respond-async", TAG: tag})
    assert status == 202, body
    where = headers["Location"]
    assert where == f"/_async/{headers['X-Correlation-Id']}" and body["location"] == where
    assert headers["Preference-Applied"] == "respond-async"
    status, _, _ = await _send(ingress, "GET", where)
    assert status == 202  # still running upstream
    status, headers, body = await _send(ingress, "GET", where, headers={"Prefer": "wait=10"})
    assert status == 200 and body == {"tag": tag, "body": "hello", "n": 1}, body
    status, _, again = await _send(ingress, "GET", where)  # readable until it expires
    assert status == 200 and again == body
    assert counting.calls[tag] == 1


async def test_a_reply_after_the_caller_gave_up_is_kept_at_the_location_of_the_504(
    ingress: IngressInstance, stage: Stage, counting: Counting
) -> None:
    staged = await _api(stage, ingress, counting, timeout_ms=300)
    status, headers, body = await _send(ingress, "GET", f"/{staged['org']}/up", query="?ms=600")
    assert status == 504 and body["code"] == "deadline_exceeded", body
    assert headers["Location"] == f"/_async/{body['correlation_id']}" == body["location"]
    status, _, late = await _send(ingress, "GET", headers["Location"], headers={"Prefer": "wait=10"})
    # Whatever came last (egress's own timeout of the upstream, here) is kept, never dropped silently.
    assert status in (200, 504) and status != 202, late


async def test_an_api_with_async_fallback_answers_202_at_its_timeout_and_the_call_completes(
    ingress: IngressInstance, stage: Stage, counting: Counting
) -> None:
    staged = await _api(stage, ingress, counting, timeout_ms=300, async_fallback=True)
    tag = uuid.uuid4().hex
    status, headers, body = await _send(ingress, "GET", f"/{staged['org']}/up", query="?ms=900", headers={TAG: tag})
    assert status == 202 and "Preference-Applied" not in headers, body
    status, _, result = await _send(ingress, "GET", headers["Location"], headers={"Prefer": "wait=10"})
    assert status == 200 and result["tag"] == tag  # the call outlived the caller's wait: its deadline is the async one


async def test_only_the_consumer_that_made_the_call_reads_its_result(
    ingress: IngressInstance, stage: Stage, counting: Counting
) -> None:
    staged = await secure_api(stage, counting.url + "/up", {"mode": "api_key"}, ingress, path="/up")
    (key_a, entry_a), (key_b, entry_b) = new_key(), new_key()
    await publish_consumer(stage, consumer_doc(staged, name="a", keys=[entry_a]), ingress)
    await publish_consumer(stage, consumer_doc(staged, name="b", keys=[entry_b]), ingress)
    status, headers, _ = await _send(ingress, "POST", f"/{staged['org']}/up", headers={"Prefer": "respond-async", "X-API-Key": key_a})
    assert status == 202
    where = headers["Location"]
    status, _, body = await _send(ingress, "GET", where, headers={"X-API-Key": key_b})
    assert status == 404 and body["code"] == "result_not_found", body
    status, _, body = await _send(ingress, "GET", where)
    assert status == 401, body
    status, _, body = await _send(ingress, "GET", where, headers={"X-API-Key": key_a, "Prefer": "wait=10"})
    assert status == 200, body


async def test_locations_that_are_not_results(ingress: IngressInstance) -> None:
    for where in (f"/_async/{uuid.uuid4().hex}", "/_async/..%2F..%2Fetc", "/_async/" + "a" * 5000, "/_async/ABC"):
        status, _, body = await _send(ingress, "GET", where, headers={"Prefer": "wait=nan, wait=1e308"})
        assert status in (404, 414, 400), (where, body)
        if status == 404:
            assert body["code"] in ("result_not_found", "route_not_found"), body


async def test_an_idempotency_key_answers_a_repeat_without_a_second_call(
    ingress: IngressInstance, stage: Stage, counting: Counting
) -> None:
    staged = await _api(stage, ingress, counting)
    tag, key = uuid.uuid4().hex, uuid.uuid4().hex
    path = f"/{staged['org']}/up"
    first = await _send(ingress, "POST", path, body=b'{"amount": 10}', headers={TAG: tag, "Idempotency-Key": key})
    second = await _send(ingress, "POST", path, body=b'{"amount": 10}', headers={TAG: tag, "Idempotency-Key": key})
    assert first[0] == second[0] == 200 and first[2] == second[2] == {"tag": tag, "body": '{"amount": 10}', "n": 1}
    assert second[1]["Idempotent-Replayed"] == "true" and "Idempotent-Replayed" not in first[1]
    assert second[1]["X-Correlation-Id"] == first[1]["X-Correlation-Id"]
    assert counting.calls[tag] == 1
    # The same key with another body is refused; under another organisation it is another key.
    status, _, body = await _send(ingress, "POST", path, body=b'{"amount": 99}', headers={TAG: tag, "Idempotency-Key": key})
    assert status == 422 and body["code"] == "idempotency_key_reused", body
    assert [f["field"] for f in body["fields"]] == ["Idempotency-Key"], body
    other = await _api(stage, ingress, counting)
    status, _, body = await _send(ingress, "POST", f"/{other['org']}/up", body=b'{"amount": 10}',
                                  headers={TAG: tag, "Idempotency-Key": key})
    assert status == 200 and body["n"] == 2 and counting.calls[tag] == 2


async def test_on_an_api_without_caller_auth_a_key_is_the_callers_who_present_the_same_credentials(
    ingress: IngressInstance, stage: Stage, counting: Counting
) -> None:
    """Attack: whoever learns Alice's key (an order number) must not be answered with Alice's stored answer,
    which her upstream gave her for her own credentials."""
    staged = await _api(stage, ingress, counting)
    tag, key = uuid.uuid4().hex, uuid.uuid4().hex
    path, body = f"/{staged['org']}/up", b'{"show": "account"}'
    alice = {TAG: tag, "Idempotency-Key": key, "Authorization": "Bearer ALICE", "Cookie": "sid=alice"}
    first = await _send(ingress, "POST", path, body=body, headers=alice)
    assert first[0] == 200 and first[2]["n"] == 1
    for other in ({}, {"Authorization": "Bearer MALLORY"}, {"Authorization": "Bearer ALICE"}, {"X-API-Key": "k"}):
        status, got, answer = await _send(ingress, "POST", path, body=body,
                                          headers={TAG: tag, "Idempotency-Key": key, **other})
        assert status == 200 and "Idempotent-Replayed" not in got, (other, got)  # a call of its own
    assert counting.calls[tag] == 5
    # Alice herself, with the same credentials, is answered from her first call.
    status, got, answer = await _send(ingress, "POST", path, body=body, headers=alice)
    assert status == 200 and got["Idempotent-Replayed"] == "true" and answer["n"] == 1 and counting.calls[tag] == 5


async def test_a_repeat_while_the_first_call_is_in_flight_is_a_409_then_the_answer(
    ingress: IngressInstance, stage: Stage, counting: Counting
) -> None:
    staged = await _api(stage, ingress, counting)
    tag, key = uuid.uuid4().hex, uuid.uuid4().hex
    headers = {TAG: tag, "Idempotency-Key": key}
    first = asyncio.create_task(_send(ingress, "POST", f"/{staged['org']}/up", query="?ms=800", headers=headers))
    await wait_until(lambda: counting.calls[tag] == 1)
    status, got, body = await _send(ingress, "POST", f"/{staged['org']}/up", query="?ms=800", headers=headers)
    assert status == 409 and body["code"] == "idempotency_in_flight" and got["Location"].startswith("/_async/"), body
    assert (await first)[0] == 200
    status, got, body = await _send(ingress, "POST", f"/{staged['org']}/up", query="?ms=800", headers=headers)
    assert status == 200 and got["Idempotent-Replayed"] == "true" and counting.calls[tag] == 1


async def test_a_failure_a_retry_may_cure_frees_the_key(ingress: IngressInstance, stage: Stage, counting: Counting) -> None:
    staged = await _api(stage, ingress, counting)
    tag, key = uuid.uuid4().hex, uuid.uuid4().hex
    headers = {TAG: tag, "Idempotency-Key": key}
    status, _, _ = await _send(ingress, "POST", f"/{staged['org']}/up", query="?status=500", headers=headers)
    assert status == 500
    status, got, _ = await _send(ingress, "POST", f"/{staged['org']}/up", query="?status=500", headers=headers)
    assert status == 500 and "Idempotent-Replayed" not in got and counting.calls[tag] == 2


async def test_an_unusable_idempotency_key_is_refused(ingress: IngressInstance, stage: Stage, counting: Counting) -> None:
    staged = await _api(stage, ingress, counting)
    for key in ("k" * 256, "tab\tkey"):
        status, _, body = await _send(ingress, "POST", f"/{staged['org']}/up", headers={"Idempotency-Key": key})
        assert status == 422 and body["code"] == "invalid_idempotency_key", body
        assert [f["field"] for f in body["fields"]] == ["Idempotency-Key"], body


async def test_an_async_call_that_expires_on_the_way_is_answered_and_dead_lettered_a_waited_one_only_dropped(
    settings: Settings, ingress: IngressInstance, stage: Stage, counting: Counting
) -> None:
    staged = await _api(stage, ingress, counting)
    partition = ingress.app[READER].tp.partition
    calls = {}
    tag = uuid.uuid4().hex
    for respond_async in (True, False):
        cid = uuid.uuid4().hex
        calls[respond_async] = cid
        await post_raw(settings, {"correlation_id": cid, "org": staged["org"], "method": "GET", "path": "/up",
                                  "headers": [{"name": TAG, "value": tag}],
                                  "deadline_ms": now_ms() - 1, "reply_topic": settings.topics.replies,
                                  "reply_partition": partition, "respond_async": respond_async})
    letters: list[dict[str, Any]] = []

    async def found() -> bool:
        letters[:] = [v.letter for v in await read_dead_letters(settings, org=staged["org"], limit=0,
                                                                correlation_ids=set(calls.values()))]
        return bool(letters)

    for _ in range(50):
        if await found():
            break
        await asyncio.sleep(0.1)
    assert [(l["correlation_id"], l["error_code"]) for l in letters] == [(calls[True], "deadline_expired")]
    redis = make_redis(settings)
    try:
        results = AsyncResults(settings, redis)
        reply = await results.wait(calls[True], 5)  # kept for its Location by the reader of that partition
        assert reply is not None and reply["status"] == 504 and reply["error_code"] == "deadline_expired"
        assert await results.result(calls[False]) is None  # dropped: its caller had its 504 from ingress
    finally:
        await redis.aclose()
    assert counting.calls[tag] == 0  # neither was made
