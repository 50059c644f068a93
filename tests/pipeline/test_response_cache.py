"""An API's response cache, through the whole pipeline (ingress → broker → processors → egress → a counting
upstream): a hit is answered by ingress with no call upstream; entries are kept apart by the headers the
API varies on and by consumer, and left behind by a new version of the API or its connector; the
upstream's Cache-Control is honoured; only GET and HEAD are cached, never an idempotent or async call."""
from __future__ import annotations

import gzip
import json
import uuid
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import pytest_asyncio
import redis.asyncio as aioredis
from aiohttp import web
from multidict import CIMultiDict

from core.metrics import CACHE_HITS, CACHE_MISSES
from core.settings import Settings
from tests.callerauth_support import consumer_doc, new_key, publish_consumer
from tests.support import IngressInstance, Stage, serving, wait_until

TTL_S = 300


@dataclass
class Counting:
    url: str
    calls: Counter[str] = field(default_factory=Counter)
    accept_encoding: dict[str, str | None] = field(default_factory=dict)


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def counting() -> AsyncIterator[Counting]:
    """Counts calls per ``?t=``; answers ``?status=``, with ``?cc=`` as Cache-Control, ``?vary=`` as Vary,
    ``?cookie=1`` setting a cookie, ``?size=N`` a body of N bytes."""
    found = Counting("")

    async def handle(request: web.Request) -> web.Response:
        tag = request.query.get("t", "")
        found.calls[tag] += 1
        found.accept_encoding[tag] = request.headers.get("Accept-Encoding")
        headers = {}
        for param, header in (("cc", "Cache-Control"), ("vary", "Vary"), ("age", "Age")):
            if param in request.query:
                headers[header] = request.query[param]
        if request.query.get("cookie"):
            headers["Set-Cookie"] = "session=abc"
        if request.query.get("pre") == "gzip":
            headers["Content-Encoding"] = "gzip"
        answer = {"t": tag, "n": found.calls[tag], "lang": request.headers.get("Accept-Language"),
                  "pad": "x" * int(request.query.get("size", "0"))}
        body = json.dumps(answer).encode()
        if request.method == "HEAD":
            body = b""
        return web.Response(body=gzip.compress(body) if "Content-Encoding" in headers else body, headers=headers,
                            status=int(request.query.get("status", "200")), content_type="application/json")

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handle)
    async with serving(app) as url:
        found.url = url
        yield found


@pytest_asyncio.fixture(loop_scope="session")
async def redis(settings: Settings) -> AsyncIterator[aioredis.Redis]:
    client = aioredis.from_url(settings.redis_dsn)
    yield client
    await client.aclose()


async def _cached_api(stage: Stage, ingress: IngressInstance, upstream: Counting, *, cache: dict[str, Any] | None = None,
                      auth: dict[str, Any] | None = None) -> dict[str, Any]:
    staged = await stage.api(upstream.url + "/up", path="/up")
    api = {**staged["api"], "org_id": staged["org_id"], "cache": cache or {"ttl_s": TTL_S}, "version": 2}
    if auth:
        api["auth"] = auth
    await stage.publish("api", api, staged["org"])
    await wait_until(lambda: (ingress.snapshot.version_of("api", api["id"]) or 0) >= 2)
    return {**staged, "api": api}


async def _send(ingress: IngressInstance, staged: dict[str, Any], *, method: str = "GET", query: dict[str, str] | None = None,
                headers: dict[str, str] | None = None) -> tuple[int, CIMultiDict[str], Any]:
    async with aiohttp.ClientSession() as s, s.request(
        method, f"{ingress.url}/{staged['org']}/up", params=query or {}, headers=headers or {},
        timeout=aiohttp.ClientTimeout(total=30),
    ) as r:
        raw = await r.read()
        return r.status, CIMultiDict(r.headers), json.loads(raw) if raw else None


