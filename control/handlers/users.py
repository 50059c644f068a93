"""Users of an organisation: /api/v1/orgs/{org}/users[/{user}].

An e-mail is unique inside an organisation only: creating a user whose e-mail has an account in
another organisation answers 201 like any other creation (a separate account), so an org admin never
learns that the e-mail exists elsewhere. The last enabled org admin of an organisation cannot be
removed, demoted or disabled (409 ``last_admin``), by anyone, itself included.
"""
from __future__ import annotations

import uuid

import asyncpg
from aiohttp import web

from control.auth import hash_password, revocation_instant, revoke_user_tokens
from control.handlers.common import body, org_for, record, reply, state
from control.handlers.paging import one_page, page_query
from control.rbac import ORG_ADMIN
from control.store.users import (
    count_enabled_admins,
    delete_user,
    get_user,
    insert_user,
    list_users,
    update_user,
    user_view,
)
from control.validation import is_uuid
from control.versions import check_if_match
from core.errors import Conflict, FieldError, NotFound

__all__ = ["routes"]


async def _user(conn: asyncpg.Connection, request: web.Request, org_id: str, *, lock: bool = False) -> asyncpg.Record:
    ref = request.match_info["user"]
    row = await get_user(conn, ref, org_id, for_update=lock) if is_uuid(ref) else None
    if row is None:
        raise NotFound(f"user {ref!r} not found")
    return row


async def create(request: web.Request) -> web.Response:
    data = await body(request, "UserCreate")
    st = state(request)
    async with st.db.acquire() as conn:
        org = await org_for(conn, request, write=True)
    password_hash = await hash_password(data["password"], st.settings.bcrypt_rounds)
    async with st.db.acquire() as conn, conn.transaction():
        org = await org_for(conn, request, write=True, lock=True)
        try:
            async with conn.transaction():
                row = await insert_user(conn, str(uuid.uuid4()), str(org["id"]), data["email"].lower(),
                                        password_hash, data["role"])
        except asyncpg.UniqueViolationError:
            # Only an account of this same organisation clashes, which its admins can list anyway.
            raise Conflict("a user with this email exists", code="email_taken",
                           fields=[FieldError("email", "is taken")]) from None
        user = user_view(row)
        await record(conn, request, action="create", resource_type="user", resource_id=user["id"],
                     org_id=user["org_id"], before=None, after=user, events=[])
    return reply(user, status=201, version=user["version"])


async def list_(request: web.Request) -> web.Response:
    limit, after = page_query(request)
    async with state(request).db.acquire() as conn:
        org = await org_for(conn, request)
        rows, next_cursor = one_page(await list_users(conn, str(org["id"]), limit + 1, after), limit)
    return reply({"items": [user_view(r) for r in rows], "next_cursor": next_cursor})


async def get(request: web.Request) -> web.Response:
    async with state(request).db.acquire() as conn:
        org = await org_for(conn, request)
        user = user_view(await _user(conn, request, str(org["id"])))
    return reply(user, version=user["version"])


async def _keep_an_admin(conn: asyncpg.Connection, user: dict, *, role: str, enabled: bool) -> None:
    """409 ``last_admin`` when ``user`` is its organisation's last enabled org admin and would stop
    being one (the caller holds the organisation's row lock, so two such changes cannot both pass)."""
    if user["role"] != ORG_ADMIN or not user["enabled"] or (role == ORG_ADMIN and enabled):
        return
    if await count_enabled_admins(conn, user["org_id"], except_id=user["id"]) == 0:
        raise Conflict("the organisation's last admin cannot be removed, demoted or disabled", code="last_admin")


async def patch(request: web.Request) -> web.Response:
    data = await body(request, "UserUpdate")
    st = state(request)
    new_hash = await hash_password(data["password"], st.settings.bcrypt_rounds) if "password" in data else None
    async with st.db.acquire() as conn, conn.transaction():
        org = await org_for(conn, request, write=True, lock=True)
        before = user_view(await _user(conn, request, str(org["id"]), lock=True))
        check_if_match(request.headers.get("If-Match"), before["version"])
        # A new password, or disabling, ends the user's sessions: enabling again must not revive a stolen token.
        disabling = before["enabled"] and data.get("enabled") is False
        not_before = revocation_instant() if new_hash or disabling else None
        role = data.get("role", before["role"])
        await _keep_an_admin(conn, before, role=role, enabled=data.get("enabled", before["enabled"]))
        after = user_view(await update_user(conn, str(org["id"]), before["id"], role, new_hash,
                                            data.get("enabled"), not_before))
        # The audit row says the password changed, never what it is.
        audit_after = dict(after, password_changed=True) if new_hash else after
        await record(conn, request, action="update", resource_type="user", resource_id=after["id"],
                     org_id=after["org_id"], before=before, after=audit_after, events=[])
    if not_before is not None:
        await revoke_user_tokens(st.redis, st.settings, after["id"], not_before)
    return reply(after, version=after["version"])


async def delete(request: web.Request) -> web.Response:
    async with state(request).db.acquire() as conn, conn.transaction():
        org = await org_for(conn, request, write=True, lock=True)
        before = user_view(await _user(conn, request, str(org["id"]), lock=True))
        check_if_match(request.headers.get("If-Match"), before["version"])
        await _keep_an_admin(conn, before, role="", enabled=False)
        await delete_user(conn, str(org["id"]), before["id"])
        await record(conn, request, action="delete", resource_type="user", resource_id=before["id"],
                     org_id=before["org_id"], before=before, after=None, events=[])
    return web.Response(status=204)


def routes() -> list[web.RouteDef]:
    base = "/api/v1/orgs/{org}/users"
    return [
        web.post(base, create),
        web.get(base, list_, allow_head=False),
        web.get(base + "/{user}", get, allow_head=False),
        web.patch(base + "/{user}", patch),
        web.delete(base + "/{user}", delete),
    ]
