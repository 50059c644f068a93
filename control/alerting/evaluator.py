"""The alert evaluator: a supervised control task that evaluates every enabled rule every
``JUNCTION_ALERT_INTERVAL_S`` seconds and delivers what the alerts owe.

**One at a time.** Every control instance runs the loop, but a round runs only under a PostgreSQL
session advisory lock (``pg_try_advisory_lock``, keyed by the schema): the instance that holds it
evaluates, the others skip that round. The lock is the connection's, so an instance that dies
frees it with its connection, and another takes over at its next round. Nothing is lost with it:
a rule's state (since when its condition has held) and the notifications owed are rows, not memory.
Even two evaluators at once (a lock lost with a network partition) could not fire a rule twice:
each rule is evaluated under its state row's lock, and at most one alert per rule may be firing
(a unique index).

**A round.** For each rule: measure (control/alerting/measure.py), then in one transaction:
the condition held for ``duration`` fires an alert; one that stops holding resolves it; a firing
alert not acknowledged within the escalation time escalates, once. Each of these owes an event to
the alerts topic and a notification to each channel, written in the same transaction. Then every
notification owed is delivered (control/alerting/notify.py). An alert that stays firing owes
nothing more: no repeated notifications.

The clock and the interval are injectable, and :meth:`AlertEvaluator.evaluate` runs one round, so
tests drive it deterministically.
"""
from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
from aiokafka.errors import KafkaError
from redis.exceptions import RedisError

from control.alerting.measure import measure
from control.alerting.notify import Notifier
from control.alerting.rules import Rule, compare
from control.store import alerts as store
from control.store.resources import content_of
from core.breaker_state import BreakerStore
from core.kafka import make_producer
from core.sealing import sealer_for
from core.settings import Settings
from core.tasks import Supervised

__all__ = ["AlertEvaluator", "Round", "enqueue_acknowledged", "payload_of"]

log = logging.getLogger(__name__)

Clock = Callable[[], datetime]


def _utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass
class Round:
    """What one round did (for tests and logs)."""

    ran: bool = True  # False: another instance holds the lock
    evaluated: int = 0
    fired: list[str] = field(default_factory=list)
    resolved: list[str] = field(default_factory=list)
    escalated: list[str] = field(default_factory=list)
    delivered: dict[str, int] = field(default_factory=dict)  # status -> count
    errors: list[str] = field(default_factory=list)


def payload_of(event: str, alert: Any, org_slug: str | None, window: str | None, at: datetime) -> dict[str, Any]:
    """The event as the topic, webhooks and e-mails carry it (docs/topics.md, docs/alerts.md)."""
    def iso(v: datetime | None) -> str | None:
        return v.isoformat() if v is not None else None

    return {"type": f"alert.{event}", "event": event, "at": at.isoformat(), "alert_id": str(alert["id"]),
            "rule_id": str(alert["rule_id"]), "rule_name": alert["rule_name"], "rule_version": alert["rule_version"],
            "org": org_slug, "org_id": str(alert["org_id"]) if alert["org_id"] else None, "api": alert["api_id"],
            "metric": alert["metric"], "comparison": alert["comparison"], "threshold": alert["threshold"],
            "window": window, "value": alert["value"], "state": alert["state"], "started_at": iso(alert["started_at"]),
            "resolved_at": iso(alert["resolved_at"]), "acked_at": iso(alert["acked_at"]),
            "escalated_at": iso(alert["escalated_at"])}


async def enqueue_acknowledged(conn: asyncpg.Connection, alert: Any, org_slug: str | None, at: datetime) -> None:
    """An acknowledgement is said on the topic only (the next round delivers it): people acknowledge, so
    the channels that paged them need no word of it."""
    await store.enqueue(conn, str(alert["id"]), "acknowledged", payload_of("acknowledged", alert, org_slug, None, at),
                        [("topic", "", None)])


def _channels(rule: Rule, webhooks: tuple[str, ...], emails: tuple[str, ...]) -> list[tuple[str, str, str | None]]:
    return ([("topic", "", None)] + [("webhook", u, rule.secret_sealed) for u in webhooks]
            + [("email", e, None) for e in emails])


