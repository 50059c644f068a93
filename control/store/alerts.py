"""Alerts in PostgreSQL (migration 070): the evaluator's state per rule, the alert history and the
notifications each alert owes.

Every query on the history names its scope: an organisation's id, or None for the global rules'
alerts (``org_id IS NOT DISTINCT FROM``). Rules themselves are versioned resources
(control/store/resources.py, ``ALERT_RULE``).
"""
from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg

from control.store.keyset import Keyset, Position

__all__ = ["Delivery", "NewAlert", "ack_alert", "alert_view", "connector_targets", "enqueue", "finish_delivery", "firing_alert",
           "get_alert", "lock_state", "mark_escalated", "notifications_of", "open_alert", "orphaned_alerts",
           "page_alerts", "pending_deliveries", "resolve_alert", "rules_to_evaluate", "set_state"]

_ALERT_PAGE = Keyset("started_at", newest_first=True)
_ALERT_COLS = ("id, rule_id, rule_name, rule_version, org_id, api_id, metric, comparison, threshold, value, state,"
               " started_at, resolved_at, acked_at, acked_by, escalated_at")


async def rules_to_evaluate(conn: asyncpg.Connection) -> list[asyncpg.Record]:
    """Every enabled rule, with its organisation's slug (None for a global rule)."""
    return await conn.fetch(
        "SELECT r.id, r.org_id, o.slug, r.version, r.content FROM alert_rules r"
        " LEFT JOIN organisations o ON o.id = r.org_id"
        " WHERE coalesce((r.content->>'enabled')::boolean, true) ORDER BY r.id")


async def connector_targets(conn: asyncpg.Connection, org_id: str | None,
                            api_id: str | None) -> list[tuple[str, dict[str, Any]]]:
    """``(organisation slug, target)`` of each connector in scope: the API's, else the organisation's (every
    one for None)."""
    if api_id is not None:
        rows = await conn.fetch(
            "SELECT o.slug, c.content FROM apis a JOIN connectors c ON c.id = a.connector_id"
            " JOIN organisations o ON o.id = c.org_id"
            " WHERE a.id::text = $1 AND ($2::uuid IS NULL OR a.org_id = $2::uuid)", api_id, org_id)
    else:
        rows = await conn.fetch("SELECT o.slug, c.content FROM connectors c JOIN organisations o ON o.id = c.org_id"
                                " WHERE $1::uuid IS NULL OR c.org_id = $1::uuid", org_id)
    out = []
    for r in rows:
        content = json.loads(r["content"]) if isinstance(r["content"], str) else dict(r["content"])
        out.append((str(r["slug"]), content.get("target") or {}))
    return out


async def lock_state(conn: asyncpg.Connection, rule_id: str) -> asyncpg.Record:
    """The rule's evaluation state, locked until the transaction ends (made on first use)."""
    await conn.execute("INSERT INTO alert_rule_state (rule_id) VALUES ($1) ON CONFLICT DO NOTHING", rule_id)
    return await conn.fetchrow("SELECT * FROM alert_rule_state WHERE rule_id = $1 FOR UPDATE", rule_id)


async def set_state(conn: asyncpg.Connection, rule_id: str, pending_since: datetime | None, value: float | None,
                    at: datetime) -> None:
    await conn.execute("UPDATE alert_rule_state SET pending_since = $2, last_value = $3, evaluated_at = $4"
                       " WHERE rule_id = $1", rule_id, pending_since, value, at)


async def firing_alert(conn: asyncpg.Connection, rule_id: str) -> asyncpg.Record | None:
    return await conn.fetchrow(f"SELECT {_ALERT_COLS} FROM alerts WHERE rule_id = $1 AND state = 'firing' FOR UPDATE",
                               rule_id)


@dataclass(frozen=True)
class NewAlert:
    rule_id: str
    rule_name: str
    rule_version: int
    org_id: str | None
    api_id: str | None
    metric: str
    comparison: str
    threshold: float
    value: float | None
    started_at: datetime


async def open_alert(conn: asyncpg.Connection, a: NewAlert) -> asyncpg.Record:
    return await conn.fetchrow(
        f"INSERT INTO alerts (id, rule_id, rule_name, rule_version, org_id, api_id, metric, comparison, threshold, value,"
        f" state, started_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, 'firing', $11) RETURNING {_ALERT_COLS}",
        str(uuid.uuid4()), a.rule_id, a.rule_name, a.rule_version, a.org_id, a.api_id, a.metric, a.comparison,
        a.threshold, a.value, a.started_at)


async def resolve_alert(conn: asyncpg.Connection, alert_id: str, value: float | None, at: datetime) -> asyncpg.Record:
    return await conn.fetchrow(
        f"UPDATE alerts SET state = 'resolved', resolved_at = $3, value = coalesce($2, value) WHERE id = $1"
        f" RETURNING {_ALERT_COLS}", alert_id, value, at)


async def mark_escalated(conn: asyncpg.Connection, alert_id: str, at: datetime) -> asyncpg.Record:
    return await conn.fetchrow(f"UPDATE alerts SET escalated_at = $2 WHERE id = $1 RETURNING {_ALERT_COLS}", alert_id, at)


async def orphaned_alerts(conn: asyncpg.Connection) -> list[asyncpg.Record]:
    """Firing alerts whose rule was deleted or disabled since, locked: nothing will resolve them otherwise."""
    return await conn.fetch(
        f"SELECT {', '.join('a.' + c.strip() for c in _ALERT_COLS.split(','))} FROM alerts a"
        " LEFT JOIN alert_rules r ON r.id = a.rule_id WHERE a.state = 'firing'"
        " AND (r.id IS NULL OR NOT coalesce((r.content->>'enabled')::boolean, true)) FOR UPDATE OF a SKIP LOCKED")


