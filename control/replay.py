"""Dead letters: list them, and replay them onto the topic they failed on.

Camel's dead-letter channel, for operators: a dead letter carries the
original message bytes (caller credentials already removed), the stage, the
error and the versions. Replaying sends the original back to its topic as a
new attempt with a fresh deadline and no ``reply_to``: the caller who waited
is gone, so the outcome is read from the replies (or a new dead letter), not
returned to them. A dead letter is replayed at most once per attempt, guarded
in Redis, so two operators pressing the button at once send it once.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from aiokafka import TopicPartition

from core.kafka import make_consumer, make_producer, topic_partitions
from core.messages import now_ms
from core.redis import make_redis
from core.settings import Settings
from schemas import CodecError, decode, encode

__all__ = ["DeadLetterView", "ReplayOutcome", "read_dead_letters", "replay_dead_letters"]


@dataclass(frozen=True)
class DeadLetterView:
    topic_partition: int
    offset: int
    letter: dict[str, Any]

    def to_dict(self) -> dict[str, Any]:
        letter = {k: v for k, v in self.letter.items() if k != "original"}
        return {"partition": self.topic_partition, "offset": self.offset, **letter, "original_bytes": len(self.letter["original"])}


@dataclass(frozen=True)
class ReplayOutcome:
    correlation_id: str
    status: str  # replayed | already_replayed | not_replayable
    attempt: int
    topic: str | None = None
    reason: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if v is not None}


async def read_dead_letters(settings: Settings, *, org: str | None = None, limit: int = 100,
                            correlation_ids: set[str] | None = None) -> list[DeadLetterView]:
    """The newest ``limit`` dead letters (of ``org`` if given), oldest first."""
    tps = await topic_partitions(settings, settings.topics.dlq)
    if not tps:
        return []
    consumer = make_consumer(settings)
    await consumer.start()
    try:
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        found: list[DeadLetterView] = []
        done: set[TopicPartition] = set()
        idle = 0
        # Read to the high-water mark each fetch reports (exact on every broker).
        while len(done) < len(tps) and idle < 10:
            batches = await consumer.getmany(*tps, timeout_ms=200, max_records=1000)
            idle = 0 if batches else idle + 1
            for tp, records in batches.items():
                for rec in records:
                    try:
                        _, letter = decode(rec.value, expected="DeadLetter")
                    except CodecError:
                        continue
                    if org is not None and letter["org"] != org:
                        continue
                    if correlation_ids is not None and letter["correlation_id"] not in correlation_ids:
                        continue
                    found.append(DeadLetterView(tp.partition, rec.offset, letter))
            for tp in tps:
                highwater = consumer.highwater(tp)
                if highwater is not None and await consumer.position(tp) >= highwater:
                    done.add(tp)
        found.sort(key=lambda v: v.letter["failed_at_ms"])
        return found[-limit:] if limit else found
    finally:
        await consumer.stop()


def _revived(letter: dict[str, Any], timeout_ms: int) -> tuple[str, str, bytes, int]:
    """(type, key, bytes, attempt) of the original as a new attempt."""
    name, original = decode(letter["original"])
    attempt = int(original.get("attempt", 1)) + 1
    original.update(attempt=attempt, deadline_ms=now_ms() + timeout_ms, reply_topic=None, reply_partition=-1)
    if name == "OutboundCall":
        original["call_id"] = f"{original['correlation_id']}.{attempt}"
    elif name == "InboundCall":
        original["received_at_ms"] = now_ms()
    else:
        raise CodecError("unexpected_type", f"a {name} cannot be replayed")
    return name, original["correlation_id"], encode(name, original), attempt


async def read_inbound(settings: Settings, partition: int, offset: int) -> bytes | None:
    """The InboundCall at ``offset`` of the requests topic, or None where it no longer is
    (past retention, or a broker that lost its data)."""
    tp = TopicPartition(settings.topics.requests, partition)
    consumer = make_consumer(settings)
    await consumer.start()
    try:
        consumer.assign([tp])
        consumer.seek(tp, offset)
        for _ in range(10):
            records = (await consumer.getmany(tp, timeout_ms=200, max_records=1)).get(tp, [])
            if records:
                return records[0].value if records[0].offset == offset else None
            highwater = consumer.highwater(tp)
            if highwater is not None and highwater <= offset:
                return None
        return None
    finally:
        await consumer.stop()


async def _replayable(settings: Settings, letter: dict[str, Any]) -> dict[str, Any]:
    """The letter to revive: a call goes back through processors from its InboundCall on the requests topic
    (so a fixed connector applies), as it was written there: its sealed credential, bound to its correlation
    id, still opens only in processors, which check it again (a key revoked since is refused). Where that
    record is gone, the letter's own copy is revived (without credential: an API with caller auth refuses it)."""
    if int(letter.get("inbound_offset", -1)) < 0:
        return letter
    inbound = await read_inbound(settings, int(letter["inbound_partition"]), int(letter["inbound_offset"]))
    if inbound is None:
        return letter
    _, call = decode(inbound, expected="InboundCall")
    if call.get("correlation_id") != letter.get("correlation_id"):
        return letter  # not the record the letter points at (a topic that was re-created)
    return {**letter, "original": inbound, "original_topic": settings.topics.requests}


async def replay_dead_letters(settings: Settings, letters: list[DeadLetterView], *, timeout_ms: int | None = None) -> list[ReplayOutcome]:
    timeout_ms = timeout_ms or settings.default_timeout_ms
    producer = make_producer(settings)
    redis = make_redis(settings)
    await producer.start()
    outcomes: list[ReplayOutcome] = []
    try:
        for view in letters:
            cid = view.letter["correlation_id"]
            try:
                letter = await _replayable(settings, view.letter)
                name, key, payload, attempt = _revived(letter, timeout_ms)
            except CodecError as exc:
                outcomes.append(ReplayOutcome(cid, "not_replayable", int(letter.get("attempt", 1)), reason=str(exc)))
                continue
            guard = settings.redis_key("replayed", f"{view.topic_partition}:{view.offset}")
            if not await redis.set(guard, str(attempt).encode(), nx=True, ex=7 * 24 * 3600):
                outcomes.append(ReplayOutcome(cid, "already_replayed", attempt - 1))
                continue
            topic = letter["original_topic"]
            await producer.send_and_wait(topic, key=key.encode(), value=payload)
            outcomes.append(ReplayOutcome(cid, "replayed", attempt, topic=topic))
        return outcomes
    finally:
        await producer.stop()
        await redis.aclose()
