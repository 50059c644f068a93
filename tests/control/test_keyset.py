"""control/store/keyset.py, the one way the stores page a list, against PostgreSQL: following the
positions it gives visits every row once, in order, whichever direction and page size, ties in time
included."""
from __future__ import annotations

import uuid
from datetime import datetime, timedelta, timezone
from typing import Any

import asyncpg
from hypothesis import HealthCheck, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from control.store.keyset import Keyset, Position
from core.settings import Settings

T0 = datetime(2026, 1, 1, tzinfo=timezone.utc)


async def _pages(conn: asyncpg.Connection, keyset: Keyset, limit: int, where: str = "TRUE") -> list[list[Any]]:
    pages: list[list[Any]] = []
    after: Position | None = None
    while True:
        args: list[Any] = []
        rows = await conn.fetch(f"SELECT at, id FROM pts WHERE {where} AND {keyset.after(after, args)}"
                                f" {keyset.order(limit, args)}", *args)
        if not rows:
            return pages
        pages.append([(r["at"], str(r["id"])) for r in rows])
        assert len(pages) <= 200, "the positions do not advance"
        after = (rows[-1]["at"], str(rows[-1]["id"]))


@hsettings(max_examples=25, deadline=None, database=None,
           suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(offsets=st.lists(st.integers(0, 5), max_size=40), limit=st.integers(1, 7), newest_first=st.booleans())
async def test_property_following_the_positions_visits_every_row_once_in_order(
        settings: Settings, offsets: list[int], limit: int, newest_first: bool) -> None:
    # Few distinct times, so that many rows tie on time and only the id orders them.
    rows = [(T0 + timedelta(seconds=s), str(uuid.uuid4())) for s in offsets]
    conn = await asyncpg.connect(settings.database_dsn)
    try:
        await conn.execute("CREATE TEMP TABLE pts (at timestamptz NOT NULL, id uuid PRIMARY KEY)")
        await conn.executemany("INSERT INTO pts VALUES ($1, $2::uuid)", rows)
        keyset = Keyset("at", newest_first=newest_first)
        pages = await _pages(conn, keyset, limit)
        seen = [row for page in pages for row in page]
        expected = sorted(rows, key=lambda r: (r[0], uuid.UUID(r[1])), reverse=newest_first)
        assert seen == expected
        assert all(len(p) == limit for p in pages[:-1]) and (not pages or 1 <= len(pages[-1]) <= limit)
        # Beside other conditions, and with the columns qualified as a join would name them.
        keyset = Keyset("p.at", "p.id", newest_first=newest_first)
        args: list[Any] = [T0 + timedelta(seconds=2)]
        got = await conn.fetch(f"SELECT p.at, p.id FROM pts p WHERE p.at >= $1 AND {keyset.after(None, args)}"
                               f" {keyset.order(len(rows) + 1, args)}", *args)
        assert [(r["at"], str(r["id"])) for r in got] == [r for r in expected if r[0] >= T0 + timedelta(seconds=2)]
    finally:
        await conn.close()
