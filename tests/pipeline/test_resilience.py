"""Retries and shared circuit breakers in egress, on real components.

Two egress workers of their own (topics, consumer group and Redis prefix of this module, so the
session's egress takes none of these calls) share one Redis; calls are written straight onto
their calls topic, on the partition of the worker meant to make them, and the replies are read
back from their replies topic. Upstreams are aiohttp servers on loopback that count what they see.
"""
from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any, cast

import pytest_asyncio
from aiohttp import web
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from control.replay import read_dead_letters
from core.breaker_state import BreakerStore, origin_of
from core.kafka import ensure_topics, make_consumer, make_producer
from core.metrics import BREAKER_STATE, UPSTREAM_RETRIES
from core.redis import make_redis
from core.settings import Settings
from egress.worker import EgressWorker
from junction.broker import free_port
from schemas import decode, encode
from tests.support import Stage, serving, wait_until

FAIL_MAX = 5
RESET_MS = 1500


@dataclass
class Pair:
    settings: Settings
    workers: list[EgressWorker]
    producer: AIOKafkaProducer
    replies: AIOKafkaConsumer
    stage: Stage
    owned: list[int] = field(default_factory=list)  # a calls partition of each worker
    seen: dict[str, dict[str, Any]] = field(default_factory=dict)

    async def call(self, worker: int, url: str, *, method: str = "GET", headers: list[tuple[str, str]] | None = None,
                   timeout_ms: int = 5000, org: str = "resilience", connector_id: str = "") -> dict[str, Any]:
        """One OutboundCall made by ``workers[worker]``; its Reply."""
        cid = f"{org}-{uuid.uuid4().hex}"
        deadline = int(time.time() * 1000) + timeout_ms
        await self.producer.send_and_wait(self.settings.topics.calls, partition=self.owned[worker], key=cid.encode(),
                                          value=encode("OutboundCall", {
            "correlation_id": cid, "call_id": f"{cid}.1", "org": org, "method": method, "url": url,
            "connector_id": connector_id, "connector_version": 1 if connector_id else 0, "config_version": 7,
            "headers": [{"name": k, "value": v} for k, v in headers or []], "body": b"payload",
            "deadline_ms": deadline, "reply_topic": self.settings.topics.replies, "reply_partition": 0}))
        until = time.monotonic() + timeout_ms / 1000 + 30
        while cid not in self.seen:
            assert time.monotonic() < until, f"no reply to {cid}"
            for records in (await self.replies.getmany(timeout_ms=200)).values():
                for record in records:
                    _, reply = decode(record.value, expected="Reply")
                    self.seen[reply["correlation_id"]] = reply
        reply = self.seen.pop(cid)
        reply["deadline_ms"] = deadline
        return reply


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def pair(settings: Settings) -> AsyncIterator[Pair]:
    tag = f"res{uuid.uuid4().hex[:6]}"
    own = settings.with_overrides(
        topic_prefix=f"{settings.topic_prefix}-{tag}", group_prefix=f"{settings.group_prefix}-{tag}",
        redis_prefix=f"{settings.redis_prefix}{tag}:", partitions=2, reply_partitions=1,
        retry_attempts=3, retry_base_ms=20, retry_cap_ms=100, breaker_fail_max=FAIL_MAX, breaker_reset_ms=RESET_MS)
    await ensure_topics(own)
    stage = Stage(own)
    await stage.start()
    workers = [EgressWorker(own), EgressWorker(own)]
    for worker in workers:
        await worker.start()
    for worker in workers:
        await worker.wait_assigned()
    # Both in the group, one partition each: a call is made by the worker owning its partition.
    await wait_until(lambda: all(len(w._consumer.assignment()) == 1 for w in workers), timeout_s=60)
    producer = make_producer(own)
    await producer.start()
    replies = make_consumer(own)
    await replies.start()
    tp = TopicPartition(own.topics.replies, 0)
    replies.assign([tp])
    await replies.seek_to_end(tp)
    owned = [next(iter(w._consumer.assignment())).partition for w in workers]
    yield Pair(own, workers, producer, replies, stage, owned)
    await replies.stop()
    await producer.stop()
    for worker in workers:
        await worker.stop()
    await stage.stop()


