"""Alerts (docs/alerts.md): rules as versioned resources, the evaluator on an injected clock against metric
windows and dead letters written with the stages' own store functions, and notifications to real servers
on loopback (an aiohttp webhook receiver that checks signatures, an aiosmtpd SMTP server)."""
from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import pytest_asyncio

from control.app import create_app
from control.alerting import AlertEvaluator
from control.alerting.measure import measure
from control.alerting.rules import Rule
from core.breaker_state import BreakerStore, origin_of
from core.http import listening
from core.redis import make_redis
from core.settings import Settings
from junction.broker import free_port
from tests.control.alert_support import (
    Clock,
    SmtpSink,
    WebhookReceiver,
    aligned_past,
    put_calls,
    topic_events,
)
from tests.dead_letter_support import index_letters, letter_bytes

SECRET = "s3cret-signing-key-0123"


@dataclass
class Alerting:
    settings: Settings
    receiver: WebhookReceiver
    smtp: SmtpSink
    redis: Any
    orgs: set[str]

    def evaluator(self, control: Any, clock: Clock, **overrides: Any) -> AlertEvaluator:
        return AlertEvaluator(self.settings.with_overrides(**overrides) if overrides else self.settings, control.pool,
                              self.redis, clock=clock, only=lambda rule: rule.org_id in self.orgs)


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def alerting(control: Any) -> AsyncIterator[Alerting]:
    receiver, smtp = WebhookReceiver(SECRET), SmtpSink()
    await receiver.start()
    await smtp.start()
    settings = control.settings.with_overrides(smtp_host="127.0.0.1", smtp_port=smtp.port, smtp_starttls=False,
                                               alert_retry_base_ms=10, alert_attempts=3, alert_send_timeout_ms=3000)
    redis = make_redis(settings)
    try:
        yield Alerting(settings, receiver, smtp, redis, set())
    finally:
        await redis.aclose()
        await smtp.stop()
        await receiver.stop()


@pytest_asyncio.fixture(loop_scope="session")
async def world(control: Any, alerting: Alerting) -> dict[str, Any]:
    """A fresh organisation with an API, an admin and a viewer; its rules are the evaluator's."""
    org = await control.new_org("alerts")
    connector = await control.new_connector(org["slug"])
    api = await control.new_api(org["slug"], connector["id"])
    # Only this test's organisation: a rule an earlier test left behind must not fire in this one's rounds.
    alerting.orgs.clear()
    alerting.orgs.add(org["id"])
    return {"org": org, "api": api, "connector": connector,
            "admin": (await control.new_user(org["slug"], "org_admin"))[1],
            "viewer": (await control.new_user(org["slug"], "org_viewer"))[1]}


def _rule(receiver: WebhookReceiver, path: str, email: str, **fields: Any) -> dict[str, Any]:
    return {"name": f"r-{uuid.uuid4().hex[:8]}", "metric": "error_rate", "comparison": ">", "threshold": 0.5,
            "window": "1m", "duration": "20s", "webhook_secret": SECRET,
            "channels": {"webhooks": [receiver.url(path)], "emails": [email]}, **fields}


async def _create(control: Any, world: dict[str, Any], body: dict[str, Any]) -> dict[str, Any]:
    r = await control.call("POST", f"/api/v1/orgs/{world['org']['slug']}/alert-rules", world["admin"], body)
    assert r.status == 201, r.body
    return r.body


async def _alerts(control: Any, world: dict[str, Any], **query: str) -> list[dict[str, Any]]:
    qs = "&".join(f"{k}={v}" for k, v in query.items())
    r = await control.call("GET", f"/api/v1/orgs/{world['org']['slug']}/alerts?{qs}", world["viewer"])
    assert r.status == 200, r.body
    return r.body["items"]