async def test_a_miss_then_a_hit_with_no_second_upstream_call(ingress: IngressInstance, stage: Stage, counting: Counting) -> None:
    staged = await _cached_api(stage, ingress, counting)
    org, tag, api_id = staged["org"], uuid.uuid4().hex, str(staged["api"]["id"])
    hits, misses = CACHE_HITS.labels(org, api_id)._value.get(), CACHE_MISSES.labels(org, api_id)._value.get()
    status, first_headers, first = await _send(ingress, staged, query={"t": tag})
    assert status == 200 and first_headers["X-Cache"] == "MISS" and first["n"] == 1
    status, headers, again = await _send(ingress, staged, query={"t": tag})
    assert status == 200 and headers["X-Cache"] == "HIT" and again == first
    assert int(headers["Age"]) >= 0 and headers["X-Correlation-Id"] == first_headers["X-Correlation-Id"]
    assert counting.calls[tag] == 1  # no call went out: nothing produced, nothing upstream
    assert counting.accept_encoding[tag] == "identity"  # one entry serves every caller; ingress encodes for each
    assert (CACHE_HITS.labels(org, api_id)._value.get() - hits, CACHE_MISSES.labels(org, api_id)._value.get() - misses) == (1, 1)
    # Another query (or the same parameters in another order) is another entry.
    status, headers, _ = await _send(ingress, staged, query={"t": tag, "x": "1"})
    assert headers["X-Cache"] == "MISS" and counting.calls[tag] == 2
    # HEAD is cached on its own.
    for expected in ("MISS", "HIT"):
        status, headers, _ = await _send(ingress, staged, method="HEAD", query={"t": tag})
        assert status == 200 and headers["X-Cache"] == expected
    assert counting.calls[tag] == 3


async def test_a_hit_is_compressed_for_the_caller_that_accepts_it(ingress: IngressInstance, stage: Stage,
                                                                 counting: Counting) -> None:
    staged = await _cached_api(stage, ingress, counting)
    query = {"t": uuid.uuid4().hex, "size": "5000"}
    _, headers, first = await _send(ingress, staged, query=query, headers={"Accept-Encoding": "identity"})
    assert headers["X-Cache"] == "MISS" and "Content-Encoding" not in headers
    async with aiohttp.ClientSession(auto_decompress=False) as s, s.get(
        f"{ingress.url}/{staged['org']}/up", params=query, headers={"Accept-Encoding": "gzip"},
    ) as r:
        assert r.headers["X-Cache"] == "HIT" and r.headers["Content-Encoding"] == "gzip"
        assert json.loads(gzip.decompress(await r.read())) == first


async def test_entries_are_kept_apart_by_the_headers_the_api_varies_on(ingress: IngressInstance, stage: Stage,
                                                                       counting: Counting) -> None:
    staged = await _cached_api(stage, ingress, counting, cache={"ttl_s": TTL_S, "vary": ["Accept-Language"]})
    tag = uuid.uuid4().hex
    answers = [await _send(ingress, staged, query={"t": tag}, headers={"Accept-Language": lang}) for lang in ("en", "de", "en")]
    assert [h["X-Cache"] for _, h, _ in answers] == ["MISS", "MISS", "HIT"]
    assert [b["lang"] for _, _, b in answers] == ["en", "de", "en"] and counting.calls[tag] == 2
    assert "accept-language" in answers[2][1]["Vary"].lower()
    # Headers the API does not vary on are not part of the key.
    _, headers, body = await _send(ingress, staged, query={"t": tag}, headers={"Accept-Language": "de", "X-Other": "1"})
    assert headers["X-Cache"] == "HIT" and body["lang"] == "de"
    # The upstream varies on a header the key does not hold: not stored.
    tag = uuid.uuid4().hex
    for _ in range(2):
        _, headers, _ = await _send(ingress, staged, query={"t": tag, "vary": "X-Tenant"})
        assert headers["X-Cache"] == "MISS"
    assert counting.calls[tag] == 2


