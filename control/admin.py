"""Global admins, managed outside the API: ``junction admin create``,
``junction admin reset-password`` and the start-up of ``make run`` (from
JUNCTION_ADMIN_EMAIL / JUNCTION_ADMIN_PASSWORD)."""
from __future__ import annotations

import logging
import secrets
import uuid

import asyncpg

from control.auth import check_password, hash_password
from control.migrate import apply_migrations
from control.rbac import GLOBAL_ADMIN
from control.store.audit import AuditEntry, insert_audit
from control.store.users import find_login, get_user, insert_user, set_password, user_view
from core.db import make_pool
from core.errors import Conflict, FieldError, InvalidInput, NotFound
from core.settings import Settings

__all__ = ["DEFAULT_ADMIN_EMAIL", "check_new_password", "create_admin", "ensure_admin", "reset_password"]

log = logging.getLogger(__name__)

DEFAULT_ADMIN_EMAIL = "admin@localhost"
MIN_PASSWORD_CHARS, MAX_PASSWORD_CHARS = 8, 72  # as UserCreate in control.bodies


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

    - ``admin_email`` set: that admin is created (with ``admin_password``, or a
      generated one) unless a user with that email exists.
    - only ``admin_password`` set: the same, for the default ``admin@localhost``.
    - neither: any existing global admin will do; if there is none,
      ``admin@localhost`` is created with a generated password.

    Returns (email, password); password is None when the admin already existed
    (its password is left as it is: ``junction admin reset-password`` changes
    it). A configured password that is not the existing admin's is logged as a
    warning rather than ignored silently.
    """
    email = (settings.admin_email or DEFAULT_ADMIN_EMAIL).lower()
    pool = await make_pool(settings, max_size=2)
    try:
        await apply_migrations(pool)
        async with pool.acquire() as conn, conn.transaction():
            # Serialise concurrent start-ups that would both create it.
            await conn.execute("SELECT pg_advisory_xact_lock(hashtext(current_schema() || ':junction-admin'))")
            if not settings.admin_email and not settings.admin_password:
                existing = await conn.fetchval(
                    "SELECT email FROM users WHERE role = 'global_admin' ORDER BY created_at LIMIT 1")
                if existing is not None:
                    return str(existing), None
            row = await find_login(conn, email)
            if row is not None:
                if settings.admin_password and not await check_password(settings.admin_password, row["password_hash"]):
                    log.warning("JUNCTION_ADMIN_PASSWORD is not %s's password and was not applied: it only sets the "
                                "password of a new admin. To change it: junction admin reset-password %s",
                                email, email)
                return email, None
            password = settings.admin_password or secrets.token_urlsafe(12)
            await _insert_admin(conn, settings, email, password)
            return email, password
    finally:
        await pool.close()


async def reset_password(settings: Settings, email: str, password: str, org: str | None = None) -> dict:
    """Set a user's password directly in the database (for a lost global admin password). One e-mail may
    have an account in each organisation: ``org`` (a slug) names one; without it, the global admin's, else the
    only account. NotFound if there is none, Conflict (listing them) if several accounts could be meant.
    Audited, never the password."""
    check_new_password(password)
    new_hash = await hash_password(password, settings.bcrypt_rounds)
    pool = await make_pool(settings, max_size=2)
    try:
        await apply_migrations(pool)
        async with pool.acquire() as conn, conn.transaction():
            row = await _account(conn, email, org)
            before = user_view(row)
            after = user_view(await set_password(conn, str(row["id"]), new_hash))
            await insert_audit(conn, AuditEntry(None, "system", after["org_id"], "update", "user", after["id"],
                                                before, dict(after, password_changed=True), None))
            return after
    finally:
        await pool.close()


async def _account(conn: asyncpg.Connection, email: str, org: str | None) -> asyncpg.Record:
    rows = await conn.fetch(
        "SELECT u.id, o.slug FROM users u LEFT JOIN organisations o ON o.id = u.org_id WHERE lower(u.email) = lower($1)"
        " ORDER BY u.org_id IS NOT NULL, o.slug", email)
    chosen = [r for r in rows if r["slug"] == org] if org is not None else rows[:1] if rows and rows[0]["slug"] is None \
        else rows
    if not chosen:
        where = f" in organisation {org!r}" if org is not None else ""
        raise NotFound(f"no user with email {email!r}{where}")
    if len(chosen) > 1:
        raise Conflict(f"{len(chosen)} accounts have the email {email!r}, one in each of these organisations: "
                       "name one with --org", code="ambiguous_email",
                       fields=[FieldError("org", "names the account's organisation")],
                       extra={"orgs": [r["slug"] for r in chosen]})
    row = await get_user(conn, str(chosen[0]["id"]), for_update=True)
    assert row is not None  # read in this transaction
    return row


def check_new_password(password: str) -> None:
    """The rule the API applies to user passwords: 8 to 72 characters."""
    if not MIN_PASSWORD_CHARS <= len(password) <= MAX_PASSWORD_CHARS:
        raise InvalidInput(f"password: must be {MIN_PASSWORD_CHARS} to {MAX_PASSWORD_CHARS} characters",
                           fields=[FieldError("password", f"must be {MIN_PASSWORD_CHARS} to {MAX_PASSWORD_CHARS} characters")])
