"""The broker floor: what three Kafka hops cost with no Junction code at all.

Latency: a plain aiokafka relay chain (requests → calls → replies, one consumer per hop,
the same broker profile) at the benchmark's offered rate. CPU: three relay processes
(bench/kafka_relay.py), each consuming and producing every message as a stage does, under
the same closed loop as the pipeline's throughput phase. The pipeline cannot do better
than either on the same broker and machine, so they frame its figures.
"""
from __future__ import annotations

import asyncio
import time
import uuid

from aiokafka import TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from bench.load import LoadResult
from bench.procs import cpu_seconds, spawn, stop
from core.kafka import make_admin, make_consumer, make_producer
from core.settings import Settings

__all__ = ["broker_floor", "new_topics", "relay_cpu"]


async def _wait_for_leaders(admin: AIOKafkaAdminClient, topics: list[str], timeout_s: float = 10.0) -> None:
    """Apache Kafka elects a new topic's leaders a moment after creating it; reading before that
    only earns retried NotLeaderForPartition errors in the output."""
    until = time.monotonic() + timeout_s
    while time.monotonic() < until:
        described = await admin.describe_topics(topics)
        if all(t.get("error_code", 0) == 0 and t.get("partitions") and all(p.get("leader", -1) >= 0 for p in t["partitions"])
               for t in described):
            return
        await asyncio.sleep(0.1)


async def new_topics(settings: Settings, names: list[str], partitions: int) -> None:
    admin = make_admin(settings)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(t, partitions, 1) for t in names])
        await _wait_for_leaders(admin, names)
    finally:
        await admin.close()


async def broker_floor(settings: Settings, *, rate: float, seconds: float, hops: int = 3, partitions: int = 4) -> LoadResult:
    topics = [f"{settings.topic_prefix}.floor{i}.{uuid.uuid4().hex[:6]}" for i in range(hops + 1)]
    await new_topics(settings, topics[1:], partitions)
    producer = make_producer(settings)
    await producer.start()
    sent: dict[bytes, float] = {}
    latencies: list[float] = []
    consumers = []

    async def relay(i: int) -> None:
        consumer = make_consumer(settings)
        consumers.append(consumer)
        await consumer.start()
        tps = [TopicPartition(topics[i], p) for p in range(partitions)]
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        while True:
            batches = await consumer.getmany(timeout_ms=1000)
            for records in batches.values():
                for rec in records:
                    if i == hops:
                        started = sent.pop(rec.key, None)
                        if started is not None:
                            latencies.append((time.perf_counter() - started) * 1000)
                    else:
                        await producer.send(topics[i + 1], rec.value, key=rec.key)

    tasks = [asyncio.create_task(relay(i)) for i in range(1, hops + 1)]
    try:
        await asyncio.sleep(1.0)
        total = int(rate * seconds)
        start = time.perf_counter()
        for n in range(total):
            key = uuid.uuid4().hex.encode()
            sent[key] = time.perf_counter()
            await producer.send(topics[1], b"x" * 200, key=key)
            delay = start + (n + 1) / rate - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
        until = time.perf_counter() + 5
        while sent and time.perf_counter() < until:
            await asyncio.sleep(0.05)
        return LoadResult(total, len(latencies), len(sent), time.perf_counter() - start, latencies)
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        for consumer in consumers:
            await consumer.stop()
        await producer.stop()


async def relay_cpu(settings: Settings, env: dict[str, str], *, concurrency: int, seconds: float, warmup: float,
                    hops: int = 3, partitions: int = 4) -> dict[str, float]:
    """Messages per second and CPU ms per message of ``hops`` relay processes together, with
    ``concurrency`` messages in flight through the chain (a closed loop, like the throughput phase)."""
    run = uuid.uuid4().hex[:6]
    topics = [f"{settings.topic_prefix}.relay{i}.{run}" for i in range(hops + 1)]
    await new_topics(settings, topics, partitions)
    relays = [spawn(["-m", "bench.kafka_relay", "--source", topics[i], "--target", topics[i + 1],
                     "--group", f"relay{i}.{run}"], env) for i in range(hops)]
    producer = make_producer(settings)
    sink = make_consumer(settings)
    try:
        await producer.start()
        await sink.start()
        tps = [TopicPartition(topics[-1], p) for p in range(partitions)]
        sink.assign(tps)
        await sink.seek_to_beginning(*tps)
        arrived: dict[bytes, asyncio.Future[None]] = {}

        async def collect() -> None:
            while True:
                for records in (await sink.getmany(timeout_ms=1000)).values():
                    for rec in records:
                        waiter = arrived.pop(rec.key, None)
                        if waiter is not None and not waiter.done():
                            waiter.set_result(None)

        async def loop(until: float, counter: list[int]) -> None:
            while time.perf_counter() < until:
                key = uuid.uuid4().hex.encode()
                arrived[key] = asyncio.get_running_loop().create_future()
                await producer.send(topics[0], b"x" * 300, key=key)  # about an InboundCall's size
                async with asyncio.timeout(30):
                    await arrived[key]
                counter[0] += 1

        collector = asyncio.create_task(collect())
        try:
            # The first messages wait for the relays' group joins; the warm-up absorbs that.
            await asyncio.gather(*(loop(time.perf_counter() + warmup, [0]) for _ in range(concurrency)))
            before = sum(cpu_seconds(p.pid, tree=False) for p in relays)
            counter = [0]
            start = time.perf_counter()
            await asyncio.gather(*(loop(start + seconds, counter) for _ in range(concurrency)))
            elapsed = time.perf_counter() - start
            used = sum(cpu_seconds(p.pid, tree=False) for p in relays) - before
        finally:
            collector.cancel()
            await asyncio.gather(collector, return_exceptions=True)
        return {"hops": hops, "concurrency": concurrency, "messages": counter[0], "rps": round(counter[0] / elapsed, 1),
                "cpu_ms_per_message": round(used * 1000 / max(1, counter[0]), 3)}
    finally:
        stop(relays)
        await sink.stop()
        await producer.stop()
