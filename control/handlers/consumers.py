"""Consumers and their credentials: /api/v1/orgs/{org}/consumers.

A consumer is one of an organisation's callers. It is versioned like APIs and
connectors; every change of it or of its credentials (API keys, a basic
username and password, OAuth clients) writes its next version, an audit row
and its config event in one transaction, under the organisation's row lock.
Org admins of the organisation and global admins only: viewers get 403, other
organisations 404.

A new API key or client secret is answered once and kept only as its SHA-256;
the consumer's content, versions and audit rows hold ids and prefixes, never
a secret or a hash.
"""
from __future__ import annotations

import hashlib
import secrets
import uuid
from datetime import datetime, timezone
from typing import Any

import asyncpg
from aiohttp import web

from control.auth import hash_password
from control.documents import consumer_event
from control.handlers.common import body, check_put, optional_body, org_for, principal, put_data, record, reply, state
from control.handlers.paging import one_page, tagged_page_query
from control.handlers.resources import check_count_quota
from control.store import consumers as store
from control.store.consumers import CONSUMER
from control.store.resources import resource_view, version_view, with_tags
from control.validation import check_quota, is_uuid, raise_if
from control.versions import check_if_match, diff
from core.errors import Conflict, FieldError, InvalidInput, NotFound

__all__ = ["KEY_PREFIX_LEN", "hash_secret", "new_api_key", "routes"]

KEY_PREFIX_LEN = 11  # "jk_" and 8 characters: enough to tell keys apart, far too few to guess the rest
MAX_KEYS = 100  # per consumer: the config document carries them all
MAX_CLIENTS = 100


def new_api_key() -> str:
    return "jk_" + secrets.token_urlsafe(32)


def hash_secret(secret: str) -> str:
    """Hex SHA-256: enough for 256 random bits (no salt, no stretching needed),
    and what the request path computes to look a credential up."""
    return hashlib.sha256(secret.encode()).hexdigest()


async def _consumer(conn: asyncpg.Connection, org_id: str, ref: str, *, lock: bool = False) -> asyncpg.Record:
    row = await CONSUMER.find(conn, org_id, ref, for_update=lock)
    if row is None:
        raise NotFound(f"consumer {ref!r} not found")
    return row


async def _check_name(conn: asyncpg.Connection, org_id: str, name: str, id_: str | None) -> None:
    if await CONSUMER.name_taken(conn, org_id, name, id_):
        raise Conflict(f"a consumer named {name!r} exists in this organisation", code="name_taken",
                       fields=[FieldError("name", "is taken")])


async def _locked(conn: asyncpg.Connection, request: web.Request) -> tuple[asyncpg.Record, dict[str, Any]]:
    """The organisation (locked: writes inside it are serialised) and the
    consumer's current view, once the caller's If-Match agrees with it."""
    org = await org_for(conn, request, write=True, lock=True)
    row = await _consumer(conn, str(org["id"]), request.match_info["id"], lock=True)
    before = resource_view(row, org["slug"])
    check_if_match(request.headers.get("If-Match"), before["version"])
    return org, before


async def _save(conn: asyncpg.Connection, request: web.Request, org: asyncpg.Record, before: dict[str, Any] | None,
                id_: str, fields: dict[str, Any], action: str) -> dict[str, Any]:
    """Write the next version (name, enabled, tags, rate limit and the credentials as they
    are now), its audit row and its config event."""
    org_id = str(org["id"])
    content = {**with_tags({k: fields[k] for k in ("name", "enabled", "tags", "rate_limit") if k in fields}),
               **await store.credential_summary(conn, org_id, id_)}
    content.setdefault("enabled", True)
    content.setdefault("rate_limit", None)
    row = await CONSUMER.write(conn, org_id, id_, before["version"] + 1 if before else 1, content,
                               principal(request).user_id)
    after = resource_view(row, org["slug"])
    hashes = (await store.credential_hashes(conn, org_id, id_)).get(id_)
    await record(conn, request, action=action, resource_type=CONSUMER.name, resource_id=id_, org_id=org_id,
                 before=before, after=after, events=[consumer_event(after, hashes)])
    return after


