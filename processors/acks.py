"""Acknowledge events in offset order per partition, whatever order their calls finish in.

Processors route every call as its own task, so a slow script holds back only its own call. faust
commits the first unbroken run of acknowledged offsets, but it only recognises a gap at the head of a
partition when something is already committed there. Acking each partition in order, here, means a
commit never passes a call that is still running: a crash redelivers it rather than loses it.
"""
from __future__ import annotations

from collections import deque
from collections.abc import Awaitable, Callable
from typing import Any

__all__ = ["OrderedAcks"]


class _Slot:
    __slots__ = ("done", "event")

    def __init__(self, event: Any) -> None:
        self.event = event
        self.done = False


class OrderedAcks:
    """``begin`` each event in the order it was read; ``finish`` it when its work is over."""

    def __init__(self, ack: Callable[[Any], Awaitable[Any]]) -> None:
        self._ack = ack
        self._pending: dict[Any, deque[_Slot]] = {}

    def begin(self, event: Any) -> _Slot:
        slot = _Slot(event)
        self._pending.setdefault(event.message.tp, deque()).append(slot)
        return slot

    async def finish(self, slot: _Slot) -> None:
        slot.done = True
        tp = slot.event.message.tp
        queue = self._pending.get(tp)
        if queue is None:
            return
        ready = []
        while queue and queue[0].done:  # taken all at once: no other task can ack in between
            ready.append(queue.popleft().event)
        if not queue:
            del self._pending[tp]
        for event in ready:
            await self._ack(event)

    @property
    def in_flight(self) -> int:
        return sum(len(q) for q in self._pending.values())
