"""PostgreSQL connections: one pool factory, scoped to the settings' schema."""
from __future__ import annotations

import asyncpg

from core.settings import Settings

__all__ = ["make_pool", "ping_pool"]


async def make_pool(settings: Settings, *, min_size: int = 1, max_size: int = 10) -> asyncpg.Pool:
    """A pool whose connections search ``database_schema`` first.

    Each test run gets its own schema, so runs never see each other's rows.
    The path is a startup parameter rather than a ``SET`` in ``init``: asyncpg
    runs ``RESET ALL`` when a connection returns to the pool, which would undo a SET.
    """
    schema = settings.database_schema
    conn = await asyncpg.connect(settings.database_dsn)
    try:
        await conn.execute(f'CREATE SCHEMA IF NOT EXISTS "{schema}"')
    except asyncpg.UniqueViolationError:
        pass  # another process created it at the same moment
    finally:
        await conn.close()
    return await asyncpg.create_pool(
        settings.database_dsn, min_size=min_size, max_size=max_size,
        server_settings={"search_path": f'"{schema}", public'},
        # A new connection to a server that stopped answering fails soon (asyncpg waits 60 s), so a request
        # that needs one gets its 503 rather than its client's timeout.
        timeout=max(settings.store_timeout_ms / 1000, 1.0),
    )


async def ping_pool(pool: asyncpg.Pool) -> None:
    async with pool.acquire() as conn:
        await conn.fetchval("SELECT 1")