class Upstream:
    """Answers from a script of (status, headers) per request, then ``then``; counts and times requests."""

    def __init__(self, script: list[tuple[int, dict[str, str]]] | None = None, then: int = 200) -> None:
        self.script = list(script or [])
        self.then = then
        self.seen: list[tuple[str, float]] = []  # (method, epoch ms)

    def app(self) -> web.Application:
        async def handle(request: web.Request) -> web.Response:
            self.seen.append((request.method, time.time() * 1000))
            status, headers = self.script.pop(0) if self.script else (self.then, {})
            return web.json_response({"n": len(self.seen)}, status=status, headers=headers)

        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", handle)
        return app


def _counter(metric: Any, *labels: str) -> float:
    return metric.labels(*labels)._value.get()


async def _dead_letters(settings: Settings, org: str, count: int) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    for _ in range(100):
        found = [v.letter for v in await read_dead_letters(settings, org=org, limit=0) if v.letter["stage"] == "egress"]
        if len(found) >= count:
            return found
        await asyncio.sleep(0.1)
    return found


async def test_a_get_answered_503_is_retried_and_succeeds(pair: Pair) -> None:
    up = Upstream([(503, {})])
    async with serving(up.app()) as url:
        reply = await pair.call(0, url + "/r")
    assert reply["status"] == 200 and json.loads(reply["body"]) == {"n": 2}
    assert [m for m, _ in up.seen] == ["GET", "GET"]


async def test_a_post_without_an_idempotency_key_is_not_retried_and_one_with_it_is(pair: Pair) -> None:
    plain, keyed = Upstream([(503, {})]), Upstream([(503, {})])
    async with serving(plain.app()) as url:
        reply = await pair.call(0, url + "/p", method="POST")
    assert reply["status"] == 503 and len(plain.seen) == 1
    async with serving(keyed.app()) as url:
        reply = await pair.call(1, url + "/p", method="POST", headers=[("Idempotency-Key", "k-1")])
    assert reply["status"] == 200 and len(keyed.seen) == 2


async def test_a_connect_error_on_get_is_retried_then_dead_lettered_with_its_attempts(pair: Pair) -> None:
    org = f"o{uuid.uuid4().hex[:8]}"
    before = _counter(UPSTREAM_RETRIES, "unreachable")
    reply = await pair.call(0, f"http://127.0.0.1:{free_port()}/gone", org=org)
    assert reply["status"] == 502 and reply["error_code"] == "upstream_unreachable"
    assert _counter(UPSTREAM_RETRIES, "unreachable") == before + 2  # three attempts: two retries
    [letter] = await _dead_letters(pair.settings, org, 1)
    assert letter["error_code"] == "upstream_unreachable" and "attempts: 3" in letter["details"]
    assert letter["config_version"] == 7 and letter["original"]


async def test_a_429_is_retried_after_its_retry_after_unless_that_passes_the_deadline(pair: Pair) -> None:
    up = Upstream([(429, {"Retry-After": "1"})])
    async with serving(up.app()) as url:
        reply = await pair.call(0, url + "/t", timeout_ms=5000)
    assert reply["status"] == 200 and len(up.seen) == 2
    assert up.seen[1][1] - up.seen[0][1] >= 900  # not before the upstream said (a lower bound: never flaky)

    late = Upstream([(429, {"Retry-After": "30"})])
    async with serving(late.app()) as url:
        reply = await pair.call(1, url + "/t", timeout_ms=3000)
    assert reply["status"] == 429 and len(late.seen) == 1


