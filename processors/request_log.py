"""The request log: one row per call that failed in a connector script.

Rows carry the script's own traceback and log lines, so an organisation admin
sees why their script failed without access to the gateway's logs. Writes are
best effort: a database outage must not stop the stream.
"""
from __future__ import annotations

import json
import logging
from typing import Any

import asyncpg

__all__ = ["RequestLog"]

log = logging.getLogger(__name__)


class RequestLog:
    def __init__(self, pool: asyncpg.Pool | None = None) -> None:
        self._pool = pool

    def attach(self, pool: asyncpg.Pool | None) -> None:
        """Start (or, with None, stop) writing through ``pool``."""
        self._pool = pool

    async def failure(self, *, org: dict[str, Any], api: dict[str, Any] | None, call: dict[str, Any], status: int,
                      error_code: str, details: list[str]) -> None:
        if self._pool is None:
            return
        try:
            await self._pool.execute(
                """INSERT INTO request_logs (org_id, api_id, correlation_id, method, path, status, latency_ms, error_code, details)
                   VALUES ($1::uuid, $2::uuid, $3, $4, $5, $6, $7, $8, $9::jsonb)""",
                str(org.get("id")), (api or {}).get("id"), call["correlation_id"], call["method"], call["path"],
                status, max(0, int(call.get("_elapsed_ms", 0))), error_code, json.dumps(details[:200]),
            )
        except (asyncpg.PostgresError, OSError, ValueError) as exc:
            log.warning("request log write failed: %s", exc)
