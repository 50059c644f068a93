"""Attacks on caller authentication, each with its expected safe outcome (issue 9, item 7).

Every case runs against the real pipeline (processors in a child process unless this session's
already serve, egress and ingress here) and a counting upstream: a refused call answers its status
and code, and never reaches the upstream.
"""
from __future__ import annotations

import hashlib
import json
import os
import time
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

import aiohttp
import jwt as pyjwt
import pytest
import pytest_asyncio
import redis.asyncio as aioredis
from cryptography.hazmat.primitives.asymmetric import rsa
from multidict import CIMultiDict

from core.kafka import make_consumer, topic_partitions
from core.sealing import Sealer, seal_as_producer, sealer_for
from core.security import list_security_events
from core.settings import Settings
from schemas import decode
from tests.callerauth_support import (  # noqa: F401 - clear_ingress_blocks is a fixture
    Issuer, clear_ingress_blocks, consumer_doc, issuer, new_key, publish_consumer, secure_api,
)
from tests.dead_letter_support import inbound_call, wait_for_dead_letter
from tests.support import IngressInstance, Stage, header_recorder, post_raw, running_pipeline, wait_until

pytestmark = pytest.mark.usefixtures("clear_ingress_blocks")


@dataclass
class World:
    settings: Settings
    stage: Stage
    ingress: IngressInstance
    upstream: str
    seen: list[str]
    issuer: Issuer


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def world(settings: Settings) -> AsyncIterator[World]:
    async with running_pipeline(settings) as (stage, ingress), header_recorder("X-Consumer-Id") as (url, seen), \
            issuer() as iss:
        yield World(settings, stage, ingress, url, seen, iss)


async def _get(w: World, org: str, **kw: Any) -> tuple[int, CIMultiDict[str], dict[str, Any]]:
    async with aiohttp.ClientSession() as s, s.get(f"{w.ingress.url}/{org}/echo", **kw) as r:
        return r.status, CIMultiDict(r.headers), await r.json(content_type=None)


# -- JWTs ------------------------------------------------------------------------------------------

def _claims(sub: str, **over: Any) -> dict[str, Any]:
    now = int(time.time())
    return {"sub": sub, "iss": "https://idp.test", "aud": "orders", "iat": now, "exp": now + 300, **over}


def _forged(w: World, sub: str) -> str:
    other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return pyjwt.encode(_claims(sub), other, algorithm="RS256", headers={"kid": w.issuer.kid})


def _none_alg(w: World, sub: str) -> str:
    return pyjwt.encode(_claims(sub), None, algorithm="none", headers={"kid": w.issuer.kid})


def _hs256_with_public_key(w: World, sub: str) -> str:
    # PyJWT refuses to sign HMAC with a PEM key; an attacker builds the token by hand.
    import base64
    import hmac
    import json

    def b64(data: bytes) -> str:
        return base64.urlsafe_b64encode(data).rstrip(b"=").decode()

    head = b64(json.dumps({"alg": "HS256", "typ": "JWT", "kid": w.issuer.kid}).encode())
    body = b64(json.dumps(_claims(sub)).encode())
    sig = hmac.new(w.issuer.public_pem, f"{head}.{body}".encode(), hashlib.sha256).digest()
    return f"{head}.{body}.{b64(sig)}"


JWT_CASES: list[tuple[str, Callable[[World, str], str], int, str]] = [
    ("forged signature", _forged, 401, "invalid_credential"),
    ("expired", lambda w, sub: w.issuer.token(_claims(sub, iat=int(time.time()) - 600, exp=int(time.time()) - 300)), 401, "credential_expired"),
    ("alg none", _none_alg, 401, "invalid_credential"),
    ("wrong audience", lambda w, sub: w.issuer.token(_claims(sub, aud="billing")), 401, "invalid_credential"),
    ("wrong issuer", lambda w, sub: w.issuer.token(_claims(sub, iss="https://evil.test")), 401, "invalid_credential"),
    ("HS256 signed with the public key", _hs256_with_public_key, 401, "invalid_credential"),
    ("not yet valid", lambda w, sub: w.issuer.token(_claims(sub, nbf=int(time.time()) + 600)), 401, "invalid_credential"),
    ("unknown kid", lambda w, sub: w.issuer.token(_claims(sub), kid="nope"), 401, "invalid_credential"),
    ("no consumer for the subject", lambda w, sub: w.issuer.token(_claims("stranger")), 401, "invalid_credential"),
    ("valid (control)", lambda w, sub: w.issuer.token(_claims(sub)), 200, ""),
]


