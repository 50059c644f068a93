"""What only a durable broker can show, on the run's own Apache Kafka (``make test-kafka``).

The module runs a pipeline of its own (its own topics, groups and Redis prefix): processors and two
egress workers as child processes that can be SIGKILLed, ingress in this process, and an upstream
on loopback that counts how often each call reached it. The broker itself is killed and restarted,
so this module must not share clients with the rest of the session.
"""
from __future__ import annotations

import asyncio
import collections
import os
import signal
import subprocess
import sys
import uuid
from bench.procs import stop  # SIGTERM, then SIGKILL after 20 s
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import pytest
import pytest_asyncio
from aiohttp import web
from aiokafka import TopicPartition
from aiokafka.admin import NewTopic

from control.replay import read_dead_letters
from core.kafka import ensure_topics, make_admin, make_consumer
from core.settings import Settings
from junction.broker import die_with_parent, free_port
from junction.kafka_local import LocalKafka
from tests.support import IngressInstance, Stage, serving, wait_http_ok, wait_until

# Each kills and restarts real processes and waits out group sessions: minutes on a loaded 2-core machine.
pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]


@pytest.fixture(scope="module")
def local_kafka(external_services: dict[str, Any]) -> LocalKafka:
    kafka = external_services.get("local_kafka")
    if kafka is None:
        pytest.skip("needs the run's own Apache Kafka: make test-kafka")
    return kafka


@dataclass
class Counting:
    """The upstream: answers each call with its tag, and counts executions per tag."""

    seen: collections.Counter[str] = field(default_factory=collections.Counter)

    def app(self) -> web.Application:
        async def work(request: web.Request) -> web.Response:
            tag = (await request.read()).decode()
            self.seen[tag] += 1
            await asyncio.sleep(0.005)
            return web.json_response({"tag": tag})

        app = web.Application()
        app.router.add_post("/work", work)
        return app


def _spawn(settings: Settings, service: str, **overrides: Any) -> subprocess.Popen[bytes]:
    env = {**os.environ, **settings.with_overrides(**overrides).to_env(), "JUNCTION_LOG_LEVEL": "WARNING"}
    return subprocess.Popen([sys.executable, "-m", "junction", "serve", service], env=env,
                            stdin=subprocess.DEVNULL, preexec_fn=die_with_parent)


@dataclass
class Stack:
    settings: Settings
    kafka: LocalKafka
    ingress: IngressInstance
    stage: Stage
    upstream: Counting
    upstream_url: str
    processes: dict[str, subprocess.Popen[bytes]]
    ports: dict[str, int]


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def stack(settings: Settings, local_kafka: LocalKafka) -> AsyncIterator[Stack]:
    run = uuid.uuid4().hex[:8]
    s = settings.with_overrides(topic_prefix=f"k{run}", group_prefix=f"k{run}", redis_prefix=f"jk:{run}:",
                                processors_port=free_port())
    await _create_small_segment_config_topic(s)
    await ensure_topics(s)
    upstream = Counting()
    ports = {"egress-a": free_port(), "egress-b": free_port()}
    async with serving(upstream.app()) as upstream_url:
        processes = {
            "processors": _spawn(s, "processors"),
            "egress-a": _spawn(s, "egress", egress_port=ports["egress-a"], instance_id="egress-a"),
            "egress-b": _spawn(s, "egress", egress_port=ports["egress-b"], instance_id="egress-b"),
        }
        ingress = IngressInstance(s)
        stage = Stage(s)
        try:
            await wait_http_ok(f"http://127.0.0.1:{s.processors_port}/readyz", proc=processes["processors"])
            for name in ("egress-a", "egress-b"):
                await wait_http_ok(f"http://127.0.0.1:{ports[name]}/readyz", proc=processes[name])
            await ingress.start()
            await stage.start()
            yield Stack(s, local_kafka, ingress, stage, upstream, upstream_url, processes, ports)
        finally:
            await stage.stop()
            await ingress.stop()
            for proc in processes.values():
                stop([proc])


