"""Users. Password hashes never leave this module except for the login check."""
from __future__ import annotations

from typing import Any

import asyncpg

__all__ = ["delete_user", "find_login", "get_user", "insert_user", "list_users", "set_password", "update_user",
           "user_view"]

_COLS = "id, org_id, email, role, version, created_at, updated_at"


def user_view(row: asyncpg.Record) -> dict[str, Any]:
    return {"id": str(row["id"]), "org_id": str(row["org_id"]) if row["org_id"] else None, "email": row["email"],
            "role": row["role"], "version": row["version"], "created_at": row["created_at"].isoformat(),
            "updated_at": row["updated_at"].isoformat()}


async def find_login(conn: asyncpg.Connection, email: str) -> asyncpg.Record | None:
    return await conn.fetchrow(
        f"SELECT {_COLS}, password_hash FROM users WHERE lower(email) = lower($1)", email)


async def get_user(conn: asyncpg.Connection, user_id: str, org_id: str | None = None,
                   *, for_update: bool = False) -> asyncpg.Record | None:
    lock = " FOR UPDATE" if for_update else ""
    if org_id is None:
        return await conn.fetchrow(f"SELECT {_COLS} FROM users WHERE id = $1{lock}", user_id)
    return await conn.fetchrow(f"SELECT {_COLS} FROM users WHERE org_id = $1 AND id = $2{lock}", org_id, user_id)


async def list_users(conn: asyncpg.Connection, org_id: str) -> list[asyncpg.Record]:
    return await conn.fetch(f"SELECT {_COLS} FROM users WHERE org_id = $1 ORDER BY created_at, email", org_id)


async def insert_user(conn: asyncpg.Connection, user_id: str, org_id: str | None, email: str,
                      password_hash: str, role: str) -> asyncpg.Record:
    return await conn.fetchrow(
        f"INSERT INTO users (id, org_id, email, password_hash, role) VALUES ($1, $2, $3, $4, $5) RETURNING {_COLS}",
        user_id, org_id, email, password_hash, role)


async def update_user(conn: asyncpg.Connection, org_id: str, user_id: str, role: str,
                      password_hash: str | None) -> asyncpg.Record:
    return await conn.fetchrow(
        f"UPDATE users SET role = $3, password_hash = coalesce($4, password_hash), version = version + 1,"
        f" updated_at = now() WHERE org_id = $1 AND id = $2 RETURNING {_COLS}", org_id, user_id, role, password_hash)


async def set_password(conn: asyncpg.Connection, user_id: str, password_hash: str) -> asyncpg.Record:
    """Any user's, global admins' included (they belong to no organisation)."""
    return await conn.fetchrow(
        f"UPDATE users SET password_hash = $2, version = version + 1, updated_at = now() WHERE id = $1"
        f" RETURNING {_COLS}", user_id, password_hash)


async def delete_user(conn: asyncpg.Connection, org_id: str, user_id: str) -> None:
    await conn.execute("DELETE FROM users WHERE org_id = $1 AND id = $2", org_id, user_id)
