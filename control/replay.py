"""How a dead letter goes back into the pipeline: the message a replay job sends, and where.

Camel's dead-letter channel, for operators. A replay is a new attempt (its number chosen by the job,
unique per correlation id) with a fresh deadline, whose ``reply_topic`` is control's own results topic
(``<prefix>.results.replays``): the caller who waited is gone, and control reads the outcome there.

Which configuration it runs with:

- ``current``: the call goes through processors again from its ``InboundCall`` on the requests topic, as
  it was written there (its sealed credential, bound to its correlation id, still opens only in
  processors, which check it again: a key revoked since is refused), so a fixed API or connector applies.
  Where that record is gone, the letter's own copy is used (without credential: an API with caller auth
  refuses it; an ``OutboundCall`` then keeps its original versions, the only copy left).
- ``original``: a call that reached egress is sent to egress again as processors made it: its URL,
  headers and body, and its ``connector_version``, which egress looks up in its snapshot (the last
  few versions of each connector; older ones fall back to the current). A call that failed in
  processors can only run with the current version: processors always route on the current API and
  connector. The job records, per message, which configuration it actually ran with.
"""
from __future__ import annotations

import asyncio
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from aiokafka import TopicPartition

from core.consume import read_topic
from core.kafka import make_consumer, stop_consumer
from core.messages import now_ms
from core.settings import Settings
from schemas import CodecError, decode, encode

__all__ = ["CONFIGS", "DeadLetterView", "InboundReader", "Revived", "read_dead_letters", "revive"]

CONFIGS = ("current", "original")
REPLY_PARTITION = 0  # the results topic of replays is read whole by control: any partition of it will do


@dataclass(frozen=True)
class Revived:
    topic: str
    key: bytes
    value: bytes
    config: str  # the configuration it runs with: current | original


@dataclass(frozen=True)
class DeadLetterView:
    topic_partition: int
    offset: int
    letter: dict[str, Any]

    def to_dict(self) -> dict[str, Any]:
        letter = {k: v for k, v in self.letter.items() if k != "original"}
        return {"partition": self.topic_partition, "offset": self.offset, **letter, "original_bytes": len(self.letter["original"])}


async def read_dead_letters(settings: Settings, *, org: str | None = None, limit: int = 100,
                            correlation_ids: set[str] | None = None) -> list[DeadLetterView]:
    """The newest ``limit`` dead letters (of ``org`` if given) straight off the topic, oldest first.

    For tools and tests with broker access; operators read the index through the management API.
    """
    found: list[DeadLetterView] = []
    for rec in await read_topic(settings, settings.topics.dlq):
        try:
            _, letter = decode(rec.value, expected="DeadLetter")
        except CodecError:
            continue
        if org is not None and letter["org"] != org:
            continue
        if correlation_ids is not None and letter["correlation_id"] not in correlation_ids:
            continue
        found.append(DeadLetterView(rec.partition, rec.offset, letter))
    found.sort(key=lambda v: v.letter["failed_at_ms"])
    return found[-limit:] if limit else found


class InboundReader:
    """Reads single records of the requests topic by offset, with one consumer (assigned, never in a group)."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._consumer = make_consumer(settings)
        self._lock = asyncio.Lock()  # one seek-and-read at a time: jobs share the consumer

    async def start(self) -> None:
        await self._consumer.start()

    async def stop(self) -> None:
        await stop_consumer(self._consumer)

    async def read(self, partition: int, offset: int) -> bytes | None:
        """The InboundCall at ``offset``, or None where it no longer is (past retention, a broker that lost its data)."""
        tp = TopicPartition(self._settings.topics.requests, partition)
        async with self._lock:
            self._consumer.assign([tp])
            self._consumer.seek(tp, offset)
            try:
                for _ in range(10):
                    records = (await self._consumer.getmany(tp, timeout_ms=200, max_records=1)).get(tp, [])
                    if records:
                        return records[0].value if records[0].offset == offset else None
                    highwater = self._consumer.highwater(tp)
                    if highwater is not None and highwater <= offset:
                        return None
                return None
            finally:
                # An assigned partition is fetched for ever: without this, control would read the rest of the
                # requests partition, and then poll it, after every replay.
                self._consumer.pause(tp)


async def _inbound(reader: InboundReader, letter: Mapping[str, Any]) -> bytes | None:
    """The InboundCall the letter points at, if it is still there and is that call."""
    if int(letter.get("inbound_offset") if letter.get("inbound_offset") is not None else -1) < 0:
        return None
    raw = await reader.read(int(letter["inbound_partition"]), int(letter["inbound_offset"]))
    if raw is None:
        return None
    try:
        _, call = decode(raw, expected="InboundCall")
    except CodecError:
        return None
    # Not the record the letter points at (a topic that was re-created): do not send someone else's call.
    return raw if call.get("correlation_id") == letter.get("correlation_id") else None


async def revive(settings: Settings, reader: InboundReader, letter: Mapping[str, Any], *, attempt: int, config: str,
                 timeout_ms: int) -> Revived:
    """The message that replays ``letter`` (a dead_letters row: original, inbound_partition, inbound_offset,
    correlation_id) as attempt ``attempt``; CodecError when it cannot be replayed."""
    if letter.get("original") is None:
        raise CodecError("gone", "the dead letter is no longer kept (past JUNCTION_DLQ_RETENTION_DAYS)")
    name, original = decode(bytes(letter["original"]))
    if name not in ("InboundCall", "OutboundCall"):
        raise CodecError("unexpected_type", f"a {name} cannot be replayed")
    applied = "current"
    if not (name == "OutboundCall" and config == "original"):
        inbound = await _inbound(reader, letter)
        if inbound is not None:
            name, original = decode(inbound, expected="InboundCall")
    if name == "OutboundCall":
        applied = "original"
    original.update(attempt=attempt, deadline_ms=now_ms() + timeout_ms, reply_topic=settings.topics.replay_results,
                    reply_partition=REPLY_PARTITION)
    if name == "OutboundCall":
        original["call_id"] = f"{original['correlation_id']}.{attempt}"  # egress must not take it for the failed one
        topic = settings.topics.calls
    else:
        original["received_at_ms"] = now_ms()
        topic = settings.topics.requests
    # By message type, never the letter's original_topic: a replay goes only where Junction reads calls.
    return Revived(topic, str(original["correlation_id"]).encode(), encode(name, original), applied)
