"""The dead-letter indexer: copies the dead-letter topic into PostgreSQL, and expires old rows.

It runs in the control app, supervised, as a consumer group of its own (``<group_prefix>.dead-letter-index``),
so several control instances share the partitions. Offsets are committed only after the rows are written:
a crash between the two re-reads records, which the table's unique digest (SHA-256 of the record) turns into
no-ops. A broker that loses its data (the offsets with it, or offsets past a new topic's end) is read again
from its start (``auto_offset_reset=earliest``); rows already written stay, and the new records, whose
digests differ, are added.

Originals are redacted again on the way in (core/redaction.py): letters written by a version that did not
redact yet are cleaned too. Rows older than ``JUNCTION_DLQ_RETENTION_DAYS`` are deleted every hour.
"""
from __future__ import annotations

import hashlib
import logging
import time
import uuid
from datetime import datetime, timedelta, timezone
from typing import Any

import asyncpg

from control.storable import storable
from control.store.dead_letters import LetterRow, delete_older_than, insert_letters
from core.kafka import make_consumer, stop_consumer
from core.redaction import redact_original, scrub
from core.settings import Settings
from core.tasks import Supervised
from schemas import CodecError, decode

__all__ = ["GROUP", "DeadLetterIndexer", "row_of"]

log = logging.getLogger(__name__)

GROUP = "dead-letter-index"
BATCH = 500
PURGE_EVERY_S = 3600.0
_MAX_MS = 253_402_300_799_999  # 9999-12-31T23:59:59.999Z, the last instant PostgreSQL and Python share


def _text(value: Any) -> str:
    return storable(str(value))


def row_of(partition: int, offset: int, value: bytes) -> LetterRow | None:
    """The row of one record of the dead-letter topic, or None for a record that is no DeadLetter."""
    try:
        _, letter = decode(value, expected="DeadLetter")
    except CodecError:
        return None
    redacted = redact_original(letter["original"])
    cleaned = {**letter, "original": redacted.original,
               "error_message": _text(scrub(letter["error_message"], redacted.removed_values)),
               "details": [_text(scrub(str(line), redacted.removed_values)) for line in letter["details"]][:200]}
    for key in ("org", "stage", "error_code", "correlation_id", "original_topic", "api_id", "connector_id"):
        cleaned[key] = _text(letter[key])
    digest = hashlib.sha256(value).digest()
    failed_ms = min(max(int(letter["failed_at_ms"]), 0), _MAX_MS)
    return LetterRow(id=str(uuid.UUID(bytes=digest[:16])), digest=digest, org_slug=cleaned["org"], letter=cleaned,
                     partition=partition, offset=offset,
                     failed_at=datetime.fromtimestamp(failed_ms / 1000, tz=timezone.utc))


class DeadLetterIndexer:
    def __init__(self, settings: Settings, pool: asyncpg.Pool, *, purge_every_s: float = PURGE_EVERY_S) -> None:
        self._settings = settings
        self._pool = pool
        self._purge_every_s = purge_every_s
        self._loop = Supervised("dead-letter-indexer", self._run)
        self.indexed = 0  # rows written
        self.duplicates = 0  # records already indexed (read again)
        self.skipped = 0  # records that are no DeadLetter
        self.purged = 0

    def start(self) -> None:
        self._loop.start()

    async def stop(self) -> None:
        await self._loop.stop()

    async def check(self) -> None:
        await self._loop.check()

    async def purge(self) -> int:
        """Delete the rows past retention now; how many went."""
        days = self._settings.dlq_retention_days
        if days <= 0:
            return 0
        cutoff = datetime.now(timezone.utc) - timedelta(days=days)
        total = 0
        async with self._pool.acquire() as conn:
            while (n := await delete_older_than(conn, cutoff)) > 0:
                total += n
        self.purged += total
        return total

    async def _run(self) -> None:
        consumer = make_consumer(self._settings, self._settings.topics.dlq, group=GROUP, background=True)
        try:
            await consumer.start()
            next_purge = 0.0
            while True:
                if time.monotonic() >= next_purge:
                    await self.purge()
                    next_purge = time.monotonic() + self._purge_every_s
                batches = await consumer.getmany(timeout_ms=500, max_records=BATCH)
                if not batches:
                    continue
                rows = []
                for tp, records in batches.items():
                    for rec in records:
                        row = row_of(tp.partition, rec.offset, rec.value) if rec.value is not None else None
                        if row is None:
                            self.skipped += 1
                            log.warning("dead-letter index: %s@%s is no DeadLetter; skipped", tp, rec.offset)
                        else:
                            rows.append(row)
                if rows:
                    async with self._pool.acquire() as conn:
                        added = await insert_letters(conn, rows)
                    self.indexed += added
                    self.duplicates += len(rows) - added
                # Only now: a crash before this re-reads the batch, and the digests make that harmless.
                await consumer.commit()
        finally:
            await stop_consumer(consumer)
