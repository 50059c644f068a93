"""The request log of an organisation: GET /api/v1/orgs/{org}/logs.

One row per call, written by processors' observe stage from the topics (docs/observability.md):
status, error code, latencies, sizes and config versions, never a body or a credential. Newest
first, filtered by ``api``, ``status`` (``404`` or a class like ``5xx``), ``code``,
``correlation_id`` and a ``from``/``to`` range, paginated like every list (``limit``, ``cursor``).
Another organisation's log answers 404.
"""
from __future__ import annotations

import re
import uuid

from aiohttp import web

from control.handlers.common import org_for, reply, state
from control.handlers.metrics import parse_time
from control.handlers.resources import encode_cursor, page_query
from control.store.metrics import LogFilter, log_view, page_logs
from control.validation import is_uuid, raise_if
from core.errors import FieldError

__all__ = ["routes"]

QUERY_PARAMS = ("api", "status", "code", "from", "to", "correlation_id", "limit", "cursor")
_CODE = re.compile(r"[a-z0-9_]{1,64}")
_CORRELATION_ID = re.compile(r"[\x21-\x7e]{1,200}")
_STATUS = re.compile(r"[1-5][0-9][0-9]")
_STATUS_CLASS = re.compile(r"[1-5]xx")


def _filter(request: web.Request) -> LogFilter:
    q = request.query
    errors = [FieldError(name, "unknown query parameter") for name in q if name not in QUERY_PARAMS]
    errors += [FieldError(name, "must not contain NUL characters") for name in QUERY_PARAMS if "\x00" in q.get(name, "")]
    raise_if(errors)
    api, status, code, cid = q.get("api"), q.get("status"), q.get("code"), q.get("correlation_id")
    if api is not None and not is_uuid(api):
        errors.append(FieldError("api", "must be an API id"))
    if status is not None and not (_STATUS.fullmatch(status) or _STATUS_CLASS.fullmatch(status)):
        errors.append(FieldError("status", "must be an HTTP status (100 to 599) or a class such as 5xx"))
    if code is not None and not _CODE.fullmatch(code):
        errors.append(FieldError("code", "must be an error code: 1 to 64 of a-z, 0-9 and _"))
    if cid is not None and not _CORRELATION_ID.fullmatch(cid):
        errors.append(FieldError("correlation_id", "must be 1 to 200 printable characters without spaces"))
    since = parse_time(q["from"], "from", errors) if "from" in q else None
    until = parse_time(q["to"], "to", errors) if "to" in q else None
    if since is not None and until is not None and since > until:
        errors.append(FieldError("from", "must not be after to"))
    raise_if(errors)
    exact = int(status) if status and _STATUS.fullmatch(status) else None
    klass = int(status[0]) if status and _STATUS_CLASS.fullmatch(status) else None
    return LogFilter(api_id=str(uuid.UUID(api)) if api else None, status=exact, status_class=klass, error_code=code,
                     correlation_id=cid, since=since, until=until)


async def list_logs(request: web.Request) -> web.Response:
    logs = _filter(request)
    limit, after = page_query(request)
    async with state(request).db.acquire() as conn:
        org = await org_for(conn, request)
        rows = await page_logs(conn, str(org["id"]), logs, limit + 1, after)
    more = len(rows) > limit
    rows = rows[:limit]
    next_cursor = encode_cursor(rows[-1]["at"], str(rows[-1]["id"])) if more else None
    return reply({"items": [log_view(r) for r in rows], "next_cursor": next_cursor})


def routes() -> list[web.RouteDef]:
    return [web.get("/api/v1/orgs/{org}/logs", list_logs)]
