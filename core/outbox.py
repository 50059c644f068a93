"""Produce the records of finished calls together, and say when each was acknowledged.

Processors (calls, error replies, dead letters) and egress (replies, dead letters) finish calls
concurrently. Each call hands its records to :meth:`Outbox.deliver` and waits; one loop takes
whatever has been handed in since its last round, sends it all without awaiting each record, then
awaits the broker's acknowledgement of all of them. While one round waits for its acknowledgements
the next one fills up, so under load a round carries many calls' records: fewer, fuller produce
requests, which is most of what a call costs a stage in CPU. Calls are not held back for the rest
of the batch they were read in: a slow script or upstream never delays another call.

:meth:`deliver` returns only once every record of that call was acknowledged, which is
what lets the worker mark the call's offset finished. A record the broker did not take
for a transient reason is sent again in the next round (with backoff); one refused for
good fails its call's ``deliver``, and the call's offset stays uncommitted, so it is
redelivered rather than lost.
"""
from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass

from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaConnectionError, KafkaError, KafkaTimeoutError
from prometheus_client import Histogram

from core.kafka import Outgoing
from core.metrics import PRODUCE_RETRIES
from core.tasks import Supervised

__all__ = ["PRODUCE_BATCH", "Outbox"]

log = logging.getLogger(__name__)

PRODUCE_BATCH = Histogram("junction_produce_batch_records", "Records a stage sent together in one round", ["stage"],
                          buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024))

MAX_BACKOFF_S = 2.0


@dataclass
class _Pending:
    record: Outgoing
    done: asyncio.Future[None]


class Outbox:
    def __init__(self, producer: AIOKafkaProducer, *, stage: str, min_backoff_s: float = 0.05) -> None:
        self._producer = producer
        self._stage = stage
        self._batch_size = PRODUCE_BATCH.labels(stage)
        self._min_backoff_s = min_backoff_s
        self._queued: list[_Pending] = []
        self._wake = asyncio.Event()
        self._loop = Supervised(f"{stage}-outbox", self._run)

    def start(self) -> None:
        self._loop.start()

    async def stop(self) -> None:
        await self._loop.stop()
        for pending in self._queued:
            if not pending.done.done():
                pending.done.set_exception(RuntimeError("the outbox stopped before this record was produced"))
        self._queued.clear()

    @property
    def task(self) -> asyncio.Task[None] | None:
        return self._loop.task

    async def check(self) -> None:
        await self._loop.check()

    async def deliver(self, records: list[Outgoing]) -> None:
        """Return once the broker acknowledged every one of ``records``; raise if one was refused for good."""
        if not records:
            return
        loop = asyncio.get_running_loop()
        waits = []
        for record in records:
            pending = _Pending(record, loop.create_future())
            self._queued.append(pending)
            waits.append(pending.done)
        self._wake.set()
        await asyncio.gather(*waits)

    async def _run(self) -> None:
        backoff = self._min_backoff_s
        while True:
            await self._wake.wait()
            self._wake.clear()
            batch, self._queued = self._queued, []
            # A call cancelled meanwhile (a stop, a kill) is no longer waiting: its records need not go out.
            batch = [p for p in batch if not p.done.done()]
            if not batch:
                continue
            try:
                retry = await self._round(batch)
            except BaseException as exc:
                # Nobody must wait forever on a round that died with the loop.
                for pending in batch:
                    if not pending.done.done():
                        pending.done.set_exception(exc if isinstance(exc, Exception) else RuntimeError("outbox stopped"))
                raise
            if not retry:
                backoff = self._min_backoff_s
                continue
            self._queued[:0] = retry  # ahead of newer records, and sent with them
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, MAX_BACKOFF_S)
            self._wake.set()

    async def _round(self, batch: list[_Pending]) -> list[_Pending]:
        """Send every record, then await every acknowledgement; returns those to send again."""
        self._batch_size.observe(len(batch))
        acks: list[asyncio.Future[object] | BaseException] = []
        for pending in batch:
            r = pending.record
            try:
                acks.append(await self._producer.send(r.topic, key=r.key, value=r.value, partition=r.partition))
            except KafkaError as exc:
                acks.append(exc)
        results = await asyncio.gather(*(a for a in acks if not isinstance(a, BaseException)), return_exceptions=True)
        outcomes = iter(results)
        retry: list[_Pending] = []
        first: BaseException | None = None
        for pending, ack in zip(batch, acks):
            outcome = ack if isinstance(ack, BaseException) else next(outcomes)
            if pending.done.done():
                continue
            if not isinstance(outcome, BaseException):
                pending.done.set_result(None)
            elif _transient(outcome):
                retry.append(pending)
                first = first or outcome
            else:
                pending.done.set_exception(outcome)
        if retry:
            PRODUCE_RETRIES.labels(self._stage).inc(len(retry))
            log.warning("%d of %d records not acknowledged (%s); sending them again", len(retry), len(batch), first)
        return retry


def _transient(exc: BaseException) -> bool:
    return isinstance(exc, KafkaError) and (exc.retriable or isinstance(exc, (KafkaTimeoutError, KafkaConnectionError)))
