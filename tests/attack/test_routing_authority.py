"""Processors are the authority for every message, whatever its source.

A raw ``InboundCall`` put straight onto the requests topic (an async producer, a replay, anyone who can
write to it) gets the same checks as an HTTP call: the API exists, belongs to the message's organisation,
is enabled and accepts the method; the reply routing names a results topic and one of its partitions; a
path parameter cannot take the call outside the target's path prefix. A message that fails one is a dead
letter with its reason, no ``OutboundCall`` is produced, the upstream is never called, and a reply that
cannot be routed is written nowhere.

The pipeline runs for this module only (processors in a child process, egress and ingress in this one); a
processors process already serving this session's health port (the pipeline tests') is used instead.
"""
from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import aiohttp
import pytest
import pytest_asyncio
import yarl
from aiohttp import web
from aiokafka.admin import NewTopic

from control.replay import read_dead_letters
from core.consume import read_topic
from core.kafka import make_admin, topic_partitions
from core.messages import is_results_topic, reply_route_error, reply_target
from core.settings import Settings, Topics
from core.snapshot import ConfigSnapshot
from processors.router import PartitionCounts, Router
from schemas import CodecError, decode, encode
from tests.support import IngressInstance, Stage, post_raw, running_pipeline, serving, wait_until

GRACE_S = 1.0  # after the dead letter: time for a wrongly forwarded call to reach the upstream anyway


# -- the pipeline, for this module --------------------------------------------

@dataclass
class Pipeline:
    settings: Settings
    stage: Stage
    ingress: IngressInstance


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def pipeline(settings: Settings) -> AsyncIterator[Pipeline]:
    async with running_pipeline(settings) as (stage, ingress):
        yield Pipeline(settings, stage, ingress)


@dataclass
class Upstream:
    url: str
    seen: list[tuple[str, str]]  # (method, raw path) of every request that reached it


@pytest_asyncio.fixture(loop_scope="session")
async def upstream() -> AsyncIterator[Upstream]:
    """An upstream that counts every request it receives, whatever its path."""
    seen: list[tuple[str, str]] = []

    async def record(request: web.Request) -> web.Response:
        seen.append((request.method, request.raw_path))
        return web.json_response({"ok": True, "path": request.raw_path})

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", record)
    async with serving(app) as url:
        yield Upstream(url, seen)


# -- helpers -------------------------------------------------------------------

def inbound(org: str, *, api_id: str = "", config_version: int = 0, method: str = "POST", path: str = "/echo",
            **extra: Any) -> dict[str, Any]:
    return {"correlation_id": uuid.uuid4().hex, "org": org, "api_id": api_id, "config_version": config_version,
            "method": method, "path": path, "deadline_ms": int(time.time() * 1000) + 20_000, **extra}


async def dead_letter_of(settings: Settings, cid: str, timeout_s: float = 30.0) -> dict[str, Any]:
    loop = asyncio.get_running_loop()
    until = loop.time() + timeout_s
    while loop.time() < until:
        letters = await read_dead_letters(settings, correlation_ids={cid})
        if letters:
            return letters[0].letter
        await asyncio.sleep(0.1)
    raise AssertionError(f"no dead letter for {cid} within {timeout_s}s")


async def records_of(settings: Settings, topic: str) -> list[tuple[int, bytes | None, bytes]]:
    """Every record of ``topic`` up to its end: (partition, key, value)."""
    return [(r.partition, r.key, r.value) for r in await read_topic(settings, topic)]


def replies_for(records: list[tuple[int, bytes | None, bytes]], cid: str) -> list[tuple[int, dict[str, Any]]]:
    found = []
    for partition, _, value in records:
        try:
            _, reply = decode(value, expected="Reply")
        except CodecError:
            continue
        if reply.get("correlation_id") == cid:
            found.append((partition, reply))
    return found