@dataclass(frozen=True)
class Delivery:
    """One notification owed: to the topic, a webhook or an e-mail address."""

    id: str
    alert_id: str
    event: str
    channel: str
    target: str
    payload: dict[str, Any]
    secret_sealed: str | None
    rule_id: str


async def enqueue(conn: asyncpg.Connection, alert_id: str, event: str, payload: dict[str, Any],
                  targets: list[tuple[str, str, str | None]]) -> None:
    """Owe ``payload`` to each ``(channel, target, sealed secret)``, in the caller's transaction."""
    if not targets:
        return
    await conn.executemany(
        "INSERT INTO alert_notifications (id, alert_id, event, channel, target, payload, secret_sealed)"
        " VALUES ($1, $2, $3, $4, $5, $6::jsonb, $7)",
        [(str(uuid.uuid4()), alert_id, event, ch, target, json.dumps(payload), secret) for ch, target, secret in targets])


async def pending_deliveries(conn: asyncpg.Connection, limit: int = 500) -> list[Delivery]:
    rows = await conn.fetch(
        "SELECT n.id, n.alert_id, n.event, n.channel, n.target, n.payload, n.secret_sealed, a.rule_id"
        " FROM alert_notifications n JOIN alerts a ON a.id = n.alert_id WHERE n.status = 'pending'"
        " ORDER BY n.created_at, n.id LIMIT $1", limit)
    return [Delivery(str(r["id"]), str(r["alert_id"]), r["event"], r["channel"], r["target"],
                     json.loads(r["payload"]) if isinstance(r["payload"], str) else dict(r["payload"]),
                     r["secret_sealed"], str(r["rule_id"])) for r in rows]


async def finish_delivery(conn: asyncpg.Connection, id_: str, *, ok: bool, attempts: int, error: str | None) -> None:
    await conn.execute("UPDATE alert_notifications SET status = $2, attempts = attempts + $3, error = $4,"
                       " done_at = clock_timestamp() WHERE id = $1", id_, "sent" if ok else "failed", attempts, error)


async def page_alerts(conn: asyncpg.Connection, org_id: str | None, *, state: str | None, rule_id: str | None,
                      limit: int, after: Position | None) -> list[asyncpg.Record]:
    """Newest first (started_at, then id); ``after`` is the last row of the previous page."""
    args: list[Any] = [org_id, state, rule_id]
    return await conn.fetch(
        f"SELECT {_ALERT_COLS} FROM alerts WHERE org_id IS NOT DISTINCT FROM $1::uuid"
        " AND ($2::text IS NULL OR state = $2) AND ($3::uuid IS NULL OR rule_id = $3::uuid)"
        f" AND {_ALERT_PAGE.after(after, args)} {_ALERT_PAGE.order(limit, args)}", *args)


async def get_alert(conn: asyncpg.Connection, org_id: str | None, id_: str, *, for_update: bool = False) -> asyncpg.Record | None:
    lock = " FOR UPDATE" if for_update else ""
    return await conn.fetchrow(
        f"SELECT {_ALERT_COLS} FROM alerts WHERE org_id IS NOT DISTINCT FROM $1::uuid AND id = $2{lock}", org_id, id_)


async def ack_alert(conn: asyncpg.Connection, id_: str, by: str, at: datetime) -> asyncpg.Record:
    """Acknowledge (the first acknowledgement stands)."""
    return await conn.fetchrow(
        f"UPDATE alerts SET acked_at = coalesce(acked_at, $3), acked_by = coalesce(acked_by, $2) WHERE id = $1"
        f" RETURNING {_ALERT_COLS}", id_, by, at)


async def notifications_of(conn: asyncpg.Connection, alert_ids: list[str]) -> dict[str, list[dict[str, Any]]]:
    rows = await conn.fetch(
        "SELECT alert_id, event, channel, target, status, attempts, error, created_at, done_at FROM alert_notifications"
        " WHERE alert_id = ANY($1::uuid[]) ORDER BY created_at, id", alert_ids)
    out: dict[str, list[dict[str, Any]]] = {}
    for r in rows:
        out.setdefault(str(r["alert_id"]), []).append({
            "event": r["event"], "channel": r["channel"], "target": r["target"] or None, "status": r["status"],
            "attempts": r["attempts"], "error": r["error"], "created_at": r["created_at"].isoformat(),
            "done_at": r["done_at"].isoformat() if r["done_at"] else None})
    return out


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def alert_view(row: asyncpg.Record, org_slug: str | None,
               notifications: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    out = {"id": str(row["id"]), "rule_id": str(row["rule_id"]), "rule_name": row["rule_name"],
           "rule_version": row["rule_version"], "org": org_slug, "org_id": str(row["org_id"]) if row["org_id"] else None,
           "api": row["api_id"], "metric": row["metric"], "comparison": row["comparison"],
           "threshold": row["threshold"], "value": row["value"], "state": row["state"],
           "started_at": _iso(row["started_at"]), "resolved_at": _iso(row["resolved_at"]),
           "acked_at": _iso(row["acked_at"]), "acked_by": row["acked_by"], "escalated_at": _iso(row["escalated_at"])}
    if notifications is not None:
        out["notifications"] = notifications
    return out
