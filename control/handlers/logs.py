"""The request log of an organisation: GET /api/v1/orgs/{org}/logs.

One row per call, written by control's observe stage from the topics (docs/observability.md):
status, error code, latencies, sizes and config versions, never a body or a credential; a failed script's
traceback and log lines (``details``) for org admins and global admins only, null for an org viewer
(``details_hidden``), as in a dead letter. Newest
first, filtered by ``api``, ``status`` (``404`` or a class like ``5xx``), ``code``,
``correlation_id`` and a ``from``/``to`` range, paginated like every list (``limit``, ``cursor``). With
``wait`` (seconds, at most 60) it first waits until the observe stage has written every call answered
before the question, and says whether it had (``caught_up``, control/catch_up.py).
Another organisation's log answers 404.
"""
from __future__ import annotations

import dataclasses
import re
from typing import Any

from aiohttp import web

from control.filters import common, param_errors
from control.catch_up import OBSERVE_STAGE
from control.handlers.common import api_named, org_for, principal, reply, state, wait_for_reader, wait_seconds
from control.handlers.paging import one_page, page_query
from control.store.metrics import LogFilter, log_view, page_logs
from control.validation import raise_if
from core.errors import FieldError

__all__ = ["routes"]

QUERY_PARAMS = ("api", "status", "code", "from", "to", "correlation_id", "limit", "cursor", "wait")
_STATUS = re.compile(r"[1-5][0-9][0-9]")
_STATUS_CLASS = re.compile(r"[1-5]xx")


def _filter(request: web.Request) -> tuple[LogFilter, str | None]:
    """The log's filter, and the API name ``?api=`` gives instead of an id (looked up once the organisation is known)."""
    q = request.query
    raise_if(param_errors(q, QUERY_PARAMS))
    errors: list[FieldError] = []
    shared = common(q, errors)
    status = q.get("status")
    if status is not None and not (_STATUS.fullmatch(status) or _STATUS_CLASS.fullmatch(status)):
        errors.append(FieldError("status", "must be an HTTP status (100 to 599) or a class such as 5xx"))
    raise_if(errors)
    exact = int(status) if status and _STATUS.fullmatch(status) else None
    klass = int(status[0]) if status and _STATUS_CLASS.fullmatch(status) else None
    return LogFilter(api_id=shared.api_id, status=exact, status_class=klass, error_code=shared.error_code,
                     correlation_id=shared.correlation_id, since=shared.since, until=shared.until), shared.api_name


async def list_logs(request: web.Request) -> web.Response:
    logs, api_name = _filter(request)
    limit, after = page_query(request)
    wait_s = wait_seconds(request) if "wait" in request.query else None
    async with state(request).db.acquire() as conn:
        org = await org_for(conn, request)
        if api_name is not None:
            logs = dataclasses.replace(logs, api_id=await api_named(conn, str(org["id"]), api_name))
    # Not holding a connection while it waits: waiters must not starve the API of the pool.
    caught_up = await wait_for_reader(request, OBSERVE_STAGE, wait_s)
    async with state(request).db.acquire() as conn:
        rows, next_cursor = one_page(await page_logs(conn, str(org["id"]), logs, limit + 1, after), limit, at="at")
    # As for a dead letter: a failed script's traceback and log lines may hold the organisation's data (a
    # logged body), for those who may change its connectors only.
    shown = principal(request).can_write(str(org["id"]))
    items = [{**log_view(r), "details_hidden": False} if shown else {**log_view(r), "details": None, "details_hidden": True}
             for r in rows]
    page: dict[str, Any] = {"items": items, "next_cursor": next_cursor}
    if caught_up is not None:
        page["caught_up"] = caught_up
    return reply(page)


def routes() -> list[web.RouteDef]:
    return [web.get("/api/v1/orgs/{org}/logs", list_logs)]
