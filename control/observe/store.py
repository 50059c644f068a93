"""The observe stage's writes: the request-log join, the metric windows, retention.

One flush is one transaction: the partial rows are upserted (each column keeps the first value
any topic gave it), the calls of the flush that are now complete are marked done under a row
lock, and their aggregates are added to ``metric_windows``. A call is therefore counted exactly
once, whichever instance completes it, however often a record is redelivered, and in whatever
order its topics are read. Rows are always locked in key order, so two instances never deadlock.
"""
from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import asdict, dataclass

import asyncpg

from control.observe.aggregate import Aggregate, WindowKey, aggregate
from control.observe.events import COLUMNS, Partial, merged
from control.observe.outcome import Finished, finish

__all__ = ["Retention", "enforce_retention", "record", "sweep", "write_metrics"]

# Types asyncpg takes as text and PostgreSQL casts.
_AS_TEXT = {"uuid", "jsonb"}


def _param_type(sql_type: str) -> str:
    return "text" if sql_type in _AS_TEXT else sql_type


_COLS = list(COLUMNS)
_UPSERT = (
    f"INSERT INTO request_logs (org, correlation_id, {', '.join(_COLS)}) "
    f"SELECT v.org, v.correlation_id, {', '.join(f'v.{c}::{t}' for c, t in COLUMNS.items())} "
    f"FROM unnest($1::text[], $2::text[], "
    + ", ".join(f"${i + 3}::{_param_type(t)}[]" for i, t in enumerate(COLUMNS.values()))
    + f") AS v(org, correlation_id, {', '.join(_COLS)}) "
    "ON CONFLICT (org, correlation_id) DO UPDATE SET "
    + ", ".join(f"{c} = COALESCE(request_logs.{c}, EXCLUDED.{c})" for c in _COLS)
)
_LOCK_OPEN = ("SELECT * FROM request_logs WHERE NOT done AND (org, correlation_id) IN "
              "(SELECT * FROM unnest($1::text[], $2::text[])) ORDER BY org, correlation_id FOR UPDATE")
_LOCK_STALE = ("SELECT * FROM request_logs WHERE NOT done AND seen_at < now() - make_interval(secs => $1) "
               "AND coalesce(deadline_ms, 0) < $2 ORDER BY org, correlation_id LIMIT $3 FOR UPDATE SKIP LOCKED")
_DONE = """
UPDATE request_logs r SET done = true, status = v.status, error_code = v.error_code, stage = v.stage,
       latency_ms = v.latency_ms, upstream_ms = v.upstream_ms, at = to_timestamp(v.at_ms / 1000.0)
FROM unnest($1::text[], $2::text[], $3::integer[], $4::text[], $5::text[], $6::double precision[],
            $7::double precision[], $8::bigint[]) AS v(org, correlation_id, status, error_code, stage, latency_ms, upstream_ms, at_ms)
WHERE r.org = v.org AND r.correlation_id = v.correlation_id
"""
_ADDED = ("calls", "status_2xx", "status_3xx", "status_4xx", "status_5xx", "status_other", "latency_count",
          "latency_sum_ms", "upstream_count", "upstream_sum_ms", "bytes_in", "bytes_out")
_MERGED = ("errors", "latency_hist", "upstream_hist")
_METRICS = (
    f"INSERT INTO metric_windows (step_s, bucket, org_id, api_id, {', '.join(_ADDED)}, {', '.join(_MERGED)}) "
    f"SELECT v.step_s, to_timestamp(v.bucket_ms / 1000.0), v.org_id::uuid, v.api_id, {', '.join('v.' + c for c in _ADDED)}, "
    f"{', '.join(f'v.{c}::jsonb' for c in _MERGED)} "
    "FROM unnest($1::integer[], $2::bigint[], $3::text[], $4::text[], "
    + ", ".join(f"${i + 5}::{'double precision' if c.endswith('_ms') else 'bigint'}[]" for i, c in enumerate(_ADDED))
    + ", " + ", ".join(f"${i + 5 + len(_ADDED)}::text[]" for i in range(len(_MERGED)))
    + f") AS v(step_s, bucket_ms, org_id, api_id, {', '.join(_ADDED)}, {', '.join(_MERGED)}) "
    "ON CONFLICT (step_s, org_id, api_id, bucket) DO UPDATE SET "
    + ", ".join(f"{c} = metric_windows.{c} + EXCLUDED.{c}" for c in _ADDED) + ", "
    + ", ".join(f"{c} = junction_jsonb_add(metric_windows.{c}, EXCLUDED.{c})" for c in _MERGED)
)


