"""The answer of ``GET /api/v1/config/applied`` from the instances seen (control/config_applied.py)."""
from __future__ import annotations

import time

from hypothesis import given, strategies as st

from control.config_applied import _answer
from core.instances import REQUEST_PATH, SILENT_MS, InstanceState

instances = st.lists(st.builds(
    InstanceState, service=st.sampled_from(REQUEST_PATH), instance=st.text(min_size=1, max_size=5),
    host=st.just("h"), pid=st.integers(1, 10), started_at_ms=st.just(0),
    config_offset=st.integers(0, 20), synced=st.booleans(), last_seen_ms_ago=st.integers(0, 5000)), max_size=8)


@given(instances, st.integers(0, 20), st.booleans())
def test_applied_only_when_every_service_runs_and_every_instance_is_synced_past_the_end(
        live: list[InstanceState], target: int, relayed: bool) -> None:
    answer = _answer(target if relayed else None, live, time.monotonic(), relayed=relayed)
    everyone_there = {s.service for s in live} == set(REQUEST_PATH)
    everyone_past = all(s.synced and s.config_offset >= target for s in live)
    assert answer["applied"] is (relayed and everyone_there and everyone_past)
    assert answer["missing"] == [name for name in REQUEST_PATH if name not in {s.service for s in live}]
    for name in REQUEST_PATH:
        mine = [s for s in live if s.service == name]
        assert answer["services"][name]["instances"] == len(mine)
        expected = sum(1 for s in mine if s.synced and s.config_offset >= target) if relayed else 0
        assert answer["services"][name]["applied"] == expected
        # Silent: behind and not reporting for over SILENT_MS; never one that has applied.
        behind = [s for s in mine if not (relayed and s.synced and s.config_offset >= target)]
        assert answer["services"][name]["silent"] == sum(1 for s in behind if s.last_seen_ms_ago > SILENT_MS)


def test_an_instance_not_yet_synced_is_behind_even_at_the_end() -> None:
    live = [InstanceState(name, name, "h", 1, 0, 5, name != "egress") for name in REQUEST_PATH]
    answer = _answer(5, live, time.monotonic(), relayed=True)
    assert answer["applied"] is False and answer["services"]["egress"] == {"instances": 1, "applied": 0, "silent": 0}
