"""Dead letters of an organisation: GET /api/v1/orgs/{org}/dead-letters[/{id}].

Read from the ``dead_letters`` table the indexer fills (control/dead_letters.py). The list is newest
first, filtered by ``api``, ``stage``, ``code``, ``correlation_id`` and a ``from``/``to`` time range,
paginated like every list (``limit``, ``cursor``), and carries no bodies. With ``wait`` (seconds, at most
60) it first waits until the indexer has caught up with every dead letter written before the question,
and says whether it had (``caught_up``, control/catch_up.py). One letter shows its
``details`` and its original call (credentials already removed, core/redaction.py) decoded as JSON, to
org admins and global admins; an org viewer sees the metadata only (``original_hidden``,
``details_hidden``): a script's log lines and the call's body may hold the organisation's data.
Another organisation's letters answer 404.

A letter that names no organisation it can be trusted to belong to (bytes that are no message, a
producer naming another organisation's API, an API deleted meanwhile) is listed to global admins only,
at GET /api/v1/dead-letters[/{id}], with the same filters.
"""
from __future__ import annotations

import base64
import dataclasses
import uuid
from typing import Any

from aiohttp import web

from control.filters import common, param_errors
from control.catch_up import DEAD_LETTER_INDEXER
from control.handlers.common import api_named, org_for, principal, reply, state, wait_for_reader, wait_seconds
from control.handlers.paging import one_page, page_query
from control.store.dead_letters import (
    LetterFilter,
    get_letter,
    letter_view,
    page_letters,
)
from control.validation import is_uuid, raise_if
from core.errors import FieldError, NotFound
from schemas import CodecError, decode

__all__ = ["STAGES", "routes"]

STAGES = ("processors", "egress")
QUERY_PARAMS = ("api", "stage", "code", "from", "to", "correlation_id", "limit", "cursor", "wait")


def _filter(request: web.Request) -> tuple[LetterFilter, str | None]:
    """The list's filter, and the API name ``?api=`` gives instead of an id (looked up once the organisation is known)."""
    q = request.query
    raise_if(param_errors(q, QUERY_PARAMS))
    errors: list[FieldError] = []
    shared = common(q, errors)
    stage = q.get("stage")
    if stage is not None and stage not in STAGES:
        errors.append(FieldError("stage", f"must be one of {', '.join(STAGES)}"))
    raise_if(errors)
    return LetterFilter(api_id=shared.api_id, stage=stage, error_code=shared.error_code,
                        correlation_id=shared.correlation_id, since=shared.since, until=shared.until), shared.api_name


async def list_letters(request: web.Request) -> web.Response:
    _filter(request), page_query(request)  # a bad query is a 422 before an unknown organisation is a 404
    async with state(request).db.acquire() as conn:
        org = await org_for(conn, request)
    return await _page(request, str(org["id"]))


async def list_unattributed(request: web.Request) -> web.Response:
    principal(request).require_global_admin()
    return await _page(request, None)


async def _page(request: web.Request, org_id: str | None) -> web.Response:
    letters, api_name = _filter(request)
    limit, after = page_query(request)
    wait_s = wait_seconds(request) if "wait" in request.query else None
    # Not holding a connection while it waits: waiters must not starve the API of the pool.
    caught_up = await wait_for_reader(request, DEAD_LETTER_INDEXER, wait_s)
    async with state(request).db.acquire() as conn:
        if api_name is not None:
            letters = dataclasses.replace(letters, api_id=await api_named(conn, org_id, api_name))
        rows, next_cursor = one_page(await page_letters(conn, org_id, letters, limit + 1, after), limit, at="failed_at")
    items = [{k: v for k, v in letter_view(r).items() if k != "details"} for r in rows]
    page: dict[str, Any] = {"items": items, "next_cursor": next_cursor}
    if caught_up is not None:
        page["caught_up"] = caught_up
    return reply(page)


def _json_safe(value: Any) -> Any:
    """A decoded record as JSON: bytes as UTF-8 text where they are text, else base64."""
    if isinstance(value, (bytes, bytearray)):
        try:
            return {"encoding": "text", "value": bytes(value).decode("utf-8")}
        except UnicodeDecodeError:
            return {"encoding": "base64", "value": base64.b64encode(value).decode()}
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_json_safe(v) for v in value]
    return value


def original_view(data: bytes) -> dict[str, Any]:
    """The original as JSON: its message type and record, or the bytes (base64) where they do not decode."""
    try:
        name, record = decode(data)
    except CodecError as exc:
        return {"type": None, "undecodable": exc.reason, "base64": base64.b64encode(data).decode()}
    return {"type": name, "record": _json_safe(record)}


async def get_one(request: web.Request) -> web.Response:
    async with state(request).db.acquire() as conn:
        org = await org_for(conn, request)
        row = await _letter(conn, request, str(org["id"]))
    return reply(_full_view(row, principal(request).can_write(str(org["id"]))))


async def get_unattributed(request: web.Request) -> web.Response:
    principal(request).require_global_admin()
    async with state(request).db.acquire() as conn:
        row = await _letter(conn, request, None)
    return reply(_full_view(row, True))


async def _letter(conn: Any, request: web.Request, org_id: str | None) -> Any:
    ref = request.match_info["id"]
    # As a UUID object: asyncpg refuses the other spellings is_uuid accepts ({...}, urn:uuid:...).
    row = await get_letter(conn, org_id, str(uuid.UUID(ref))) if is_uuid(ref) else None
    if row is None:
        raise NotFound(f"dead letter {ref!r} not found")
    return row


def _full_view(row: Any, may_read_original: bool) -> dict[str, Any]:
    view = letter_view(row)
    if may_read_original:
        view.update(original=original_view(row["original"]), original_hidden=False, details_hidden=False)
    else:
        view.update(original=None, details=None, original_hidden=True, details_hidden=True)
    return view


def routes() -> list[web.RouteDef]:
    base = "/api/v1/orgs/{org}/dead-letters"
    return [web.get(base, list_letters, allow_head=False), web.get(base + "/{id}", get_one, allow_head=False),
            web.get("/api/v1/dead-letters", list_unattributed, allow_head=False),
            web.get("/api/v1/dead-letters/{id}", get_unattributed, allow_head=False)]
