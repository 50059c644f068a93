"""The broker floor: what three Kafka hops cost with no Junction code at all.

A plain aiokafka relay chain (requests → calls → replies, one consumer per hop,
the same broker profile) at the benchmark's offered rate. The pipeline cannot
be faster than this on the same broker and machine, so it frames the figures.
"""
from __future__ import annotations

import asyncio
import time
import uuid

from aiokafka import TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from bench.load import LoadResult
from core.kafka import make_admin, make_consumer, make_producer
from core.settings import Settings

__all__ = ["broker_floor"]


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


async def broker_floor(settings: Settings, *, rate: float, seconds: float, hops: int = 3, partitions: int = 4) -> LoadResult:
    topics = [f"{settings.topic_prefix}.floor{i}.{uuid.uuid4().hex[:6]}" for i in range(hops + 1)]
    admin = make_admin(settings)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(t, partitions, 1) for t in topics[1:]])
        await _wait_for_leaders(admin, topics[1:])
    finally:
        await admin.close()
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