async def test_fire_stay_resolve(control: Any, alerting: Alerting, world: dict[str, Any]) -> None:
    """Fires once the condition held for its duration: one webhook (signed), one e-mail, an event on the
    alerts topic and a history row; no repeat while it stays firing; one notification on resolve."""
    path, email = f"/{uuid.uuid4().hex}", f"oncall-{uuid.uuid4().hex[:6]}@example.com"
    rule = await _create(control, world, _rule(alerting.receiver, path, email, api=world["api"]["id"]))
    t = aligned_past()
    await put_calls(control.pool, world["org"]["id"], world["api"]["id"], t - timedelta(seconds=60), seconds=180,
                    calls=10, errors=8)
    clock = Clock(t)
    ev = alerting.evaluator(control, clock)
    await ev.start(loop=False)
    try:
        first = await ev.evaluate()
        assert first.ran and not first.fired  # holds, but not for 20 s yet
        clock.now = t + timedelta(seconds=10)
        assert not (await ev.evaluate()).fired
        clock.now = t + timedelta(seconds=20)
        fired = await ev.evaluate()
        assert len(fired.fired) == 1, fired
        alert_id = fired.fired[0]
        hooks = alerting.receiver.to(path)
        assert len(hooks) == 1 and hooks[0].signed_ok
        assert hooks[0].json["event"] == "fired" and hooks[0].json["rule_id"] == rule["id"]
        assert hooks[0].json["value"] == 0.8 and hooks[0].headers["X-Junction-Event"] == "alert.fired"
        mails = alerting.smtp.to(email)
        assert len(mails) == 1 and "FIRING" in mails[0]["Subject"] and rule["name"] in mails[0]["Subject"]
        [row] = await _alerts(control, world, state="firing")
        assert row["id"] == alert_id and row["rule_id"] == rule["id"] and row["value"] == 0.8
        assert sorted((n["channel"], n["status"]) for n in row["notifications"]) == [
            ("email", "sent"), ("topic", "sent"), ("webhook", "sent")]

        for later in (30, 40, 50):  # still firing: nothing more is sent
            clock.now = t + timedelta(seconds=later)
            again = await ev.evaluate()
            assert not again.fired and not again.resolved
        assert len(alerting.receiver.to(path)) == 1 and len(alerting.smtp.to(email)) == 1

        clock.now = t + timedelta(seconds=300)  # no calls in the last minute: nothing to hold the condition
        resolved = await ev.evaluate()
        assert resolved.resolved == [alert_id]
        hooks = alerting.receiver.to(path)
        assert len(hooks) == 2 and hooks[1].signed_ok and hooks[1].json["event"] == "resolved"
        assert len(alerting.smtp.to(email)) == 2 and "RESOLVED" in alerting.smtp.to(email)[1]["Subject"]
        clock.now = t + timedelta(seconds=310)
        assert not (await ev.evaluate()).resolved
        assert len(alerting.receiver.to(path)) == 2
        [row] = await _alerts(control, world, state="resolved", rule=rule["id"])
        assert row["resolved_at"] is not None and not await _alerts(control, world, state="firing")
        events = await topic_events(alerting.settings, {alert_id}, want=2)
        assert [e["event"] for e in events] == ["fired", "resolved"]
        assert events[0]["org"] == world["org"]["slug"] and events[0]["api"] == world["api"]["id"]
    finally:
        await ev.stop()


async def _fire(control: Any, alerting: Alerting, world: dict[str, Any], clock: Clock, ev: AlertEvaluator,
                body: dict[str, Any]) -> tuple[dict[str, Any], str]:
    rule = await _create(control, world, body)
    await put_calls(control.pool, world["org"]["id"], "", clock.now - timedelta(seconds=60), seconds=600,
                    calls=4, errors=4)
    fired = await ev.evaluate()
    assert len(fired.fired) == 1, fired
    return rule, fired.fired[0]


