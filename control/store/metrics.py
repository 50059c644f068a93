"""Reading what control's observe stage wrote: metric windows and request-log rows.

The stage owns the writes (control/observe/store.py); these are the queries of the
management API. Every query is scoped by organisation unless a global admin asks across them.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg

from control.store.keyset import Keyset, Position
from core.latency import merge, quantile

__all__ = ["LOG_COLUMNS", "LogFilter", "STEPS", "log_view", "page_logs", "points", "window_rows"]

STEPS = {"10s": 10, "1m": 60, "1h": 3600}
QUANTILES = {"p50": 0.5, "p95": 0.95, "p99": 0.99}
_LOG_PAGE = Keyset("at", newest_first=True)
_COUNTS = ("calls", "status_2xx", "status_3xx", "status_4xx", "status_5xx", "status_other", "latency_count",
           "upstream_count", "bytes_in", "bytes_out")

# What a request-log row shows: never a body, never a credential, nor the stage's join state.
LOG_COLUMNS = ("id", "correlation_id", "org_id", "api_id", "connector_id", "connector_version", "config_version",
               "method", "path", "status", "error_code", "stage", "latency_ms", "upstream_ms", "bytes_in", "bytes_out",
               "details", "at")


async def window_rows(conn: asyncpg.Connection, *, step_s: int, since: datetime, until: datetime,
                      org_id: str | None = None, api_id: str | None = None) -> list[asyncpg.Record]:
    """The stored windows of one resolution starting in ``[since, until]``; ``org_id`` None: every organisation."""
    return await conn.fetch(
        "SELECT m.*, o.slug AS org FROM metric_windows m LEFT JOIN organisations o ON o.id = m.org_id "
        "WHERE m.step_s = $1 AND m.bucket >= $2 AND m.bucket <= $3 "
        "AND ($4::uuid IS NULL OR m.org_id = $4::uuid) AND ($5::text IS NULL OR m.api_id = $5) "
        "ORDER BY m.bucket, m.org_id, m.api_id", step_s, since, until, org_id, api_id)


def _hist(value: Any) -> dict[str, int]:
    return json.loads(value) if isinstance(value, str) else dict(value or {})


def _latency(count: int, total: float, hist: dict[int, int]) -> dict[str, float | None]:
    out: dict[str, float | None] = {name: quantile(hist, q) for name, q in QUANTILES.items()}
    out["mean"] = total / count if count else None
    return out


def summarise(rows: list[Any]) -> dict[str, Any]:
    """One point from windows of the same time (several APIs, or organisations): counts add,
    histograms merge, and percentiles are read from the merged histogram."""
    sums = {c: sum(int(r[c]) for r in rows) for c in _COUNTS}
    errors: dict[str, int] = {}
    for r in rows:
        for code, n in _hist(r["errors"]).items():
            errors[code] = errors.get(code, 0) + int(n)
    return {
        "calls": sums["calls"],
        "errors": sums["status_4xx"] + sums["status_5xx"],
        "status": {"2xx": sums["status_2xx"], "3xx": sums["status_3xx"], "4xx": sums["status_4xx"],
                   "5xx": sums["status_5xx"], "other": sums["status_other"]},
        "error_codes": dict(sorted(errors.items())),
        "latency_ms": _latency(sums["latency_count"], sum(float(r["latency_sum_ms"]) for r in rows),
                               merge(_hist(r["latency_hist"]) for r in rows)),
        "upstream_ms": _latency(sums["upstream_count"], sum(float(r["upstream_sum_ms"]) for r in rows),
                                merge(_hist(r["upstream_hist"]) for r in rows)),
        "bytes_in": sums["bytes_in"],
        "bytes_out": sums["bytes_out"],
    }


def points(rows: list[Any]) -> list[dict[str, Any]]:
    """One point per window start, over every row given (the caller chose the organisations and API)."""
    by_time: dict[datetime, list[Any]] = {}
    for r in rows:
        by_time.setdefault(r["bucket"], []).append(r)
    return [{"t": t.isoformat(), **summarise(group)} for t, group in sorted(by_time.items())]


@dataclass(frozen=True)
class LogFilter:
    api_id: str | None = None
    status: int | None = None
    status_class: int | None = None  # 4 for "4xx"
    error_code: str | None = None
    correlation_id: str | None = None
    since: datetime | None = None
    until: datetime | None = None


async def page_logs(conn: asyncpg.Connection, org_id: str, f: LogFilter, limit: int,
                    after: Position | None) -> list[asyncpg.Record]:
    """Finished calls of one organisation, newest first, after the cursor position ``after``."""
    args: list[Any] = [org_id, f.api_id, f.status, f.status_class, f.error_code, f.correlation_id, f.since, f.until]
    return await conn.fetch(
        f"SELECT {', '.join(LOG_COLUMNS)} FROM request_logs WHERE done AND org_id = $1::uuid "
        "AND ($2::text IS NULL OR api_id = $2) AND ($3::int IS NULL OR status = $3) "
        "AND ($4::int IS NULL OR status / 100 = $4) AND ($5::text IS NULL OR error_code = $5) "
        "AND ($6::text IS NULL OR correlation_id = $6) AND ($7::timestamptz IS NULL OR at >= $7) "
        f"AND ($8::timestamptz IS NULL OR at <= $8) AND {_LOG_PAGE.after(after, args)} {_LOG_PAGE.order(limit, args)}",
        *args)


def log_view(row: Any) -> dict[str, Any]:
    out = {c: row[c] for c in LOG_COLUMNS}
    out["id"], out["org_id"] = str(row["id"]), str(row["org_id"]) if row["org_id"] else None
    out["at"] = row["at"].isoformat()
    details = row["details"]
    out["details"] = json.loads(details) if isinstance(details, str) else (details or [])
    return out