# -- the consumer -----------------------------------------------------------------
async def create(request: web.Request) -> web.Response:
    data = await body(request, "ConsumerCreate")
    async with state(request).db.acquire() as conn, conn.transaction():
        org = await org_for(conn, request, write=True, lock=True)
        await _check_name(conn, str(org["id"]), data["name"], None)
        await check_count_quota(conn, request, CONSUMER, str(org["id"]), "consumers")
        after = await _save(conn, request, org, None, str(uuid.uuid4()), data, "create")
    return reply(after, status=201, version=after["version"])


async def list_(request: web.Request) -> web.Response:
    limit, after, tags = tagged_page_query(request)
    async with state(request).db.acquire() as conn:
        org = await org_for(conn, request, write=True)
        rows, next_cursor = one_page(await CONSUMER.page(conn, str(org["id"]), limit + 1, after, tags), limit)
    return reply({"items": [resource_view(r, org["slug"]) for r in rows], "next_cursor": next_cursor})


async def get(request: web.Request) -> web.Response:
    async with state(request).db.acquire() as conn:
        org = await org_for(conn, request, write=True)
        view = resource_view(await _consumer(conn, str(org["id"]), request.match_info["id"]), org["slug"])
    return reply(view, version=view["version"])


async def patch(request: web.Request) -> web.Response:
    data = await body(request, "ConsumerUpdate")
    async with state(request).db.acquire() as conn, conn.transaction():
        org, before = await _locked(conn, request)
        merged = {"name": data.get("name", before["name"]), "enabled": data.get("enabled", before["enabled"]),
                  "tags": sorted(data.get("tags", before["tags"])),
                  "rate_limit": data.get("rate_limit", before.get("rate_limit"))}
        if all(merged[k] == before.get(k) for k in merged):
            return reply(before, version=before["version"])
        await _check_name(conn, str(org["id"]), merged["name"], before["id"])
        after = await _save(conn, request, org, before, before["id"], merged, "update")
    return reply(after, version=after["version"])


async def put(request: web.Request) -> web.Response:
    """Set a consumer's name, enabled, tags and rate limit, or create it under the name in the path (as Kong's PUT
    /consumers/{username}); its credentials are not in the body, and stay as they are."""
    ref = request.match_info["id"]
    raw = await put_data(request)
    async with state(request).db.acquire() as conn, conn.transaction():
        org = await org_for(conn, request, write=True, lock=True)
        org_id = str(org["id"])
        row = await CONSUMER.find(conn, org_id, ref, for_update=True)
        data = check_put(request, raw, "ConsumerCreate", ref, row, "consumer")
        fields = {"name": data["name"], "enabled": data.get("enabled", True), "tags": sorted(data.get("tags", [])),
                  "rate_limit": data.get("rate_limit")}
        if row is None:
            await _check_name(conn, org_id, fields["name"], None)
            await check_count_quota(conn, request, CONSUMER, org_id, "consumers")
            after = await _save(conn, request, org, None, str(uuid.uuid4()), fields, "create")
            return reply(after, status=201, version=after["version"])
        before = resource_view(row, org["slug"])
        check_if_match(request.headers.get("If-Match"), before["version"])
        if all(fields[k] == before.get(k) for k in fields):
            return reply(before, version=before["version"])
        await _check_name(conn, org_id, fields["name"], before["id"])
        after = await _save(conn, request, org, before, before["id"], fields, "update")
    return reply(after, version=after["version"])


async def delete(request: web.Request) -> web.Response:
    async with state(request).db.acquire() as conn, conn.transaction():
        org, before = await _locked(conn, request)
        users = await conn.fetch("SELECT id FROM apis WHERE org_id = $1 AND content->'auth'->'consumers' ? $2",
                                 org["id"], before["id"])
        if users:
            raise Conflict("APIs allow this consumer by id; remove it from their auth.consumers first",
                           code="consumer_in_use", extra={"apis": [str(r["id"]) for r in users]})
        await CONSUMER.delete(conn, str(org["id"]), before["id"])
        await record(conn, request, action="delete", resource_type=CONSUMER.name, resource_id=before["id"],
                     org_id=str(org["id"]), before=before, after=None, events=[consumer_event(before, None, "delete")])
    return web.Response(status=204)


