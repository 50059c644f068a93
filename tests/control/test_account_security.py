"""The management API's own accounts, attacked as an outsider and misused as an insider would:
login brute force (one address across many e-mails, one e-mail across many addresses), logout and
revocation, password changes, disabled users, the last admin, e-mails in other organisations, global
admins, security events, rate limits, usage counts, CORS and security headers.

Each test that blocks or limits runs its own control app (its own Redis prefix, low thresholds) on
the session's PostgreSQL, so the shared app's logins from 127.0.0.1 are never blocked.
"""
from __future__ import annotations

import asyncio
import contextlib
import json
import uuid
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import asyncpg
import pytest

from control.app import create_app
from control.state import STATE
from core.http import listening
from core.settings import InvalidConfiguration, Settings
from junction.broker import free_port
from junction.sdk import JunctionAPIError, JunctionClient
from tests.control_support import ADMIN_EMAIL, ADMIN_PASSWORD, Control

PASSWORD = "password-123"


@contextlib.asynccontextmanager
async def own_control(base: Settings, **overrides: Any) -> AsyncIterator[Control]:
    """A control app of its own: a fresh Redis prefix (counts, blocks, limits, events start empty)."""
    s = base.with_overrides(control_port=free_port(), redis_prefix=f"acct-{uuid.uuid4().hex[:8]}:", **overrides)
    app = create_app(s, relay=False, sandbox=False)
    async with listening(app, "127.0.0.1", s.control_port):  # as `junction serve control` serves it
        pool = await asyncpg.create_pool(s.database_dsn, min_size=1, max_size=2,
                                         server_settings={"search_path": s.database_schema})
        session = aiohttp.ClientSession()
        c = Control(f"http://127.0.0.1:{s.control_port}", s, session, pool, None, app)  # type: ignore[arg-type]
        try:
            c.admin_token = await c.login(ADMIN_EMAIL, ADMIN_PASSWORD)
            yield c
        finally:
            await session.close()
            await pool.close()


async def _login(c: Control, email: str, password: str, addr: str | None = None) -> Any:
    headers = {"X-Forwarded-For": addr} if addr else None
    return await c.call("POST", "/api/v1/auth/login", json_body={"email": email, "password": password},
                        headers=headers)


async def _events(c: Control, **query: str) -> list[dict[str, Any]]:
    qs = "&".join(f"{k}={v}" for k, v in query.items())
    r = await c.call("GET", f"/api/v1/security-events?{qs}", c.admin_token)
    assert r.status == 200, r.body
    return r.body["items"]


def _email() -> str:
    return f"a{uuid.uuid4().hex[:12]}@example.com"


async def test_brute_force_from_one_address_across_many_emails(control: Control) -> None:
    """One address trying many e-mails is blocked after control_login_address_max_failures, whatever
    X-Forwarded-For it sends (no trusted proxy is configured: the peer address counts)."""
    async with own_control(control.settings, security_max_failures=100, control_login_address_max_failures=5,
                           security_block_s=120) as c:
        org = await c.new_org("bf")
        user, _ = await c.new_user(org["slug"], "org_viewer")
        for i in range(5):
            r = await _login(c, _email(), f"guess-{i}", addr=f"203.0.113.{i}")
            assert r.status == 401 and r.body["code"] == "invalid_credentials", r.body
        # Blocked now, even with the right password of a real account and yet another forged address.
        r = await _login(c, user["email"], PASSWORD, addr="198.51.100.7")
        assert r.status == 429 and r.body["code"] == "login_blocked", r.body
        assert 0 < int(r.headers["Retry-After"]) <= 120
        failures = await _events(c, kind="login_failure")
        assert len(failures) == 5 and {e["source"] for e in failures} == {"127.0.0.1"}
        assert all(e["subject"].endswith("@example.com") for e in failures)
        blocked = await _events(c, kind="login_blocked")
        assert [e["detail"]["by"] for e in blocked] == ["address"]
        raw = json.dumps(failures + blocked)
        assert "guess-" not in raw and PASSWORD not in raw  # never a password