async def test_consumers_do_not_share_entries(ingress: IngressInstance, stage: Stage, counting: Counting) -> None:
    staged = await _cached_api(stage, ingress, counting, auth={"mode": "api_key"})
    (key_a, entry_a), (key_b, entry_b) = new_key(), new_key()
    await publish_consumer(stage, consumer_doc(staged, name="a", keys=[entry_a]), ingress)
    await publish_consumer(stage, consumer_doc(staged, name="b", keys=[entry_b]), ingress)
    tag = uuid.uuid4().hex
    seen = [(await _send(ingress, staged, query={"t": tag}, headers={"X-API-Key": key}))[1]["X-Cache"]
            for key in (key_a, key_b, key_a, key_b)]
    assert seen == ["MISS", "MISS", "HIT", "HIT"] and counting.calls[tag] == 2
    status, headers, _ = await _send(ingress, staged, query={"t": tag})
    assert status == 401 and "X-Cache" not in headers  # a hit is for admitted callers only


async def test_a_credential_sent_upstream_is_not_cached_unless_varied_on(ingress: IngressInstance, stage: Stage,
                                                                         counting: Counting) -> None:
    staged = await _cached_api(stage, ingress, counting)
    # Any credential by its name: the upstream may check it and answer that caller alone (attack: a keyed
    # caller's answer served to one without the key).
    for credential in ({"Authorization": "Bearer mine"}, {"Cookie": "sid=mine"}, {"X-API-Key": "victimkey"},
                       {"X-Auth-Token": "t0k3n"}, {"X-Session-Id": "s1"}):
        tag = uuid.uuid4().hex
        for _ in range(2):
            _, headers, _ = await _send(ingress, staged, query={"t": tag}, headers=credential)
            assert "X-Cache" not in headers, credential
        assert counting.calls[tag] == 2
        _, headers, _ = await _send(ingress, staged, query={"t": tag})
        assert headers["X-Cache"] == "MISS", credential  # nothing of the keyed caller's was kept
    varied = await _cached_api(stage, ingress, counting, cache={"ttl_s": TTL_S, "vary": ["Authorization"]})
    seen = [(await _send(ingress, varied, query={"t": tag}, headers={"Authorization": who}))[1]["X-Cache"]
            for who in ("Bearer a", "Bearer b", "Bearer a")]
    assert seen == ["MISS", "MISS", "HIT"]


async def test_a_new_version_of_the_api_or_its_connector_invalidates(ingress: IngressInstance, stage: Stage,
                                                                    counting: Counting) -> None:
    staged = await _cached_api(stage, ingress, counting)
    tag = uuid.uuid4().hex
    assert (await _send(ingress, staged, query={"t": tag}))[1]["X-Cache"] == "MISS"
    assert (await _send(ingress, staged, query={"t": tag}))[1]["X-Cache"] == "HIT"
    api = {**staged["api"], "version": 3, "timeout_ms": 6000}
    await stage.publish("api", api, staged["org"])
    await wait_until(lambda: (ingress.snapshot.version_of("api", api["id"]) or 0) >= 3)
    assert [(await _send(ingress, staged, query={"t": tag}))[1]["X-Cache"] for _ in range(2)] == ["MISS", "HIT"]
    connector = {**staged["connector"], "org_id": staged["org_id"], "version": 2}
    await stage.publish("connector", connector, staged["org"])
    await wait_until(lambda: (ingress.snapshot.version_of("connector", connector["id"]) or 0) >= 2)
    assert [(await _send(ingress, staged, query={"t": tag}))[1]["X-Cache"] for _ in range(2)] == ["MISS", "HIT"]
    assert counting.calls[tag] == 3


async def test_the_upstreams_cache_control_is_honoured(ingress: IngressInstance, stage: Stage, counting: Counting,
                                                       settings: Settings, redis: aioredis.Redis) -> None:
    staged = await _cached_api(stage, ingress, counting)
    for cc in ("no-store", "private", "no-cache", "max-age=0", "public, max-age=nonsense"):
        tag = uuid.uuid4().hex
        for _ in range(2):
            _, headers, _ = await _send(ingress, staged, query={"t": tag, "cc": cc})
            assert headers["X-Cache"] == "MISS", cc
        assert counting.calls[tag] == 2, cc
    # max-age (less the Age it already has) shortens the API's TTL; s-maxage, for shared caches, wins over it.
    for query, longest in ({"cc": "max-age=40"}, 40), ({"cc": "max-age=40", "age": "30"}, 10), \
            ({"cc": "max-age=40, s-maxage=20"}, 20), ({"cc": "max-age=100000"}, TTL_S):
        tag = uuid.uuid4().hex
        assert (await _send(ingress, staged, query={"t": tag, **query}))[1]["X-Cache"] == "MISS"
        assert (await _send(ingress, staged, query={"t": tag, **query}))[1]["X-Cache"] == "HIT"
        keys = [k async for k in redis.scan_iter(match=settings.redis_key("cache", staged["org"], staged["api"]["id"], "*"))]
        ttls = [await redis.ttl(k) for k in keys]
        assert any(longest - 5 <= t <= longest for t in ttls), (query, ttls)
        await redis.delete(*keys)


