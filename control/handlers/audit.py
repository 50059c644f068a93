"""GET /api/v1/audit: filtered, newest first, paginated by cursor. ``org`` names an organisation the caller
can see (else 404, as everywhere); a global admin also reads a deleted organisation's trail by its id."""
from __future__ import annotations

import uuid
from datetime import datetime, timezone

from aiohttp import web

from control.filters import param_errors
from control.handlers.common import principal, reply, state
from control.store.audit import AuditFilter, audit_view, query_audit
from control.store.orgs import find_org
from control.validation import is_uuid, raise_if
from core.errors import FieldError, NotFound

__all__ = ["routes", "RESOURCE_TYPES"]

RESOURCE_TYPES = ("org", "user", "api", "connector", "consumer", "replay", "alert_rule", "alert")
QUERY_PARAMS = ("org", "actor", "resource_type", "resource_id", "since", "until", "limit", "cursor")


def _time(raw: str, name: str, errors: list[FieldError]) -> datetime | None:
    try:
        value = datetime.fromisoformat(raw.replace("Z", "+00:00"))
    except ValueError:
        errors.append(FieldError(name, "must be an ISO 8601 date-time"))
        return None
    return value if value.tzinfo else value.replace(tzinfo=timezone.utc)


def _int(raw: str, name: str, low: int, high: int, errors: list[FieldError]) -> int | None:
    if not raw.isdigit() or len(raw) > 18 or not low <= int(raw) <= high:
        errors.append(FieldError(name, f"must be an integer from {low} to {high}"))
        return None
    return int(raw)


async def list_audit(request: web.Request) -> web.Response:
    p = principal(request)
    q = request.query
    errors = param_errors(q, QUERY_PARAMS)
    raise_if(errors)
    rtype = q.get("resource_type")
    if rtype is not None and rtype not in RESOURCE_TYPES:
        errors.append(FieldError("resource_type", f"must be one of {', '.join(RESOURCE_TYPES)}"))
    since = _time(q["since"], "since", errors) if "since" in q else None
    until = _time(q["until"], "until", errors) if "until" in q else None
    limit = _int(q["limit"], "limit", 1, 500, errors) if "limit" in q else 100
    cursor = _int(q["cursor"], "cursor", 1, 2**62, errors) if "cursor" in q else None
    raise_if(errors)
    async with state(request).db.acquire() as conn:
        org_id: str | None = None
        if "org" in q:
            org = await find_org(conn, q["org"])
            if org is not None and p.can_read(str(org["id"])):
                org_id = str(org["id"])
            elif org is None and p.is_global_admin and is_uuid(q["org"]):
                org_id = str(uuid.UUID(q["org"]))  # a deleted organisation's trail, by the id its rows keep
            else:  # as every other route of an organisation the caller cannot see: its existence does not leak
                raise NotFound(f"organisation {q['org'][:64]!r} not found", code="org_not_found")
        elif not p.is_global_admin:
            org_id = p.org_id  # others see only their own organisation's trail
        assert limit is not None
        rows = await query_audit(conn, AuditFilter(org_id=org_id, actor=q.get("actor"), resource_type=rtype,
                                                   resource_id=q.get("resource_id"), since=since, until=until,
                                                   before_id=cursor, limit=limit))
    items = [audit_view(r) for r in rows]
    next_cursor = items[-1]["id"] if len(items) == limit else None
    return reply({"items": items, "next_cursor": next_cursor})


def routes() -> list[web.RouteDef]:
    return [web.get("/api/v1/audit", list_audit, allow_head=False)]
