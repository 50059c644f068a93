"""The value of a rule's metric now, read from what the rest of Junction already keeps: the observe
stage's metric windows, the dead-letter index and the breakers in Redis.

A window is the ``window`` seconds before ``now``, read from the 10 s windows (the 1 min ones beyond an
hour). A metric with nothing to measure (no calls for a rate or a percentile) is ``None``, which no
condition matches: an idle API neither fires nor keeps an alert firing.
"""
from __future__ import annotations

from datetime import datetime, timedelta

import asyncpg

from control.alerting.rules import Rule
from control.store.alerts import connector_targets
from control.store.dead_letters import count_letters
from control.store.metrics import summarise, window_rows
from core.breaker_state import BreakerStore, target_origins

__all__ = ["measure"]


async def measure(conn: asyncpg.Connection, breakers: BreakerStore, rule: Rule, now: datetime) -> float | None:
    since = now - timedelta(seconds=rule.window_s)
    if rule.metric == "dead_letters_per_minute":
        return await count_letters(conn, rule.org_id, rule.api, since, now) / (rule.window_s / 60)
    if rule.metric == "circuit_open":
        return float(await _open_breakers(conn, breakers, rule, now))
    step = 10 if rule.window_s <= 3600 else 60
    # Windows that started in [now - window, now - step]: whole windows only, the last one just ended.
    rows = await window_rows(conn, step_s=step, since=since, until=now - timedelta(seconds=step),
                             org_id=rule.org_id, api_id=rule.api)
    point = summarise(rows)
    if rule.metric == "calls_per_second":
        return point["calls"] / rule.window_s
    if rule.metric == "error_rate":
        return point["errors"] / point["calls"] if point["calls"] else None
    return point["latency_ms"]["p95" if rule.metric == "p95_latency_ms" else "p99"]


async def _open_breakers(conn: asyncpg.Connection, breakers: BreakerStore, rule: Rule, now: datetime) -> int:
    """Breakers not closed among the upstream origins of the connectors in scope. Half-open counts: no call
    has shown the upstream healthy again yet."""
    # Each organisation's breakers for the origins its connectors call (core/breaker_state.py), every origin of
    # a target that lists several.
    breakers_in_scope = {(org, origin) for org, target in await connector_targets(conn, rule.org_id, rule.api)
                         for origin in target_origins(target)}
    now_ms = int(now.timestamp() * 1000)
    states = [await breakers.read(org, origin, now_ms) for org, origin in sorted(breakers_in_scope) if origin != "://"]
    return sum(s.state != "closed" for s in states)
