"""Plain SQL migrations, applied in file-name order and recorded in
``schema_migrations``.

All of it runs in one transaction under an advisory lock keyed by the schema,
so several control instances (or ``junction migrate`` next to ``make run``)
can start at once: one applies, the others wait and then find nothing to do.
"""
from __future__ import annotations

import logging
from importlib import resources

import asyncpg

__all__ = ["apply_migrations", "migration_files"]

log = logging.getLogger(__name__)


def migration_files() -> list[tuple[str, str]]:
    """(name, sql) of every ``control/migrations/NNN_name.sql``, in order."""
    folder = resources.files("control") / "migrations"
    items = [(p.name, p.read_text()) for p in folder.iterdir() if p.name.endswith(".sql")]
    return sorted(items)


async def apply_migrations(pool: asyncpg.Pool) -> list[str]:
    """Apply the migrations not yet recorded; return the names applied."""
    applied: list[str] = []
    async with pool.acquire() as conn, conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock(hashtext(current_schema() || ':junction-migrations'))")
        await conn.execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations ("
            " name text PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())"
        )
        done = {r["name"] for r in await conn.fetch("SELECT name FROM schema_migrations")}
        for name, sql in migration_files():
            if name in done:
                continue
            await conn.execute(sql)
            await conn.execute("INSERT INTO schema_migrations (name) VALUES ($1)", name)
            applied.append(name)
    if applied:
        log.info("applied migrations: %s", ", ".join(applied))
    return applied