async def test_brute_force_on_one_email_from_many_addresses(control: Control) -> None:
    """Behind a trusted proxy, X-Forwarded-For names the client; one e-mail tried from many addresses
    is blocked per account, against the addresses that failed for it (its owner, elsewhere, is not locked out
    by someone who knows the e-mail), and an unknown e-mail is blocked with the very same answer."""
    async with own_control(control.settings, security_max_failures=3, control_login_address_max_failures=100,
                           control_trusted_proxies="127.0.0.1, 10.0.0.0/8") as c:
        org = await c.new_org("bf")
        user, _ = await c.new_user(org["slug"], "org_viewer")
        ghost = _email()
        answers = {}
        for email in (user["email"], ghost):
            for i in range(3):
                # The client's own first hop is a lie; the trusted proxies (127.0.0.1, 10.x) append the truth.
                r = await _login(c, email.upper(), f"wrong-{i}", addr=f"6.6.6.6, 192.0.2.{i}, 10.9.9.9")
                assert r.status == 401, r.body
            r = await _login(c, email, PASSWORD if email == user["email"] else "x", addr="192.0.2.1")
            assert r.status == 429, r.body
            answers[email] = (r.status, r.body["code"], r.body["message"], "Retry-After" in r.headers)
            # A guesser at a new address gets one try, then the block holds there too.
            assert (await _login(c, email, "wrong-again", addr="203.0.113.7")).status == 401
            assert (await _login(c, email, "wrong-more", addr="203.0.113.7")).status == 429
        assert answers[user["email"]] == answers[ghost]
        # The owner, from an address that never failed, logs in.
        assert (await _login(c, user["email"], PASSWORD, addr="198.51.100.99")).status == 200
        failures = await _events(c, kind="login_failure")
        sources = {e["source"] for e in failures if e["subject"] == user["email"]}
        # The client, not the proxy or a spoofed hop.
        assert sources == {"192.0.2.0", "192.0.2.1", "192.0.2.2", "203.0.113.7"}
        assert {e["org"] for e in failures if e["subject"] == user["email"]} == {org["id"]}
        blocked = await _events(c, kind="login_blocked")
        assert {e["subject"] for e in blocked} == {user["email"], ghost}
        assert {e["detail"]["by"] for e in blocked} == {"account"}
        # Another account from the same addresses is not blocked.
        other, _ = await c.new_user(org["slug"], "org_viewer")
        assert (await _login(c, other["email"], PASSWORD, addr="192.0.2.1")).status == 200


async def test_success_clears_the_account_count(control: Control) -> None:
    async with own_control(control.settings, security_max_failures=3, control_login_address_max_failures=100) as c:
        org = await c.new_org("ok")
        user, _ = await c.new_user(org["slug"], "org_viewer")
        for _ in range(2):
            assert (await _login(c, user["email"], "wrong-pw")).status == 401
        assert (await _login(c, user["email"], PASSWORD)).status == 200
        for _ in range(2):
            assert (await _login(c, user["email"], "wrong-pw")).status == 401
        assert (await _login(c, user["email"], PASSWORD)).status == 200
        for _ in range(3):
            assert (await _login(c, user["email"], "wrong-pw")).status == 401
        assert (await _login(c, user["email"], PASSWORD)).status == 429


async def test_logout_revokes_the_presented_token(control: Control) -> None:
    org = await control.new_org("lo")
    user, token = await control.new_user(org["slug"], "org_viewer")
    other = await control.login(user["email"], PASSWORD)
    me = f"/api/v1/orgs/{org['slug']}"
    assert (await control.call("GET", me, token)).status == 200
    r = await control.call("POST", "/api/v1/auth/logout", token)
    assert r.status == 204
    r = await control.call("GET", me, token)
    assert r.status == 401 and r.body["code"] == "token_revoked"
    assert (await control.call("POST", "/api/v1/auth/logout", token)).status == 401
    assert (await control.call("GET", me, other)).status == 200  # only that token
    # A forged token (another key) is refused as invalid, not as revoked.
    r = await control.call("GET", me, token[:-4] + ("AAAA" if not token.endswith("AAAA") else "BBBB"))
    assert r.status == 401 and r.body["code"] == "invalid_token"


