"""Dead letters hold no caller credential, whichever stage the call failed in.

Calls carry Authorization, Cookie, Proxy-Authorization, an API key header and an api_key query
parameter (random values each), fail in processors (a script that raises, printing the credential),
in egress (a dead upstream, retries exhausted; a transform_response that raises), and for an API
with api_key caller auth. Then every topic of the run is read from the beginning: no value is in
clear in any dead letter, and the sealed API key is in clear nowhere at all.
"""
from __future__ import annotations

import asyncio
import json
import secrets
import uuid
from typing import Any

import aiohttp

from control.replay import read_dead_letters
from core.consume import read_topic
from core.kafka import make_producer
from core.messages import now_ms
from core.settings import Settings
from junction.broker import free_port
from schemas import decode
from tests.callerauth_support import consumer_doc, new_key, publish_consumer, secure_api
from tests.support import IngressInstance, Stage, post_raw, wait_until

RAISES_IN_REQUEST = '''
def transform_request(request, ctx):
    ctx.log("caller sent " + str(request.headers.get("authorization")) + " / " + str(request.headers.get("cookie")))
    raise ValueError("refusing " + str(request.headers.get("authorization")) + " " + str(request.headers.get("x-api-key")))
'''

RAISES_IN_RESPONSE = '''
def transform_request(request, ctx):
    pass

def transform_response(response, ctx):
    raise ValueError("cannot shape this answer")
'''


def _credentials() -> dict[str, str]:
    return {name: f"{name}-{secrets.token_hex(12)}" for name in ("bearer", "cookie", "proxy", "apikey", "query")}


def _headers(values: dict[str, str]) -> dict[str, str]:
    return {"Authorization": f"Bearer {values['bearer']}", "Cookie": f"sid={values['cookie']}; theme=dark",
            "Proxy-Authorization": f"Basic {values['proxy']}", "X-API-Key": values["apikey"]}


async def _call(url: str, values: dict[str, str], extra: dict[str, str] | None = None) -> str:
    async with aiohttp.ClientSession() as s, s.post(url, params={"api_key": values["query"], "q": "1"}, data=b"payload",
                                                     headers={**_headers(values), **(extra or {})}) as r:
        assert r.status >= 400, await r.text()
        return (await r.json())["correlation_id"]


async def _every_record(settings: Settings, topic: str) -> list[bytes]:
    """Every record value of ``topic``, from the beginning to its end now."""
    return [r.value for r in await read_topic(settings, topic) if r.value is not None]


async def _letters(settings: Settings, cids: set[str]) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []

    async def arrived() -> bool:
        found[:] = [v.letter for v in await read_dead_letters(settings, correlation_ids=cids, limit=0)]
        return {letter["correlation_id"] for letter in found} >= cids

    for _ in range(60):
        if await arrived():
            break
    assert {letter["correlation_id"] for letter in found} >= cids, "a failed call left no dead letter"
    return found


def _clear(secret: str, data: bytes) -> bool:
    return secret.encode() in data