class AlertEvaluator:
    def __init__(self, settings: Settings, pool: asyncpg.Pool, redis: Any, *, clock: Clock = _utcnow,
                 interval_s: float | None = None, notifier: Notifier | None = None,
                 only: Callable[[Rule], bool] | None = None) -> None:
        """``only`` narrows the rules this evaluator takes (tests: their own organisations'); ``clock`` and
        ``interval_s`` replace the wall clock and ``JUNCTION_ALERT_INTERVAL_S``."""
        self._settings = settings
        self._pool = pool
        self._breakers = BreakerStore(redis, settings)
        self._producer: Any = None  # made at the first round: a broker away at start-up delays only the topic
        self.clock = clock
        self.interval_s = interval_s if interval_s is not None else float(settings.alert_interval_s)
        self._notifier = notifier or Notifier(settings, sealer=sealer_for(settings) if settings.seal_key else None)
        self._loop = Supervised("alert-evaluator", self._run)
        self._lock_key = f"{settings.database_schema}:alert-evaluator"
        self._only = only

    async def start(self, *, loop: bool = True) -> None:
        """Open the webhook session (and, with ``loop``, start evaluating every interval)."""
        await self._notifier.start()
        if loop:
            self._loop.start()

    async def stop(self) -> None:
        await self._loop.stop()
        await self._notifier.stop()
        if self._producer is not None:
            await self._producer.stop()
            self._producer = None

    async def _ensure_producer(self) -> None:
        if self._producer is not None:
            return
        producer = make_producer(self._settings)
        try:
            await producer.start()
        except KafkaError as exc:
            await producer.stop()
            log.warning("alert evaluator: no Kafka producer yet (%r); alert events wait", exc)
            return
        self._producer = producer
        self._notifier.producer = producer

    async def check(self) -> None:
        await self._loop.check()

    async def _run(self) -> None:
        while True:
            await self.evaluate()
            await asyncio.sleep(self.interval_s)

    async def evaluate(self) -> Round:
        """One round, if this instance gets the lock."""
        async with self._pool.acquire() as lock_conn:
            if not await lock_conn.fetchval("SELECT pg_try_advisory_lock(hashtext($1))", self._lock_key):
                return Round(ran=False)
            try:
                return await self._round()
            finally:
                await lock_conn.execute("SELECT pg_advisory_unlock(hashtext($1))", self._lock_key)

    async def _round(self) -> Round:
        result = Round()
        now = self.clock()
        async with self._pool.acquire() as conn:
            rows = await store.rules_to_evaluate(conn)
            for row in rows:
                rule = Rule.of(str(row["id"]), str(row["org_id"]) if row["org_id"] else None, row["slug"],
                               row["version"], content_of(row))
                if self._only is not None and not self._only(rule):
                    continue
                try:
                    await self._evaluate_rule(conn, rule, now, result)
                except (asyncpg.PostgresError, RedisError, OSError) as exc:
                    # One rule's failure (its breakers' Redis away, say) must not stop the others.
                    log.warning("alert rule %s not evaluated: %r", rule.id, exc)
                    result.errors.append(f"{rule.id}: {exc!r}")
            await self._resolve_orphans(conn, now, result)
        await self._deliver(result)
        return result

    async def _evaluate_rule(self, conn: asyncpg.Connection, rule: Rule, now: datetime, result: Round) -> None:
        value = await measure(conn, self._breakers, rule, now)
        holds = compare(value, rule.comparison, rule.threshold)
        result.evaluated += 1
        window = _span_text(rule.window_s)
        async with conn.transaction():
            state = await store.lock_state(conn, rule.id)
            firing = await store.firing_alert(conn, rule.id)
            pending = (state["pending_since"] or now) if holds else None
            if holds and firing is None and now - pending >= timedelta(seconds=rule.duration_s):
                alert = await store.open_alert(conn, store.NewAlert(
                    rule.id, rule.name, rule.version, rule.org_id, rule.api, rule.metric, rule.comparison,
                    rule.threshold, value, now))
                await store.enqueue(conn, str(alert["id"]), "fired", payload_of("fired", alert, rule.org_slug, window, now),
                                    _channels(rule, rule.webhooks, rule.emails))
                result.fired.append(str(alert["id"]))
            elif not holds and firing is not None:
                alert = await store.resolve_alert(conn, str(firing["id"]), value, now)
                extra_w = rule.escalation_webhooks if firing["escalated_at"] else ()
                extra_e = rule.escalation_emails if firing["escalated_at"] else ()
                await store.enqueue(conn, str(alert["id"]), "resolved",
                                    payload_of("resolved", alert, rule.org_slug, window, now),
                                    _channels(rule, _union(rule.webhooks, extra_w), _union(rule.emails, extra_e)))
                result.resolved.append(str(alert["id"]))
            elif (firing is not None and firing["acked_at"] is None and firing["escalated_at"] is None
                  and rule.escalate_after_s is not None
                  and now - firing["started_at"] >= timedelta(seconds=rule.escalate_after_s)):
                alert = await store.mark_escalated(conn, str(firing["id"]), now)
                await store.enqueue(conn, str(alert["id"]), "escalated",
                                    payload_of("escalated", alert, rule.org_slug, window, now),
                                    _channels(rule, rule.escalation_webhooks, rule.escalation_emails))
                result.escalated.append(str(alert["id"]))
            await store.set_state(conn, rule.id, pending, value, now)

    async def _resolve_orphans(self, conn: asyncpg.Connection, now: datetime, result: Round) -> None:
        """A rule deleted or disabled while its alert fired: resolved, said on the topic only (its channels
        may be gone with it)."""
        async with conn.transaction():
            for firing in await store.orphaned_alerts(conn):
                alert = await store.resolve_alert(conn, str(firing["id"]), None, now)
                slug = await conn.fetchval("SELECT slug FROM organisations WHERE id = $1", alert["org_id"]) \
                    if alert["org_id"] else None
                await store.enqueue(conn, str(alert["id"]), "resolved", payload_of("resolved", alert, slug, None, now),
                                    [("topic", "", None)])
                result.resolved.append(str(alert["id"]))

    async def _deliver(self, result: Round) -> None:
        await self._ensure_producer()
        async with self._pool.acquire() as conn:
            owed = await store.pending_deliveries(conn)
        for d in owed:
            outcome = await self._notifier.deliver(d)
            result.delivered[outcome.status] = result.delivered.get(outcome.status, 0) + 1
            if outcome.status == "pending":
                continue
            async with self._pool.acquire() as conn:
                await store.finish_delivery(conn, d.id, ok=outcome.status == "sent", attempts=outcome.attempts,
                                            error=outcome.error)


def _union(a: tuple[str, ...], b: tuple[str, ...]) -> tuple[str, ...]:
    return a + tuple(x for x in b if x not in a)


def _span_text(seconds: int) -> str:
    for unit, size in (("h", 3600), ("m", 60)):
        if seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"