async def test_own_password_change_revokes_earlier_tokens(control: Control) -> None:
    async with own_control(control.settings, security_max_failures=3, control_login_address_max_failures=100) as c:
        org = await c.new_org("pw")
        user, t1 = await c.new_user(org["slug"], "org_admin")
        t2 = await c.login(user["email"], PASSWORD)
        r = await c.call("POST", "/api/v1/me/password", t1, {"current_password": "not-it-at-all",
                                                            "new_password": "brand-new-pw-1"})
        assert r.status == 403 and r.body["code"] == "wrong_password"
        events = await _events(c, kind="login_failure")
        assert events[0]["subject"] == user["email"] and events[0]["detail"] == {"via": "change_password"}
        r = await c.call("POST", "/api/v1/me/password", t1, {"current_password": PASSWORD,
                                                            "new_password": "brand-new-pw-1"})
        assert r.status == 200, r.body
        t3 = r.body["access_token"]
        for old in (t1, t2):
            r = await c.call("GET", f"/api/v1/orgs/{org['slug']}", old)
            assert r.status == 401 and r.body["code"] == "token_revoked"
        assert (await c.call("GET", f"/api/v1/orgs/{org['slug']}", t3)).status == 200
        assert (await _login(c, user["email"], PASSWORD)).status == 401
        t4 = await c.login(user["email"], "brand-new-pw-1")
        assert (await c.call("GET", f"/api/v1/orgs/{org['slug']}", t4)).status == 200
        # Kept in PostgreSQL too: Redis losing its copy does not bring the old tokens back.
        nbf = await c.pool.fetchval("SELECT tokens_not_before FROM users WHERE id = $1", uuid.UUID(user["id"]))
        assert nbf is not None
        redis = c.app[STATE].redis
        key = c.settings.redis_key("control", "tokens-not-before", user["id"])
        assert await redis.exists(key)
        await redis.delete(key)
        r = await c.call("GET", f"/api/v1/orgs/{org['slug']}", t1)
        assert r.status == 401 and r.body["code"] == "token_revoked"
        audit = await c.pool.fetchval("SELECT after::text FROM audit_log WHERE resource_id = $1 AND action = 'update'"
                                      " ORDER BY id DESC LIMIT 1", user["id"])
        assert "password_changed" in audit and "brand-new-pw-1" not in audit


async def test_admin_password_reset_of_a_user_revokes_its_tokens(control: Control) -> None:
    org = await control.new_org("rs")
    user, token = await control.new_user(org["slug"], "org_viewer")
    r = await control.call("PATCH", f"/api/v1/orgs/{org['slug']}/users/{user['id']}", control.admin_token,
                           {"password": "reset-by-admin-1"})
    assert r.status == 200
    r = await control.call("GET", f"/api/v1/orgs/{org['slug']}", token)
    assert r.status == 401 and r.body["code"] == "token_revoked"
    fresh = await control.login(user["email"], "reset-by-admin-1")
    assert (await control.call("GET", f"/api/v1/orgs/{org['slug']}", fresh)).status == 200
    # Changing only the role revokes nothing.
    r = await control.call("PATCH", f"/api/v1/orgs/{org['slug']}/users/{user['id']}", control.admin_token,
                           {"role": "org_admin"})
    assert r.status == 200 and (await control.call("GET", f"/api/v1/orgs/{org['slug']}", fresh)).status == 200


