"""The observe stage: reads the pipeline's topics off the request path and writes what they say.

It runs in control, in its own consumer group (``<group_prefix>.control.observe``), so its reading,
decoding and database writes cost the request path nothing: it may lag (its offsets are committed only after a flush's
transaction), the calls do not wait. Everything fetched between two flushes is written in one
transaction (control/observe/store.py); a redelivered record after a crash changes nothing.
"""
from __future__ import annotations

import asyncio
import logging
import re
import time
from collections.abc import Awaitable, Callable
from typing import Any

import asyncpg
from aiokafka import AIOKafkaConsumer
from aiokafka.errors import CommitFailedError, KafkaError

from control.observe import events
from control.observe.store import Retention, enforce_retention, record, sweep
from core.consume import decode_records
from core.kafka import make_consumer, stop_consumer
from core.messages import now_ms
from core.settings import Settings
from core.snapshot import ConfigSnapshot

__all__ = ["GROUP", "ObserveStage", "observed_topics", "retention_of"]

log = logging.getLogger(__name__)

GROUP = "control.observe"
MAX_BATCH = 5000  # records written in one flush at most, however short the flush interval
RETENTION_EVERY_S = 300.0
# The broker holds a fetch until this much is there or the background wait (about half a second) is
# over: the stage reads every record of the pipeline, and full fetches cost a fraction of one per record.
# Nothing it writes is fresher than a flush (2 s) anyway.
FETCH_MIN_BYTES = 256 * 1024
# The stage subscribes by pattern: a results topic a new async producer makes is found at the next metadata
# refresh (5 minutes by default). Until then its records are neither measured nor logged, and a listing's
# ?wait= holds (control/catch_up.py counts every matching topic).
TOPIC_REFRESH_MS = 5000


def retention_of(settings: Settings) -> Retention:
    return Retention(windows_10s=settings.metrics_retention_10s_hours * 3600.0,
                     windows_1m=settings.metrics_retention_1m_days * 86400.0,
                     windows_1h=settings.metrics_retention_1h_days * 86400.0,
                     request_logs=settings.request_log_retention_days * 86400.0)


def observed_topics(settings: Settings) -> re.Pattern[str]:
    """The topics the stage reads: replies go to <prefix>.replies or to a results topic of an async
    producer, and both are read; calls ingress refused before they entered are on <prefix>.refusals."""
    return re.compile(rf"^{re.escape(settings.topics.prefix)}\.(requests|calls|replies|dlq|refusals|results\..+)$")


