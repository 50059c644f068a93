"""Egress produces the replies of calls finishing together in one round, and still commits
an offset only once its own reply was acknowledged by the broker.

The broker error is injected into the running worker's real producer; everything else is real.
"""
from __future__ import annotations

import asyncio
from typing import Any

import aiohttp
from aiokafka import TopicPartition
from aiokafka.errors import KafkaConnectionError

from core.outbox import PRODUCE_BATCH
from tests.support import IngressInstance, Stage, wait_until

CALLS = 20


def _rounds_of_several() -> float:
    """How many produce rounds so far carried more than one record."""
    count = le_one = 0.0
    for metric in PRODUCE_BATCH.collect():
        for sample in metric.samples:
            if sample.labels.get("stage") != "egress":
                continue
            if sample.name.endswith("_count"):
                count = sample.value
            elif sample.name.endswith("_bucket") and float(sample.labels["le"]) == 1.0:
                le_one = sample.value
    return count - le_one


def _in_flight(worker: Any, topic: str) -> dict[TopicPartition, set[int]]:
    return {tp: set(offsets) for tp, offsets in worker._offsets._in_flight.items() if tp.topic == topic and offsets}


async def _committed(worker: Any, partitions: list[TopicPartition]) -> dict[TopicPartition, int]:
    """What the broker holds as the group's committed offsets (-1: none)."""
    return {tp: (await worker._consumer.committed(tp)) or -1 for tp in partitions}


async def test_replies_produced_together_commit_only_acknowledged_offsets(
    settings: Any, egress: dict[str, Any], ingress: IngressInstance, stage: Stage, upstream: str
) -> None:
    staged = await stage.api(upstream + "/echo", timeout_ms=30_000)  # outlives the outage below
    await wait_until(lambda: staged["api"]["id"] in ingress.snapshot.apis)
    worker = egress["worker"]
    topic = settings.topics.calls
    assert not _in_flight(worker, topic), "a call of an earlier test is still in flight"
    producer = worker._producer
    real = producer.send
    outage = {"on": True, "refused": 0}

    async def broker_away(*args: Any, **kwargs: Any) -> Any:
        if outage["on"]:
            outage["refused"] += 1
            raise KafkaConnectionError("injected: broker away")
        return await real(*args, **kwargs)

    several_before = _rounds_of_several()
    producer.send = broker_away
    async with aiohttp.ClientSession() as s:

        async def one(i: int) -> tuple[int, Any]:
            async with s.post(f"{ingress.url}/{staged['org']}/echo", data=f"b-{i}",
                              timeout=aiohttp.ClientTimeout(total=60)) as r:
                return r.status, (await r.json()).get("body")

        try:
            calls = [asyncio.create_task(one(i)) for i in range(CALLS)]
            # Every call was made upstream and waits for its reply to be acknowledged, and the
            # replies went to the broker together (rounds of several) at least twice each.
            await wait_until(lambda: sum(map(len, _in_flight(worker, topic).values())) == CALLS
                             and outage["refused"] >= 2 * CALLS, timeout_s=30)
            assert _rounds_of_several() > several_before
            held = _in_flight(worker, topic)
            await worker._commit()
            committed = await _committed(worker, list(held))
            for tp, offsets in held.items():
                assert committed[tp] <= min(offsets), (tp, committed[tp], sorted(offsets))
        finally:
            outage["on"] = False
            producer.send = real
        results = await asyncio.wait_for(asyncio.gather(*calls), timeout=60)
    assert sorted(results) == sorted((200, f"b-{i}") for i in range(CALLS))
    # Acknowledged now: each of those offsets is finished, and the commit passes all of them.
    await wait_until(lambda: not any(offsets & _in_flight(worker, topic).get(tp, set()) for tp, offsets in held.items()))
    await worker._commit()
    committed = await _committed(worker, list(held))
    for tp, offsets in held.items():
        assert committed[tp] > max(offsets), (tp, committed[tp], sorted(offsets))