# -- versions -----------------------------------------------------------------------
def _number(raw: str, name: str) -> int:
    if not raw.isdigit() or len(raw) > 9 or int(raw) < 1:
        raise InvalidInput(f"{name} must be a positive integer", fields=[FieldError(name, "must be a positive integer")])
    return int(raw)


async def _version(conn: asyncpg.Connection, org_id: str, id_: str, n: int) -> dict[str, Any]:
    row = await CONSUMER.get_version(conn, org_id, id_, n)
    if row is None:
        raise NotFound(f"version {n} not found", code="version_not_found")
    return dict(version_view(row), id=id_)


async def versions(request: web.Request) -> web.Response:
    async with state(request).db.acquire() as conn:
        org = await org_for(conn, request, write=True)
        row = await _consumer(conn, str(org["id"]), request.match_info["id"])
        rows = await CONSUMER.list_versions(conn, str(org["id"]), str(row["id"]))
    return reply({"items": [dict(version_view(r), id=str(row["id"])) for r in rows]})


async def version(request: web.Request) -> web.Response:
    n = _number(request.match_info["n"], "n")
    async with state(request).db.acquire() as conn:
        org = await org_for(conn, request, write=True)
        row = await _consumer(conn, str(org["id"]), request.match_info["id"])
        return reply(await _version(conn, str(org["id"]), str(row["id"]), n))


async def version_diff(request: web.Request) -> web.Response:
    a, b = _number(request.match_info["a"], "a"), _number(request.match_info["b"], "b")
    async with state(request).db.acquire() as conn:
        org = await org_for(conn, request, write=True)
        id_ = str((await _consumer(conn, str(org["id"]), request.match_info["id"]))["id"])
        va, vb = await _version(conn, str(org["id"]), id_, a), await _version(conn, str(org["id"]), id_, b)
    return reply({"id": id_, "from": a, "to": b, "changes": diff(va["content"], vb["content"])})


# -- API keys -----------------------------------------------------------------------
def _expiry(raw: str | None) -> datetime | None:
    if raw is None:
        return None
    try:
        at = datetime.fromisoformat(raw)
    except ValueError:
        at = None
    problem = ("must be an RFC 3339 date-time" if at is None else "must carry a time zone (Z or +hh:mm)"
               if at.tzinfo is None else "must be in the future" if at <= datetime.now(timezone.utc) else None)
    raise_if([FieldError("expires_at", problem)] if problem else [])
    return at


async def create_key(request: web.Request) -> web.Response:
    data = await optional_body(request, "KeyCreate")
    expires_at = _expiry(data.get("expires_at"))
    key = new_api_key()
    async with state(request).db.acquire() as conn, conn.transaction():
        org, before = await _locked(conn, request)
        org_id = str(org["id"])
        check_quota("keys", "keys", await store.count_keys(conn, org_id, before["id"]) + 1, MAX_KEYS,
                    "the consumer has as many keys as it may")
        row = await store.insert_key(conn, org_id, before["id"], str(uuid.uuid4()), key[:KEY_PREFIX_LEN],
                                     hash_secret(key), expires_at)
        after = await _save(conn, request, org, before, before["id"], before, "create_key")
    view = store.key_view(row)
    return reply({"id": view["id"], "key": key, "prefix": view["prefix"], "expires_at": view["expires_at"],
                  "created_at": view["created_at"]}, status=201, version=after["version"])


async def list_keys(request: web.Request) -> web.Response:
    async with state(request).db.acquire() as conn:
        org = await org_for(conn, request, write=True)
        row = await _consumer(conn, str(org["id"]), request.match_info["id"])
        keys = await store.list_keys(conn, str(org["id"]), str(row["id"]))
    return reply({"items": [store.key_view(k) for k in keys]})


async def revoke_key(request: web.Request) -> web.Response:
    key_id = request.match_info["key_id"]
    async with state(request).db.acquire() as conn, conn.transaction():
        org, before = await _locked(conn, request)
        if not is_uuid(key_id) or not await store.delete_key(conn, str(org["id"]), before["id"], key_id):
            raise NotFound(f"key {key_id!r} not found")
        await _save(conn, request, org, before, before["id"], before, "revoke_key")
    return web.Response(status=204)