async def test_ack_stops_escalation(control: Any, alerting: Alerting, world: dict[str, Any]) -> None:
    path, esc = f"/{uuid.uuid4().hex}", f"/{uuid.uuid4().hex}"
    email, boss = f"a-{uuid.uuid4().hex[:6]}@example.com", f"boss-{uuid.uuid4().hex[:6]}@example.com"
    t = aligned_past()
    clock = Clock(t)
    ev = alerting.evaluator(control, clock)
    await ev.start(loop=False)
    try:
        _, alert_id = await _fire(control, alerting, world, clock, ev, _rule(
            alerting.receiver, path, email, duration="0s",
            escalation={"after": "1m", "webhooks": [alerting.receiver.url(esc)], "emails": [boss]}))
        slug = world["org"]["slug"]
        r = await control.call("POST", f"/api/v1/orgs/{slug}/alerts/{alert_id}/ack", world["viewer"])
        assert r.status == 403, r.body
        # The acknowledgement takes no fields: a body that says something is refused, and nothing is acknowledged.
        for raw, status in ((b"{bad", 400), (b'{"note": "x"}', 422), (b'"x"', 422)):
            r = await control.call("POST", f"/api/v1/orgs/{slug}/alerts/{alert_id}/ack", world["admin"], data=raw,
                                   headers={"Content-Type": "application/json"})
            assert r.status == status, (raw, r.body)
        r = await control.call("GET", f"/api/v1/orgs/{slug}/alerts/{alert_id}", world["admin"])
        assert r.body["acked_at"] is None, r.body
        r = await control.call("POST", f"/api/v1/orgs/{slug}/alerts/{alert_id}/ack", world["admin"])
        assert r.status == 200 and r.body["acked_at"] and r.body["acked_by"], r.body
        for later in (70, 130):
            clock.now = t + timedelta(seconds=later)
            assert not (await ev.evaluate()).escalated
        assert alerting.receiver.to(esc) == [] and alerting.smtp.to(boss) == []
        events = await topic_events(alerting.settings, {alert_id}, want=2)
        assert [e["event"] for e in events] == ["fired", "acknowledged"]
    finally:
        await ev.stop()


async def test_no_ack_escalates_once(control: Any, alerting: Alerting, world: dict[str, Any]) -> None:
    path, esc = f"/{uuid.uuid4().hex}", f"/{uuid.uuid4().hex}"
    email, boss = f"a-{uuid.uuid4().hex[:6]}@example.com", f"boss-{uuid.uuid4().hex[:6]}@example.com"
    t = aligned_past()
    clock = Clock(t)
    ev = alerting.evaluator(control, clock)
    await ev.start(loop=False)
    try:
        _, alert_id = await _fire(control, alerting, world, clock, ev, _rule(
            alerting.receiver, path, email, duration="0s",
            escalation={"after": "1m", "webhooks": [alerting.receiver.url(esc)], "emails": [boss]}))
        clock.now = t + timedelta(seconds=30)
        assert not (await ev.evaluate()).escalated  # not yet
        clock.now = t + timedelta(seconds=60)
        assert (await ev.evaluate()).escalated == [alert_id]
        for later in (70, 200):
            clock.now = t + timedelta(seconds=later)
            assert not (await ev.evaluate()).escalated
        hooks = alerting.receiver.to(esc)
        assert len(hooks) == 1 and hooks[0].signed_ok and hooks[0].json["event"] == "escalated"
        assert len(alerting.smtp.to(boss)) == 1 and "ESCALATED" in alerting.smtp.to(boss)[0]["Subject"]
        assert len(alerting.receiver.to(path)) == 1  # the first channels were told once, when it fired
    finally:
        await ev.stop()


async def test_webhook_down_retries_then_records_failure(control: Any, alerting: Alerting,
                                                         world: dict[str, Any]) -> None:
    down = WebhookReceiver(SECRET, status=503)
    await down.start()
    email = f"a-{uuid.uuid4().hex[:6]}@example.com"
    t = aligned_past()
    clock = Clock(t)
    ev = alerting.evaluator(control, clock)
    await ev.start(loop=False)
    try:
        body = _rule(alerting.receiver, "/unused", email, duration="0s")
        body["channels"]["webhooks"] = [down.url("/down")]
        _, alert_id = await _fire(control, alerting, world, clock, ev, body)
        assert len(down.hooks) == 3 and all(h.signed_ok for h in down.hooks)  # JUNCTION_ALERT_ATTEMPTS
        r = await control.call("GET", f"/api/v1/orgs/{world['org']['slug']}/alerts/{alert_id}", world["viewer"])
        sent = {n["channel"]: n for n in r.body["notifications"]}
        assert sent["webhook"]["status"] == "failed" and sent["webhook"]["attempts"] == 3
        assert "503" in sent["webhook"]["error"]
        assert sent["email"]["status"] == "sent" and sent["topic"]["status"] == "sent"
        clock.now = t + timedelta(seconds=10)
        again = await ev.evaluate()  # a failure is recorded, not retried for ever, and crashes nothing
        assert again.ran and not again.errors and len(down.hooks) == 3
    finally:
        await ev.stop()
        await down.stop()