async def test_no_dead_letter_of_any_stage_holds_a_caller_credential(
    settings: Settings, ingress: IngressInstance, stage: Stage, upstream: str
) -> None:
    processors_api = await stage.api(upstream + "/echo", script=RAISES_IN_REQUEST)
    dead_api = await stage.api(f"http://127.0.0.1:{free_port()}/down")
    response_api = await stage.api(upstream + "/echo", script=RAISES_IN_RESPONSE)
    keyed = await secure_api(stage, upstream, {"mode": "api_key", "name": "X-Partner-Key"}, ingress,
                             script=RAISES_IN_REQUEST)
    key, entry = new_key()
    await publish_consumer(stage, consumer_doc(keyed, keys=[entry]), ingress)
    await wait_until(lambda: all(s["api"]["id"] in ingress.snapshot.apis for s in (processors_api, dead_api, response_api)))

    sent: dict[str, dict[str, str]] = {}
    for staged in (processors_api, dead_api, response_api):
        values = _credentials()
        sent[await _call(f"{ingress.url}/{staged['org']}/echo", values)] = values
    keyed_values = _credentials()
    keyed_cid = await _call(f"{ingress.url}/{keyed['org']}/echo", keyed_values, {"X-Partner-Key": key})
    sent[keyed_cid] = keyed_values

    letters = await _letters(settings, set(sent))
    by_stage = {(letter["correlation_id"], letter["stage"], letter["error_code"]) for letter in letters}
    cids = list(sent)
    assert (cids[0], "processors", "transform_failed") in by_stage
    assert (cids[1], "egress", "upstream_unreachable") in by_stage
    assert (cids[2], "egress", "transform_failed") in by_stage
    assert (keyed_cid, "processors", "transform_failed") in by_stage

    topics = settings.topics
    records = {t: await _every_record(settings, t) for t in (topics.requests, topics.calls, topics.replies, topics.dlq, topics.config)}
    ours = [r for r in records[topics.dlq] if any(cid.encode() in r for cid in sent)]
    assert len(ours) >= len(sent)
    for raw in ours:
        _, letter = decode(raw, expected="DeadLetter")
        values = sent[letter["correlation_id"]]
        for name, value in values.items():
            # Neither in the record's bytes (the original included) nor in its text.
            assert not _clear(value, raw), f"{name} in clear in a dead letter of {letter['stage']}"
        assert not _clear(key, raw)
        _, original = decode(letter["original"])
        assert original.get("sealed_credentials") is None
        names = {h["name"].lower() for h in original["headers"]}
        assert not names & {"authorization", "cookie", "proxy-authorization", "x-api-key", "x-partner-key"}
        assert "removed from original: " in letter["details"][-1]
    # The script printed the credential: its traceback and log lines in the letter are scrubbed.
    failed_script = next(letter for letter in letters if letter["correlation_id"] == cids[0])
    assert any("[removed]" in line for line in failed_script["details"]) or "[removed]" in failed_script["error_message"]

    # The sealed key is in clear on no topic at all; Proxy-Authorization never leaves ingress.
    for topic, values in records.items():
        assert not any(_clear(key, r) for r in values), f"the API key in clear on {topic}"
        assert not any(_clear(v["proxy"], r) for r in values for v in sent.values()), f"Proxy-Authorization on {topic}"


async def test_a_key_under_a_plain_name_written_straight_onto_the_requests_topic_is_not_dead_lettered(
    settings: Settings, ingress: IngressInstance, stage: Stage, upstream: str
) -> None:
    keyed = await secure_api(stage, upstream, {"mode": "api_key", "name": "X-Caller-Ref"}, ingress, script=RAISES_IN_REQUEST)
    key, entry = new_key()
    await publish_consumer(stage, consumer_doc(keyed, keys=[entry]), ingress)
    cid = uuid.uuid4().hex
    # An async producer's call: its key in clear (processors authenticate it), nobody waits for a reply.
    await post_raw(settings, {"correlation_id": cid, "org": keyed["org"], "method": "POST", "path": "/echo",
                              "headers": [{"name": "X-Caller-Ref", "value": key}], "body": b"x",
                              "deadline_ms": now_ms() + 10_000})
    letters = await _letters(settings, {cid})
    assert all(key.encode() not in letter["original"] and not any(key in line for line in letter["details"])
               for letter in letters)


async def test_a_message_that_is_no_avro_keeps_no_credential_in_its_dead_letter(settings: Settings, processors: Any) -> None:
    """A producer posting JSON, a form or raw HTTP by mistake: its bytes are dead-lettered (undecodable), and
    the credentials in them are overwritten, as in any dead letter."""
    marker = uuid.uuid4().hex
    planted = [f"Bearer tok-{marker}", f"pw-{marker}", f"k-{marker}", f"sid-{marker}"]
    bodies = [json.dumps({"marker": marker, "headers": [["Authorization", planted[0]]], "password": planted[1]}).encode(),
              f"marker={marker}&api_key={planted[2]}&x=1".encode(),
              f"POST /x HTTP/1.1\r\nX-Marker: {marker}\r\nCookie: {planted[3]}\r\n\r\n".encode()]
    producer = make_producer(settings)
    await producer.start()
    try:
        for body in bodies:
            await producer.send_and_wait(settings.topics.requests, key=marker.encode(), value=body)
    finally:
        await producer.stop()
    found: list[dict[str, Any]] = []
    for _ in range(100):
        found = [v.letter for v in await read_dead_letters(settings, limit=0) if marker.encode() in v.letter["original"]]
        if len(found) == len(bodies):
            break
        await asyncio.sleep(0.1)
    assert len(found) == len(bodies) and {letter["error_code"] for letter in found} == {"undecodable"}
    for letter in found:
        assert not any(_clear(secret, letter["original"]) for secret in planted), letter["original"]
