"""Account security for global admins and org admins:

- ``GET /api/v1/security-events``: failed logins, blocks and other violations (global admins);
- ``GET/POST /api/v1/admins``, ``PATCH /api/v1/admins/{id}``, ``POST /api/v1/admins/{id}/password``:
  the global admins, managed by one another;
- ``GET /api/v1/usage`` (global admins) and ``GET /api/v1/orgs/{org}/usage`` (its admins): requests
  per user and organisation per day.
"""
from __future__ import annotations

import re
import secrets
import uuid
from datetime import date
from typing import Any

import asyncpg
from aiohttp import web

from control.auth import hash_password, revocation_instant, revoke_user_tokens
from control.filters import param_errors
from control.handlers.common import body, org_for, principal, record, reply, state
from control.handlers.paging import one_page, page_query
from control.rbac import GLOBAL_ADMIN
from control.store.orgs import find_org
from control.store.users import (
    count_enabled_admins,
    get_user,
    insert_user,
    list_global_admins,
    set_enabled,
    set_password,
    user_view,
)
from control.usage import org_usage, today, usage_of_day
from control.validation import is_uuid, raise_if
from control.versions import check_if_match
from core.errors import Conflict, FieldError, Forbidden, NotFound
from core.security import list_security_events

__all__ = ["routes"]

_STREAM_ID = re.compile(r"^[0-9]{1,20}-[0-9]{1,20}$")
MAX_EVENTS_PAGE = 1000
# Serialises changes to the set of global admins (shared with control.admin's start-up).
_ADMINS_LOCK = "SELECT pg_advisory_xact_lock(hashtext(current_schema() || ':junction-admin'))"


def _page_limit(raw: str | None, errors: list[FieldError]) -> int:
    if raw is None:
        return 100
    if not raw.isascii() or not raw.isdigit() or len(raw) > 4 or not 1 <= int(raw) <= MAX_EVENTS_PAGE:
        errors.append(FieldError("limit", f"must be an integer from 1 to {MAX_EVENTS_PAGE}"))
        return 0
    return int(raw)


async def security_events(request: web.Request) -> web.Response:
    """Newest first; ``org`` (slug or id) and ``kind`` filter, ``limit``/``cursor`` page."""
    principal(request).require_global_admin()
    st = state(request)
    q = request.query
    errors = param_errors(q, ("org", "kind", "limit", "cursor"))
    limit = _page_limit(q.get("limit"), errors)
    cursor = q.get("cursor")
    if cursor is not None and not _STREAM_ID.match(cursor):
        errors.append(FieldError("cursor", "is not a next_cursor this list gave"))
    raise_if(errors)
    org = q.get("org")
    orgs: set[str] = set()
    if org:
        async with st.db.acquire() as conn:
            row = await find_org(conn, org)
        # Control's events name the organisation by id, ingress's (auth_failure, source_blocked) by slug.
        orgs = {str(row["id"]), str(row["slug"])} if row else {org}
    events, next_cursor = await list_security_events(st.redis, st.settings, limit=limit, before=cursor,
                                                     org=orgs or None, kind=q.get("kind") or None)
    return reply({"items": [e.to_json() for e in events], "next_cursor": next_cursor})


async def _admin(conn: asyncpg.Connection, request: web.Request, *, lock: bool = False) -> asyncpg.Record:
    ref = request.match_info["id"]
    row = await get_user(conn, ref, for_update=lock) if is_uuid(ref) else None
    if row is None or row["role"] != GLOBAL_ADMIN:
        raise NotFound(f"global admin {ref!r} not found")
    return row


