"""The outbox relay: publishes committed config changes to the compacted
config topic, in outbox id order, then marks them published.

It wakes on NOTIFY (sent in the change's transaction, so at commit) and polls
every 200 ms as a fallback. One relay at a time publishes, chosen by a
transaction-scoped advisory lock, so several control instances never
interleave. A missing broker is retried with backoff; the API keeps working
and the rows wait. Each time it connects it first re-publishes the whole
current configuration (:mod:`control.resync`), since a broker may have lost it.

Every record names this installation in a header (core/installation.py). Before it publishes on a new
connection the relay checks that the config topic is not another installation's; if it is, it publishes
nothing, says so in ``last_error`` (control's /readyz) and checks again every ``FOREIGN_RETRY_S``.
"""
from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

import asyncpg
from aiokafka import AIOKafkaProducer

from control.installation import check_topic_prefix, installation_id
from control.resync import current_config_events
from control.store.outbox import fetch_pending, mark_published, notify_channel
from core.installation import ForeignInstallation, header_of
from core.kafka import make_producer, start_client
from core.settings import Settings
from core.tasks import cancel_and_wait
from schemas import encode

__all__ = ["OutboxRelay", "publish_config_events"]

log = logging.getLogger(__name__)

POLL_S = 0.2
BATCH = 500
MAX_BACKOFF_S = 5.0
FOREIGN_RETRY_S = 30.0  # the config topic is another installation's: an operator has to act


# The advisory lock one relay at a time holds while it publishes (per schema: one installation's relays).
RELAY_LOCK = "hashtext(current_schema() || ':junction-outbox')"


class OutboxRelay:
    def __init__(self, settings: Settings, pool: asyncpg.Pool) -> None:
        self._settings = settings
        self._pool = pool
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._producer: Any = None
        self._listen_conn: asyncpg.Connection | None = None
        self._channel = notify_channel(settings.database_schema)
        self.published = 0
        self.last_error: str | None = None
        # Connected, and the current configuration re-published since: what the broker holds is whole.
        self.resynced = False
        self.installation: str | None = None  # this installation's id, read from the database

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="outbox-relay")

    async def stop(self) -> None:
        await cancel_and_wait(self._task)
        self._task = None
        await self._close_listener()
        await self._close_producer()

    async def ready(self) -> None:
        """Readiness check: connected, and the current configuration re-published on this connection (until
        then the broker may hold less than PostgreSQL does, and changes wait behind the re-publication)."""
        if self._producer is None:
            raise RuntimeError(self.last_error or "Kafka producer not connected")
        if not self.resynced:
            raise RuntimeError("connected; re-publishing the current configuration before relaying changes")

    def wake(self) -> None:
        self._wake.set()

    # -- internals ---------------------------------------------------------
    async def _run(self) -> None:
        backoff = POLL_S
        while True:
            try:
                await self._ensure_listener()
                if self.installation is None:
                    self.installation = await installation_id(self._pool)
                if await self._ensure_producer():
                    await check_topic_prefix(self._settings, self.installation)
                    await self._resync()
                    self.resynced = True
                while await self._drain_once() == BATCH:
                    pass
                backoff = POLL_S
                self.last_error = None
            except asyncio.CancelledError:
                raise
            except ForeignInstallation as exc:  # publish nothing into another installation's topic
                self.last_error = str(exc)
                log.error("outbox relay: %s", exc)
                await self._close_producer()
                await asyncio.sleep(FOREIGN_RETRY_S)
                continue
            except Exception as exc:  # broker or database away: keep the API up, retry later
                self.last_error = f"{type(exc).__name__}: {exc}"
                log.warning("outbox relay: %s; retrying in %.1fs", self.last_error, backoff)
                await self._close_producer()
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, MAX_BACKOFF_S)
                continue
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(POLL_S):
                    await self._wake.wait()
            self._wake.clear()

    async def _drain_once(self) -> int:
        async with self._pool.acquire() as conn, conn.transaction():
            leader = await conn.fetchval(
                f"SELECT pg_try_advisory_xact_lock({RELAY_LOCK})")
            if not leader:
                return 0
            events = await fetch_pending(conn, BATCH)
            if not events:
                return 0
            await publish_config_events(self._producer, self._settings, events, installation=self.installation)
            await mark_published(conn, [e["event_id"] for e in events])
        self.published += len(events)
        return len(events)

    async def _resync(self) -> None:
        """Re-publish the current configuration: the broker may have lost it."""
        async with self._pool.acquire() as conn, conn.transaction():
            # Under the relay's lock, so a snapshot never interleaves with a batch.
            await conn.execute(f"SELECT pg_advisory_xact_lock({RELAY_LOCK})")
            events = await current_config_events(conn)
            await publish_config_events(self._producer, self._settings, events, installation=self.installation)
        log.info("outbox relay: re-published %d configuration records", len(events))

    async def _ensure_producer(self) -> bool:
        """Connect if not connected; True when a new connection was made."""
        if self._producer is not None:
            return False
        self._producer = await start_client(make_producer(self._settings))
        return True

    async def _close_producer(self) -> None:
        self.resynced = False
        producer, self._producer = self._producer, None
        if producer is not None:
            with contextlib.suppress(Exception):
                await producer.stop()

    async def _ensure_listener(self) -> None:
        if self._listen_conn is not None and not self._listen_conn.is_closed():
            return
        # A dedicated connection, so LISTEN never ties up a pool slot.
        conn = await asyncpg.connect(self._settings.database_dsn)
        await conn.add_listener(self._channel, lambda *_: self._wake.set())
        self._listen_conn = conn

    async def _close_listener(self) -> None:
        conn, self._listen_conn = self._listen_conn, None
        if conn is not None:
            with contextlib.suppress(Exception):
                await conn.close()


async def publish_config_events(producer: AIOKafkaProducer, settings: Settings, events: list[dict[str, Any]],
                                *, installation: str | None = None) -> None:
    """Write ConfigEvents to the config topic, keyed ``<kind>/<id>`` so
    compaction keeps the latest of each resource, each naming ``installation``
    in its header (none given: no header, as older versions wrote them). The
    control plane's outbox relay is the production caller; tests use it to
    stage configuration."""
    headers = header_of(installation) if installation else None
    # Sent together, awaited together: one round trip per batch, not per record (a re-publication of 10,000
    # APIs took as many round trips). Order holds: the producer has one batch of a partition in flight at once.
    sent: list[asyncio.Future[Any]] = []
    try:
        for event in events:
            sent.append(await producer.send(settings.topics.config, key=f"{event['kind']}/{event['id']}".encode(),
                                            value=encode("ConfigEvent", event), partition=0, headers=headers))
    finally:  # what was sent is awaited even when a later send fails, so no outcome goes unseen
        outcomes = await asyncio.gather(*sent, return_exceptions=True)
    for outcome in outcomes:
        if isinstance(outcome, BaseException):
            raise outcome