@pytest.mark.parametrize("algorithms", [["RS256"], ["RS256", "HS256"]], ids=["rs256", "rs256+hs256-configured"])
async def test_jwt_attacks(world: World, algorithms: list[str]) -> None:
    staged = await world.stage.api(world.upstream + "/echo")
    consumer = consumer_doc(staged)
    await publish_consumer(world.stage, consumer, world.ingress)
    await secure_api(world.stage, world.upstream, {"mode": "jwt", "jwks_url": world.issuer.url, "algorithms": algorithms,
                                                   "issuer": "https://idp.test", "audience": "orders"},
                     world.ingress, staged=staged)
    for name, make, status, code in JWT_CASES:
        before = len(world.seen)
        got, headers, body = await _get(world, staged["org"], headers={"Authorization": f"Bearer {make(world, consumer['id'])}"})
        assert got == status, (name, body)
        if status == 401:
            assert body["code"] == code, (name, body)
            assert headers["WWW-Authenticate"].startswith("Bearer ") and 'error="invalid_token"' in headers["WWW-Authenticate"]
            assert len(world.seen) == before, f"{name}: the upstream was called"
        else:
            assert world.seen[-1] == consumer["id"]


# -- API keys --------------------------------------------------------------------------------------

async def test_api_key_attacks(world: World) -> None:
    staged = await world.stage.api(world.upstream + "/echo")
    good, good_entry = new_key()
    revoked, revoked_entry = new_key()
    expired, expired_entry = new_key(expires_at_ms=int(time.time() * 1000) - 1000)
    consumer = consumer_doc(staged, keys=[good_entry, revoked_entry, expired_entry])
    await publish_consumer(world.stage, consumer, world.ingress)
    await publish_consumer(world.stage, {**consumer, "keys": [good_entry, expired_entry], "version": 2}, world.ingress)
    await secure_api(world.stage, world.upstream, {"mode": "api_key"}, world.ingress, staged=staged)
    other = await world.stage.api(world.upstream + "/echo")
    foreign, foreign_entry = new_key()
    await publish_consumer(world.stage, consumer_doc(other, keys=[foreign_entry]), world.ingress)

    cases = [
        ("revoked key", {"X-API-Key": revoked}, 401, "invalid_credential"),
        ("expired key", {"X-API-Key": expired}, 401, "credential_expired"),
        ("a key of another organisation", {"X-API-Key": foreign}, 401, "invalid_credential"),
        ("the key twice", [("X-API-Key", good), ("X-API-Key", good)], 401, "invalid_credential"),
        ("the key in the wrong place", {"Authorization": f"Bearer {good}"}, 401, "credential_missing"),
        ("valid (control)", {"X-API-Key": good}, 200, ""),
    ]
    for name, headers, status, code in cases:
        before = len(world.seen)
        got, answer_headers, body = await _get(world, staged["org"], headers=headers)
        assert got == status, (name, body)
        if status != 200:
            assert body["code"] == code, (name, body)
            assert answer_headers["WWW-Authenticate"].startswith(f'ApiKey realm="{staged["org"]}"')
            assert len(world.seen) == before, f"{name}: the upstream was called"


