"""Dead letters indexed from the dead-letter topic: insert (idempotent), page, read, expire.

Every query on them filters on the organisation's id. A row keeps the redacted original
(core/redaction.py); :func:`letter_view` leaves it out, and only the handler decides who sees it.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg

from control.store.keyset import Keyset, Position

__all__ = ["LetterFilter", "LetterRow", "count_letters", "delete_older_than", "get_letter", "insert_letters", "letter_view", "page_letters"]

_PAGE = Keyset("failed_at", newest_first=True)
# A letter's api_id is text from a topic: cast to uuid (and the primary key used) only when it is one.
_UUID_TEXT = "^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$"
_COLS = ("id, org_slug, api_id, connector_id, connector_version, config_version, stage, error_code, error_message,"
         " details, attempt, correlation_id, original_topic, length(original) AS original_bytes, inbound_partition,"
         " inbound_offset, topic_partition, topic_offset, failed_at")


@dataclass(frozen=True)
class LetterRow:
    """One dead letter as read off the topic, ready to insert (texts already free of NUL characters)."""

    id: str
    digest: bytes
    org_slug: str
    letter: dict[str, Any]
    partition: int
    offset: int
    failed_at: datetime


@dataclass(frozen=True)
class LetterFilter:
    api_id: str | None = None
    stage: str | None = None
    error_code: str | None = None
    correlation_id: str | None = None
    since: datetime | None = None
    until: datetime | None = None


async def insert_letters(conn: asyncpg.Connection, rows: list[LetterRow]) -> int:
    """Insert the rows not yet indexed (by digest). Returns how many were new.

    A letter carries its organisation's slug, as the call did; a slug can be given up (a renamed or deleted
    organisation) and taken by another while the call waits in a topic. So a letter that names an API is
    the organisation's only if the API is one of its APIs now; otherwise it is no organisation's (``org_id``
    NULL), and no tenant sees another's bodies. A letter naming no API is found by slug alone."""
    if not rows:
        return 0
    records = [(r.id, r.digest, r.org_slug, r.letter["api_id"], r.letter["connector_id"], int(r.letter["connector_version"]),
                int(r.letter["config_version"]), r.letter["stage"], r.letter["error_code"], r.letter["error_message"],
                json.dumps(r.letter["details"]), int(r.letter["attempt"]), r.letter["correlation_id"],
                r.letter["original_topic"], r.letter["original"], int(r.letter["inbound_partition"]),
                int(r.letter["inbound_offset"]), r.partition, r.offset, r.failed_at) for r in rows]
    inserted = await conn.fetchval(
        "WITH incoming AS (SELECT * FROM unnest($1::uuid[], $2::bytea[], $3::text[], $4::text[], $5::text[], $6::bigint[],"
        " $7::bigint[], $8::text[], $9::text[], $10::text[], $11::text[], $12::int[], $13::text[], $14::text[], $15::bytea[],"
        " $16::int[], $17::bigint[], $18::int[], $19::bigint[], $20::timestamptz[])"
        " AS t(id, digest, org_slug, api_id, connector_id, connector_version, config_version, stage, error_code,"
        " error_message, details, attempt, correlation_id, original_topic, original, inbound_partition, inbound_offset,"
        " topic_partition, topic_offset, failed_at)),"
        " added AS (INSERT INTO dead_letters (id, digest, org_id, org_slug, api_id, connector_id, connector_version,"
        " config_version, stage, error_code, error_message, details, attempt, correlation_id, original_topic, original,"
        " inbound_partition, inbound_offset, topic_partition, topic_offset, failed_at)"
        " SELECT i.id, i.digest, o.id, i.org_slug, i.api_id, i.connector_id, i.connector_version, i.config_version,"
        " i.stage, i.error_code, i.error_message, i.details::jsonb, i.attempt, i.correlation_id, i.original_topic,"
        " i.original, i.inbound_partition, i.inbound_offset, i.topic_partition, i.topic_offset, i.failed_at"
        " FROM incoming i LEFT JOIN organisations o ON o.slug = i.org_slug AND (i.api_id = '' OR EXISTS"
        " (SELECT 1 FROM apis a WHERE a.id = CASE WHEN i.api_id ~* $21 THEN i.api_id::uuid END"
        " AND a.org_id = o.id))"
        " ON CONFLICT (digest) DO NOTHING RETURNING 1)"
        " SELECT count(*) FROM added",
        *[list(col) for col in zip(*records)], _UUID_TEXT)
    return int(inserted)


