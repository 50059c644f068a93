"""The rule a listing's ``?wait=`` waits on (control/catch_up.py): a reader has caught up with a question
once its group's committed offset has reached, on every partition, the end it had when asked."""
from __future__ import annotations

from aiokafka import TopicPartition
from hypothesis import given, strategies as st

from control.catch_up import caught_up

tps = st.builds(TopicPartition, st.sampled_from(["t.dlq", "t.replies", "t.results.a"]), st.integers(0, 5))
ends = st.dictionaries(tps, st.integers(0, 1000), max_size=8)
committed = st.dictionaries(tps, st.none() | st.integers(0, 1000), max_size=8)


@given(ends, committed, st.integers(0, 50))
def test_committing_more_never_undoes_it(e: dict, c: dict, more: int) -> None:
    later = {tp: (v or 0) + more for tp, v in c.items()}
    if caught_up(e, c):
        assert caught_up(e, later)


@given(ends, committed, st.integers(0, 50))
def test_an_earlier_question_is_answered_by_what_answers_a_later_one(e: dict, c: dict, fewer: int) -> None:
    earlier = {tp: max(0, end - fewer) for tp, end in e.items()}
    if caught_up(e, c):
        assert caught_up(earlier, c)


@given(ends, committed)
def test_a_partition_with_records_and_nothing_committed_holds_it_back(e: dict, c: dict) -> None:
    for tp, end in e.items():
        if end > 0 and c.get(tp) is None:
            assert not caught_up(e, c)


@given(ends, committed, committed)
def test_only_the_partitions_asked_about_count(e: dict, c: dict, other: dict) -> None:
    # Offsets of partitions that had no end at the question (new ones, other topics) change nothing,
    # and nor do empty partitions.
    noise = {tp: v for tp, v in other.items() if tp not in e}
    assert caught_up(e, {**c, **noise}) is caught_up(e, c)
    assert caught_up({**e, **{tp: 0 for tp in other if tp not in e}}, c) is caught_up(e, c)


@given(ends)
def test_committed_at_every_end_is_caught_up_and_one_short_is_not(e: dict) -> None:
    assert caught_up(e, dict(e))
    for tp, end in e.items():
        if end > 0:
            assert not caught_up(e, {**e, tp: end - 1})