async def test_disabled_user_cannot_log_in_and_its_tokens_stop(control: Control) -> None:
    org = await control.new_org("ds")
    _, admin_token = await control.new_user(org["slug"], "org_admin")
    user, token = await control.new_user(org["slug"], "org_viewer")
    path = f"/api/v1/orgs/{org['slug']}/users/{user['id']}"
    r = await control.call("PATCH", path, admin_token, {"enabled": False})
    assert r.status == 200 and r.body["enabled"] is False
    r = await control.call("GET", f"/api/v1/orgs/{org['slug']}", token)
    assert r.status == 401 and r.body["code"] == "user_disabled"
    r = await _login(control, user["email"], PASSWORD)
    assert r.status == 401 and r.body["code"] == "invalid_credentials"  # as a wrong password answers
    r = await control.call("PATCH", path, admin_token, {"enabled": True})
    assert r.status == 200 and r.body["enabled"] is True
    # Enabled again, the account logs in anew; a token of before the disable (perhaps stolen) stays dead.
    r = await control.call("GET", f"/api/v1/orgs/{org['slug']}", token)
    assert r.status == 401 and r.body["code"] == "token_revoked", r.body
    assert (await _login(control, user["email"], PASSWORD)).status == 200


async def test_the_last_org_admin_stays(control: Control) -> None:
    org = await control.new_org("la")
    s = org["slug"]
    admin, token = await control.new_user(s, "org_admin")
    path = f"/api/v1/orgs/{s}/users/{admin['id']}"
    for actor in (token, control.admin_token):
        for method, body in (("PATCH", {"role": "org_viewer"}), ("PATCH", {"enabled": False}), ("DELETE", None)):
            r = await control.call(method, path, actor, body)
            assert r.status == 409 and r.body["code"] == "last_admin", (method, body, r.body)
    second, second_token = await control.new_user(s, "org_admin")
    r = await control.call("PATCH", path, token, {"role": "org_viewer"})  # now one admin remains
    assert r.status == 200 and r.body["role"] == "org_viewer"
    r = await control.call("DELETE", f"/api/v1/orgs/{s}/users/{second['id']}", second_token)
    assert r.status == 409 and r.body["code"] == "last_admin"
    # Viewers come and go freely.
    r = await control.call("DELETE", path, second_token)
    assert r.status == 204


async def test_an_email_in_another_organisation_is_not_revealed(control: Control) -> None:
    """An org admin adding an e-mail that has an account elsewhere gets the answer a new e-mail gets
    (a separate account of its own organisation); only its own organisation's e-mails clash."""
    a, b = await control.new_org("ea"), await control.new_org("eb")
    existing, existing_token = await control.new_user(a["slug"], "org_viewer")
    _, b_admin = await control.new_user(b["slug"], "org_admin")
    answers = []
    for email in (existing["email"], _email()):
        r = await control.call("POST", f"/api/v1/orgs/{b['slug']}/users", b_admin,
                               {"email": email, "password": "b-password-1", "role": "org_viewer"})
        answers.append((r.status, sorted(r.body), r.body["org_id"], r.body["role"], r.body["version"]))
    assert answers[0] == answers[1] and answers[0][0] == 201
    # Each account opens with its own password, into its own organisation; the first is untouched.
    t_b = await control.login(existing["email"], "b-password-1")
    assert (await control.call("GET", f"/api/v1/orgs/{b['slug']}", t_b)).status == 200
    assert (await control.call("GET", f"/api/v1/orgs/{a['slug']}", t_b)).status == 404
    t_a = await control.login(existing["email"], PASSWORD)
    assert (await control.call("GET", f"/api/v1/orgs/{a['slug']}", t_a)).status == 200
    assert (await control.call("GET", f"/api/v1/orgs/{a['slug']}", existing_token)).status == 200
    r = await control.call("POST", f"/api/v1/orgs/{b['slug']}/users", b_admin,
                           {"email": existing["email"].upper(), "password": "b-password-2", "role": "org_viewer"})
    assert r.status == 409 and r.body["code"] == "email_taken"


