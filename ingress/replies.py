"""Correlate replies with waiting callers.

The reader consumes this instance's leased reply partition with ``assign()``
(a shared consumer group would hand some of our replies to other instances)
and resolves the future registered under each correlation id. A reply with no
waiter (late, or read again after a restart) is counted and dropped: it never
reaches another caller because correlation ids are unique per call.

The lease decides what is read: the moment it is lost, the partition is no
longer consumed here (its replies now belong to whoever took it), and the
reader leases another one. Calls produced meanwhile cannot name a partition and
are refused with 503 rather than sent where nobody reads.

A reply nobody waits for here (an async call's, or one that came after its
caller gave up) goes to ``keep`` (ingress/async_results.py), which holds it for
the call's ``Location``; without ``keep`` it is counted and dropped.
"""
from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition

from core.errors import ServiceUnavailable
from core.consume import fetch_decoded
from core.kafka import make_consumer, stop_consumer
from core.metrics import LATE_REPLIES
from core.settings import Settings
from core.tasks import Supervised
from ingress.lease import PartitionLease

__all__ = ["ReplyReader"]

log = logging.getLogger(__name__)


class ReplyReader:
    def __init__(self, settings: Settings, lease: PartitionLease,
                 keep: Callable[[dict[str, Any]], Awaitable[None]] | None = None) -> None:
        self._settings = settings
        self._keep = keep
        self._lease = lease
        self._tp: TopicPartition | None = None
        self._waiters: dict[str, asyncio.Future[dict[str, Any]]] = {}
        self._consumer: AIOKafkaConsumer | None = None
        self._loop = Supervised("reply-reader", self._run)

    async def start(self) -> None:
        self._consumer = make_consumer(self._settings, reader="ingress-replies")
        try:
            await self._consumer.start()
            await self._take(await self._lease.acquire())
        except BaseException:
            # No partition to lease, or no broker: close what was opened, and let the caller see why. A
            # failure while closing is logged, never raised in place of that reason.
            consumer, self._consumer = self._consumer, None
            for what, close in (("stopping the consumer", lambda: stop_consumer(consumer)),
                                ("releasing the lease", self._lease.release)):
                try:
                    await close()
                except Exception as exc:  # noqa: BLE001 - logged; the start-up error is the one to raise
                    log.warning("reply reader: %s failed while giving up its start: %r", what, exc)
            raise
        self._loop.start()

    async def stop(self) -> None:
        await self._loop.stop()
        if self._consumer is not None:
            await stop_consumer(self._consumer)
            self._consumer = None
        for fut in self._waiters.values():
            if not fut.done():
                fut.cancel()
        self._waiters.clear()
        await self._lease.release()

    @property
    def tp(self) -> TopicPartition:
        """The partition replies to this instance go to; refused while none is leased."""
        if self._tp is None or not self._lease.held:
            raise ServiceUnavailable("this ingress instance holds no reply partition", code="service_unavailable")
        return self._tp

    def expect(self, correlation_id: str) -> asyncio.Future[dict[str, Any]]:
        fut: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._waiters[correlation_id] = fut
        return fut

    def forget(self, correlation_id: str) -> None:
        self._waiters.pop(correlation_id, None)

    @property
    def waiting(self) -> int:
        return len(self._waiters)

    async def check(self) -> None:
        await self._lease.check()
        await self._loop.check()

    async def _take(self, partition: int) -> None:
        assert self._consumer is not None
        tp = TopicPartition(self._settings.topics.replies, partition)
        self._consumer.assign([tp])
        # Start at the end: earlier replies belong to a previous holder of the
        # lease. On the embedded broker the end is approximate, and the few
        # older replies read are dropped for want of a waiter.
        await self._consumer.seek_to_end(tp)
        await self._consumer.position(tp)
        self._tp = tp

    async def _run(self) -> None:
        assert self._consumer is not None
        while True:
            if not self._lease.held:
                lost, self._tp = self._tp, None
                self._consumer.assign([])  # stop reading it at once: it is someone else's now
                if lost is not None:
                    log.error("reply partition %s lost; leasing another", lost.partition)
                else:
                    log.warning("holding no reply partition; leasing one")
                await self._take(await self._lease.acquire())  # NoPartitionFree crashes the loop: retried
                continue
            tp = self._tp
            assert tp is not None
            fetched = await fetch_decoded(self._consumer, tp, expected="Reply", reader="reply-reader",
                                          timeout_ms=200, max_records=1000)
            if not self._lease.held:
                continue  # read after the loss: not ours to hand out
            unclaimed = []
            for _, reply in fetched.decoded:
                fut = self._waiters.pop(reply["correlation_id"], None)
                if fut is None or fut.done():
                    LATE_REPLIES.inc()
                    unclaimed.append(reply)
                    continue
                fut.set_result(reply)
            if unclaimed and self._keep is not None:
                await self._keep_all(unclaimed)

    async def _keep_all(self, replies: list[dict[str, Any]]) -> None:
        assert self._keep is not None
        results = await asyncio.gather(*(self._keep(r) for r in replies), return_exceptions=True)
        failed = [r for r in results if isinstance(r, Exception)]
        if failed:
            # Not worth stopping the replies of waiting callers for: the results are lost, and said so.
            log.warning("%d unclaimed replies could not be kept: %s", len(failed), failed[0])