async def test_ssrf_refused_at_save_and_at_send(control: Any, alerting: Alerting, world: dict[str, Any]) -> None:
    strict = control.settings.with_overrides(allow_private_targets=False, control_port=free_port())
    slug = world["org"]["slug"]
    # Served as `junction serve control` serves it (core/http.py's listener), like the session's control.
    async with listening(create_app(strict, relay=False, sandbox=False), "127.0.0.1", strict.control_port):
        for url, where in (("http://169.254.169.254/latest/meta-data", "channels.webhooks[0]"),
                           ("http://10.1.2.3/hook", "channels.webhooks[0]"),
                           ("http://localhost:8080/hook", "channels.webhooks[0]")):
            body = _rule(alerting.receiver, "/x", "a@example.com")
            body["channels"]["webhooks"] = [url]
            async with control.session.post(f"http://127.0.0.1:{strict.control_port}/api/v1/orgs/{slug}/alert-rules",
                                            json=body, headers={"Authorization": f"Bearer {world['admin']}"}) as resp:
                answer = await resp.json()
                assert resp.status == 422, answer
                assert where in [f["field"] for f in answer["fields"]], answer
        body = _rule(alerting.receiver, "/x", "a@example.com",
                     escalation={"after": "5m", "webhooks": ["http://[::ffff:169.254.169.254]/"]})
        async with control.session.post(f"http://127.0.0.1:{strict.control_port}/api/v1/orgs/{slug}/alert-rules",
                                        json=body, headers={"Authorization": f"Bearer {world['admin']}"}) as resp:
            assert resp.status == 422 and "escalation.webhooks[0]" in [f["field"] for f in (await resp.json())["fields"]]
    # Saved while private targets were allowed, sent when they are not: the guard refuses at connect time.
    path = f"/{uuid.uuid4().hex}"
    t = aligned_past()
    clock = Clock(t)
    ev = alerting.evaluator(control, clock, allow_private_targets=False)
    await ev.start(loop=False)
    try:
        _, alert_id = await _fire(control, alerting, world, clock, ev, _rule(alerting.receiver, path, "a@example.com",
                                                                           duration="0s"))
        assert alerting.receiver.to(path) == []
        r = await control.call("GET", f"/api/v1/orgs/{slug}/alerts/{alert_id}", world["admin"])
        [hook] = [n for n in r.body["notifications"] if n["channel"] == "webhook"]
        assert hook["status"] == "failed" and hook["attempts"] == 1 and "private or reserved" in hook["error"]
    finally:
        await ev.stop()


