"""Has one of control's topic readers caught up with what was written before a question?

The dead-letter indexer (control/dead_letters.py) and the observe stage (control/observe/stage.py) copy
topics into PostgreSQL off the request path, so a dead letter or a request-log row appears a moment after
the call that made it was answered. Each commits its group's offsets only after its rows are written, so
the committed offsets say exactly what is in the tables, whichever control instance wrote it. A reader
has caught up with a question once, on every partition of its topics, its group's committed offset has
reached the end that partition had when the question was asked. A listing with ``?wait=`` waits for that
instead of the reader sleeping (docs/replay.md, docs/observability.md).

Only standard Kafka calls: ListOffsets (on Tansu, a fetch's high-water mark, core.kafka.partition_ends),
OffsetFetch for the group, and the topics' metadata.
"""
from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable, Mapping
from typing import Any

from aiokafka import TopicPartition
from aiokafka.errors import KafkaError

from core.errors import ServiceUnavailable
from core.kafka import make_admin, make_consumer, partition_ends, start_client, stop_consumer
from core.settings import Settings

__all__ = ["DEAD_LETTER_INDEXER", "MAX_WAITERS", "OBSERVE_STAGE", "CatchUp", "caught_up"]

# The readers, as named in errors and as their CatchUp is kept in ControlState.extras.
DEAD_LETTER_INDEXER = "dead-letter indexer"
OBSERVE_STAGE = "observe stage"
POLL_S = 0.1  # committed offsets are asked for at most this often, however many wait
MAX_WAITERS = 16  # waits at once per reader; past it, a question is answered at once without waiting


def caught_up(ends: Mapping[TopicPartition, int], committed: Mapping[TopicPartition, int | None]) -> bool:
    """Every partition's committed offset (None: nothing committed) has reached its end."""
    return all((committed.get(tp) or 0) >= end for tp, end in ends.items())


class CatchUp:
    def __init__(self, settings: Settings, group: str, reads: Callable[[str], bool], what: str) -> None:
        """``group``: the reader's consumer group (unprefixed, as given to make_consumer); ``reads``: whether
        the reader reads a topic of that name; ``what``: the reader's name (DEAD_LETTER_INDEXER...)."""
        self._settings = settings
        self._group_id = settings.group_id(group)
        self._reads = reads
        self._what = what
        self._ends: Any = None  # an assign() consumer, paused between questions
        self._offsets: Any = None  # in the reader's group but never joining it: it only asks for offsets
        self._admin: Any = None
        self._started = False
        self._connect_lock = asyncio.Lock()
        self._ends_lock = asyncio.Lock()
        self._offsets_lock = asyncio.Lock()
        self._seen: tuple[float, dict[TopicPartition, int | None]] = (0.0, {})
        self._waiters = asyncio.Semaphore(MAX_WAITERS)

    async def start(self) -> None:
        """Connects now if the broker answers, else at the first question: control starts and serves its
        API while the broker is down."""
        self._started = True
        with contextlib.suppress(KafkaError):
            await self._connect()

    async def stop(self) -> None:
        self._started = False
        await self._close(self._ends, self._offsets, self._admin)
        self._ends = self._offsets = self._admin = None

    async def _connect(self) -> None:
        async with self._connect_lock:
            if self._admin is not None:
                return
            async with contextlib.AsyncExitStack() as opened:  # what started is closed if a later one cannot
                ends = await start_client(make_consumer(self._settings, background=True))
                opened.push_async_callback(stop_consumer, ends)
                # No subscription and no assignment: it never joins the group, so it cannot take partitions
                # from the reader, and it commits nothing (make_consumer turns auto-commit off).
                offsets = await start_client(make_consumer(self._settings, background=True, group_id=self._group_id))
                opened.push_async_callback(stop_consumer, offsets)
                self._admin = await start_client(make_admin(self._settings))
                self._ends, self._offsets = ends, offsets
                opened.pop_all()

    @staticmethod
    async def _close(ends: Any, offsets: Any, admin: Any) -> None:
        for consumer in (ends, offsets):
            if consumer is not None:
                await stop_consumer(consumer)
        if admin is not None:
            await admin.close()

    async def wait(self, wait_s: float) -> bool:
        """Whether everything written to the reader's topics before now is in PostgreSQL; waits up to
        ``wait_s`` for it. 503 when the broker cannot be asked."""
        if not self._started:
            raise ServiceUnavailable("control is starting or stopping")
        try:
            await self._connect()
            ends = await self._ends_now()
            if wait_s <= 0 or self._waiters.locked():  # enough waiters already: a look, not a wait
                return caught_up(ends, await self._committed(list(ends)))
            async with self._waiters:
                deadline = time.monotonic() + wait_s
                while not caught_up(ends, await self._committed(list(ends))):
                    if time.monotonic() >= deadline:
                        return False
                    await asyncio.sleep(POLL_S)
                return True
        except KafkaError as exc:
            raise ServiceUnavailable(f"the {self._what}'s progress cannot be read from the broker: {exc}") from exc

    async def _ends_now(self) -> dict[TopicPartition, int]:
        topics = sorted(t for t in await self._admin.list_topics() if self._reads(t))
        tps = [TopicPartition(entry["topic"], p["partition"])
               for entry in (await self._admin.describe_topics(topics) if topics else [])
               if entry.get("error_code", 0) == 0 for p in entry.get("partitions", [])]
        async with self._ends_lock:  # one consumer: one assignment and its seeks at a time
            self._ends.assign(tps)
            return await partition_ends(self._settings, self._ends, tps)

    async def _committed(self, tps: list[TopicPartition]) -> dict[TopicPartition, int | None]:
        async with self._offsets_lock:  # waiters share one round of questions per POLL_S
            at, seen = self._seen
            if time.monotonic() - at >= POLL_S or not set(tps) <= seen.keys():
                values = await asyncio.gather(*(self._offsets.committed(tp) for tp in tps))
                seen = dict(zip(tps, values))
                self._seen = (time.monotonic(), seen)
            return seen