async def _create_small_segment_config_topic(s: Settings) -> None:
    """The config topic as ensure_topics makes it, but with segments that roll every 100 ms, so compaction
    runs within a test (Kafka 4 refuses segments under 1 MiB, so they roll by time)."""
    admin = make_admin(s)
    await admin.start()
    try:
        created = await admin.create_topics([NewTopic(s.topics.config, 1, 1, topic_configs={
            "cleanup.policy": "compact", "segment.bytes": "1048576", "segment.ms": "100",
            "min.cleanable.dirty.ratio": "0.01", "delete.retention.ms": "100",
        })])
        assert all(code == 0 for _, code, *_ in created.topic_errors), created.topic_errors
    finally:
        await admin.close()


async def _api(stack: Stack, timeout_ms: int) -> str:
    staged = await stack.stage.api(stack.upstream_url + "/work", timeout_ms=timeout_ms, methods=["POST"], path="/work")
    await wait_until(lambda: staged["api"]["id"] in stack.ingress.snapshot.apis, timeout_s=20)
    # Processors and egress follow the same topic; a first call proves the whole path has it.
    async with aiohttp.ClientSession() as s:
        for _ in range(100):
            async with s.post(f"{stack.ingress.url}/{staged['org']}/work", data="warm-up") as r:
                if r.status == 200:
                    break
            await asyncio.sleep(0.2)
        else:
            raise AssertionError("the pipeline never served the new API")
    stack.upstream.seen.clear()
    return str(staged["org"])


async def _load(url: str, n: int, concurrency: int, prefix: str, started: asyncio.Event | None = None,
                after: int = 0) -> list[tuple[str, int, dict[str, Any]]]:
    """``n`` calls at ``concurrency``; sets ``started`` once ``after`` calls have been answered."""
    results: list[tuple[str, int, dict[str, Any]]] = []
    queue: asyncio.Queue[int] = asyncio.Queue()
    for i in range(n):
        queue.put_nowait(i)
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=concurrency)) as s:

        async def worker() -> None:
            while not queue.empty():
                tag = f"{prefix}-{queue.get_nowait()}"
                try:
                    async with s.post(url, data=tag, timeout=aiohttp.ClientTimeout(total=90)) as r:
                        results.append((tag, r.status, await r.json()))
                except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
                    results.append((tag, -1, {"code": type(exc).__name__}))
                if started is not None and len(results) >= after:
                    started.set()

        await asyncio.gather(*(worker() for _ in range(concurrency)))
    return results


async def _kafka_check_fails(url: str) -> bool:
    async with aiohttp.ClientSession() as s, s.get(url, timeout=aiohttp.ClientTimeout(total=10)) as r:
        return r.status == 503 and (await r.json())["checks"]["kafka"] != "ok"


def _report(name: str, outcome: dict[str, int]) -> None:
    print(f"\n{name}: " + ", ".join(f"{k}={v}" for k, v in outcome.items()), flush=True)


async def test_a_broker_killed_mid_load_loses_no_accepted_call_and_answers_none_twice(stack: Stack) -> None:
    org = await _api(stack, timeout_ms=30_000)
    killed = asyncio.Event()
    load = asyncio.create_task(_load(f"{stack.ingress.url}/{org}/work", 2000, 100, "b", killed, after=400))
    await asyncio.wait_for(killed.wait(), 60)
    stack.kafka.kill()  # SIGKILL: no flush, no clean shutdown
    # Every stage says so: processors' consumer keeps its assignment while the broker is away, and its
    # readiness once said "kafka: ok" on that alone.
    processors = f"http://127.0.0.1:{stack.settings.processors_port}/readyz"
    for _ in range(100):
        if await _kafka_check_fails(processors):
            break
        await asyncio.sleep(0.2)
    else:
        raise AssertionError("processors stayed ready with the broker killed")
    stack.kafka.start()
    await stack.kafka.wait_ready(timeout_s=90)
    results = await asyncio.wait_for(load, 240)

    by_status = collections.Counter(status for _, status, _ in results)
    assert len(results) == 2000 and -1 not in by_status, by_status  # every call was answered
    dead = {v.letter["correlation_id"] for v in await read_dead_letters(stack.settings, org=org, limit=0)}
    refused = [b for _, status, b in results if status == 503 and b.get("code") == "broker_unavailable"]
    other = [(tag, status, b) for tag, status, b in results if status not in (200, 504) and b not in refused]
    # Any other failure must have left a dead letter with its correlation id.
    lost = [(tag, status, b) for tag, status, b in other if b.get("correlation_id") not in dead]
    assert not lost, lost[:5]
    for tag, status, body in results:
        if status == 200:
            assert body["tag"] == tag  # each caller got its own answer
    twice = {tag: n for tag, n in stack.upstream.seen.items() if n > 1}
    answered = [tag for tag, status, _ in results if status == 200]
    never_ran = [tag for tag in answered if stack.upstream.seen[tag] == 0]
    _report("broker SIGKILL mid-load (2,000 calls, concurrency 100)", {
        "answered_200": by_status[200], "answered_504": by_status[504], "refused_503_broker_unavailable": len(refused),
        "other_dead_lettered": len(other), "executed_twice": len(twice), "dead_letters": len(dead)})
    assert not never_ran, never_ran[:5]
    assert not twice, sorted(twice.items())[:10]
    assert by_status[200] >= 1000  # the pipeline went on after the restart, not just before the kill


