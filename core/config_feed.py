"""Keep a :class:`ConfigSnapshot` hot from the compacted config topic.

Every request-path instance reads the whole topic from the beginning with
``assign()`` (no group: each instance needs every record), so a restarted
instance rebuilds its snapshot. ``synced`` is set once the reader has reached
the high-water mark seen at start; Tansu's ``end_offsets`` is not exact, so
the high-water mark is taken from fetch responses instead.

One installation per topic prefix (core/installation.py): the follower applies the
records of the installation that wrote the topic first, and records without an
installation header (older versions). Another installation's records are skipped,
counted in ``junction_foreign_config_records_total`` and logged at ERROR once per
installation: merged, its organisations would take over the owner's slugs. The
snapshot served stays the owner's, so readiness is not affected. Checked per
config record only: nothing on the request path.
"""
from __future__ import annotations

import asyncio
import contextlib
import logging

from aiokafka import TopicPartition
from prometheus_client import Counter

from core.consume import fetch_decoded
from core.installation import foreign_records_message, installation_of
from core.instances import InstanceReporter
from core.kafka import make_consumer, stop_consumer
from core.settings import Settings
from core.snapshot import ConfigSnapshot, events_from_file
from core.tasks import Supervised

__all__ = ["ConfigFollower"]

log = logging.getLogger(__name__)

FOREIGN_RECORDS = Counter("junction_foreign_config_records_total",
                          "Config records of another installation on this topic prefix (skipped)")


class ConfigFollower:
    """``service`` names a request-path instance: it then reports how far it has applied the config
    (core/instances.py), which ``GET /api/v1/config/applied`` waits on."""

    def __init__(self, settings: Settings, snapshot: ConfigSnapshot, *, service: str | None = None,
                 instance: str | None = None) -> None:
        self._settings = settings
        self.snapshot = snapshot
        self.synced = asyncio.Event()
        self._loop: Supervised | None = None
        self._consumer = None
        self._tp = TopicPartition(settings.topics.config, 0)
        self._applied = 0  # offset after the last event applied
        self._advanced = asyncio.Event()  # set (and replaced) whenever _applied moves
        self.owner: str | None = None  # the installation whose records come first in the topic
        self.foreign: set[str] = set()  # other installations whose records were skipped
        self._reporter = (InstanceReporter(settings, service, self._position, self._wait_advanced, instance=instance)
                          if service else None)

    async def start(self) -> None:
        if self._settings.routes_file:
            self.snapshot.load(events_from_file(self._settings.routes_file))
        tp = TopicPartition(self._settings.topics.config, 0)
        self._consumer = make_consumer(self._settings, background=True, reader="config")
        await self._consumer.start()
        self._consumer.assign([tp])
        await self._consumer.seek_to_beginning(tp)
        self._loop = Supervised("config-follower", lambda: self._run(tp))
        self._loop.start()
        if self._reporter is not None:
            await self._reporter.start()

    async def stop(self) -> None:
        if self._reporter is not None:
            await self._reporter.stop()
        if self._loop is not None:
            await self._loop.stop()
            self._loop = None
        if self._consumer is not None:
            await stop_consumer(self._consumer)
            self._consumer = None

    async def wait_synced(self, timeout_s: float = 30.0) -> None:
        async with asyncio.timeout(timeout_s):
            await self.synced.wait()

    async def caught_up(self, timeout_s: float) -> None:
        """Wait (at most ``timeout_s``) until every config event written before now is applied: for a
        check that failed on configuration another instance may already have (a key made a moment ago)."""
        if self._consumer is None:
            return
        end = (await self._consumer.end_offsets([self._tp])).get(self._tp, 0)
        loop = asyncio.get_running_loop()
        until = loop.time() + timeout_s
        while self._applied < end and loop.time() < until:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(until - loop.time()):
                    await self._advanced.wait()

    def _position(self) -> tuple[int, bool]:
        return self._applied, self.synced.is_set()

    async def _wait_advanced(self, timeout_s: float) -> None:
        async with asyncio.timeout(timeout_s):
            await self._advanced.wait()

    async def ready(self) -> None:
        """Readiness check: raise until the snapshot has caught up."""
        if not self.synced.is_set():
            raise RuntimeError("config snapshot not yet synced")
        if self._loop is not None:
            await self._loop.check()

    def _owned(self, record: object) -> bool:
        """Whether ``record`` is the owner's (or nobody's); the first installation seen becomes the owner."""
        installation = installation_of(record)
        if installation is None or installation == self.owner:
            return True
        if self.owner is None:
            self.owner = installation
            return True
        FOREIGN_RECORDS.inc()
        if installation not in self.foreign:
            self.foreign.add(installation)
            log.error("%s", foreign_records_message(self._settings, self.owner, installation))
        return False

    async def _run(self, tp: TopicPartition) -> None:
        assert self._consumer is not None
        consumer = self._consumer
        empty_polls = 0
        while True:
            fetched = await fetch_decoded(consumer, tp, expected="ConfigEvent", reader="config-follower",
                                          timeout_ms=200, max_records=500)
            for record, event in fetched.decoded:
                if not self._owned(record):
                    continue
                try:
                    self.snapshot.apply(event)
                except Exception:
                    log.exception("config event at offset %s could not be applied", record.offset)
            if fetched:
                self._applied = await consumer.position(tp)
                self._advanced.set()
                self._advanced = asyncio.Event()
            # A cold start reads thousands of events in a row: let requests and heartbeats in between batches.
            await asyncio.sleep(0)
            if not self.synced.is_set():
                highwater = consumer.highwater(tp)
                position = await consumer.position(tp)
                empty_polls = 0 if fetched else empty_polls + 1
                if (highwater is not None and position >= highwater) or empty_polls >= 5:
                    self.synced.set()
                    self._advanced.set()  # reported as synced now
                    self._advanced = asyncio.Event()
