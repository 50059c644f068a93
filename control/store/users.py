"""Users. Password hashes never leave this module except for the login check."""
from __future__ import annotations

from datetime import datetime
from typing import Any

import asyncpg

from control.store.keyset import Keyset, Position

__all__ = ["count_enabled_admins", "delete_user", "find_login", "find_logins", "get_user", "insert_user",
           "list_global_admins", "list_users", "set_enabled", "set_password", "update_user", "user_view"]

_COLS = "id, org_id, email, role, enabled, tokens_not_before, version, created_at, updated_at"
_PAGE = Keyset("created_at")
# Global admins (no organisation) first, then the oldest account: the one an e-mail alone names.
_LOGIN_ORDER = "ORDER BY org_id IS NOT NULL, created_at, id"


def user_view(row: asyncpg.Record) -> dict[str, Any]:
    return {"id": str(row["id"]), "org_id": str(row["org_id"]) if row["org_id"] else None, "email": row["email"],
            "role": row["role"], "enabled": row["enabled"], "version": row["version"],
            "created_at": row["created_at"].isoformat(), "updated_at": row["updated_at"].isoformat()}


async def find_login(conn: asyncpg.Connection, email: str) -> asyncpg.Record | None:
    """The account an e-mail alone names (admin tooling): a global admin's, else the oldest."""
    return await conn.fetchrow(
        f"SELECT {_COLS}, password_hash FROM users WHERE lower(email) = lower($1) {_LOGIN_ORDER} LIMIT 1", email)


async def find_logins(conn: asyncpg.Connection, email: str, org_id: str | None = None) -> list[asyncpg.Record]:
    """Every account with this e-mail (one per organisation at most), or only ``org_id``'s."""
    if org_id is None:
        return await conn.fetch(
            f"SELECT {_COLS}, password_hash FROM users WHERE lower(email) = lower($1) {_LOGIN_ORDER}", email)
    return await conn.fetch(
        f"SELECT {_COLS}, password_hash FROM users WHERE lower(email) = lower($1) AND org_id = $2", email, org_id)


async def get_user(conn: asyncpg.Connection, user_id: str, org_id: str | None = None,
                   *, for_update: bool = False, with_hash: bool = False) -> asyncpg.Record | None:
    lock = " FOR UPDATE" if for_update else ""
    cols = f"{_COLS}, password_hash" if with_hash else _COLS
    if org_id is None:
        return await conn.fetchrow(f"SELECT {cols} FROM users WHERE id = $1{lock}", user_id)
    return await conn.fetchrow(f"SELECT {cols} FROM users WHERE org_id = $1 AND id = $2{lock}", org_id, user_id)


async def list_users(conn: asyncpg.Connection, org_id: str, limit: int, after: Position | None) -> list[asyncpg.Record]:
    """A page of an organisation's users, oldest first, after the ``(created_at, id)`` position."""
    args: list[Any] = [org_id]
    return await conn.fetch(f"SELECT {_COLS} FROM users WHERE org_id = $1 AND {_PAGE.after(after, args)}"
                            f" {_PAGE.order(limit, args)}", *args)


async def list_global_admins(conn: asyncpg.Connection, limit: int, after: Position | None) -> list[asyncpg.Record]:
    """A page of global admins, oldest first, after the ``(created_at, id)`` position."""
    args: list[Any] = []
    return await conn.fetch(f"SELECT {_COLS} FROM users WHERE role = 'global_admin' AND {_PAGE.after(after, args)}"
                            f" {_PAGE.order(limit, args)}", *args)


async def count_enabled_admins(conn: asyncpg.Connection, org_id: str | None, *, except_id: str) -> int:
    """Enabled admins of an organisation (``org_id`` None: global admins) other than ``except_id``."""
    if org_id is None:
        return int(await conn.fetchval(
            "SELECT count(*) FROM users WHERE role = 'global_admin' AND enabled AND id <> $1", except_id))
    return int(await conn.fetchval(
        "SELECT count(*) FROM users WHERE org_id = $1 AND role = 'org_admin' AND enabled AND id <> $2",
        org_id, except_id))


async def insert_user(conn: asyncpg.Connection, user_id: str, org_id: str | None, email: str,
                      password_hash: str, role: str) -> asyncpg.Record:
    return await conn.fetchrow(
        f"INSERT INTO users (id, org_id, email, password_hash, role) VALUES ($1, $2, $3, $4, $5) RETURNING {_COLS}",
        user_id, org_id, email, password_hash, role)


async def update_user(conn: asyncpg.Connection, org_id: str, user_id: str, role: str,
                      password_hash: str | None, enabled: bool | None = None,
                      not_before: datetime | None = None) -> asyncpg.Record:
    """``not_before`` (given with a new password) revokes the tokens issued earlier."""
    return await conn.fetchrow(
        f"UPDATE users SET role = $3, password_hash = coalesce($4, password_hash), enabled = coalesce($5, enabled),"
        f" tokens_not_before = coalesce($6, tokens_not_before), version = version + 1, updated_at = now()"
        f" WHERE org_id = $1 AND id = $2 RETURNING {_COLS}", org_id, user_id, role, password_hash, enabled, not_before)


async def set_password(conn: asyncpg.Connection, user_id: str, password_hash: str,
                       not_before: datetime | None = None) -> asyncpg.Record:
    """Any user's, global admins' included (they belong to no organisation). The tokens issued before
    ``not_before`` (default: now, by the database's clock) are revoked."""
    return await conn.fetchrow(
        f"UPDATE users SET password_hash = $2, tokens_not_before = coalesce($3, clock_timestamp()),"
        f" version = version + 1, updated_at = now() WHERE id = $1 RETURNING {_COLS}", user_id, password_hash,
        not_before)


async def set_enabled(conn: asyncpg.Connection, user_id: str, enabled: bool,
                      not_before: datetime | None = None) -> asyncpg.Record:
    """``not_before`` (given when disabling) revokes the tokens issued earlier."""
    return await conn.fetchrow(
        f"UPDATE users SET enabled = $2, tokens_not_before = coalesce($3, tokens_not_before), version = version + 1,"
        f" updated_at = now() WHERE id = $1 RETURNING {_COLS}", user_id, enabled, not_before)


async def delete_user(conn: asyncpg.Connection, org_id: str, user_id: str) -> None:
    await conn.execute("DELETE FROM users WHERE org_id = $1 AND id = $2", org_id, user_id)