async def test_the_config_topic_survives_a_restart_and_compaction_keeps_one_record_per_key(stack: Stack) -> None:
    # Many versions of a few APIs: compaction must leave the latest of each, and a broker restart must
    # keep them without the control plane re-seeding anything (no control plane runs here).
    staged = [await stack.stage.api(stack.upstream_url + "/work", methods=["POST"], path=f"/v{i}") for i in range(3)]
    for version in range(2, 60):
        for item in staged:
            await stack.stage.publish("api", {**item["api"], "version": version, "timeout_ms": 1000 + version}, item["org"])
    keys = {f"api/{item['api']['id']}" for item in staged}

    async def records_per_key() -> collections.Counter[str]:
        tp = TopicPartition(stack.settings.topics.config, 0)
        consumer = make_consumer(stack.settings)
        await consumer.start()
        counts: collections.Counter[str] = collections.Counter()
        try:
            consumer.assign([tp])
            await consumer.seek_to_beginning(tp)
            end = (await consumer.end_offsets([tp]))[tp]
            while await consumer.position(tp) < end:
                for rec in (await consumer.getmany(tp, timeout_ms=500)).get(tp, []):
                    counts[rec.key.decode() if rec.key else ""] += 1
        finally:
            await consumer.stop()
        return counts

    first = await records_per_key()
    assert {k for k in first if k in keys} == keys, first
    loop = asyncio.get_running_loop()
    until = loop.time() + 60
    while True:
        # The segment holding the newest records is never compacted: keep rolling it with other keys.
        await stack.stage.api(stack.upstream_url + "/work", methods=["POST"], path="/roll")
        counts = await records_per_key()
        if all(counts[k] == 1 for k in keys):
            break
        assert loop.time() < until, {k: counts[k] for k in keys}
        await asyncio.sleep(0.5)

    stack.kafka.kill()
    stack.kafka.start()
    await stack.kafka.wait_ready(timeout_s=90)
    fresh = IngressInstance(stack.settings)  # a new instance builds its snapshot from the topic alone
    await fresh.start()
    try:
        def latest() -> bool:
            return all((fresh.snapshot.apis.get(i["api"]["id"]) or {}).get("timeout_ms") == 1059 for i in staged)

        await wait_until(latest, timeout_s=30)
    finally:
        await fresh.stop()
    after = await records_per_key()
    assert all(after[k] == 1 for k in keys), {k: after[k] for k in keys}


async def test_an_egress_worker_killed_hands_its_partitions_to_the_survivor_and_loses_no_call(stack: Stack) -> None:
    # The deadline is longer than the session timeout, so calls the dead worker held are redelivered in time.
    timeout_ms = stack.settings.broker.session_timeout_ms + 20_000
    org = await _api(stack, timeout_ms=timeout_ms)
    killed = asyncio.Event()
    load = asyncio.create_task(_load(f"{stack.ingress.url}/{org}/work", 600, 50, "e", killed, after=150))
    await asyncio.wait_for(killed.wait(), 60)
    victim = stack.processes["egress-a"]
    victim.send_signal(signal.SIGKILL)
    victim.wait()
    results = await asyncio.wait_for(load, 120)
    by_status = collections.Counter(status for _, status, _ in results)
    twice = {tag: n for tag, n in stack.upstream.seen.items() if n > 1}
    _report("egress SIGKILL mid-load (600 calls, concurrency 50)", {
        "answered_200": by_status[200], "other": len(results) - by_status[200], "executed_twice": len(twice)})
    assert by_status[200] == 600, [r for r in results if r[1] != 200][:5]
    for tag, _, body in results:
        assert body["tag"] == tag
