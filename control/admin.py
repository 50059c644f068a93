"""Global admins, created outside the API: ``junction admin create`` and the
start-up of ``make run`` (from JUNCTION_ADMIN_EMAIL / JUNCTION_ADMIN_PASSWORD)."""
from __future__ import annotations

import secrets
import uuid

import asyncpg

from control.auth import hash_password
from control.migrate import apply_migrations
from control.rbac import GLOBAL_ADMIN
from control.store.audit import AuditEntry, insert_audit
from control.store.users import find_login, insert_user, user_view
from core.db import make_pool
from core.errors import Conflict
from core.settings import Settings

__all__ = ["create_admin", "ensure_admin"]


async def _insert_admin(conn: asyncpg.Connection, settings: Settings, email: str, password: str) -> dict:
    row = await insert_user(conn, str(uuid.uuid4()), None, email.lower(),
                            await hash_password(password, settings.bcrypt_rounds), GLOBAL_ADMIN)
    user = user_view(row)
    await insert_audit(conn, AuditEntry(None, "system", None, "create", "user", user["id"], None, user, None))
    return user


async def create_admin(settings: Settings, email: str, password: str) -> dict:
    """Create a global admin; Conflict if the email is taken."""
    pool = await make_pool(settings, max_size=2)
    try:
        await apply_migrations(pool)
        async with pool.acquire() as conn, conn.transaction():
            if await find_login(conn, email) is not None:
                raise Conflict(f"a user with email {email!r} exists", code="email_taken")
            return await _insert_admin(conn, settings, email, password)
    finally:
        await pool.close()


async def ensure_admin(settings: Settings) -> tuple[str, str | None]:
    """Make sure a global admin exists.

    With ``admin_email`` set, that admin is created (with ``admin_password``, or
    a generated one) unless it already exists. Without it, any existing global
    admin will do; if there is none, ``admin@localhost`` is created. Returns (email, password) where password is None when the admin
    already existed — print it so the operator can log in.
    """
    email = (settings.admin_email or "admin@localhost").lower()
    pool = await make_pool(settings, max_size=2)
    try:
        await apply_migrations(pool)
        async with pool.acquire() as conn, conn.transaction():
            # Serialise concurrent start-ups that would both create it.
            await conn.execute("SELECT pg_advisory_xact_lock(hashtext(current_schema() || ':junction-admin'))")
            if not settings.admin_email:
                existing = await conn.fetchval(
                    "SELECT email FROM users WHERE role = 'global_admin' ORDER BY created_at LIMIT 1")
                if existing is not None:
                    return str(existing), None
            if await find_login(conn, email) is not None:
                return email, None
            password = settings.admin_password or secrets.token_urlsafe(12)
            await _insert_admin(conn, settings, email, password)
            return email, password
    finally:
        await pool.close()