async def assert_refused(p: Pipeline, up: Upstream, call: dict[str, Any], code: str) -> dict[str, Any]:
    """Post ``call`` raw and check it was refused with ``code``: a dead letter, no OutboundCall, no
    upstream call, no Reply anywhere it could have gone, nothing at all on the config topic."""
    s = p.settings
    cid = await post_raw(s, call)
    letter = await dead_letter_of(s, cid)
    assert letter["error_code"] == code, letter
    assert letter["stage"] == "processors"
    assert letter["original_topic"] == s.topics.requests
    await asyncio.sleep(GRACE_S)
    assert up.seen == [], f"the upstream was called: {up.seen}"
    assert not [k for _, k, _ in await records_of(s, s.topics.calls) if k == cid.encode()], "an OutboundCall was produced"
    config = await records_of(s, s.topics.config)
    assert not [k for _, k, _ in config if k == cid.encode()] and not replies_for(config, cid), "written to the config topic"
    named = call.get("reply_topic")
    if named and named != s.topics.config:
        assert not replies_for(await records_of(s, named), cid), f"a Reply went to {named}"
    return letter


async def results_topic(settings: Settings, *, partitions: int) -> str:
    """A results topic of a producer's own, made as docs/topics.md says to: before naming it."""
    topic = f"{settings.topics.prefix}.results.app-{uuid.uuid4().hex[:8]}"
    admin = make_admin(settings)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(topic, partitions, 1)])
    finally:
        await admin.close()
    return topic


async def staged_api(p: Pipeline, up: Upstream, **kwargs: Any) -> dict[str, Any]:
    staged = await p.stage.api(up.url + "/echo", **kwargs)
    await wait_until(lambda: staged["api"]["id"] in p.ingress.snapshot.apis)
    return staged


# -- the control: a legitimate raw call does reach the upstream ------------------

async def test_a_legitimate_raw_call_naming_its_api_reaches_the_upstream(pipeline: Pipeline, upstream: Upstream) -> None:
    victim = await staged_api(pipeline, upstream, methods=["POST"])
    await post_raw(pipeline.settings, inbound(victim["org"], api_id=victim["api"]["id"], config_version=1))
    await wait_until(lambda: len(upstream.seen) == 1, timeout_s=20)
    assert upstream.seen == [("POST", "/echo")]


# -- the API: exists, belongs to the organisation, enabled, accepts the method ----

async def test_another_organisations_api_is_refused(pipeline: Pipeline, upstream: Upstream) -> None:
    # The attacker's organisation first: processors wait until they hold the victim's API (config_version 1),
    # and the config topic is in order, so they then know the attacker's organisation too, as in a real attack.
    attacker = await staged_api(pipeline, upstream)
    victim = await staged_api(pipeline, upstream)
    call = inbound(attacker["org"], api_id=victim["api"]["id"], config_version=1)
    letter = await assert_refused(pipeline, upstream, call, "api_not_in_org")
    assert letter["org"] == attacker["org"]


async def test_an_api_id_that_names_no_api_is_refused_not_routed_by_path(pipeline: Pipeline, upstream: Upstream) -> None:
    """A mistyped id, or an API deleted since, must not have some other API (the path's) made in its place."""
    staged = await staged_api(pipeline, upstream, methods=["POST"])
    for api_id in (str(uuid.uuid4()), "not-a-uuid"):
        letter = await assert_refused(pipeline, upstream, inbound(staged["org"], api_id=api_id), "route_not_found")
        assert letter["org"] == staged["org"] and letter["api_id"] == api_id


async def test_a_correlation_id_that_cannot_travel_is_refused(pipeline: Pipeline, upstream: Upstream) -> None:
    """A line break in a producer's correlation id would forge log lines and break the upstream call's header;
    50,000 characters would reach the upstream as one: neither is called, the dead letter names the field."""
    staged = await staged_api(pipeline, upstream, methods=["POST"])
    for cid in ("a\n2026-11-28 05:00:00,000 CRITICAL control.auth: FORGED", "x" * 50_000, "has space"):
        letter = await assert_refused(pipeline, upstream, inbound(staged["org"], correlation_id=cid),
                                      "invalid_correlation_id")
        assert letter["correlation_id"] == cid


OUTSIDE_THE_CONTRACT: list[tuple[str, Any]] = [
    ("method", "GET /admin HTTP/1.1\r\nX-Injected: 1"), ("method", "GE T"), ("method", ""), ("method", "M" * 65),
    ("path", "echo"), ("path", ""), ("path", "/echo\r\nX-Injected: 1"), ("path", "/ec\x00ho"),
    ("attempt", 0), ("attempt", -3),
]