async def test_roles_and_isolation(control: Any, alerting: Alerting, world: dict[str, Any]) -> None:
    slug = world["org"]["slug"]
    base = f"/api/v1/orgs/{slug}/alert-rules"
    rule = await _create(control, world, _rule(alerting.receiver, "/r", "a@example.com"))
    one = f"{base}/{rule['id']}"
    assert (await control.call("GET", one, world["viewer"])).status == 200
    assert (await control.call("GET", f"{one}/versions", world["viewer"])).status == 200
    assert (await control.call("POST", base, world["viewer"], _rule(alerting.receiver, "/r", "a@example.com"))).status == 403
    assert (await control.call("PATCH", one, world["viewer"], {"threshold": 0.2})).status == 403
    assert (await control.call("DELETE", one, world["viewer"])).status == 403
    other = await control.new_org("alerts")
    _, stranger = await control.new_user(other["slug"], "org_admin")
    for method, path in (("GET", base), ("GET", one), ("PATCH", one), ("GET", f"/api/v1/orgs/{slug}/alerts")):
        r = await control.call(method, path, stranger, {"threshold": 0.1} if method == "PATCH" else None)
        assert r.status == 404, (method, path, r.body)
    # Another organisation's id under one's own organisation is not found either.
    _, other_viewer = await control.new_user(other["slug"], "org_viewer")
    assert (await control.call("GET", f"/api/v1/orgs/{other['slug']}/alert-rules/{rule['id']}", other_viewer)).status == 404
    # Global rules: a global admin's alone.
    body = {**_rule(alerting.receiver, "/g", "g@example.com"), "enabled": False}
    for token in (world["admin"], world["viewer"]):
        assert (await control.call("POST", "/api/v1/alert-rules", token, body)).status == 403
        assert (await control.call("GET", "/api/v1/alert-rules", token)).status == 403
        assert (await control.call("GET", "/api/v1/alerts", token)).status == 403
    r = await control.call("POST", "/api/v1/alert-rules", control.admin_token, body)
    assert r.status == 201 and r.body["org_id"] is None and r.body["org"] is None, r.body
    g = r.body
    assert (await control.call("POST", "/api/v1/alert-rules", control.admin_token, body)).status == 409  # name taken
    listed = await control.call("GET", "/api/v1/alert-rules?limit=1000", control.admin_token)
    assert g["id"] in [x["id"] for x in listed.body["items"]] and rule["id"] not in [x["id"] for x in listed.body["items"]]
    assert (await control.call("GET", f"{base}/{g['id']}", world["admin"])).status == 404  # not an org rule
    r = await control.call("PATCH", f"/api/v1/alert-rules/{g['id']}", control.admin_token, {"threshold": 0.9},
                           headers={"If-Match": 'W/"1"'})
    assert r.status == 200 and r.body["version"] == 2
    assert (await control.call("DELETE", f"/api/v1/alert-rules/{g['id']}", control.admin_token)).status == 204
    assert (await control.call("GET", "/api/v1/alerts", control.admin_token)).status == 200


async def test_versions_rollback_if_match_and_secret(control: Any, alerting: Alerting, world: dict[str, Any]) -> None:
    slug = world["org"]["slug"]
    rule = await _create(control, world, _rule(alerting.receiver, "/v", "a@example.com"))
    one = f"/api/v1/orgs/{slug}/alert-rules/{rule['id']}"
    assert rule["version"] == 1 and rule["webhook_secret_set"] is True
    assert "webhook_secret" not in rule and "webhook_secret_sealed" not in rule
    r = await control.call("GET", one, world["viewer"])
    assert r.headers["ETag"] == 'W/"1"' and "webhook_secret_sealed" not in str(r.body)
    assert (await control.call("PATCH", one, world["admin"], {"threshold": 0.3}, headers={"If-Match": 'W/"7"'})).status == 412
    r = await control.call("PATCH", one, world["admin"], {"threshold": 0.3, "webhook_secret": "another-secret-0123456"},
                           headers={"If-Match": 'W/"1"'})
    assert r.status == 200 and r.body["version"] == 2 and r.body["threshold"] == 0.3
    r = await control.call("PUT", one, world["admin"], {k: v for k, v in rule.items() if k in (
        "name", "metric", "comparison", "threshold", "window", "duration", "channels", "webhook_secret_set")})
    assert r.status == 200 and r.body["version"] == 3 and r.body["threshold"] == 0.5  # a PUT of what was read keeps the secret
    assert r.body["webhook_secret_set"] is True
    d = await control.call("GET", f"{one}/versions/1/diff/2", world["viewer"])
    changes = {c["field"]: c for c in d.body["changes"]}
    assert changes["threshold"]["before"] == 0.5 and changes["threshold"]["after"] == 0.3
    assert changes["webhook_secret_sealed"]["after"] == "********"
    versions = await control.call("GET", f"{one}/versions", world["viewer"])
    assert [v["version"] for v in versions.body["items"]] == [1, 2, 3]
    assert all("webhook_secret_sealed" not in v["content"] for v in versions.body["items"])
    r = await control.call("POST", f"{one}/rollback", world["admin"], {"version": 2})
    assert r.status == 200 and r.body["version"] == 4 and r.body["threshold"] == 0.3
    audit = await control.call("GET", f"/api/v1/audit?resource_type=alert_rule&resource_id={rule['id']}",
                               control.admin_token)
    assert [a["action"] for a in audit.body["items"]] == ["rollback", "update", "update", "create"]
    assert "webhook_secret_sealed" not in str(audit.body)