async def test_org_admins_cannot_reach_global_admin_endpoints(control: Control) -> None:
    org = await control.new_org("oa")
    admin, token = await control.new_user(org["slug"], "org_admin")
    calls = [("GET", "/api/v1/admins", None), ("POST", "/api/v1/admins", {"email": _email()}),
             ("PATCH", f"/api/v1/admins/{admin['id']}", {"enabled": False}),
             ("POST", f"/api/v1/admins/{admin['id']}/password", {}),
             ("GET", "/api/v1/security-events", None), ("GET", "/api/v1/usage", None)]
    for method, path, body in calls:
        r = await control.call(method, path, token, body)
        assert r.status == 403, (method, path, r.body)
    r = await control.call("GET", "/api/v1/admins", None)
    assert r.status == 401
    # Each refusal is a security event a global admin reads: who, from where, what they reached for.
    denied = [e for e in await _events(control, kind="access_denied", org=org["id"], limit="100")
              if e["subject"] == admin["email"]]
    assert sorted((e["detail"]["method"], e["detail"]["path"]) for e in denied) == sorted((m, p) for m, p, _ in calls)
    assert all(e["detail"]["code"] == "forbidden" and e["source"] for e in denied), denied


async def test_global_admins_manage_one_another(control: Control) -> None:
    email = _email()
    r = await control.call("POST", "/api/v1/admins", control.admin_token, {"email": email})
    assert r.status == 201 and r.body["role"] == "global_admin" and r.body["org_id"] is None
    new_id, generated = r.body["id"], r.body["generated_password"]
    token = await control.login(email, generated)
    r = await control.call("POST", "/api/v1/admins", control.admin_token, {"email": email.upper()})
    assert r.status == 409 and r.body["code"] == "email_taken"
    # Paginated, oldest first; every page's items are global admins.
    seen, cursor = [], None
    while True:
        r = await control.call("GET", "/api/v1/admins?limit=1" + (f"&cursor={cursor}" if cursor else ""),
                               control.admin_token)
        assert r.status == 200 and len(r.body["items"]) <= 1
        seen += [u["id"] for u in r.body["items"]]
        cursor = r.body["next_cursor"]
        if cursor is None:
            break
    assert new_id in seen and len(seen) == len(set(seen))
    root = await control.pool.fetchval("SELECT id::text FROM users WHERE lower(email) = $1 AND org_id IS NULL",
                                       ADMIN_EMAIL)
    assert root in seen
    # Nobody disables themselves.
    r = await control.call("PATCH", f"/api/v1/admins/{new_id}", token, {"enabled": False})
    assert r.status == 403 and r.body["code"] == "cannot_disable_self"
    # Reset by another admin: a generated password, the old tokens revoked.
    r = await control.call("POST", f"/api/v1/admins/{new_id}/password", control.admin_token, {})
    assert r.status == 200, r.body
    reset = r.body["generated_password"]
    r = await control.call("GET", "/api/v1/admins", token)
    assert r.status == 401 and r.body["code"] == "token_revoked"
    token = await control.login(email, reset)
    r = await control.call("POST", f"/api/v1/admins/{new_id}/password", token, {"password": "own-pw-not-here"})
    assert r.status == 403
    r = await control.call("POST", f"/api/v1/admins/{new_id}/password", control.admin_token,
                           {"password": "chosen-password-1"})
    assert r.status == 200 and "generated_password" not in r.body
    token = await control.login(email, "chosen-password-1")
    # Disabled by another: its token stops, its login fails.
    r = await control.call("PATCH", f"/api/v1/admins/{new_id}", control.admin_token, {"enabled": False})
    assert r.status == 200 and r.body["enabled"] is False
    r = await control.call("GET", "/api/v1/admins", token)
    assert r.status == 401 and r.body["code"] == "user_disabled"
    assert (await _login(control, email, "chosen-password-1")).status == 401
    r = await control.call("PATCH", f"/api/v1/admins/{new_id}", control.admin_token, {"enabled": True})
    assert r.status == 200 and r.body["enabled"] is True
    r = await control.call("GET", "/api/v1/admins", token)
    assert r.status == 401 and r.body["code"] == "token_revoked", r.body  # not revived by enabling again
    token = await control.login(email, "chosen-password-1")
    assert (await control.call("GET", "/api/v1/admins", token)).status == 200
    # An org user is not a global admin here.
    org = await control.new_org("ga")
    user, _ = await control.new_user(org["slug"], "org_viewer")
    r = await control.call("PATCH", f"/api/v1/admins/{user['id']}", control.admin_token, {"enabled": False})
    assert r.status == 404