async def test_retries_never_outlive_the_deadline(pair: Pair) -> None:
    """A connector allowing 10 attempts against an upstream that always answers 503 (Retry-After 1 s)
    within a 2.5 s deadline: the deadline, not the policy, ends the retries."""
    org = f"o{uuid.uuid4().hex[:8]}"
    connector = {"id": str(uuid.uuid4()), "org": org, "name": "c", "version": 1, "script": None,
                 "retry": {"attempts": 10, "base_ms": 10, "cap_ms": 20},
                 "target": {"protocol": "rest", "url": "http://127.0.0.1/", "method": "GET"}}
    await pair.stage.publish("connector", connector, org)
    await wait_until(lambda: all(w.snapshot.connector(connector["id"]) is not None for w in pair.workers))
    up = Upstream(then=503)
    up.script = [(503, {"Retry-After": "1"})] * 20
    async with serving(up.app()) as url:
        reply = await pair.call(0, url + "/d", timeout_ms=2500, org=org, connector_id=connector["id"])
    assert reply["status"] in (503, 504)
    assert 1 <= len(up.seen) <= 3  # at most one attempt a second in 2.5 s, far from the 10 allowed
    assert all(at < reply["deadline_ms"] for _, at in up.seen)
    letters = await _dead_letters(pair.settings, org, 1)
    assert letters and f"attempts: {len(up.seen)}" in letters[-1]["details"]


async def test_the_breaker_opens_across_two_instances_refuses_at_once_half_opens_and_closes(pair: Pair) -> None:
    up = Upstream(then=500)  # a failure for the breaker, and not a transient one: never retried
    async with serving(up.app()) as url:
        origin = origin_of(url)
        for i in range(FAIL_MAX):  # failures alternate between the two instances
            reply = await pair.call(i % 2, url + f"/b{i}")
            assert reply["status"] == 500
        assert len(up.seen) == FAIL_MAX
        for worker in (0, 1):  # open for both: refused at once, the upstream sees nothing
            reply = await pair.call(worker, url + "/refused")
            assert reply["status"] == 503 and reply["error_code"] == "circuit_open"
        assert len(up.seen) == FAIL_MAX
        assert BREAKER_STATE.labels("resilience", origin)._value.get() == 2
        # Another organisation's calls to the same origin have a breaker of their own: still closed.
        reply = await pair.call(0, url + "/other-tenant", org="another-org")
        assert reply["status"] == 500 and len(up.seen) == FAIL_MAX + 1
        redis = make_redis(pair.settings)
        store = BreakerStore(redis, pair.settings)
        try:
            assert (await store.read("resilience", origin, int(time.time() * 1000))).state == "open"
            assert (await store.read("another-org", origin, int(time.time() * 1000))).state == "closed"
            # After the reset timeout, half-open: one trial goes through, and its success closes the breaker.
            for _ in range(200):
                if (await store.read("resilience", origin, int(time.time() * 1000))).state == "half_open":
                    break
                await asyncio.sleep(0.05)
            else:
                raise AssertionError("the breaker never half-opened")
            up.then = 200
            reply = await pair.call(1, url + "/trial")
            assert reply["status"] == 200 and len(up.seen) == FAIL_MAX + 2
            assert (await store.read("resilience", origin, int(time.time() * 1000))).state == "closed"
            assert BREAKER_STATE.labels("resilience", origin)._value.get() == 0
            reply = await pair.call(0, url + "/after")
            assert reply["status"] == 200
        finally:
            await redis.aclose()


ORG = "an-org"