def _new_password(data: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """The password given, or a generated one, which the answer shows this once."""
    if "password" in data:
        return data["password"], {}
    generated = secrets.token_urlsafe(12)
    return generated, {"generated_password": generated}


async def list_admins(request: web.Request) -> web.Response:
    principal(request).require_global_admin()
    limit, after = page_query(request)
    async with state(request).db.acquire() as conn:
        rows, next_cursor = one_page(await list_global_admins(conn, limit + 1, after), limit)
    return reply({"items": [user_view(r) for r in rows], "next_cursor": next_cursor})


async def create_admin(request: web.Request) -> web.Response:
    principal(request).require_global_admin()
    data = await body(request, "AdminCreate")
    st = state(request)
    password, shown = _new_password(data)
    password_hash = await hash_password(password, st.settings.bcrypt_rounds)
    async with st.db.acquire() as conn, conn.transaction():
        await conn.execute(_ADMINS_LOCK)
        try:
            async with conn.transaction():
                row = await insert_user(conn, str(uuid.uuid4()), None, data["email"].lower(), password_hash, GLOBAL_ADMIN)
        except asyncpg.UniqueViolationError:
            raise Conflict("a global admin with this email exists", code="email_taken",
                           fields=[FieldError("email", "is taken")]) from None
        user = user_view(row)
        await record(conn, request, action="create", resource_type="user", resource_id=user["id"], org_id=None,
                     before=None, after=user, events=[])
    return reply({**user, **shown}, status=201, version=user["version"])


async def update_admin(request: web.Request) -> web.Response:
    """``enabled`` only. Nobody disables themselves, and the last enabled global admin stays."""
    p = principal(request)
    p.require_global_admin()
    data = await body(request, "AdminUpdate")
    async with state(request).db.acquire() as conn, conn.transaction():
        await conn.execute(_ADMINS_LOCK)
        before = user_view(await _admin(conn, request, lock=True))
        check_if_match(request.headers.get("If-Match"), before["version"])
        if not data["enabled"] and before["enabled"]:
            if before["id"] == p.user_id:
                raise Forbidden("a global admin cannot disable itself", code="cannot_disable_self")
            if await count_enabled_admins(conn, None, except_id=before["id"]) == 0:
                raise Conflict("the last enabled global admin cannot be disabled", code="last_admin")
        # Disabling ends the admin's sessions: enabling again must not revive a stolen token.
        not_before = revocation_instant() if before["enabled"] and not data["enabled"] else None
        after = user_view(await set_enabled(conn, before["id"], data["enabled"], not_before))
        await record(conn, request, action="update", resource_type="user", resource_id=after["id"], org_id=None,
                     before=before, after=after, events=[])
    if not_before is not None:
        await revoke_user_tokens(state(request).redis, state(request).settings, after["id"], not_before)
    return reply(after, version=after["version"])


async def reset_admin_password(request: web.Request) -> web.Response:
    """Another global admin's password (one's own: POST /api/v1/me/password, which asks for the
    current one). The admin's tokens are revoked."""
    p = principal(request)
    p.require_global_admin()
    data = await body(request, "PasswordReset")
    st = state(request)
    if request.match_info["id"] == p.user_id:
        raise Forbidden("change your own password with POST /api/v1/me/password", code="own_password")
    password, shown = _new_password(data)
    new_hash = await hash_password(password, st.settings.bcrypt_rounds)
    not_before = revocation_instant()
    async with st.db.acquire() as conn, conn.transaction():
        before = user_view(await _admin(conn, request, lock=True))
        after = user_view(await set_password(conn, before["id"], new_hash, not_before))
        await record(conn, request, action="update", resource_type="user", resource_id=after["id"], org_id=None,
                     before=before, after=dict(after, password_changed=True), events=[])
    await revoke_user_tokens(st.redis, st.settings, after["id"], not_before)
    return reply({**after, **shown}, version=after["version"])


def _day(request: web.Request) -> date:
    raw = request.query.get("day")
    errors = param_errors(request.query, ("day",))
    day = today()
    if raw is not None:
        try:
            day = date.fromisoformat(raw)
        except ValueError:
            errors.append(FieldError("day", "must be a date, YYYY-MM-DD"))
    raise_if(errors)
    return day


async def usage(request: web.Request) -> web.Response:
    principal(request).require_global_admin()
    st = state(request)
    return reply(await usage_of_day(st.redis, st.settings, _day(request)))


async def usage_of_org(request: web.Request) -> web.Response:
    st = state(request)
    day = _day(request)
    async with st.db.acquire() as conn:
        org = await org_for(conn, request, write=True)  # admins of the organisation; viewers 403
    return reply(await org_usage(st.redis, st.settings, day, str(org["id"])))


def routes() -> list[web.RouteDef]:
    return [
        web.get("/api/v1/security-events", security_events, allow_head=False),
        web.get("/api/v1/admins", list_admins, allow_head=False),
        web.post("/api/v1/admins", create_admin),
        web.patch("/api/v1/admins/{id}", update_admin),
        web.post("/api/v1/admins/{id}/password", reset_admin_password),
        web.get("/api/v1/usage", usage, allow_head=False),
        web.get("/api/v1/orgs/{org}/usage", usage_of_org, allow_head=False),
    ]
