"""Only finished calls are committed."""
from __future__ import annotations

from aiokafka import TopicPartition
from hypothesis import given, strategies as st

from egress.offsets import OffsetTracker

TP = TopicPartition("t", 0)


@given(st.permutations(list(range(30))), st.integers(min_value=0, max_value=30))
def test_commit_never_passes_an_unfinished_offset(order: list[int], finished_count: int) -> None:
    tracker = OffsetTracker()
    for offset in range(30):
        tracker.started(TP, offset)
    done = set(order[:finished_count])
    for offset in done:
        tracker.finished(TP, offset)
    commit = tracker.committable().get(TP)
    unfinished = set(range(30)) - done
    expected = min(unfinished) if unfinished else 30
    assert commit is not None and commit.offset == expected
    # Everything below the committed offset is finished.
    assert all(o in done for o in range(commit.offset))