async def test_a_field_outside_the_contract_is_refused(pipeline: Pipeline, upstream: Upstream) -> None:
    """What ingress never sends, a producer may: a method that is no HTTP token (a request line of its own),
    a path that does not start with '/' or holds a control character, an attempt below 1 (replays count up
    from 1, and egress runs each attempt once). None is called; the reply and the dead letter name the field."""
    s = pipeline.settings
    staged = await staged_api(pipeline, upstream)  # any method
    results = await results_topic(s, partitions=1)
    calls = [(field, inbound(staged["org"], api_id=staged["api"]["id"], config_version=1, reply_topic=results,
                             reply_partition=0, **{field: value})) for field, value in OUTSIDE_THE_CONTRACT]
    for _, call in calls:
        await post_raw(s, call)
    for field, call in calls:
        letter = await dead_letter_of(s, call["correlation_id"])
        assert letter["error_code"] == "invalid_call" and letter["stage"] == "processors", (field, letter)
        assert field in letter["error_message"], letter
    replies = await records_of(s, results)
    for field, call in calls:
        [(_, reply)] = replies_for(replies, call["correlation_id"])
        body = json.loads(reply["body"])
        assert reply["status"] == 400 and body["code"] == "invalid_call", (field, body)
        assert [f["field"] for f in body["fields"]] == [field], body
    await asyncio.sleep(GRACE_S)
    assert upstream.seen == [], f"the upstream was called: {upstream.seen}"
    called = {k for _, k, _ in await records_of(s, s.topics.calls)}
    assert not [c for _, c in calls if c["correlation_id"].encode() in called], "an OutboundCall was produced"


async def test_a_disabled_api_is_refused(pipeline: Pipeline, upstream: Upstream) -> None:
    victim = await staged_api(pipeline, upstream)
    await pipeline.stage.publish("api", {**victim["api"], "version": 2, "enabled": False}, victim["org"])
    # config_version 2: processors wait until they hold the disabled version.
    call = inbound(victim["org"], api_id=victim["api"]["id"], config_version=2)
    await assert_refused(pipeline, upstream, call, "api_disabled")


async def test_a_method_the_api_does_not_accept_is_refused(pipeline: Pipeline, upstream: Upstream) -> None:
    victim = await staged_api(pipeline, upstream, methods=["GET"])
    call = inbound(victim["org"], api_id=victim["api"]["id"], config_version=1, method="DELETE")
    await assert_refused(pipeline, upstream, call, "method_not_allowed")


async def test_an_unknown_organisation_is_refused_even_naming_a_real_api(pipeline: Pipeline, upstream: Upstream) -> None:
    victim = await staged_api(pipeline, upstream)
    call = inbound(f"nobody-{uuid.uuid4().hex[:6]}", api_id=victim["api"]["id"], config_version=1)
    await assert_refused(pipeline, upstream, call, "org_not_found")


async def test_a_path_the_named_api_does_not_serve_is_refused(pipeline: Pipeline, upstream: Upstream) -> None:
    victim = await staged_api(pipeline, upstream)
    call = inbound(victim["org"], api_id=victim["api"]["id"], config_version=1, path="/admin")
    await assert_refused(pipeline, upstream, call, "route_not_found")


# -- the reply routing ----------------------------------------------------------

@pytest.mark.parametrize("which", ["config", "requests", "calls", "dlq", "foreign", "bare-results"])
async def test_a_reply_topic_that_is_not_a_results_topic_is_refused(pipeline: Pipeline, upstream: Upstream, which: str) -> None:
    t = pipeline.settings.topics
    topic = {"config": t.config, "requests": t.requests, "calls": t.calls, "dlq": t.dlq,
             "foreign": "my-app.replies", "bare-results": f"{t.prefix}.results."}[which]
    victim = await staged_api(pipeline, upstream)
    call = inbound(victim["org"], api_id=victim["api"]["id"], config_version=1, reply_topic=topic, reply_partition=0)
    await assert_refused(pipeline, upstream, call, "invalid_reply_topic")


@pytest.mark.parametrize("partition", [999, "one past the last", -5, -1])
async def test_a_reply_partition_out_of_range_is_refused(pipeline: Pipeline, upstream: Upstream, partition: int | str) -> None:
    s = pipeline.settings
    count = len(await topic_partitions(s, s.topics.replies))
    assert count == s.reply_partitions
    if partition == "one past the last":
        partition = count
    victim = await staged_api(pipeline, upstream)
    call = inbound(victim["org"], api_id=victim["api"]["id"], config_version=1,
                   reply_topic=s.topics.replies, reply_partition=partition)
    await assert_refused(pipeline, upstream, call, "invalid_reply_partition")


