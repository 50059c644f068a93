"""The outbox: config events written in the change's transaction and relayed
to the config topic afterwards by :mod:`control.outbox`."""
from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Any

import asyncpg

__all__ = ["OutboxEvent", "enqueue", "fetch_pending", "last_id", "mark_published", "notify_channel", "pending_up_to"]


@dataclass(frozen=True)
class OutboxEvent:
    kind: str  # org, api, connector
    resource_id: str
    org_slug: str
    version: int
    op: str  # upsert or delete
    document: dict[str, Any] | None


def notify_channel(schema: str) -> str:
    # One channel per schema, so test runs sharing a database never wake each other.
    return f"junction_outbox_{schema}"[:63]


async def enqueue(conn: asyncpg.Connection, events: list[OutboxEvent], channel: str) -> None:
    if not events:
        return
    await conn.executemany(
        "INSERT INTO outbox (kind, resource_id, org_slug, version, op, document) VALUES ($1, $2, $3, $4, $5, $6)",
        [(e.kind, e.resource_id, e.org_slug, e.version, e.op,
          None if e.document is None else json.dumps(e.document)) for e in events])
    # Delivered at commit, so the relay never wakes before the rows are visible.
    await conn.execute("SELECT pg_notify($1, '')", channel)


async def fetch_pending(conn: asyncpg.Connection, limit: int) -> list[dict[str, Any]]:
    rows = await conn.fetch(
        "SELECT id, kind, resource_id, org_slug, version, op, document FROM outbox"
        " WHERE published_at IS NULL ORDER BY id LIMIT $1", limit)
    now_ms = int(time.time() * 1000)
    return [{"event_id": r["id"], "kind": r["kind"], "id": r["resource_id"], "org": r["org_slug"],
             "version": r["version"], "op": r["op"], "document": r["document"], "emitted_at_ms": now_ms}
            for r in rows]


async def mark_published(conn: asyncpg.Connection, ids: list[int]) -> None:
    await conn.execute("UPDATE outbox SET published_at = now() WHERE id = ANY($1::bigint[])", ids)


async def last_id(db: asyncpg.Pool | asyncpg.Connection) -> int:
    """The id of the latest change, published or not (0 before any)."""
    return int(await db.fetchval("SELECT coalesce(max(id), 0) FROM outbox"))


async def pending_up_to(db: asyncpg.Pool | asyncpg.Connection, up_to: int) -> bool:
    """Whether a change with an id up to ``up_to`` is not yet published."""
    return bool(await db.fetchval(
        "SELECT EXISTS (SELECT 1 FROM outbox WHERE published_at IS NULL AND id <= $1)", up_to))