# -- basic ----------------------------------------------------------------------------
async def set_basic(request: web.Request) -> web.Response:
    data = await body(request, "BasicSet")
    async with state(request).db.acquire() as conn:
        await org_for(conn, request, write=True)  # refuse before spending a bcrypt round on a stranger
    password_hash = await hash_password(data["password"], state(request).settings.bcrypt_rounds)
    async with state(request).db.acquire() as conn, conn.transaction():
        org, before = await _locked(conn, request)
        try:
            async with conn.transaction():
                await store.set_basic(conn, str(org["id"]), before["id"], data["username"], password_hash)
        except asyncpg.UniqueViolationError:
            raise Conflict("another consumer of this organisation has this username", code="username_taken",
                           fields=[FieldError("username", "is taken")]) from None
        after = await _save(conn, request, org, before, before["id"], before, "set_basic")
    return reply(after, version=after["version"])


async def delete_basic(request: web.Request) -> web.Response:
    async with state(request).db.acquire() as conn, conn.transaction():
        org, before = await _locked(conn, request)
        if not await store.delete_basic(conn, str(org["id"]), before["id"]):
            raise NotFound("the consumer has no basic credentials")
        await _save(conn, request, org, before, before["id"], before, "delete_basic")
    return web.Response(status=204)


# -- OAuth clients ----------------------------------------------------------------------
async def create_client(request: web.Request) -> web.Response:
    data = await body(request, "OAuthClientCreate")
    scopes = list(data.get("scopes") or [])
    client_id, secret = "jc_" + secrets.token_urlsafe(16), secrets.token_urlsafe(32)
    async with state(request).db.acquire() as conn, conn.transaction():
        org, before = await _locked(conn, request)
        org_id = str(org["id"])
        check_quota("oauth_clients", "oauth_clients", await store.count_clients(conn, org_id, before["id"]) + 1,
                    MAX_CLIENTS, "the consumer has as many OAuth clients as it may")
        row = await store.insert_client(conn, org_id, before["id"], client_id, hash_secret(secret), scopes)
        after = await _save(conn, request, org, before, before["id"], before, "create_oauth_client")
    return reply({**store.client_view(row), "client_secret": secret}, status=201, version=after["version"])


async def list_clients(request: web.Request) -> web.Response:
    async with state(request).db.acquire() as conn:
        org = await org_for(conn, request, write=True)
        row = await _consumer(conn, str(org["id"]), request.match_info["id"])
        clients = await store.list_clients(conn, str(org["id"]), str(row["id"]))
    return reply({"items": [store.client_view(c) for c in clients]})


async def delete_client(request: web.Request) -> web.Response:
    client_id = request.match_info["client_id"]
    async with state(request).db.acquire() as conn, conn.transaction():
        org, before = await _locked(conn, request)
        if not await store.delete_client(conn, str(org["id"]), before["id"], client_id):
            raise NotFound(f"OAuth client {client_id!r} not found")
        await _save(conn, request, org, before, before["id"], before, "delete_oauth_client")
    return web.Response(status=204)


def routes() -> list[web.RouteDef]:
    base = "/api/v1/orgs/{org}/consumers"
    one = base + "/{id}"
    return [
        web.post(base, create),
        web.get(base, list_, allow_head=False),
        web.get(one, get, allow_head=False),
        web.put(one, put),
        web.patch(one, patch),
        web.delete(one, delete),
        web.get(one + "/versions", versions, allow_head=False),
        web.get(one + "/versions/{n}", version, allow_head=False),
        web.get(one + "/versions/{a}/diff/{b}", version_diff, allow_head=False),
        web.post(one + "/keys", create_key),
        web.get(one + "/keys", list_keys, allow_head=False),
        web.delete(one + "/keys/{key_id}", revoke_key),
        web.post(one + "/basic", set_basic),
        web.delete(one + "/basic", delete_basic),
        web.post(one + "/oauth-clients", create_client),
        web.get(one + "/oauth-clients", list_clients, allow_head=False),
        web.delete(one + "/oauth-clients/{client_id}", delete_client),
    ]
