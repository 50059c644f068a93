"""Consumers and their credentials.

A consumer is a versioned resource with the tables of connectors and APIs
(:data:`CONSUMER`). Its credentials live in their own tables and keep only
hashes: the SHA-256 of an API key or OAuth client secret, the bcrypt of a
password. :func:`credential_summary` is what people may read (versions, audit,
answers); :func:`credential_hashes` what the request path needs (the config
document), and nothing else reads a hash.
"""
from __future__ import annotations

import json
from datetime import datetime
from typing import Any

import asyncpg

from control.store.resources import Kind

__all__ = ["CONSUMER", "count_clients", "count_keys", "credential_hashes", "credential_summary", "delete_basic",
           "delete_client", "delete_key", "insert_client", "insert_key", "key_view", "list_clients", "list_keys",
           "set_basic"]

CONSUMER = Kind("consumer", "consumers", "consumer_versions", "consumer_id")

_KEY_COLS = "id, consumer_id, prefix, expires_at, last_used_at, created_at"


def _iso(at: datetime | None) -> str | None:
    return at.isoformat() if at is not None else None


def _ms(at: datetime | None) -> int | None:
    return int(at.timestamp() * 1000) if at is not None else None


def key_view(row: asyncpg.Record) -> dict[str, Any]:
    return {"id": str(row["id"]), "prefix": row["prefix"], "expires_at": _iso(row["expires_at"]),
            "last_used_at": _iso(row["last_used_at"]), "created_at": row["created_at"].isoformat()}


def client_view(row: asyncpg.Record) -> dict[str, Any]:
    return {"client_id": row["client_id"], "scopes": _scopes(row["scopes"]), "created_at": row["created_at"].isoformat()}


def _scopes(raw: Any) -> list[str]:
    return list(json.loads(raw) if isinstance(raw, str) else raw)


# -- API keys -----------------------------------------------------------------
async def insert_key(conn: asyncpg.Connection, org_id: str, consumer_id: str, key_id: str, prefix: str,
                     key_hash: str, expires_at: datetime | None) -> asyncpg.Record:
    return await conn.fetchrow(
        f"INSERT INTO consumer_keys (id, org_id, consumer_id, prefix, key_hash, expires_at)"
        f" VALUES ($1, $2, $3, $4, $5, $6) RETURNING {_KEY_COLS}",
        key_id, org_id, consumer_id, prefix, key_hash, expires_at)


async def list_keys(conn: asyncpg.Connection, org_id: str, consumer_id: str) -> list[asyncpg.Record]:
    return await conn.fetch(
        f"SELECT {_KEY_COLS} FROM consumer_keys WHERE org_id = $1 AND consumer_id = $2 ORDER BY created_at, id",
        org_id, consumer_id)


async def count_keys(conn: asyncpg.Connection, org_id: str, consumer_id: str) -> int:
    return int(await conn.fetchval(
        "SELECT count(*) FROM consumer_keys WHERE org_id = $1 AND consumer_id = $2", org_id, consumer_id))


async def delete_key(conn: asyncpg.Connection, org_id: str, consumer_id: str, key_id: str) -> bool:
    """Only a key of this consumer in this organisation; False if there is none."""
    done = await conn.execute("DELETE FROM consumer_keys WHERE org_id = $1 AND consumer_id = $2 AND id = $3",
                              org_id, consumer_id, key_id)
    return done != "DELETE 0"


# -- basic --------------------------------------------------------------------
async def set_basic(conn: asyncpg.Connection, org_id: str, consumer_id: str, username: str,
                    password_hash: str) -> None:
    """Set or replace; a username another consumer of the organisation holds
    raises asyncpg.UniqueViolationError."""
    await conn.execute(
        "INSERT INTO consumer_basic (consumer_id, org_id, username, password_hash) VALUES ($1, $2, $3, $4)"
        " ON CONFLICT (consumer_id) DO UPDATE SET username = excluded.username,"
        " password_hash = excluded.password_hash, created_at = now()",
        consumer_id, org_id, username, password_hash)


async def delete_basic(conn: asyncpg.Connection, org_id: str, consumer_id: str) -> bool:
    done = await conn.execute("DELETE FROM consumer_basic WHERE org_id = $1 AND consumer_id = $2", org_id, consumer_id)
    return done != "DELETE 0"