async def test_a_half_open_breaker_lets_one_trial_through_and_a_failed_trial_opens_it_again(settings: Settings) -> None:
    redis = make_redis(settings)
    store = BreakerStore(redis, settings.with_overrides(redis_prefix=f"{settings.redis_prefix}half{uuid.uuid4().hex[:6]}:"),
                         fail_max=2, reset_ms=1000)
    origin, t = "http://upstream.test:80", 1_000_000
    try:
        assert await store.acquire(ORG, origin, t, 500) == ("closed", 0, 0)
        assert not await store.failed(ORG, origin, t, trial=False)
        assert await store.acquire(ORG, origin, t, 500) == ("closed", 0, 1)  # one failure counted: a success must reset it
        assert await store.failed(ORG, origin, t + 1, trial=False)  # the second failure opens it
        assert (await store.acquire(ORG, origin, t + 500, 500))[:2] == ("refused", 501)
        assert (await store.acquire(ORG, origin, t + 1001, 500))[:2] == ("trial", 0)
        assert (await store.acquire(ORG, origin, t + 1002, 500))[0] == "refused"  # one trial at a time
        assert await store.failed(ORG, origin, t + 1100, trial=True)  # the trial failed: open again, from now
        assert (await store.acquire(ORG, origin, t + 1500, 500))[:2] == ("refused", 600)
        assert (await store.acquire(ORG, origin, t + 2100, 500))[:2] == ("trial", 0)
        await store.succeeded(ORG, origin, trial=True)
        assert (await store.read(ORG, origin, t + 2200)).state == "closed"
    finally:
        await redis.delete(store.key(ORG, origin))
        await redis.aclose()


async def test_the_breaker_endpoint_shows_the_shared_state_to_those_who_may_read_the_org(control: Any) -> None:
    org = await control.new_org("brk")
    other = await control.new_org("brk")
    port = free_port()
    connector = await control.new_connector(org["slug"], target={"protocol": "rest", "url": f"http://127.0.0.1:{port}/x",
                                                                 "method": "GET"})
    _, viewer = await control.new_user(org["slug"], "org_viewer")
    _, stranger = await control.new_user(other["slug"], "org_admin")
    path = f"/api/v1/orgs/{org['slug']}/connectors/{connector['id']}/breaker"
    r = await control.call("GET", path, viewer)
    assert r.status == 200 and r.body["state"] == "closed" and r.body["failures"] == 0
    assert r.body["origin"] == f"http://127.0.0.1:{port}"
    # Failures recorded the way egress records them open the breaker the endpoint shows.
    redis = make_redis(control.settings)
    store = BreakerStore(redis, control.settings)
    try:
        for _ in range(control.settings.breaker_fail_max):
            await store.failed(org["slug"], f"http://127.0.0.1:{port}", int(time.time() * 1000), trial=False)
        for token in (viewer, control.admin_token):
            r = await control.call("GET", path, token)
            assert r.status == 200 and r.body["state"] == "open" and r.body["retry_after_ms"] > 0, r.body
        r = await control.call("GET", path, stranger)
        assert r.status == 404
        # The other organisation's connector to the same origin shows its own breaker: closed.
        theirs = await control.new_connector(other["slug"], target={"protocol": "rest", "method": "GET",
                                                                    "url": f"http://127.0.0.1:{port}/y"})
        r = await control.call("GET", f"/api/v1/orgs/{other['slug']}/connectors/{theirs['id']}/breaker", stranger)
        assert r.status == 200 and r.body["state"] == "closed" and r.body["failures"] == 0, r.body
        r = await control.call("GET", f"/api/v1/orgs/{org['slug']}/connectors/{uuid.uuid4()}/breaker", viewer)
        assert r.status == 404
    finally:
        await redis.delete(store.key(org["slug"], f"http://127.0.0.1:{port}"))
        await redis.aclose()


async def test_a_connectors_retry_policy_is_validated(control: Any) -> None:
    org = await control.new_org("rty")
    r = await control.call("POST", f"/api/v1/orgs/{org['slug']}/connectors", control.admin_token,
                           {"name": "r", "target": {"protocol": "rest", "url": "http://127.0.0.1:9/x"},
                            "retry": {"attempts": 11, "base_ms": -1, "jitter": True}})
    assert r.status == 422
    assert {f["field"] for f in r.body["fields"]} == {"retry.attempts", "retry.base_ms", "retry.jitter"}
    made = await control.new_connector(org["slug"], retry={"attempts": 4, "base_ms": 100, "cap_ms": 2000})
    assert made["retry"] == {"attempts": 4, "base_ms": 100, "cap_ms": 2000}