class ObserveStage:
    def __init__(self, settings: Settings, snapshot: ConfigSnapshot, db: asyncpg.Pool) -> None:
        self._settings = settings
        self._snapshot = snapshot
        self._db = db
        t = settings.topics
        self._kinds = {t.requests: "InboundCall", t.calls: "OutboundCall", t.replies: "Reply", t.dlq: "DeadLetter",
                       t.refusals: "EdgeRefusal"}
        self._pattern = observed_topics(settings).pattern

    def _kind(self, topic: str) -> str:
        return self._kinds.get(topic, "Reply")

    def _partial(self, kind: str, value: dict[str, Any], timestamp_ms: int) -> events.Partial:
        if kind == "InboundCall":
            return events.from_request(value, timestamp_ms, self._settings, self._snapshot)
        if kind == "OutboundCall":
            return events.from_call(value, timestamp_ms, self._snapshot)
        if kind == "DeadLetter":
            return events.from_dead_letter(value, timestamp_ms, self._snapshot)
        if kind == "EdgeRefusal":
            return events.from_refusal(value, self._snapshot)
        return events.from_reply(value, timestamp_ms, self._snapshot)

    async def run(self) -> None:
        """Read, and flush every ``observe_flush_ms``; run under core.tasks.Supervised."""
        consumer = make_consumer(self._settings, group=GROUP, background=True, fetch_min_bytes=FETCH_MIN_BYTES,
                                 metadata_max_age_ms=TOPIC_REFRESH_MS)
        consumer.subscribe(pattern=self._pattern)
        try:
            await consumer.start()  # inside: a stop during the group join closes it too
            pending: list[events.Partial] = []
            moved = False  # positions past the last commit
            flush_at = time.monotonic() + self._settings.observe_flush_ms / 1000
            sweep_at = time.monotonic() + self._settings.observe_flush_ms / 1000
            retain_at = time.monotonic()
            while True:
                wait_ms = max(1, int((flush_at - time.monotonic()) * 1000))
                fetched = await consumer.getmany(timeout_ms=wait_ms, max_records=MAX_BATCH)
                moved = moved or bool(fetched)
                for tp, records in fetched.items():
                    kind = self._kind(tp.topic)
                    for rec, value in decode_records(records, kind, reader="observe").decoded:
                        pending.append(self._partial(kind, value, rec.timestamp))
                now = time.monotonic()
                if moved and (now >= flush_at or len(pending) >= MAX_BATCH):
                    if pending:
                        await self._flush(pending)
                        pending = []
                    # Records that wrote nothing (undecodable) are committed too: the committed offsets say
                    # how far the tables are complete (control/catch_up.py).
                    await self._commit(consumer)
                    moved = False
                if now >= flush_at:
                    flush_at = now + self._settings.observe_flush_ms / 1000
                if now >= sweep_at:
                    sweep_at = now + self._settings.observe_flush_ms / 1000
                    await self._once("sweep", self._sweep)
                if now >= retain_at:
                    retain_at = now + RETENTION_EVERY_S
                    await self._once("retention", self._retain)
        finally:
            await stop_consumer(consumer)

    async def _flush(self, pending: list[events.Partial]) -> None:
        async def write() -> None:
            async with self._db.acquire() as conn:
                await record(conn, pending, now_ms=now_ms())

        await self._retrying("flush", write)

    async def _sweep(self) -> None:
        async with self._db.acquire() as conn:
            while len(await sweep(conn, now_ms=now_ms(), grace_s=self._settings.observe_grace_s)) >= 1000:
                pass

    async def _retain(self) -> None:
        async with self._db.acquire() as conn:
            deleted = await enforce_retention(conn, retention_of(self._settings))
        if deleted:
            log.info("observe: deleted %d rows past retention", deleted)

    async def _retrying(self, what: str, step: Callable[[], Awaitable[None]]) -> None:
        """Run ``step`` until the database takes it. Reading waits meanwhile: the topics keep the
        records, and nothing is committed that was not written."""
        backoff = 0.2
        while True:
            try:
                await step()
                return
            except (asyncpg.DataError, asyncpg.IntegrityConstraintViolationError) as exc:
                # The same records would fail the same way forever, and hold every later call's metrics
                # back: this flush's are given up, said loudly, and reading goes on.
                log.error("observe %s refused by the database (%s): this flush's records are not measured", what, exc)
                return
            except (asyncpg.PostgresError, OSError, asyncpg.InterfaceError) as exc:
                log.warning("observe %s failed (%s); retrying in %.1fs", what, exc, backoff)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 5.0)

    @staticmethod
    async def _once(what: str, step: Callable[[], Awaitable[None]]) -> None:
        """Housekeeping that the next round does again: a failure is logged, reading goes on."""
        try:
            await step()
        except (asyncpg.PostgresError, OSError, asyncpg.InterfaceError) as exc:
            log.warning("observe %s failed (%s); trying again later", what, exc)

    @staticmethod
    async def _commit(consumer: AIOKafkaConsumer) -> None:
        try:
            await consumer.commit()
        except (CommitFailedError, KafkaError) as exc:
            # A rebalance took partitions away: their new owner reads them again, which the
            # store's upserts make harmless.
            log.info("observe: offsets not committed (%s)", exc)
