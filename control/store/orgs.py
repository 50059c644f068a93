"""Organisations."""
from __future__ import annotations

from typing import Any

import asyncpg

from control.store.keyset import Keyset, Position
from control.validation import is_uuid

__all__ = ["CALLER_POLICIES", "POLICY_COLS", "delete_org", "find_org", "insert_org", "list_orgs", "lock_org", "org_view", "page_orgs", "update_org"]

_COLS = "id, slug, name, enabled, version, created_at, updated_at"
_PAGE = Keyset("created_at")
# An organisation's caller policies, defaults and additions for all of its APIs (an org admin's to set, null to
# remove), and its policy's columns: those and the quotas (control/handlers/orgs.py).
CALLER_POLICIES = ("rate_limit", "ip_restriction", "cors")
POLICY_COLS = ", ".join((*CALLER_POLICIES, "quotas"))


def org_view(row: asyncpg.Record) -> dict[str, Any]:
    return {"id": str(row["id"]), "slug": row["slug"], "name": row["name"], "enabled": row["enabled"],
            "version": row["version"], "created_at": row["created_at"].isoformat(),
            "updated_at": row["updated_at"].isoformat()}


# Writers lock rows FOR NO KEY UPDATE, as PostgreSQL's own UPDATE does: it serialises them, yet lets an
# insert that only references the row (its foreign-key check takes FOR KEY SHARE) go on. With FOR UPDATE,
# a rollback of an alert rule (organisation, then rule) and the alert evaluator (rule, then a new alert
# naming the organisation) deadlocked.
WRITE_LOCK = " FOR NO KEY UPDATE"


async def find_org(conn: asyncpg.Connection, ref: str, *, for_update: bool = False) -> asyncpg.Record | None:
    """By id (a UUID) or by slug."""
    lock = WRITE_LOCK if for_update else ""
    if "\x00" in ref:
        return None  # PostgreSQL text cannot hold NUL: no organisation is named so, and asking would fail
    if is_uuid(ref):
        return await conn.fetchrow(f"SELECT {_COLS} FROM organisations WHERE id = $1{lock}", ref)
    return await conn.fetchrow(f"SELECT {_COLS} FROM organisations WHERE slug = $1{lock}", ref)


async def lock_org(conn: asyncpg.Connection, org_id: str) -> None:
    """Serialise writes inside one organisation (route clashes, name clashes)."""
    await conn.execute(f"SELECT 1 FROM organisations WHERE id = $1{WRITE_LOCK}", org_id)


async def list_orgs(conn: asyncpg.Connection) -> list[asyncpg.Record]:
    """Every organisation, for resync (the API lists them a page at a time, see page_orgs)."""
    return await conn.fetch(f"SELECT {_COLS} FROM organisations ORDER BY created_at, slug")


async def page_orgs(conn: asyncpg.Connection, only_id: str | None, limit: int,
                    after: Position | None) -> list[asyncpg.Record]:
    """Up to ``limit`` organisations, with their policy columns, in (created_at, id) order after the
    position ``after``; ``only_id``: that one only (what an organisation's own users may list)."""
    args: list[Any] = [only_id]
    return await conn.fetch(
        f"SELECT {_COLS}, {POLICY_COLS} FROM organisations"
        f" WHERE ($1::uuid IS NULL OR id = $1::uuid) AND {_PAGE.after(after, args)} {_PAGE.order(limit, args)}", *args)


async def insert_org(conn: asyncpg.Connection, org_id: str, slug: str, name: str, enabled: bool) -> asyncpg.Record:
    return await conn.fetchrow(
        f"INSERT INTO organisations (id, slug, name, enabled) VALUES ($1, $2, $3, $4) RETURNING {_COLS}",
        org_id, slug, name, enabled)


async def update_org(conn: asyncpg.Connection, org_id: str, slug: str, name: str, enabled: bool) -> asyncpg.Record:
    return await conn.fetchrow(
        f"UPDATE organisations SET slug = $2, name = $3, enabled = $4, version = version + 1, updated_at = now()"
        f" WHERE id = $1 RETURNING {_COLS}", org_id, slug, name, enabled)


async def delete_org(conn: asyncpg.Connection, org_id: str) -> None:
    # APIs reference connectors without cascade; remove them first.
    await conn.execute("DELETE FROM apis WHERE org_id = $1", org_id)
    await conn.execute("DELETE FROM organisations WHERE id = $1", org_id)