async def test_the_last_enabled_global_admin_stays(control: Control) -> None:
    """Two global admins, the only enabled ones, disable each other at once: one wins, the other is
    refused (409 last_admin, or 401 if it was already disabled when its request came in: user_disabled, or
    token_revoked when the winner's change had already revoked the token it came with)."""
    async with own_control(control.settings) as c:
        admins = []
        for _ in range(2):
            email = _email()
            r = await c.call("POST", "/api/v1/admins", c.admin_token, {"email": email, "password": "an-admin-pw-1"})
            admins.append((r.body["id"], email))
        (a, a_email), (b, b_email) = admins
        others = [r["id"] for r in await c.pool.fetch(
            "SELECT id FROM users WHERE role = 'global_admin' AND enabled AND id <> ALL($1::uuid[])", [a, b])]
        await c.pool.execute("UPDATE users SET enabled = false WHERE id = ANY($1)", others)
        try:
            for _ in range(3):
                # Disabling revoked the loser's tokens of the round before: log in anew.
                a_token, b_token = await c.login(a_email, "an-admin-pw-1"), await c.login(b_email, "an-admin-pw-1")
                r1, r2 = await asyncio.gather(c.call("PATCH", f"/api/v1/admins/{b}", a_token, {"enabled": False}),
                                              c.call("PATCH", f"/api/v1/admins/{a}", b_token, {"enabled": False}))
                assert sorted([r1.status, r2.status]) in ([200, 401], [200, 409])  # never both
                loser = r2 if r1.status == 200 else r1
                assert loser.body["code"] == "last_admin" if loser.status == 409 else \
                    loser.body["code"] in ("user_disabled", "token_revoked"), loser.body
                enabled = await c.pool.fetchval(
                    "SELECT count(*) FROM users WHERE role = 'global_admin' AND enabled AND id = ANY($1::uuid[])", [a, b])
                assert enabled == 1
                await c.pool.execute("UPDATE users SET enabled = true WHERE id = ANY($1::uuid[])", [a, b])
        finally:
            await c.pool.execute("UPDATE users SET enabled = true WHERE id = ANY($1)", others)


async def test_security_events_filter_and_page(control: Control) -> None:
    async with own_control(control.settings, security_max_failures=100, control_login_address_max_failures=100) as c:
        a, b = await c.new_org("se"), await c.new_org("se")
        ua, _ = await c.new_user(a["slug"], "org_viewer")
        ub, _ = await c.new_user(b["slug"], "org_viewer")
        for user in (ua, ub, ua):
            assert (await _login(c, user["email"], "wrong-password")).status == 401
        r = await c.call("GET", f"/api/v1/security-events?org={a['slug']}", c.admin_token)
        assert [e["subject"] for e in r.body["items"]] == [ua["email"], ua["email"]]
        r = await c.call("GET", f"/api/v1/security-events?org={b['id']}&kind=login_failure", c.admin_token)
        assert [e["subject"] for e in r.body["items"]] == [ub["email"]]
        assert (await c.call("GET", "/api/v1/security-events?kind=login_blocked", c.admin_token)).body["items"] == []
        pages, cursor = [], ""
        while True:
            r = await c.call("GET", f"/api/v1/security-events?limit=2{cursor}", c.admin_token)
            assert r.status == 200
            pages.append([e["subject"] for e in r.body["items"]])
            if r.body["next_cursor"] is None:
                break
            cursor = f"&cursor={r.body['next_cursor']}"
        assert [s for p in pages for s in p] == [ua["email"], ub["email"], ua["email"]]  # newest first
        assert len(pages[0]) == 2
        for bad in ("cursor=nope", "limit=0", "limit=x", "colour=red"):
            r = await c.call("GET", f"/api/v1/security-events?{bad}", c.admin_token)
            assert r.status == 422, bad