async def test_brute_force_on_an_api_key_blocks_the_source_and_records_events(world: World) -> None:
    staged = await world.stage.api(world.upstream + "/echo")
    good, entry = new_key()
    await publish_consumer(world.stage, consumer_doc(staged, keys=[entry]), world.ingress)
    await secure_api(world.stage, world.upstream, {"mode": "api_key"}, world.ingress, staged=staged)
    threshold = world.settings.security_max_failures
    for i in range(threshold):
        status, _, body = await _get(world, staged["org"], headers={"X-API-Key": new_key()[0]})
        assert status == 401, (i, body)
    before = len(world.seen)
    # Blocked: even the right key is refused now, without being checked, until the cool-down ends.
    status, headers, body = await _get(world, staged["org"], headers={"X-API-Key": good})
    assert status == 429 and body["code"] == "source_blocked"
    assert 0 < int(headers["Retry-After"]) <= world.settings.security_block_s
    assert len(world.seen) == before
    redis = aioredis.from_url(world.settings.redis_dsn)
    try:
        failures, _ = await list_security_events(redis, world.settings, org=staged["org"], kind="auth_failure", limit=100)
        blocks, _ = await list_security_events(redis, world.settings, org=staged["org"], kind="source_blocked", limit=10)
    finally:
        await redis.aclose()
    assert len(failures) == threshold and all(e.source == "127.0.0.1" for e in failures)
    assert all(e.subject and e.subject.startswith("jk_") and len(e.subject) <= 10 for e in failures), "subjects are prefixes"
    assert blocks and blocks[0].source == "127.0.0.1"


# -- processors are the authority ------------------------------------------------------------------

async def _inbound_of(settings: Settings, correlation_id: str) -> dict[str, Any]:
    """The InboundCall ingress wrote for ``correlation_id``, read back from the requests topic."""
    consumer = make_consumer(settings)
    await consumer.start()
    try:
        tps = await topic_partitions(settings, settings.topics.requests)
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        ends = await consumer.end_offsets(tps)
        pending = {tp for tp in tps if ends[tp] > 0}
        while pending:
            for records in (await consumer.getmany(*pending, timeout_ms=1000)).values():
                for rec in records:
                    if rec.key == correlation_id.encode():
                        return decode(rec.value, expected="InboundCall")[1]
            pending = {tp for tp in pending if await consumer.position(tp) < ends[tp]}
    finally:
        await consumer.stop()
    raise AssertionError(f"no InboundCall {correlation_id}")


@pytest.mark.parametrize("sealed", ["copied from another call", "absent", "tampered"])
async def test_processors_refuse_a_sealed_credential_that_is_not_this_calls(world: World, sealed: str) -> None:
    staged = await world.stage.api(world.upstream + "/echo")
    key, entry = new_key()
    await publish_consumer(world.stage, consumer_doc(staged, keys=[entry]), world.ingress)
    await secure_api(world.stage, world.upstream, {"mode": "api_key"}, world.ingress, staged=staged)
    status, headers, _ = await _get(world, staged["org"], headers={"X-API-Key": key})
    assert status == 200
    original = await _inbound_of(world.settings, headers["X-Correlation-Id"])
    assert original["sealed_credentials"] and key.encode() not in original["sealed_credentials"]
    blob = {"copied from another call": original["sealed_credentials"], "absent": None,
            "tampered": original["sealed_credentials"][:-1] + bytes([original["sealed_credentials"][-1] ^ 1])}[sealed]
    # An async producer's message (no reply route), carrying the blob: only a dead letter records it.
    forged = {**original, "correlation_id": uuid.uuid4().hex, "sealed_credentials": blob, "reply_topic": None,
              "reply_partition": -1, "deadline_ms": int(time.time() * 1000) + 20_000}
    before = len(world.seen)
    await post_raw(world.settings, forged)
    letter = await wait_for_dead_letter(world.settings, forged["correlation_id"])
    assert letter["error_code"] == ("credential_missing" if sealed == "absent" else "invalid_credential")
    assert key.encode() not in letter["original"]
    assert len(world.seen) == before, "the upstream was called"


# -- async producers seal their callers' credentials -------------------------------------------------

def _producer_sealed(public_key: bytes, correlation_id: str, doc: Any) -> bytes:
    """As docs/async-producers.md has a producer do it: HPKE to the installation's producer key."""
    return seal_as_producer(public_key, json.dumps(doc).encode(), f"caller-credential:{correlation_id}")