async def test_validation_names_the_fields(control: Any, alerting: Alerting, world: dict[str, Any]) -> None:
    base = f"/api/v1/orgs/{world['org']['slug']}/alert-rules"
    good = _rule(alerting.receiver, "/x", "a@example.com")
    cases = [
        ({k: v for k, v in good.items() if k != "metric"}, "metric"),
        ({**good, "metric": "cpu"}, "metric"),
        ({**good, "comparison": "=="}, "comparison"),
        ({**good, "window": "15s"}, "window"),
        ({**good, "window": "5d"}, "window"),
        ({**good, "duration": "2x"}, "duration"),
        ({**good, "threshold": 2}, "threshold"),
        ({**good, "api": str(uuid.uuid4())}, "api"),
        ({**good, "channels": {"webhooks": ["ftp://example.com/x"]}}, "channels.webhooks[0]"),
        ({**good, "channels": {"emails": ["not-an-address"]}}, "channels.emails[0]"),
        ({k: v for k, v in good.items() if k != "webhook_secret"}, "webhook_secret"),
        ({**good, "webhook_secret": "short"}, "webhook_secret"),
        ({**good, "escalation": {"after": "5m"}}, "escalation"),
        ({**good, "escalation": {"webhooks": []}}, "escalation.after"),
        ({**good, "colour": "red"}, "colour"),
    ]
    for body, field in cases:
        r = await control.call("POST", base, world["admin"], body)
        assert r.status == 422, (field, r.body)
        assert field in [f["field"] for f in r.body["fields"]], (field, r.body)
    r = await control.call("GET", f"/api/v1/orgs/{world['org']['slug']}/alerts?state=burning&rule=x&colour=1", world["viewer"])
    assert r.status == 422 and {f["field"] for f in r.body["fields"]} == {"state", "rule", "colour"}


async def test_every_metric_is_measured(control: Any, alerting: Alerting, world: dict[str, Any]) -> None:
    """Each metric from what the stages wrote: metric windows, dead letters, breakers in Redis."""
    org_id, api_id = world["org"]["id"], world["api"]["id"]
    t = aligned_past()
    await put_calls(control.pool, org_id, api_id, t - timedelta(seconds=60), seconds=60, calls=6, errors=3, latency_ms=250.0)
    await index_letters(control.pool, [letter_bytes(world["org"]["slug"], api_id=api_id,
                                                    failed_at_ms=int((t - timedelta(seconds=30)).timestamp() * 1000))
                                       for _ in range(4)])
    breakers = BreakerStore(alerting.redis, alerting.settings)
    url = world["connector"]["target"]["url"]
    for _ in range(alerting.settings.breaker_fail_max):
        await breakers.failed(world["org"]["slug"], origin_of(url), int(t.timestamp() * 1000), trial=False)

    def rule(metric: str, api: str | None = api_id) -> Rule:
        return Rule.of(str(uuid.uuid4()), org_id, None, 1, {"name": "m", "metric": metric, "comparison": ">",
                                                          "threshold": 0, "window": "1m", "api": api})

    async with control.pool.acquire() as conn:
        values = {m: await measure(conn, breakers, rule(m), t) for m in (
            "error_rate", "p95_latency_ms", "p99_latency_ms", "calls_per_second", "dead_letters_per_minute",
            "circuit_open")}
        idle = await measure(conn, breakers, rule("error_rate"), t + timedelta(hours=1))
        org_wide = await measure(conn, breakers, rule("circuit_open", None), t)
    assert values["error_rate"] == 0.5 and values["calls_per_second"] == 36 / 60
    assert abs(values["p95_latency_ms"] - 250) / 250 < 0.045 and abs(values["p99_latency_ms"] - 250) / 250 < 0.045
    assert values["dead_letters_per_minute"] == 4 and values["circuit_open"] == 1 and org_wide == 1
    assert idle is None  # no calls: nothing to compare, the condition does not hold
    await alerting.redis.delete(breakers.key(world["org"]["slug"], origin_of(url)))