async def test_an_instance_trusts_a_healthy_breaker_for_breaker_cache_ms_only(settings: Settings) -> None:
    """The healthy path skips Redis for ``breaker_cache_ms``: a breaker another instance opened is seen once that
    passes (at once with 0), and an instance's own failure is never hidden by what it cached."""
    from core.errors import CircuitOpen, UpstreamUnreachable
    from egress.breaker import Breakers

    s = settings.with_overrides(redis_prefix=f"{settings.redis_prefix}cache{uuid.uuid4().hex[:6]}:", breaker_fail_max=2)
    redis = make_redis(s)
    url = "http://upstream.test:80/x"
    try:
        trusting = Breakers(redis, s.with_overrides(breaker_cache_ms=60_000))
        asking = Breakers(redis, s.with_overrides(breaker_cache_ms=0))
        opener = Breakers(redis, s.with_overrides(breaker_cache_ms=60_000))
        assert (await trusting.acquire(ORG, url, 1000)).clean  # read healthy: trusted from now on
        for _ in range(2):  # another instance sees two failures: open for everyone who asks
            ticket = await opener.acquire(ORG, url, 1000)
            assert opener.is_failure(UpstreamUnreachable("down"))
            await opener.failed(ticket)
        assert (await trusting.acquire(ORG, url, 1000)).clean  # still within its cache: it does not know yet
        try:
            await asking.acquire(ORG, url, 1000)
            raise AssertionError("an instance that asks Redis must see the open breaker")
        except CircuitOpen:
            pass
        try:
            await opener.acquire(ORG, url, 1000)  # its own failures dropped its cached health
            raise AssertionError("the instance that opened the breaker must refuse")
        except CircuitOpen:
            pass
    finally:
        await redis.aclose()


async def test_with_redis_away_egress_still_calls_and_answers_and_counts_the_breaker_misses(settings: Settings) -> None:
    """Breakers and de-duplication fail open: an egress whose Redis refuses every connection still makes its
    calls and produces their replies (a 5xx too, which the breaker could not count), instead of failing each
    call with an internal error; the misses are counted."""
    from core.metrics import BREAKER_STORE_ERRORS

    tag = f"nored{uuid.uuid4().hex[:6]}"
    own = settings.with_overrides(
        topic_prefix=f"{settings.topic_prefix}-{tag}", group_prefix=f"{settings.group_prefix}-{tag}",
        redis_url=f"redis://127.0.0.1:{free_port()}/0", partitions=1, reply_partitions=1, retry_attempts=1,
        breaker_cache_ms=0)
    await ensure_topics(own)
    worker = EgressWorker(own)
    producer, replies = make_producer(own), make_consumer(own)
    await worker.start()
    try:
        await worker.wait_assigned()
        await producer.start()
        await replies.start()
        tp = TopicPartition(own.topics.replies, 0)
        replies.assign([tp])
        await replies.seek_to_end(tp)
        pair = Pair(own, [worker], producer, replies, cast(Stage, None), owned=[0])  # calls need no stage
        before = BREAKER_STORE_ERRORS._value.get()
        up = Upstream([(503, {})])
        async with serving(up.app()) as url:
            failed = await pair.call(0, url + "/r")
            ok = await pair.call(0, url + "/r")
        assert (failed["status"], ok["status"]) == (503, 200), (failed, ok)
        assert len(up.seen) == 2
        # Both calls asked the breaker, and the 503 was reported to it: none of those reached Redis.
        assert BREAKER_STORE_ERRORS._value.get() >= before + 3
    finally:
        await replies.stop()
        await producer.stop()
        await worker.stop()
