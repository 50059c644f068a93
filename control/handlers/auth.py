"""Logins and sessions: POST /api/v1/auth/login, POST /api/v1/auth/logout, POST /api/v1/me/password.

Failed logins count per account (the e-mail, lower-cased) and per client address; past a threshold
the login answers 429 ``login_blocked`` for a cool-down, the same answer whether the account exists
or not. Every failure and every block is a security event (never the password).
"""
from __future__ import annotations

from typing import Any

import asyncpg
from aiohttp import web

from control.auth import (
    check_password,
    hash_password,
    revocation_instant,
    revoke_token,
    revoke_user_tokens,
)
from control.handlers.common import body, principal, record, reply, state
from control.middleware import TOKEN_CLAIMS, client_address
from control.state import ControlState
from control.store.users import find_logins, get_user, set_password, user_view
from core.errors import Forbidden, RateLimited, Unauthorized
from core.security import ViolationTracker, record_security_event

__all__ = ["LoginGuard", "routes"]


class LoginGuard:
    """The failure counts and blocks of one login attempt: its account and its client address."""

    def __init__(self, st: ControlState, email: str, address: str) -> None:
        self._st = st
        self._account = ViolationTracker(st.redis, st.settings, scope="login")
        # One address is many people behind a NAT: it may fail more often than one account.
        self._address = ViolationTracker(st.redis, st.settings, scope="login")
        self._address.max_failures = st.settings.control_login_address_max_failures
        self.email = email
        self.address = address

    @property
    def _subjects(self) -> tuple[str, str]:
        return f"account:{self.email}", f"address:{self.address}"

    async def check(self) -> None:
        account, address = self._subjects
        wait = max(await self._account.blocked_for(account, source=address), await self._address.blocked_for(address))
        if wait:
            raise RateLimited("too many failed logins; try again later", code="login_blocked",
                              headers={"Retry-After": str(wait)})

    async def failed(self, org_id: str | None, via: str) -> None:
        account, address = self._subjects
        st = self._st
        await record_security_event(st.redis, st.settings, "login_failure", org=org_id, source=self.address,
                                    subject=self.email, detail={"via": via})
        blocked = [("account", s) for s in await self._account.failure(account, source=address)]
        blocked += [("address", s) for s in await self._address.failure(address)]
        for by, _ in blocked:
            tracker = self._account if by == "account" else self._address
            await record_security_event(st.redis, st.settings, "login_blocked", org=org_id, source=self.address,
                                        subject=self.email, detail={"by": by, "block_s": tracker.block_s})

    async def succeeded(self) -> None:
        # The account's count only: a working password for one account must not wash an address clean.
        await self._account.success(self._subjects[0])


async def _match(rows: list[asyncpg.Record], password: str, rounds: int) -> asyncpg.Record | None:
    """The account ``password`` opens. Every candidate is checked (no early exit), and an unknown
    e-mail checks a dummy hash of the same cost, so the time says nothing about which one matched."""
    if not rows:
        await check_password(password, None, rounds=rounds)
        return None
    found = None
    for row in rows:
        if await check_password(password, row["password_hash"], rounds=rounds) and found is None:
            found = row
    return found


async def login(request: web.Request) -> web.Response:
    data = await body(request, "LoginRequest")
    st = state(request)
    guard = LoginGuard(st, data["email"].strip().lower(), client_address(request))
    await guard.check()
    async with st.db.acquire() as conn:
        rows = await find_logins(conn, guard.email)
    user = await _match(rows, data["password"], st.settings.bcrypt_rounds)
    # A disabled account answers as a wrong password does, after the same work.
    if user is None or not user["enabled"]:
        org = rows[0]["org_id"] if len(rows) == 1 else None
        await guard.failed(str(org) if org else None, "login")
        raise Unauthorized("wrong email or password", code="invalid_credentials")
    await guard.succeeded()
    assert st.tokens is not None
    return reply(st.tokens.issue(str(user["id"]), user["email"], user["role"],
                                 str(user["org_id"]) if user["org_id"] else None))


async def logout(request: web.Request) -> web.Response:
    """Revoke the token this request presents (until it would have expired)."""
    st = state(request)
    await revoke_token(st.redis, st.settings, request[TOKEN_CLAIMS])
    return web.Response(status=204)


async def change_password(request: web.Request) -> web.Response:
    """The caller's own password, given the current one. Every earlier token of the user is revoked;
    the answer is a new token, so the caller stays logged in."""
    data = await body(request, "PasswordChange")
    st = state(request)
    p = principal(request)
    guard = LoginGuard(st, p.email.lower(), client_address(request))
    await guard.check()
    async with st.db.acquire() as conn:
        row = await get_user(conn, p.user_id, with_hash=True)
    if row is None or not await check_password(data["current_password"], row["password_hash"],
                                               rounds=st.settings.bcrypt_rounds):
        await guard.failed(p.org_id, "change_password")
        raise Forbidden("the current password is wrong", code="wrong_password")
    await guard.succeeded()
    new_hash = await hash_password(data["new_password"], st.settings.bcrypt_rounds)
    not_before = revocation_instant()
    async with st.db.acquire() as conn, conn.transaction():
        before = user_view(row)
        after = user_view(await set_password(conn, p.user_id, new_hash, not_before))
        await record(conn, request, action="update", resource_type="user", resource_id=after["id"],
                     org_id=after["org_id"], before=before, after=dict(after, password_changed=True), events=[])
    await revoke_user_tokens(st.redis, st.settings, p.user_id, not_before)
    assert st.tokens is not None
    token: dict[str, Any] = st.tokens.issue(p.user_id, p.email, p.role, p.org_id)
    return reply(token)


def routes() -> list[web.RouteDef]:
    return [web.post("/api/v1/auth/login", login), web.post("/api/v1/auth/logout", logout),
            web.post("/api/v1/me/password", change_password)]
