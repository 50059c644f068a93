"""Commit only what is finished.

Calls are handled concurrently and finish out of order; a partition's
committable offset is the lowest offset still in flight (or one past the
highest seen). A crash therefore redelivers every unfinished call, never skips one.
"""
from __future__ import annotations

from aiokafka import TopicPartition
from aiokafka.structs import OffsetAndMetadata

__all__ = ["OffsetTracker"]


class OffsetTracker:
    def __init__(self) -> None:
        self._in_flight: dict[TopicPartition, set[int]] = {}
        self._next: dict[TopicPartition, int] = {}
        self._committed: dict[TopicPartition, int] = {}

    def started(self, tp: TopicPartition, offset: int) -> None:
        self._in_flight.setdefault(tp, set()).add(offset)
        self._next[tp] = max(self._next.get(tp, 0), offset + 1)

    def seen(self, tp: TopicPartition, offset: int) -> bool:
        """Whether ``offset`` was already started here (a re-fetch after the loop restarted)."""
        return offset < self._next.get(tp, -1)

    def resume_from(self, tp: TopicPartition) -> int | None:
        """The first offset of ``tp`` never started here, if any was."""
        return self._next.get(tp)

    def finished(self, tp: TopicPartition, offset: int) -> None:
        self._in_flight.get(tp, set()).discard(offset)

    def committable(self) -> dict[TopicPartition, OffsetAndMetadata]:
        out = {}
        for tp, nxt in self._next.items():
            pending = self._in_flight.get(tp)
            offset = min(pending) if pending else nxt
            if offset > self._committed.get(tp, -1):
                out[tp] = OffsetAndMetadata(offset, "")
        return out

    def mark_committed(self, offsets: dict[TopicPartition, OffsetAndMetadata]) -> None:
        for tp, om in offsets.items():
            self._committed[tp] = om.offset

    def forget(self, partitions: set[TopicPartition]) -> None:
        """Drop revoked partitions: their new owner starts from the last commit."""
        for tp in partitions:
            self._in_flight.pop(tp, None)
            self._next.pop(tp, None)
            self._committed.pop(tp, None)