async def _producer_call(world: World, staged: dict[str, Any], sealed: Callable[[str], bytes | None],
                         headers: list[dict[str, str]] | None = None) -> dict[str, Any]:
    """An async producer's call of ``staged``'s API (no reply route), its credential sealed by ``sealed``."""
    cid = uuid.uuid4().hex
    call = inbound_call(staged["org"], correlation_id=cid, method="GET", path="/echo", headers=headers or [],
                        sealed_credentials=sealed(cid), deadline_ms=int(time.time() * 1000) + 20_000)
    await post_raw(world.settings, call)
    return call


async def test_a_producer_calls_an_api_key_api_with_a_credential_sealed_to_the_installation(world: World) -> None:
    """The way in for async producers: the key, sealed with the public producer key for this very call,
    is checked by processors as ingress would check the header; the upstream learns the consumer."""
    staged = await world.stage.api(world.upstream + "/echo")
    key, entry = new_key()
    doc = consumer_doc(staged, keys=[entry])
    await publish_consumer(world.stage, doc, world.ingress)
    await secure_api(world.stage, world.upstream, {"mode": "api_key"}, world.ingress, staged=staged)
    public = sealer_for(world.settings).producer_public_key()
    before = len(world.seen)
    call = await _producer_call(world, staged, lambda cid: _producer_sealed(
        public, cid, {"headers": [{"name": "X-API-Key", "value": key}]}))
    await wait_until(lambda: len(world.seen) > before, timeout_s=20)
    assert world.seen[before:] == [doc["id"]]
    assert key.encode() not in call["sealed_credentials"]


@pytest.mark.parametrize("case", ["wrong key", "sealed for another call", "another installation's key", "tampered",
                                  "not JSON", "headers not a list", "too many headers", "key in the clear only"])
async def test_processors_refuse_a_producer_credential_that_does_not_hold(world: World, case: str) -> None:
    staged = await world.stage.api(world.upstream + "/echo")
    key, entry = new_key()
    await publish_consumer(world.stage, consumer_doc(staged, keys=[entry]), world.ingress)
    await secure_api(world.stage, world.upstream, {"mode": "api_key"}, world.ingress, staged=staged)
    public = sealer_for(world.settings).producer_public_key()
    other = Sealer(os.urandom(32)).producer_public_key()
    good = {"headers": [{"name": "X-API-Key", "value": key}]}
    sealers: dict[str, Callable[[str], bytes | None]] = {
        "wrong key": lambda cid: _producer_sealed(public, cid, {"headers": [{"name": "X-API-Key", "value": key + "x"}]}),
        "sealed for another call": lambda cid: _producer_sealed(public, uuid.uuid4().hex, good),
        "another installation's key": lambda cid: _producer_sealed(other, cid, good),
        "tampered": lambda cid: (lambda b: b[:-1] + bytes([b[-1] ^ 1]))(_producer_sealed(public, cid, good)),
        "not JSON": lambda cid: seal_as_producer(public, b"X-API-Key: " + key.encode(), f"caller-credential:{cid}"),
        "headers not a list": lambda cid: _producer_sealed(public, cid, {"headers": {"X-API-Key": key}}),
        "too many headers": lambda cid: _producer_sealed(public, cid, {"headers": [
            {"name": "X-API-Key", "value": key}] + [{"name": f"X-{n}", "value": "v"} for n in range(40)]}),
        "key in the clear only": lambda cid: None,
    }
    clear = [{"name": "X-API-Key", "value": key}] if case == "key in the clear only" else None
    before = len(world.seen)
    call = await _producer_call(world, staged, sealers[case], headers=clear)
    letter = await wait_for_dead_letter(world.settings, call["correlation_id"])
    assert letter["error_code"] == ("credential_missing" if case == "key in the clear only" else "invalid_credential")
    assert letter["stage"] == "processors"
    assert key.encode() not in letter["original"], "the key reached the dead letter in the clear"
    assert len(world.seen) == before, "the upstream was called"
