"""Dead letters for the control tests: encoded as stages write them, indexed as the indexer does."""
from __future__ import annotations

import asyncio
import uuid
from typing import Any

import asyncpg

from control.dead_letters import row_of
from control.replay import read_dead_letters
from control.store.dead_letters import insert_letters
from core.errors import JunctionError
from core.messages import dead_letter, now_ms
from core.settings import Settings
from schemas import encode

__all__ = ["inbound_call", "index_letters", "letter_bytes", "wait_for_dead_letter"]


def inbound_call(org: str, **fields: Any) -> dict[str, Any]:
    return {"correlation_id": uuid.uuid4().hex, "org": org, "method": "POST", "path": "/p", "body": b'{"order": 7}',
            "deadline_ms": now_ms() + 5000, **fields}


def letter_bytes(org: str, *, stage: str = "processors", code: str = "transform_failed", api_id: str = "",
                 failed_at_ms: int | None = None, call: dict[str, Any] | None = None, details: list[str] | None = None) -> bytes:
    call = call or inbound_call(org)
    record = dead_letter({**call, "api_id": api_id}, JunctionError("it failed", code=code), stage=stage,
                         original_topic="t.requests", original=encode("InboundCall", call), details=details)
    if failed_at_ms is not None:
        record["failed_at_ms"] = failed_at_ms
    return encode("DeadLetter", record)


async def index_letters(pool: asyncpg.Pool, values: list[bytes]) -> list[str]:
    """Index ``values`` as the indexer does; their row ids, in order."""
    rows = [row_of(0, n, v) for n, v in enumerate(values)]
    async with pool.acquire() as conn:
        await insert_letters(conn, [r for r in rows if r is not None])
    return [r.id for r in rows if r is not None]


async def wait_for_dead_letter(settings: Settings, correlation_id: str, *, timeout_s: float = 30.0) -> dict[str, Any]:
    """The dead letter of the call ``correlation_id``, read off the topic once a stage wrote it."""
    for _ in range(int(timeout_s * 10)):
        letters = await read_dead_letters(settings, correlation_ids={correlation_id})
        if letters:
            return letters[0].letter
        await asyncio.sleep(0.1)
    raise AssertionError(f"no dead letter for {correlation_id}")
