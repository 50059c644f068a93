"""Processors run each call as its own task and ack through processors/acks.py: whatever order the calls
finish in, each partition's events are acked in offset order, each once, and never before every earlier
event of that partition has finished (else a commit could pass a call still running, and a crash lose it)."""
from __future__ import annotations

import asyncio
from dataclasses import dataclass

from hypothesis import given
from hypothesis import strategies as st

from processors.acks import OrderedAcks


@dataclass(frozen=True)
class _Message:
    tp: int
    offset: int


@dataclass(frozen=True)
class _Event:
    message: _Message


@st.composite
def _reads_and_finishes(draw: st.DrawFn) -> tuple[list[_Event], list[int]]:
    partitions = draw(st.integers(1, 3))
    counts = draw(st.lists(st.integers(0, 8), min_size=partitions, max_size=partitions))
    # Read in some interleaving of the partitions, each partition in offset order (as a consumer reads).
    cursors = [0] * partitions
    reads: list[_Event] = []
    while len(reads) < sum(counts):
        tp = draw(st.sampled_from([p for p in range(partitions) if cursors[p] < counts[p]]))
        reads.append(_Event(_Message(tp, 100 + cursors[tp])))
        cursors[tp] += 1
    order = draw(st.permutations(range(len(reads))))
    return reads, list(order)


@given(_reads_and_finishes())
def test_acks_follow_offsets_whatever_order_calls_finish_in(case: tuple[list[_Event], list[int]]) -> None:
    reads, finish_order = case
    acked: list[_Event] = []
    finished: set[_Event] = set()

    async def ack(event: _Event) -> None:
        # Never ahead of an unfinished event of the same partition read before it.
        earlier = [e for e in reads if e.message.tp == event.message.tp and e.message.offset < event.message.offset]
        assert all(e in finished for e in earlier), event
        acked.append(event)

    async def scenario() -> OrderedAcks:
        acks = OrderedAcks(ack)
        slots = [acks.begin(e) for e in reads]
        for i in finish_order:
            finished.add(reads[i])
            await acks.finish(slots[i])
        return acks

    acks = asyncio.run(scenario())
    assert sorted(acked, key=lambda e: (e.message.tp, e.message.offset)) == sorted(reads, key=lambda e: (e.message.tp, e.message.offset))
    for tp in {e.message.tp for e in reads}:
        offsets = [e.message.offset for e in acked if e.message.tp == tp]
        assert offsets == sorted(offsets)
    assert acks.in_flight == 0


def test_an_unfinished_call_holds_back_only_its_own_partition() -> None:
    acked: list[tuple[int, int]] = []

    async def ack(event: _Event) -> None:
        acked.append((event.message.tp, event.message.offset))

    async def scenario() -> None:
        acks = OrderedAcks(ack)
        slow, after_slow, other = (acks.begin(_Event(_Message(tp, off))) for tp, off in ((0, 1), (0, 2), (1, 1)))
        await acks.finish(after_slow)
        await acks.finish(other)
        assert acked == [(1, 1)]  # partition 0 waits for offset 1
        assert acks.in_flight == 2
        await acks.finish(slow)
        assert acked == [(1, 1), (0, 1), (0, 2)]

    asyncio.run(scenario())