async def test_a_bad_reply_routing_is_refused_before_anything_else(pipeline: Pipeline, upstream: Upstream) -> None:
    # Cross-organisation AND a reply into the config topic: only the dead letter says so, nothing is replied.
    victim = await staged_api(pipeline, upstream)
    attacker = await staged_api(pipeline, upstream)
    call = inbound(attacker["org"], api_id=victim["api"]["id"], config_version=1,
                   reply_topic=pipeline.settings.topics.config, reply_partition=0)
    await assert_refused(pipeline, upstream, call, "invalid_reply_topic")


async def test_a_results_topic_of_the_producers_own_gets_the_reply_and_its_range_is_checked(
    pipeline: Pipeline, upstream: Upstream
) -> None:
    s = pipeline.settings
    topic = await results_topic(s, partitions=2)
    victim = await staged_api(pipeline, upstream)
    ok = inbound(victim["org"], api_id=victim["api"]["id"], config_version=1, reply_topic=topic, reply_partition=1)
    await post_raw(s, ok)
    replies: list[tuple[int, dict[str, Any]]] = []
    for _ in range(100):
        replies = replies_for(await records_of(s, topic), ok["correlation_id"])
        if replies:
            break
        await asyncio.sleep(0.1)
    assert [(partition, reply["status"]) for partition, reply in replies] == [(1, 200)]
    assert len(upstream.seen) == 1
    upstream.seen.clear()
    # Partition 2 of a two-partition topic does not exist. (A results topic nobody created: see the
    # Router test below, and tests/pipeline/test_topic_lookup.py: asking about it does not create it.)
    beyond = inbound(victim["org"], api_id=victim["api"]["id"], config_version=1, reply_topic=topic, reply_partition=2)
    await assert_refused(pipeline, upstream, beyond, "invalid_reply_partition")


# -- path parameters ------------------------------------------------------------

async def files_api(p: Pipeline, up: Upstream) -> dict[str, Any]:
    staged = await p.stage.api(up.url + "/base/files/{rest+}", path="/files/{rest+}", methods=["GET"])
    await wait_until(lambda: staged["api"]["id"] in p.ingress.snapshot.apis)
    return staged


async def test_an_async_call_whose_path_climbs_is_dead_lettered(pipeline: Pipeline, upstream: Upstream) -> None:
    staged = await files_api(pipeline, upstream)
    # Naming its API (config_version: processors wait until they know it).
    call = inbound(staged["org"], api_id=staged["api"]["id"], config_version=1, method="GET", path="/files/../../healthz")
    await assert_refused(pipeline, upstream, call, "invalid_path_parameter")
    # Naming only org, method and path, as an async producer may.
    call = inbound(staged["org"], method="GET", path="/files/a/%2e%2e/%2e%2e/healthz")
    await assert_refused(pipeline, upstream, call, "invalid_path_parameter")
    # Forged path parameters: they are taken from the path, not from the message.
    call = inbound(staged["org"], api_id=staged["api"]["id"], config_version=1, method="GET", path="/files/ok.txt",
                   path_params={"rest": "../../healthz"})
    await post_raw(pipeline.settings, call)
    await wait_until(lambda: len(upstream.seen) == 1, timeout_s=20)
    assert upstream.seen == [("GET", "/base/files/ok.txt")]


@pytest.mark.parametrize("raw_path", [
    "/files/../../healthz",
    "/files/%2e%2e/%2e%2e/healthz",
    "/files/%2E%2E/healthz",
    "/files/a%2F..%2F..%2Fhealthz",
    "/files/..%2f..%2fhealthz",
    "/files/a/%252e%252e/%252e%252e/healthz",
    "/files/..;/healthz",
])
async def test_a_path_through_ingress_never_leaves_the_target_prefix(pipeline: Pipeline, upstream: Upstream, raw_path: str) -> None:
    staged = await files_api(pipeline, upstream)
    async with aiohttp.ClientSession() as s:
        # encoded=True: the path goes on the wire exactly as written, dots and escapes included.
        async with s.get(yarl.URL(f"{pipeline.ingress.url}/{staged['org']}{raw_path}", encoded=True)) as r:
            body = await r.json()
            assert r.status == 400, body
    assert body["code"] == "invalid_path_parameter"
    await asyncio.sleep(GRACE_S)
    assert upstream.seen == []
    # The same API still serves a path that stays inside.
    async with aiohttp.ClientSession() as s:
        async with s.get(yarl.URL(f"{pipeline.ingress.url}/{staged['org']}/files/a/b%20c.txt", encoded=True)) as r:
            assert r.status == 200
    assert upstream.seen == [("GET", "/base/files/a/b%20c.txt")]
    assert all(path.startswith("/base/files/") for _, path in upstream.seen)