async def test_rate_limit_per_token_and_per_address(control: Control) -> None:
    async with own_control(control.settings, control_rate_limit_requests=4, control_rate_limit_per_seconds=60) as c:
        # The admin's login already used the address's first request.
        org = "/api/v1/orgs"
        remaining = []
        for _ in range(4):
            r = await c.call("GET", org, c.admin_token)
            assert r.status == 200
            assert r.headers["RateLimit-Limit"] == "4"
            remaining.append(int(r.headers["RateLimit-Remaining"]))
        assert remaining == [3, 2, 1, 0]
        r = await c.call("GET", org, c.admin_token)
        assert r.status == 429 and r.body["code"] == "rate_limited"
        assert 0 < int(r.headers["Retry-After"]) <= 60 and r.headers["RateLimit-Remaining"] == "0"
        # Another token of the same user has its own budget; an error answer carries the headers too.
        other = await c.login(ADMIN_EMAIL, ADMIN_PASSWORD)
        r = await c.call("GET", "/api/v1/orgs/no-such-org-here", other)
        assert r.status == 404 and r.headers["RateLimit-Remaining"] == "3"
        # Without a token, the client address: 4 requests (2 logins, 2 here) and it is spent.
        r = await c.call("GET", "/api/v1/openapi.json")
        assert r.status == 200
        r = await c.call("GET", "/api/v1/openapi.json")
        assert r.status == 200 and r.headers["RateLimit-Remaining"] == "0"
        r = await c.call("POST", "/api/v1/auth/login", json_body={"email": ADMIN_EMAIL, "password": ADMIN_PASSWORD})
        assert r.status == 429 and r.body["code"] == "rate_limited"
        # Health routes are not the management API: never limited.
        assert (await c.call("GET", "/healthz")).status == 200


async def test_usage_counts_per_user_and_organisation(control: Control) -> None:
    async with own_control(control.settings) as c:
        org = await c.new_org("us")
        admin, admin_token = await c.new_user(org["slug"], "org_admin")
        viewer, viewer_token = await c.new_user(org["slug"], "org_viewer")
        for _ in range(3):
            assert (await c.call("GET", f"/api/v1/orgs/{org['slug']}", viewer_token)).status == 200
        r = await c.call("GET", f"/api/v1/orgs/{org['slug']}/usage", admin_token)
        assert r.status == 200, r.body
        counts = {u["user_id"]: u["requests"] for u in r.body["users"]}
        assert counts == {viewer["id"]: 3, admin["id"]: 1}  # this read counts too
        assert r.body["requests"] == 4 and r.body["org_id"] == org["id"]
        r = await c.call("GET", "/api/v1/usage", c.admin_token)
        assert {"org_id": org["id"], "requests": 4} in r.body["orgs"]
        assert {"user_id": viewer["id"], "requests": 3} in r.body["users"]
        assert (await c.call("GET", f"/api/v1/orgs/{org['slug']}/usage", viewer_token)).status == 403
        other = await c.new_org("us")
        assert (await c.call("GET", f"/api/v1/orgs/{other['slug']}/usage", admin_token)).status == 404
        r = await c.call("GET", f"/api/v1/orgs/{org['slug']}/usage?day=2020-01-01", admin_token)
        assert r.body["requests"] == 0 and r.body["users"] == []
        r = await c.call("GET", "/api/v1/usage?day=yesterday", c.admin_token)
        assert r.status == 422


SECURITY = {"X-Content-Type-Options": "nosniff", "Content-Security-Policy": "default-src 'none'; frame-ancestors 'none'",
            "Referrer-Policy": "no-referrer"}


async def test_security_headers_on_every_response(control: Control) -> None:
    replies = [await control.call("GET", "/api/v1/orgs", control.admin_token),
               await control.call("GET", "/api/v1/orgs"),  # 401
               await control.call("GET", "/api/v1/nowhere", control.admin_token),  # 404
               await control.call("POST", "/api/v1/orgs", control.admin_token, data=b"{"),  # 400
               await control.call("GET", "/healthz"),
               await control.call("OPTIONS", "/api/v1/orgs", headers={"Origin": "https://evil.example",
                                                                      "Access-Control-Request-Method": "GET"})]
    for r in replies:
        for name, value in SECURITY.items():
            assert r.headers.get(name) == value, (r.status, name)
        assert "Access-Control-Allow-Origin" not in r.headers  # no CORS configured
    assert replies[-1].status == 401  # no CORS: an OPTIONS is an ordinary, unauthenticated request