async def test_a_rule_written_while_the_evaluator_fires_it_does_not_deadlock(control: Any, alerting: Alerting,
                                                                           world: dict[str, Any]) -> None:
    """A rollback (or any write) locks the organisation, then the rule; the evaluator, firing, holds the rule's
    state (a reference to the rule) and inserts an alert naming the organisation. Both orders at once, on two
    connections: each must finish, where FOR UPDATE locks made PostgreSQL kill one as a deadlock (a 500 on
    the rollback, seen in the console test)."""
    from control.store import alerts as alert_store
    from control.store.orgs import lock_org
    from control.store.resources import ALERT_RULE

    rule = await _create(control, world, _rule(alerting.receiver, "/x", "x@example.com"))
    org_id = world["org"]["id"]
    async with control.pool.acquire() as writer, control.pool.acquire() as evaluator:
        write, evaluate = writer.transaction(), evaluator.transaction()
        await write.start()
        await evaluate.start()
        try:
            await lock_org(writer, org_id)
            await alert_store.lock_state(evaluator, rule["id"])
            both = asyncio.gather(
                ALERT_RULE.get(writer, org_id, rule["id"], for_update=True),
                alert_store.open_alert(evaluator, alert_store.NewAlert(
                    rule["id"], rule["name"], 1, org_id, None, "error_rate", ">", 0.5, 1.0, aligned_past())))
            locked, opened = await asyncio.wait_for(both, 20)
            assert str(locked["id"]) == rule["id"] and str(opened["rule_id"]) == rule["id"]
        finally:
            await write.rollback()
            await evaluate.rollback()


async def test_an_api_a_rule_watches_cannot_be_deleted_until_the_rule_lets_go(control: Any) -> None:
    """As a connector an API uses: a rule left watching a deleted API would never fire again, silently."""
    org = (await control.new_org("al-del"))["slug"]
    connector = await control.new_connector(org)
    api = await control.new_api(org, connector["id"])
    other = await control.new_api(org, connector["id"])
    t = control.admin_token
    r = await control.call("POST", f"/api/v1/orgs/{org}/alert-rules", t, {
        "name": "errors", "metric": "error_rate", "comparison": ">", "threshold": 0.5, "api": api["id"]})
    assert r.status == 201, r.body
    rule = r.body
    r = await control.call("DELETE", f"/api/v1/orgs/{org}/apis/{api['id']}", t)
    assert r.status == 409 and r.body["code"] == "api_in_use" and r.body["alert_rules"] == [rule["id"]], r.body
    # Another API, watched by no rule, goes; the watched one goes once the rule watches another.
    assert (await control.call("DELETE", f"/api/v1/orgs/{org}/apis/{other['id']}", t)).status == 204
    third = await control.new_api(org, connector["id"])
    r = await control.call("PATCH", f"/api/v1/orgs/{org}/alert-rules/{rule['id']}", t, {"api": third["id"]})
    assert r.status == 200, r.body
    assert (await control.call("DELETE", f"/api/v1/orgs/{org}/apis/{api['id']}", t)).status == 204
    # A global rule (a global admin's) holds an API too: its admin is told, without the rule's id.
    r = await control.call("POST", "/api/v1/alert-rules", t, {
        "name": f"g-{org}", "metric": "error_rate", "comparison": ">", "threshold": 0.5, "api": third["id"]})
    assert r.status == 201, r.body
    glob = r.body
    _, org_admin = await control.new_user(org, "org_admin")
    r = await control.call("DELETE", f"/api/v1/orgs/{org}/apis/{third['id']}", org_admin)
    assert r.status == 409 and r.body["alert_rules"] == [rule["id"]] and "1 of them global" in r.body["message"], r.body
    r = await control.call("DELETE", f"/api/v1/orgs/{org}/apis/{third['id']}", t)
    assert r.status == 409 and r.body["alert_rules"] == [rule["id"], glob["id"]], r.body
    assert (await control.call("DELETE", f"/api/v1/alert-rules/{glob['id']}", t)).status == 204
    assert (await control.call("DELETE", f"/api/v1/orgs/{org}/alert-rules/{rule['id']}", t)).status == 204
    assert (await control.call("DELETE", f"/api/v1/orgs/{org}/apis/{third['id']}", org_admin)).status == 204