async def test_a_single_parameter_is_encoded_and_a_lone_dot_dot_refused(pipeline: Pipeline, upstream: Upstream) -> None:
    staged = await pipeline.stage.api(upstream.url + "/base/items/{id}", path="/items/{id}", methods=["GET"])
    await wait_until(lambda: staged["api"]["id"] in pipeline.ingress.snapshot.apis)
    base = f"{pipeline.ingress.url}/{staged['org']}"
    async with aiohttp.ClientSession() as s:
        for raw in ("/items/..", "/items/%2e%2e", "/items/."):
            async with s.get(yarl.URL(base + raw, encoded=True)) as r:
                assert r.status == 400 and (await r.json())["code"] == "invalid_path_parameter", raw
        async with s.get(yarl.URL(base + "/items/a%3Fb%20c%25", encoded=True)) as r:
            assert r.status == 200
    assert upstream.seen == [("GET", "/base/items/a%3Fb%20c%25")]


@pytest.mark.parametrize("raw", ["/items/a%00b", "/items/a%0Ab", "/items/a%0D%0AX-Injected:%201", "/items/%7F",
                                 "/it%01ems/x"])
async def test_a_path_with_a_control_character_is_a_400_at_the_edge(pipeline: Pipeline, upstream: Upstream,
                                                                     raw: str) -> None:
    # A connector script may not send such a path on: without the edge's check, a caller's %00 was a 502
    # transform_failed blamed on the connector, and %0A a 404.
    script = "def transform_request(request, ctx):\n    request.headers['X-Seen'] = request.path\n    return request\n"
    staged = await pipeline.stage.api(upstream.url + "/base/items/{id}", path="/items/{id}", methods=["GET"],
                                      script=script)
    await wait_until(lambda: staged["api"]["id"] in pipeline.ingress.snapshot.apis)
    base = f"{pipeline.ingress.url}/{staged['org']}"
    async with aiohttp.ClientSession() as s:
        async with s.get(yarl.URL(base + raw, encoded=True)) as r:
            body = await r.json()
            assert (r.status, body["code"]) == (400, "invalid_path"), body
            assert body["fields"] == [{"field": "(path)", "message": "must not hold control characters"}]
        async with s.get(yarl.URL(base + "/items/a%20b", encoded=True)) as r:
            assert r.status == 200, await r.text()
    assert upstream.seen == [("GET", "/base/items/a%20b")]


# -- the helpers, without a broker ------------------------------------------------

def test_what_a_results_topic_is() -> None:
    t = Topics("jx")
    for ok in ("jx.replies", "jx.results.app", "jx.results.a.b-c_d"):
        assert is_results_topic(ok, t), ok
    for bad in ("jx.config", "jx.requests", "jx.calls", "jx.dlq", "jx.results.", "jx.resultsx", "junction.replies",
                "other.results.app", "jx.results.a b", "jx.results." + "x" * 250, "", None, 7):
        assert not is_results_topic(bad, t), bad
    # Without settings (a caller that does not know the prefix), only the shape is judged.
    assert is_results_topic("jx.replies") and is_results_topic("jx.results.app")
    for bad in ("jx.config", "jx.requests", "jx.calls", "jx.dlq", "jx.results.x.config", ".replies", "replies", "jx.results."):
        assert not is_results_topic(bad), bad