# -- OAuth clients ------------------------------------------------------------
async def insert_client(conn: asyncpg.Connection, org_id: str, consumer_id: str, client_id: str, secret_hash: str,
                        scopes: list[str]) -> asyncpg.Record:
    return await conn.fetchrow(
        "INSERT INTO consumer_oauth_clients (client_id, org_id, consumer_id, secret_hash, scopes)"
        " VALUES ($1, $2, $3, $4, $5::jsonb) RETURNING client_id, scopes, created_at",
        client_id, org_id, consumer_id, secret_hash, json.dumps(scopes))


async def list_clients(conn: asyncpg.Connection, org_id: str, consumer_id: str) -> list[asyncpg.Record]:
    return await conn.fetch(
        "SELECT client_id, scopes, created_at FROM consumer_oauth_clients WHERE org_id = $1 AND consumer_id = $2"
        " ORDER BY created_at, client_id", org_id, consumer_id)


async def count_clients(conn: asyncpg.Connection, org_id: str, consumer_id: str) -> int:
    return int(await conn.fetchval(
        "SELECT count(*) FROM consumer_oauth_clients WHERE org_id = $1 AND consumer_id = $2", org_id, consumer_id))


async def delete_client(conn: asyncpg.Connection, org_id: str, consumer_id: str, client_id: str) -> bool:
    done = await conn.execute(
        "DELETE FROM consumer_oauth_clients WHERE org_id = $1 AND consumer_id = $2 AND client_id = $3",
        org_id, consumer_id, client_id)
    return done != "DELETE 0"


# -- what a consumer's content and config document carry ------------------------
async def credential_summary(conn: asyncpg.Connection, org_id: str, consumer_id: str) -> dict[str, Any]:
    """The credentials without a secret or a hash: part of the consumer's content."""
    keys = await list_keys(conn, org_id, consumer_id)
    basic = await conn.fetchrow("SELECT username FROM consumer_basic WHERE org_id = $1 AND consumer_id = $2",
                                org_id, consumer_id)
    clients = await list_clients(conn, org_id, consumer_id)
    return {"keys": [{"id": str(k["id"]), "prefix": k["prefix"], "expires_at": _iso(k["expires_at"])} for k in keys],
            "basic": {"username": basic["username"]} if basic else None,
            "oauth_clients": [{"client_id": c["client_id"], "scopes": _scopes(c["scopes"])} for c in clients]}


async def credential_hashes(conn: asyncpg.Connection, org_id: str,
                            consumer_id: str | None = None) -> dict[str, dict[str, Any]]:
    """By consumer id (one, or every consumer of the organisation): the
    ``keys``, ``basic`` and ``oauth_clients`` of its config document."""
    one = " AND consumer_id = $2" if consumer_id else ""
    args: list[Any] = [org_id] + ([consumer_id] if consumer_id else [])
    out: dict[str, dict[str, Any]] = {}

    def slot(cid: Any) -> dict[str, Any]:
        return out.setdefault(str(cid), {"keys": [], "basic": None, "oauth_clients": []})

    for k in await conn.fetch(f"SELECT id, consumer_id, prefix, key_hash, expires_at FROM consumer_keys"
                              f" WHERE org_id = $1{one} ORDER BY created_at, id", *args):
        slot(k["consumer_id"])["keys"].append({"id": str(k["id"]), "prefix": k["prefix"], "hash": k["key_hash"],
                                               "expires_at_ms": _ms(k["expires_at"])})
    for b in await conn.fetch(f"SELECT consumer_id, username, password_hash FROM consumer_basic WHERE org_id = $1{one}",
                              *args):
        slot(b["consumer_id"])["basic"] = {"username": b["username"], "password_hash": b["password_hash"]}
    for c in await conn.fetch(f"SELECT consumer_id, client_id, secret_hash, scopes FROM consumer_oauth_clients"
                              f" WHERE org_id = $1{one} ORDER BY created_at, client_id", *args):
        slot(c["consumer_id"])["oauth_clients"].append({"client_id": c["client_id"], "secret_hash": c["secret_hash"],
                                                        "scopes": _scopes(c["scopes"])})
    return out