async def test_an_organisation_whose_api_a_global_rule_watches_cannot_be_deleted_until_the_rule_lets_go(
        control: Any) -> None:
    """Deleting the organisation deletes its APIs: a global rule watching one would be left watching nothing,
    and every change to it refused (its api no longer exists). The organisation's own rules go with it."""
    org = (await control.new_org("al-orgdel"))["slug"]
    connector = await control.new_connector(org)
    api = await control.new_api(org, connector["id"])
    t = control.admin_token
    r = await control.call("POST", f"/api/v1/orgs/{org}/alert-rules", t, {
        "name": "own", "metric": "error_rate", "comparison": ">", "threshold": 0.5, "api": api["id"]})
    assert r.status == 201, r.body
    r = await control.call("POST", "/api/v1/alert-rules", t, {
        "name": f"g-{org}", "metric": "error_rate", "comparison": ">", "threshold": 0.5, "api": api["id"]})
    assert r.status == 201, r.body
    glob = r.body
    r = await control.call("DELETE", f"/api/v1/orgs/{org}", t)
    assert r.status == 409 and r.body["code"] == "api_in_use" and r.body["alert_rules"] == [glob["id"]], r.body
    assert (await control.call("GET", f"/api/v1/orgs/{org}/apis/{api['id']}", t)).status == 200  # nothing deleted
    r = await control.call("PATCH", f"/api/v1/alert-rules/{glob['id']}", t, {"api": None})
    assert r.status == 200, r.body
    assert (await control.call("DELETE", f"/api/v1/orgs/{org}", t)).status == 204
    r = await control.call("PATCH", f"/api/v1/alert-rules/{glob['id']}", t, {"enabled": False})
    assert r.status == 200, r.body


async def test_a_global_rule_and_the_deletion_of_its_api_never_both_succeed(control: Any) -> None:
    """Race: a global rule made (or pointed) at an API while the API, or its organisation, is deleted. One of
    the two must lose: a rule left watching a deleted API never fires, and refuses every change after."""
    t = control.admin_token
    both = 0
    for round_ in range(24):
        org = (await control.new_org("al-race"))["slug"]
        api = await control.new_api(org, (await control.new_connector(org))["id"])
        deletion = f"/api/v1/orgs/{org}/apis/{api['id']}" if round_ % 2 else f"/api/v1/orgs/{org}"
        made, deleted = await asyncio.gather(
            control.call("POST", "/api/v1/alert-rules", t, {"name": f"race-{org}", "metric": "error_rate",
                                                            "comparison": ">", "threshold": 0.5, "api": api["id"]}),
            control.call("DELETE", deletion, t))
        assert made.status in (201, 422) and deleted.status in (204, 409), (made.body, deleted.body)
        both += made.status == 201 and deleted.status == 204
        if made.status == 201:  # whatever happened, the rule can still be changed
            r = await control.call("PATCH", f"/api/v1/alert-rules/{made.body['id']}", t, {"enabled": False})
            assert r.status == 200, r.body
            await control.call("DELETE", f"/api/v1/alert-rules/{made.body['id']}", t)
    assert both == 0