def test_reply_target_never_names_a_topic_it_must_not_write_to() -> None:
    t = Topics("jx")
    assert reply_target({"reply_topic": "jx.replies", "reply_partition": 3}, t) == ("jx.replies", 3)
    assert reply_target({"reply_topic": None, "reply_partition": 999}, t) is None  # fire-and-forget
    for call in ({"reply_topic": "jx.config", "reply_partition": 0}, {"reply_topic": "jx.replies", "reply_partition": -5},
                 {"reply_topic": "jx.replies", "reply_partition": -1}, {"reply_topic": "jx.dlq", "reply_partition": 0}):
        assert reply_target(call, t) is None, call
        assert reply_target(call) is None, call  # egress, which may not pass its settings
        assert reply_route_error(call, t) is not None
    assert reply_route_error({"reply_topic": "jx.config", "reply_partition": 0}, t).code == "invalid_reply_topic"
    assert reply_route_error({"reply_topic": "jx.replies", "reply_partition": -5}, t).code == "invalid_reply_partition"


async def test_partition_counts_are_asked_once_and_again_only_when_a_partition_is_beyond() -> None:
    asked: list[str] = []
    counts = {"a": 2}

    async def lookup(_: Any, topic: str) -> list[int]:
        asked.append(topic)
        await asyncio.sleep(0.01)
        return list(range(counts.get(topic, 0)))

    cache = PartitionCounts(None, lookup, recheck_s=0.2)  # type: ignore[arg-type]
    assert await asyncio.gather(*(cache.count("a", 0) for _ in range(20))) == [2] * 20
    assert asked == ["a"]  # concurrent questions share one lookup
    assert await cache.count("a", 1) == 2 and asked == ["a"]
    assert await cache.count("a", 5) == 2 and asked == ["a"]  # beyond, but asked too recently
    counts["a"] = 8  # the topic grew
    await asyncio.sleep(0.25)
    assert await cache.count("a", 1) == 2 and asked == ["a"]  # within what is known: no need to ask
    assert await cache.count("a", 5) == 8 and asked == ["a", "a"]
    assert await cache.count("missing", 0) == 0 and await cache.count("missing", 0) == 0
    assert asked.count("missing") == 1


async def test_the_router_refuses_a_reply_topic_that_does_not_exist_and_survives_a_broker_that_cannot_say() -> None:
    settings = Settings(topic_prefix="jx")
    snapshot = ConfigSnapshot()
    snapshot.apply({"event_id": 1, "kind": "org", "id": "o1", "op": "upsert", "document": json.dumps({"id": "o1", "slug": "acme"})})
    router = Router(settings, snapshot)
    sizes = {"jx.results.mine": 3}
    broken: set[str] = set()

    async def lookup(_: Any, topic: str) -> list[int]:
        if topic in broken:
            raise ConnectionError("broker away")
        return list(range(sizes.get(topic, 0)))

    router._partitions = PartitionCounts(settings, lookup)

    async def outcome(**routing: Any) -> list[tuple[str, str | None]]:
        call = inbound("acme", path="/nothing-here", **routing)
        result = await router.process(encode("InboundCall", call))
        out = []
        for m in result.messages:
            if m.topic == "jx.dlq":
                out.append((m.topic, decode(m.value, expected="DeadLetter")[1]["error_code"]))
            else:
                out.append((m.topic, decode(m.value, expected="Reply")[1]["error_code"]))
        return out

    assert await outcome(reply_topic="jx.results.none", reply_partition=0) == [("jx.dlq", "invalid_reply_topic")]
    assert await outcome(reply_topic="jx.results.mine", reply_partition=3) == [("jx.dlq", "invalid_reply_partition")]
    assert await outcome(reply_topic="jx.config", reply_partition=0) == [("jx.dlq", "invalid_reply_topic")]
    # A routable reply: the caller hears of the unknown route, and (nobody asked for it by path alone) so does the DLQ.
    assert await outcome(reply_topic="jx.results.mine", reply_partition=2) == [("jx.results.mine", "route_not_found"),
                                                                                ("jx.dlq", "route_not_found")]
    broken.update({"jx.replies", "jx.results.other"})
    # The broker cannot say: the replies topic is taken to have the partitions it was created with...
    assert await outcome(reply_topic="jx.replies", reply_partition=15) == [("jx.replies", "route_not_found"),
                                                                           ("jx.dlq", "route_not_found")]
    assert await outcome(reply_topic="jx.replies", reply_partition=16) == [("jx.dlq", "invalid_reply_partition")]
    # ...another topic's call is dead-lettered, to be replayed.
    assert await outcome(reply_topic="jx.results.other", reply_partition=0) == [("jx.dlq", "broker_unavailable")]
