"""The audit log: insert and query. The table refuses UPDATE, DELETE and
TRUNCATE by trigger (migration 001), whoever asks."""
from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg

__all__ = ["AuditFilter", "AuditEntry", "insert_audit", "query_audit", "audit_view"]


@dataclass(frozen=True)
class AuditEntry:
    actor_id: str | None
    actor_email: str | None
    org_id: str | None
    action: str
    resource_type: str
    resource_id: str
    before: dict[str, Any] | None
    after: dict[str, Any] | None
    request_id: str | None


@dataclass(frozen=True)
class AuditFilter:
    org_id: str | None = None
    actor: str | None = None  # user id or email
    resource_type: str | None = None
    resource_id: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    before_id: int | None = None  # pagination cursor: entries older than this id
    limit: int = 100


async def insert_audit(conn: asyncpg.Connection, e: AuditEntry) -> int:
    return int(await conn.fetchval(
        "INSERT INTO audit_log (actor_id, actor_email, org_id, action, resource_type, resource_id, before, after,"
        " request_id) VALUES ($1, $2, $3, $4, $5, $6, $7::jsonb, $8::jsonb, $9) RETURNING id",
        e.actor_id, e.actor_email, e.org_id, e.action, e.resource_type, e.resource_id,
        None if e.before is None else json.dumps(e.before, default=str),
        None if e.after is None else json.dumps(e.after, default=str), e.request_id))


async def query_audit(conn: asyncpg.Connection, f: AuditFilter) -> list[asyncpg.Record]:
    """Newest first."""
    where, args = [], []  # type: list[str], list[Any]

    def add(clause: str, value: Any) -> None:
        args.append(value)
        where.append(clause.replace("?", f"${len(args)}"))

    if f.org_id is not None:
        add("org_id = ?::uuid", f.org_id)
    if f.actor is not None:
        args.append(f.actor)
        where.append(f"(actor_id::text = ${len(args)} OR lower(actor_email) = lower(${len(args)}))")
    if f.resource_type is not None:
        add("resource_type = ?", f.resource_type)
    if f.resource_id is not None:
        add("resource_id = ?", f.resource_id)
    if f.since is not None:
        add("at >= ?", f.since)
    if f.until is not None:
        add("at < ?", f.until)
    if f.before_id is not None:
        add("id < ?", f.before_id)
    args.append(f.limit)
    sql = ("SELECT id, at, actor_id, actor_email, org_id, action, resource_type, resource_id, before, after,"
           " request_id FROM audit_log" + (" WHERE " + " AND ".join(where) if where else "")
           + f" ORDER BY id DESC LIMIT ${len(args)}")
    return await conn.fetch(sql, *args)


def _json(value: Any) -> Any:
    return json.loads(value) if isinstance(value, str) else value


def audit_view(row: asyncpg.Record) -> dict[str, Any]:
    return {"id": row["id"], "at": row["at"].isoformat(),
            "actor_id": str(row["actor_id"]) if row["actor_id"] else None, "actor_email": row["actor_email"],
            "org_id": str(row["org_id"]) if row["org_id"] else None, "action": row["action"],
            "resource_type": row["resource_type"], "resource_id": row["resource_id"],
            "before": _json(row["before"]), "after": _json(row["after"]), "request_id": row["request_id"]}
