"""PostgreSQL connections: one pool factory, scoped to the settings' schema."""
from __future__ import annotations

import asyncpg

from core.settings import Settings

__all__ = ["make_pool", "ping_pool"]


async def make_pool(settings: Settings, *, min_size: int = 1, max_size: int = 10) -> asyncpg.Pool:
    """A pool whose connections search ``database_schema`` first.

    Each test run gets its own schema, so runs never see each other's rows.
    """
    schema = settings.database_schema

    async def init(conn: asyncpg.Connection) -> None:
        await conn.execute(f'CREATE SCHEMA IF NOT EXISTS "{schema}"')
        await conn.execute(f'SET search_path TO "{schema}", public')

    return await asyncpg.create_pool(settings.database_url, min_size=min_size, max_size=max_size, init=init)


async def ping_pool(pool: asyncpg.Pool) -> None:
    async with pool.acquire() as conn:
        await conn.fetchval("SELECT 1")
