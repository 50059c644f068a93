"""Correlate replies with waiting callers.

The reader consumes this instance's leased reply partition with ``assign()``
(a shared consumer group would hand some of our replies to other instances)
and resolves the future registered under each correlation id. A reply with no
waiter (late, or read again after a restart) is counted and dropped: it never
reaches another caller because correlation ids are unique per call.
"""
from __future__ import annotations

import asyncio
import logging
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition

from core.kafka import make_consumer
from core.metrics import LATE_REPLIES
from core.settings import Settings
from schemas import CodecError, decode
from core.tasks import cancel_and_wait

__all__ = ["ReplyReader"]

log = logging.getLogger(__name__)


class ReplyReader:
    def __init__(self, settings: Settings, partition: int) -> None:
        self._settings = settings
        self.tp = TopicPartition(settings.topics.replies, partition)
        self._waiters: dict[str, asyncio.Future[dict[str, Any]]] = {}
        self._consumer: AIOKafkaConsumer | None = None
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self._consumer = make_consumer(self._settings)
        await self._consumer.start()
        self._consumer.assign([self.tp])
        # Start at the end: earlier replies belong to a previous holder of the
        # lease. On the embedded broker the end is approximate, and the few
        # older replies read are dropped for want of a waiter.
        await self._consumer.seek_to_end(self.tp)
        await self._consumer.position(self.tp)
        self._task = asyncio.create_task(self._run(), name="reply-reader")

    async def stop(self) -> None:
        await cancel_and_wait(self._task)
        self._task = None
        if self._consumer is not None:
            await self._consumer.stop()
            self._consumer = None
        for fut in self._waiters.values():
            if not fut.done():
                fut.cancel()
        self._waiters.clear()

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
        if self._task is None or self._task.done():
            raise RuntimeError("reply reader is not running")

    async def _run(self) -> None:
        assert self._consumer is not None
        while True:
            batches = await self._consumer.getmany(self.tp, timeout_ms=1000, max_records=1000)
            for record in batches.get(self.tp, []):
                try:
                    _, reply = decode(record.value, expected="Reply")
                except CodecError as exc:
                    log.error("undecodable reply at offset %s: %s", record.offset, exc)
                    continue
                fut = self._waiters.pop(reply["correlation_id"], None)
                if fut is None or fut.done():
                    LATE_REPLIES.inc()
                    continue
                fut.set_result(reply)
