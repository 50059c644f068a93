"""APIs, connectors and alert rules: versioned resources with the same shape of tables.

The current row holds the latest content; every version, the first included,
is also an immutable row in the ``*_versions`` table. A kind whose ``org_id``
may be NULL (global alert rules) matches the organisation with ``IS NOT
DISTINCT FROM``, so ``None`` names the global scope; the others keep a plain
equality, which their indexes serve.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import asyncpg

from control.filters import TagFilter
from control.store.keyset import Keyset, Position
from control.store.orgs import WRITE_LOCK
from control.validation import is_uuid

__all__ = ["ALERT_RULE", "API", "CONNECTOR", "Kind", "resource_view", "with_tags"]

_PAGE = Keyset("created_at")


@dataclass(frozen=True)
class Kind:
    name: str  # "api" or "connector", as in ConfigEvent.kind and audit rows
    table: str
    versions: str
    fk: str
    global_scope: bool = False  # rows with a NULL org_id exist: ``org_id=None`` names them

    @property
    def org_match(self) -> str:
        return "org_id IS NOT DISTINCT FROM $1::uuid" if self.global_scope else "org_id = $1"

    async def get(self, conn: asyncpg.Connection, org_id: str | None, id_: str, *, for_update: bool = False) -> asyncpg.Record | None:
        lock = WRITE_LOCK if for_update else ""
        return await conn.fetchrow(
            f"SELECT id, org_id, version, content, created_at, updated_at FROM {self.table}"
            f" WHERE {self.org_match} AND id = $2{lock}", org_id, id_)

    async def find(self, conn: asyncpg.Connection, org_id: str | None, ref: str, *,
                   for_update: bool = False) -> asyncpg.Record | None:
        """The resource a path names, by id or by name, as Kong's ``{name or id}``.

        Names are unique in an organisation, so a name is as good a key as an id, and one a person or a script
        already knows. A ref in the form of an id is tried as an id first: only a resource named like an id is
        found by name through one."""
        if "\x00" in ref:  # PostgreSQL text cannot hold NUL, so no name has one
            return None
        if is_uuid(ref):
            row = await self.get(conn, org_id, ref, for_update=for_update)
            if row is not None:
                return row
        lock = WRITE_LOCK if for_update else ""
        return await conn.fetchrow(
            f"SELECT id, org_id, version, content, created_at, updated_at FROM {self.table}"
            f" WHERE {self.org_match} AND name = $2{lock}", org_id, ref)

    async def list(self, conn: asyncpg.Connection, org_id: str | None) -> list[asyncpg.Record]:
        return await conn.fetch(
            f"SELECT id, org_id, version, content, created_at, updated_at FROM {self.table}"
            f" WHERE {self.org_match} ORDER BY created_at, name", org_id)

    async def page(self, conn: asyncpg.Connection, org_id: str | None, limit: int,
                   after: Position | None = None, tags: TagFilter | None = None) -> list[asyncpg.Record]:
        """Up to ``limit`` rows in a stable order (creation time, then id), those
        after the ``(created_at, id)`` of the previous page's last row if given,
        and with every tag (or any one, as ``tags`` says) if given."""
        args: list[Any] = [org_id]
        tagged = ""
        if tags is not None:
            args.append(list(tags.tags))
            tagged = f" AND content->'tags' {'?&' if tags.every else '?|'} ${len(args)}::text[]"
        return await conn.fetch(
            f"SELECT id, org_id, version, content, created_at, updated_at FROM {self.table}"
            f" WHERE {self.org_match}{tagged} AND {_PAGE.after(after, args)} {_PAGE.order(limit, args)}", *args)

    async def count(self, conn: asyncpg.Connection, org_id: str | None) -> int:
        return int(await conn.fetchval(f"SELECT count(*) FROM {self.table} WHERE {self.org_match}", org_id))

    async def name_taken(self, conn: asyncpg.Connection, org_id: str | None, name: str, ignore: str | None) -> bool:
        return bool(await conn.fetchval(
            f"SELECT 1 FROM {self.table} WHERE {self.org_match} AND name = $2 AND ($3::uuid IS NULL OR id <> $3::uuid)",
            org_id, name, ignore))

    async def write(self, conn: asyncpg.Connection, org_id: str | None, id_: str, version: int,
                    content: dict[str, Any], actor_id: str | None) -> asyncpg.Record:
        """Insert (version 1) or update the current row, and add the version row."""
        doc = json.dumps(content)
        extra_col, extra_val = ("connector_id", content.get("connector")) if self.name == "api" else (None, None)
        if version == 1:
            cols = "id, org_id, name, version, content" + (f", {extra_col}" if extra_col else "")
            vals = "$1, $2, $3, 1, $4::jsonb" + (", $5" if extra_col else "")
            args: list[Any] = [id_, org_id, content["name"], doc] + ([extra_val] if extra_col else [])
            row = await conn.fetchrow(
                f"INSERT INTO {self.table} ({cols}) VALUES ({vals})"
                f" RETURNING id, org_id, version, content, created_at, updated_at", *args)
        else:
            sets = "name = $3, version = $4, content = $5::jsonb, updated_at = now()" + (
                f", {extra_col} = $6" if extra_col else "")
            args = [org_id, id_, content["name"], version, doc] + ([extra_val] if extra_col else [])
            row = await conn.fetchrow(
                f"UPDATE {self.table} SET {sets} WHERE {self.org_match} AND id = $2"
                f" RETURNING id, org_id, version, content, created_at, updated_at", *args)
        await conn.execute(
            f"INSERT INTO {self.versions} ({self.fk}, org_id, version, content, created_by)"
            f" VALUES ($1, $2, $3, $4::jsonb, $5)", id_, org_id, version, doc, actor_id)
        return row

    async def delete(self, conn: asyncpg.Connection, org_id: str | None, id_: str) -> None:
        await conn.execute(f"DELETE FROM {self.table} WHERE {self.org_match} AND id = $2", org_id, id_)

    async def list_versions(self, conn: asyncpg.Connection, org_id: str | None, id_: str) -> list[asyncpg.Record]:
        return await conn.fetch(
            f"SELECT version, content, created_by, {_AUTHOR_EMAIL}, created_at FROM {self.versions}"
            f" WHERE {self.org_match} AND {self.fk} = $2 ORDER BY version", org_id, id_)

    async def get_version(self, conn: asyncpg.Connection, org_id: str | None, id_: str, version: int) -> asyncpg.Record | None:
        return await conn.fetchrow(
            f"SELECT version, content, created_by, {_AUTHOR_EMAIL}, created_at FROM {self.versions}"
            f" WHERE {self.org_match} AND {self.fk} = $2 AND version = $3", org_id, id_, version)


# Who made a version, as people know them; null once that user is deleted (the id stays).
_AUTHOR_EMAIL = "(SELECT u.email FROM users u WHERE u.id = created_by) AS created_by_email"


API = Kind("api", "apis", "api_versions", "api_id")
CONNECTOR = Kind("connector", "connectors", "connector_versions", "connector_id")
ALERT_RULE = Kind("alert_rule", "alert_rules", "alert_rule_versions", "rule_id", global_scope=True)


def content_of(row: asyncpg.Record) -> dict[str, Any]:
    content = row["content"]
    return json.loads(content) if isinstance(content, str) else dict(content)


def resource_view(row: asyncpg.Record, org_slug: str | None) -> dict[str, Any]:
    # Tags are stored only when there are some (an untagged resource's content is as it was before tags).
    return {"id": str(row["id"]), "org": org_slug, "org_id": str(row["org_id"]) if row["org_id"] else None,
            "version": row["version"], "tags": [],
            **content_of(row), "created_at": row["created_at"].isoformat(),
            "updated_at": row["updated_at"].isoformat()}


def with_tags(content: dict[str, Any]) -> dict[str, Any]:
    """``content`` with its tags as stored: sorted, and none at all rather than ``[]``, so that the same tags
    in another order, or ``[]`` on an untagged resource, are no change (no new version)."""
    tags = content.get("tags")
    rest = {k: v for k, v in content.items() if k != "tags"}
    return {**rest, "tags": sorted(tags)} if tags else rest


def version_view(row: asyncpg.Record) -> dict[str, Any]:
    return {"version": row["version"], "content": content_of(row),
            "created_by": str(row["created_by"]) if row["created_by"] else None,
            "created_by_email": row.get("created_by_email"), "created_at": row["created_at"].isoformat()}
