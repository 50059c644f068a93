"""What the metrics stage does with what it cannot store: an organisation id that is none of control's
(a routes file's own name) is not measured, and a flush the database refuses for its data is given up,
so one bad record cannot hold every later call's metrics back (it would be retried forever otherwise)."""
from __future__ import annotations

import json
import logging

import asyncpg
import pytest

from core.settings import Settings
from core.snapshot import ConfigSnapshot
from control.observe import events
from control.observe.stage import ObserveStage


def _snapshot(org_id: str) -> ConfigSnapshot:
    snapshot = ConfigSnapshot()
    snapshot.apply({"kind": "org", "id": org_id, "op": "upsert",
                    "document": json.dumps({"id": org_id, "slug": "acme", "name": "acme", "version": 1})})
    return snapshot


@pytest.mark.parametrize("org_id, measured", [("5f0c4b1e-8d3a-4c2e-9b7a-2a6e1f3d9c40", True), ("bench", False), ("not-a-uuid", False)])
def test_only_org_ids_control_issued_are_measured(settings: Settings, org_id: str, measured: bool) -> None:
    partial = events.from_request({"org": "acme", "correlation_id": "c1", "method": "GET", "path": "/x", "body": b""},
                                  1_000, settings, _snapshot(org_id))
    assert ("org_id" in partial.values) is measured
    if measured:
        assert partial.values["org_id"] == org_id


async def test_a_flush_the_database_refuses_is_given_up_and_a_failing_database_retried(
    settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    stage = ObserveStage(settings, ConfigSnapshot(), db=None)  # type: ignore[arg-type]  # the steps below use none
    tries: list[str] = []

    async def refused() -> None:
        tries.append("refused" if not tries else "again")
        if len(tries) == 1:  # (a second try succeeds, so a stage that retried would show it here, not hang)
            raise asyncpg.DataError('invalid input syntax for type uuid: "bench"')

    with caplog.at_level(logging.ERROR, logger="control.observe.stage"):
        await stage._retrying("flush", refused)
    assert tries == ["refused"]  # once: the same records would fail the same way forever
    assert "not measured" in caplog.text

    attempts = 0

    async def down_then_up() -> None:
        nonlocal attempts
        attempts += 1
        if attempts < 3:
            raise OSError("connection refused")

    await stage._retrying("flush", down_then_up)
    assert attempts == 3  # a database that is away is waited for: nothing is given up