def _of(org_id: str | None) -> tuple[str, list[Any]]:
    """The clause that keeps an organisation's letters; ``None``: the letters of no organisation."""
    return ("org_id = $1", [org_id]) if org_id is not None else ("org_id IS NULL", [])


async def page_letters(conn: asyncpg.Connection, org_id: str | None, f: LetterFilter, limit: int,
                       after: Position | None) -> list[asyncpg.Record]:
    """Newest first (failed_at, then id); ``after`` is the last row of the previous page. ``org_id`` None:
    the letters of no organisation."""
    clause, args = _of(org_id)
    where = [clause]

    def add(clause: str, value: Any) -> None:
        args.append(value)
        where.append(clause.replace("?", f"${len(args)}"))

    for column, value in (("api_id", f.api_id), ("stage", f.stage), ("error_code", f.error_code),
                          ("correlation_id", f.correlation_id)):
        if value is not None:
            add(f"{column} = ?", value)
    if f.since is not None:
        add("failed_at >= ?", f.since)
    if f.until is not None:
        add("failed_at < ?", f.until)
    where.append(_PAGE.after(after, args))
    return await conn.fetch(f"SELECT {_COLS} FROM dead_letters WHERE {' AND '.join(where)} {_PAGE.order(limit, args)}",
                            *args)


async def get_letter(conn: asyncpg.Connection, org_id: str | None, id_: str) -> asyncpg.Record | None:
    clause, args = _of(org_id)
    return await conn.fetchrow(f"SELECT {_COLS}, original FROM dead_letters WHERE {clause} AND id = ${len(args) + 1}",
                               *args, id_)


async def count_letters(conn: asyncpg.Connection, org_id: str | None, api_id: str | None, since: datetime,
                        until: datetime) -> int:
    """Dead letters that failed in ``[since, until)``; ``org_id`` None: of every organisation (alert rules)."""
    return int(await conn.fetchval(
        "SELECT count(*) FROM dead_letters WHERE ($1::uuid IS NULL OR org_id = $1::uuid)"
        " AND ($2::text IS NULL OR api_id = $2) AND failed_at >= $3 AND failed_at < $4", org_id, api_id, since, until))


async def delete_older_than(conn: asyncpg.Connection, cutoff: datetime, batch: int = 10_000) -> int:
    """Delete up to ``batch`` rows that failed before ``cutoff``; how many went."""
    result = await conn.execute(
        "DELETE FROM dead_letters WHERE id IN (SELECT id FROM dead_letters WHERE failed_at < $1 LIMIT $2)", cutoff, batch)
    return int(result.split()[-1])


def letter_view(row: asyncpg.Record) -> dict[str, Any]:
    """Metadata of a dead letter: what every reader of the organisation may see."""
    details = row["details"]
    return {"id": str(row["id"]), "org": row["org_slug"], "correlation_id": row["correlation_id"], "stage": row["stage"],
            "error_code": row["error_code"], "error_message": row["error_message"],
            "details": json.loads(details) if isinstance(details, str) else details, "attempt": row["attempt"],
            "api_id": row["api_id"], "connector_id": row["connector_id"], "connector_version": row["connector_version"],
            "config_version": row["config_version"], "original_topic": row["original_topic"],
            "original_bytes": row["original_bytes"], "inbound_partition": row["inbound_partition"],
            "inbound_offset": row["inbound_offset"], "partition": row["topic_partition"], "offset": row["topic_offset"],
            "failed_at": row["failed_at"].isoformat()}
