"""Alert history (docs/alerts.md): list, read and acknowledge alerts.

``GET .../alerts?state=&rule=&limit=&cursor=`` lists newest first, with each alert's notifications
(what was sent where, and how it went). ``POST .../alerts/{id}/ack`` acknowledges one: an alert
acknowledged before its rule's escalation time is never escalated. Organisation alerts follow the
organisation's roles (viewers read, admins acknowledge, others 404); the global rules' alerts, under
``/api/v1/alerts``, are a global admin's.
"""
from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import UTC, datetime

from aiohttp import web

from control.alerting.evaluator import enqueue_acknowledged
from control.filters import param_errors
from control.handlers.alert_rules import global_scope
from control.handlers.common import optional_body, principal, record, reply, state
from control.handlers.paging import one_page, page_query
from control.handlers.resources import Scope, org_scope
from control.store import alerts as store
from control.validation import is_uuid, raise_if
from core.errors import FieldError, NotFound

__all__ = ["routes"]

QUERY = ("state", "rule", "limit", "cursor")
STATES = ("firing", "resolved")


def _handlers(base: str, scope_of: Callable[..., Awaitable[Scope]]) -> list[web.RouteDef]:

    async def list_(request: web.Request) -> web.Response:
        q = request.query
        errors = param_errors(q, QUERY)
        if "state" in q and q["state"] not in STATES:
            errors.append(FieldError("state", f"must be one of {', '.join(STATES)}"))
        if "rule" in q and not is_uuid(q["rule"]):
            errors.append(FieldError("rule", "must be an alert rule id"))
        raise_if(errors)
        limit, after = page_query(request)
        async with state(request).db.acquire() as conn:
            where: Scope = await scope_of(conn, request)
            rows, next_cursor = one_page(await store.page_alerts(conn, where.id, state=q.get("state"), rule_id=q.get("rule"),
                                                                 limit=limit + 1, after=after), limit, at="started_at")
            sent = await store.notifications_of(conn, [str(r["id"]) for r in rows])
        return reply({"items": [store.alert_view(r, where.slug, sent.get(str(r["id"]), [])) for r in rows],
                      "next_cursor": next_cursor})

    async def get(request: web.Request) -> web.Response:
        ref = request.match_info["id"]
        async with state(request).db.acquire() as conn:
            where: Scope = await scope_of(conn, request)
            row = await store.get_alert(conn, where.id, ref) if is_uuid(ref) else None
            if row is None:
                raise NotFound(f"alert {ref!r} not found")
            sent = await store.notifications_of(conn, [str(row["id"])])
        return reply(store.alert_view(row, where.slug, sent.get(str(row["id"]), [])))

    async def ack(request: web.Request) -> web.Response:
        await optional_body(request, None)  # no fields: a body, if any, must say nothing
        ref = request.match_info["id"]
        p = principal(request)
        async with state(request).db.acquire() as conn, conn.transaction():
            where: Scope = await scope_of(conn, request, write=True)
            before = await store.get_alert(conn, where.id, ref, for_update=True) if is_uuid(ref) else None
            if before is None:
                raise NotFound(f"alert {ref!r} not found")
            if before["acked_at"] is not None:  # acknowledged already: the first acknowledgement stands
                return reply(store.alert_view(before, where.slug))
            now = datetime.now(UTC)
            after = await store.ack_alert(conn, str(before["id"]), p.email, now)
            await enqueue_acknowledged(conn, after, where.slug, now)
            await record(conn, request, action="ack", resource_type="alert", resource_id=str(after["id"]),
                         org_id=where.id, before=store.alert_view(before, where.slug),
                         after=store.alert_view(after, where.slug), events=[])
        return reply(store.alert_view(after, where.slug))

    one = base + "/{id}"
    return [web.get(base, list_, allow_head=False), web.get(one, get, allow_head=False), web.post(one + "/ack", ack)]


def routes() -> list[web.RouteDef]:
    return [*_handlers("/api/v1/orgs/{org}/alerts", org_scope), *_handlers("/api/v1/alerts", global_scope)]