async def record(conn: asyncpg.Connection, partials: Iterable[Partial], *, now_ms: int) -> list[Finished]:
    """Join ``partials`` into their calls' rows; finish and count the calls now complete."""
    rows = sorted(merged(partials), key=lambda p: p.key)
    if not rows:
        return []
    orgs, ids = [p.org for p in rows], [p.correlation_id for p in rows]
    columns = [[p.values.get(c) for p in rows] for c in _COLS]
    async with conn.transaction():
        await conn.execute(_UPSERT, orgs, ids, *columns)
        locked = await conn.fetch(_LOCK_OPEN, orgs, ids)
        done = [f for f in (finish(r, now_ms=now_ms) for r in locked) if f is not None]
        await _finish(conn, done)
    return done


async def sweep(conn: asyncpg.Connection, *, now_ms: int, grace_s: float, limit: int = 1000) -> list[Finished]:
    """Finish the calls that can wait no longer: past their deadline (or, without one, first seen)
    by ``grace_s``. SKIP LOCKED: another instance sweeping at once takes other rows."""
    async with conn.transaction():
        locked = await conn.fetch(_LOCK_STALE, grace_s, now_ms - int(grace_s * 1000), limit)
        done = [f for f in (finish(r, now_ms=now_ms, forced=True) for r in locked) if f is not None]
        await _finish(conn, done)
    return done


async def _finish(conn: asyncpg.Connection, done: list[Finished]) -> None:
    if not done:
        return
    await conn.execute(_DONE, [f.org for f in done], [f.correlation_id for f in done], [f.status for f in done],
                       [f.error_code for f in done], [f.stage for f in done], [f.latency_ms for f in done],
                       [f.upstream_ms for f in done], [f.at_ms for f in done])
    await write_metrics(conn, aggregate(done))


async def write_metrics(conn: asyncpg.Connection, windows: dict[WindowKey, Aggregate]) -> None:
    """Add ``windows`` to the stored ones: one statement for the whole flush."""
    if not windows:
        return
    keys = sorted(windows)
    values = [asdict(windows[k]) for k in keys]
    await conn.execute(
        _METRICS, [k.step_s for k in keys], [k.bucket_ms for k in keys], [k.org_id for k in keys], [k.api_id for k in keys],
        *[[v[c] for v in values] for c in _ADDED],
        *[[json.dumps({str(b): n for b, n in v[c].items()}) for v in values] for c in _MERGED],
    )


@dataclass(frozen=True)
class Retention:
    """How long each kind of row is kept, in seconds (0: forever)."""

    windows_10s: float
    windows_1m: float
    windows_1h: float
    request_logs: float


async def enforce_retention(conn: asyncpg.Connection, retention: Retention) -> int:
    """Delete what is older than kept; returns the rows deleted."""
    deleted = 0
    for step, keep in ((10, retention.windows_10s), (60, retention.windows_1m), (3600, retention.windows_1h)):
        if keep > 0:
            status = await conn.execute("DELETE FROM metric_windows WHERE step_s = $1 AND bucket < now() - make_interval(secs => $2)",
                                        step, keep)
            deleted += int(status.split()[-1])
    if retention.request_logs > 0:
        # Open rows too: a call nothing more will be heard of must not be kept forever.
        status = await conn.execute("DELETE FROM request_logs WHERE (done AND at < now() - make_interval(secs => $1)) "
                                    "OR (NOT done AND seen_at < now() - make_interval(secs => $1))", retention.request_logs)
        deleted += int(status.split()[-1])
    return deleted
