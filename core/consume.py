"""Fetch and decode consumed records, treating an undecodable one the same way in every reader.

A record that is not the message its topic should carry (a wrong magic, an unknown
fingerprint, truncated bytes, another type) never stops a reader: it is logged once at
WARNING with its topic, partition, offset and the codec's error, counted in
``junction_undecodable_records_total{reader=...}``, and left out of the decoded records.
Its offset counts as consumed like any other, so a committing reader commits past it
rather than reading it forever. A reader with more to do about it (egress dead-letters
it) finds it in :attr:`Fetched.undecodable`.
"""
from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.structs import ConsumerRecord
from prometheus_client import Counter

from core.kafka import make_consumer, stop_consumer, topic_partitions
from schemas import CodecError, decode

__all__ = ["UNDECODABLE_RECORDS", "Fetched", "decode_records", "fetch_decoded", "read_topic"]

log = logging.getLogger(__name__)

UNDECODABLE_RECORDS = Counter("junction_undecodable_records_total", "Consumed records that could not be decoded (skipped)",
                              ["reader"])


@dataclass
class Fetched:
    """One fetch: the records that decoded, with their values, and those that did not."""

    decoded: list[tuple[ConsumerRecord[Any, Any], dict[str, Any]]] = field(default_factory=list)
    undecodable: list[tuple[ConsumerRecord[Any, Any], CodecError]] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.decoded) + len(self.undecodable)


def decode_records(records: Iterable[ConsumerRecord[Any, Any]], expected: str, *, reader: str) -> Fetched:
    """Decode each record as ``expected``; an undecodable one is logged, counted and set apart."""
    out = Fetched()
    for record in records:
        try:
            _, value = decode(record.value, expected=expected)
        except CodecError as exc:
            UNDECODABLE_RECORDS.labels(reader).inc()
            log.warning("%s skips an undecodable record at %s[%s]@%s: %s", reader, record.topic, record.partition,
                        record.offset, exc)
            out.undecodable.append((record, exc))
            continue
        out.decoded.append((record, value))
    return out


async def fetch_decoded(consumer: AIOKafkaConsumer, *partitions: TopicPartition, expected: str, reader: str,
                        timeout_ms: int, max_records: int,
                        skip: Callable[[ConsumerRecord[Any, Any]], bool] | None = None) -> Fetched:
    """``getmany`` and :func:`decode_records` in one; ``skip`` leaves out records before decoding
    (a reader's re-fetch of records it already took)."""
    batches = await consumer.getmany(*partitions, timeout_ms=timeout_ms, max_records=max_records)
    records = (r for rs in batches.values() for r in rs if skip is None or not skip(r))
    return decode_records(records, expected, reader=reader)


async def read_topic(settings: Any, topic: str) -> list[ConsumerRecord]:
    """Every record of ``topic`` from its beginning to its end now, in no group: for tools, the
    dead-letter listing of replay, and tests that look at what a topic holds."""
    tps = await topic_partitions(settings, topic)
    if not tps:
        return []
    consumer = make_consumer(settings)
    try:
        await consumer.start()  # inside: one that failed to start is closed too
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        out: list[ConsumerRecord] = []
        done: set[TopicPartition] = set()
        idle = 0
        # Read to the high-water mark each fetch reports (exact on every broker).
        while len(done) < len(tps) and idle < 10:
            batches = await consumer.getmany(*tps, timeout_ms=200, max_records=1000)
            idle = 0 if batches else idle + 1
            for records in batches.values():
                out.extend(records)
            for tp in tps:
                highwater = consumer.highwater(tp)
                if highwater is not None and await consumer.position(tp) >= highwater:
                    done.add(tp)
        return out
    finally:
        await stop_consumer(consumer)