async def test_cors_for_the_console_origin(control: Control) -> None:
    console = "https://console.example.com"
    async with own_control(control.settings, control_cors_origins=f"{console}, https://other.example.com") as c:
        pre = {"Origin": console, "Access-Control-Request-Method": "PATCH",
               "Access-Control-Request-Headers": "authorization, content-type, if-match"}
        r = await c.call("OPTIONS", "/api/v1/orgs/x", headers=pre)
        assert r.status == 204
        assert r.headers["Access-Control-Allow-Origin"] == console
        assert "PATCH" in r.headers["Access-Control-Allow-Methods"]
        assert "Authorization" in r.headers["Access-Control-Allow-Headers"]
        assert r.headers["Access-Control-Allow-Credentials"] == "true"
        r = await c.call("OPTIONS", "/api/v1/orgs/x", headers={**pre, "Origin": "https://evil.example"})
        assert r.status == 403 and r.body["code"] == "origin_not_allowed"
        assert "Access-Control-Allow-Origin" not in r.headers
        assert r.headers["X-Content-Type-Options"] == "nosniff"
        r = await c.call("GET", "/api/v1/orgs", c.admin_token, headers={"Origin": console})
        assert r.headers["Access-Control-Allow-Origin"] == console and "Origin" in r.headers.getall("Vary")
        assert "ETag" in r.headers["Access-Control-Expose-Headers"]
        r = await c.call("GET", "/api/v1/orgs", headers={"Origin": console})  # an error, still readable by it
        assert r.status == 401 and r.headers["Access-Control-Allow-Origin"] == console
        r = await c.call("GET", "/api/v1/orgs", c.admin_token, headers={"Origin": "https://evil.example"})
        assert r.status == 200 and "Access-Control-Allow-Origin" not in r.headers
    async with own_control(control.settings, control_cors_origins="*") as c:
        r = await c.call("OPTIONS", "/api/v1/orgs", headers={"Origin": "https://any.example",
                                                              "Access-Control-Request-Method": "GET"})
        assert r.status == 204 and r.headers["Access-Control-Allow-Origin"] == "*"
        assert "Access-Control-Allow-Credentials" not in r.headers  # never with a wildcard


async def test_sdk_sessions_and_admins(control: Control) -> None:
    org = await control.new_org("sdk")
    user, _ = await control.new_user(org["slug"], "org_admin")
    async with JunctionClient(control.base_url) as jc:
        await jc.login(user["email"], PASSWORD)
        old = jc.token
        await jc.change_password(PASSWORD, "sdk-new-password")
        assert jc.token != old
        assert (await jc.usage(org["slug"]))["org_id"] == org["id"]
        try:
            await jc.list_admins()
            raise AssertionError("an org admin listed the global admins")
        except JunctionAPIError as err:
            assert err.status == 403
        await jc.logout()
        assert jc.token is None
    async with JunctionClient(control.base_url, control.admin_token) as jc:
        created = await jc.create_admin(_email())
        assert created["generated_password"] and created["id"] in {a["id"] for a in await jc.list_admins()}
        assert (await jc.set_admin_enabled(created["id"], False))["enabled"] is False
        reset = await jc.reset_admin_password(created["id"], "sdk-reset-pw-1")
        assert "generated_password" not in reset
        page = await jc.security_events(kind="login_failure", limit=1)
        assert set(page) == {"items", "next_cursor"}
        assert user["id"] in {u["user_id"] for u in (await jc.usage())["users"]}


def test_a_bad_trusted_proxy_entry_fails_at_start_up(control_settings: Settings) -> None:
    with pytest.raises(InvalidConfiguration, match="TRUSTED_PROXIES"):
        create_app(control_settings.with_overrides(control_trusted_proxies="10.0.0.0/8, proxy.internal"),
                   relay=False, sandbox=False)