async def test_what_is_stored_and_what_is_not(ingress: IngressInstance, stage: Stage, counting: Counting,
                                              settings: Settings) -> None:
    staged = await _cached_api(stage, ingress, counting)
    # One 5xx only: more in a row would open the upstream's breaker for the tests after this one.
    expected = {200: "HIT", 203: "HIT", 204: "HIT", 404: "HIT", 410: "HIT", 201: "MISS", 302: "MISS", 400: "MISS",
                500: "MISS"}
    for status, second in expected.items():
        tag = uuid.uuid4().hex
        await _send(ingress, staged, query={"t": tag, "status": str(status)})
        got, headers, _ = await _send(ingress, staged, query={"t": tag, "status": str(status)})
        assert got == status and headers["X-Cache"] == second, status
    # A cookie, an answer the upstream encoded though asked not to, and one over the size cap are not stored.
    for query in ({"cookie": "1"}, {"pre": "gzip"}, {"size": str(settings.cache_max_entry_bytes + 1)}):
        tag = uuid.uuid4().hex
        for _ in range(2):
            _, headers, _ = await _send(ingress, staged, query={"t": tag, **query})
            assert headers["X-Cache"] == "MISS", query
        assert counting.calls[tag] == 2


async def test_a_callers_no_cache_refreshes_and_no_store_stores_nothing(ingress: IngressInstance, stage: Stage,
                                                                       counting: Counting) -> None:
    staged = await _cached_api(stage, ingress, counting)
    tag = uuid.uuid4().hex
    await _send(ingress, staged, query={"t": tag})
    _, headers, body = await _send(ingress, staged, query={"t": tag}, headers={"Cache-Control": "no-cache"})
    assert headers["X-Cache"] == "MISS" and body["n"] == 2
    _, headers, body = await _send(ingress, staged, query={"t": tag})
    assert headers["X-Cache"] == "HIT" and body["n"] == 2  # the refreshed answer
    tag = uuid.uuid4().hex
    await _send(ingress, staged, query={"t": tag}, headers={"Cache-Control": "no-store"})
    _, headers, _ = await _send(ingress, staged, query={"t": tag})
    assert headers["X-Cache"] == "MISS" and counting.calls[tag] == 2


async def test_post_idempotent_and_async_calls_are_not_cached(ingress: IngressInstance, stage: Stage,
                                                              counting: Counting) -> None:
    staged = await _cached_api(stage, ingress, counting)
    tag = uuid.uuid4().hex
    for _ in range(2):
        _, headers, _ = await _send(ingress, staged, method="POST", query={"t": tag})
        assert "X-Cache" not in headers
    assert counting.calls[tag] == 2
    await _send(ingress, staged, query={"t": tag})  # stored now
    key = uuid.uuid4().hex
    _, headers, body = await _send(ingress, staged, query={"t": tag}, headers={"Idempotency-Key": key})
    assert "X-Cache" not in headers and body["n"] == 4  # not answered from the cache
    _, headers, again = await _send(ingress, staged, query={"t": tag}, headers={"Idempotency-Key": key})
    assert headers["Idempotent-Replayed"] == "true" and again == body and "X-Cache" not in headers
    status, headers, _ = await _send(ingress, staged, query={"t": tag}, headers={"Prefer": "respond-async"})
    assert status == 202 and "X-Cache" not in headers
    await wait_until(lambda: counting.calls[tag] == 5)
    _, headers, body = await _send(ingress, staged, query={"t": tag})
    assert headers["X-Cache"] == "HIT" and body["n"] == 3
