"""Helpers every handler shares: state, the caller, bodies, org lookup, and
recording a change (audit row + outbox rows in the caller's transaction)."""
from __future__ import annotations

from typing import Any

import asyncpg
from aiohttp import web

from control.rbac import PRINCIPAL, Principal
from control.state import STATE, ControlState
from control.store.audit import AuditEntry, insert_audit
from control.store.orgs import find_org
from control.store.resources import API
from control.store.outbox import OutboxEvent, enqueue, notify_channel
from control.validation import check_schema, is_uuid, raise_if, read_json, validate_body
from control.versions import etag
from core.errors import FieldError, InvalidInput, NotFound, PreconditionFailed, ServiceUnavailable, Unauthorized
from core import http as core_http
from core.http import json_response

__all__ = ["body", "check_put", "optional_body", "org_for", "principal", "put_data", "record", "reply", "state",
           "wait_for_reader", "wait_seconds"]


# core.http stores the request id under a RequestKey (newer) or a plain string (older).
_REQUEST_ID_KEY: Any = getattr(core_http, "REQUEST_ID_KEY", "request_id")


def request_id(request: web.Request) -> str | None:
    return request.get(_REQUEST_ID_KEY) or request.headers.get(core_http.REQUEST_ID)


def state(request: web.Request) -> ControlState:
    return request.app[STATE]


def principal(request: web.Request) -> Principal:
    p = request.get(PRINCIPAL)
    if p is None:
        raise Unauthorized("authentication required")
    return p


async def body(request: web.Request, schema_name: str) -> dict[str, Any]:
    st = state(request)
    return await validate_body(request, st.schemas[schema_name], st.settings.control_max_body_bytes)


NO_FIELDS: dict[str, Any] = {"type": "object", "properties": {}, "additionalProperties": False}


async def optional_body(request: web.Request, schema_name: str | None) -> dict[str, Any]:
    """As :func:`body` for an operation whose body may be left out (every field optional): ``{}`` when there is
    none. ``None``: the operation takes no fields, and a body, if sent, must be ``{}``."""
    if not request.can_read_body:
        return {}
    st = state(request)
    schema = st.schemas[schema_name] if schema_name else NO_FIELDS
    return await validate_body(request, schema, st.settings.control_max_body_bytes)


def check_put(request: web.Request, data: Any, schema_name: str, ref: str, row: asyncpg.Record | None,
              label: str) -> dict[str, Any]:
    """The body of a PUT of ``ref`` (an id or a name; ``row`` what it names, if anything), once the PUT may go on.

    PUT to a name nothing has creates it (Kong's upsert by name). The body carries that name: another one
    would be a rename, which needs the id. An id nothing has is a 404, since ids are the server's to give.
    ``If-Match`` needs something to match, and ``If-None-Match: *`` only creates."""
    if row is None and is_uuid(ref):
        raise NotFound(f"{label} {ref!r} not found")
    by_name = row is None or str(row["id"]) != ref
    if by_name and isinstance(data, dict) and isinstance(data.get("name"), str) and data["name"] != ref:
        raise InvalidInput("the name in the body differs from the one in the path; to rename, PUT or PATCH "
                           "it by its id", fields=[FieldError("name", "differs from the name in the path")])
    raise_if(check_schema(data, state(request).schemas[schema_name]))
    if row is None and request.headers.get("If-Match") is not None:
        raise PreconditionFailed(f"no {label} named {ref!r} to match If-Match")
    if row is not None and request.headers.get("If-None-Match", "").strip() == "*":
        raise PreconditionFailed(f"{label} {ref!r} exists (If-None-Match: * only creates)", extra={"id": str(row["id"])})
    return data


async def put_data(request: web.Request) -> Any:
    """A PUT's body, read before any lock is taken (a slow client must not hold one); :func:`check_put` then
    checks it against what the path names."""
    return await read_json(request, state(request).settings.control_max_body_bytes)


async def org_for(conn: asyncpg.Connection, request: web.Request, *, write: bool = False,
                  lock: bool = False) -> asyncpg.Record:
    """The organisation named in the path, if the caller may see it (else 404)
    and, with ``write``, change it (else 403). ``lock`` serialises writers."""
    ref = request.match_info["org"]
    org = await find_org(conn, ref, for_update=lock)
    p = principal(request)
    if org is None or not p.can_read(str(org["id"])):
        raise NotFound(f"organisation {ref!r} not found", code="org_not_found")
    if write:
        p.require_write(str(org["id"]))
    return org


async def api_named(conn: asyncpg.Connection, org_id: str | None, name: str, field: str = "api") -> str:
    """The id of the organisation's API called ``name`` (a filter's ``?api=`` by name), or a 422 naming ``field``.
    Without an organisation (a global list) a name names nothing: names are unique only within one."""
    row = await API.find(conn, org_id, name) if org_id is not None else None
    if row is None:
        why = (f"no API of this organisation is named {name!r}" if org_id is not None
               else "must be an API id here: API names are unique only within an organisation")
        raise_if([FieldError(field, why)])
    return str(row["id"])


async def record(conn: asyncpg.Connection, request: web.Request, *, action: str, resource_type: str,
                 resource_id: str, org_id: str | None, before: dict[str, Any] | None,
                 after: dict[str, Any] | None, events: list[OutboxEvent]) -> None:
    """The audit row and config events of one change, in the change's transaction."""
    p = principal(request)
    await insert_audit(conn, AuditEntry(p.user_id, p.email, org_id, action, resource_type, resource_id,
                                        before, after, request_id(request)))
    await enqueue(conn, events, notify_channel(state(request).settings.database_schema))


def reply(data: Any, *, status: int = 200, version: int | None = None) -> web.Response:
    headers = {"ETag": etag(version)} if version is not None else None
    return json_response(data, status=status, headers=headers)


def wait_seconds(request: web.Request, most: float = 60.0) -> float:
    """The ``wait`` query parameter: seconds to wait before answering, 0 (the default) to ``most``;
    422 on field ``wait`` otherwise."""
    raw = request.query.get("wait", "0")
    try:
        value = float(raw) if len(raw) <= 10 else -1.0
    except ValueError:
        value = -1.0
    if not 0 <= value <= most:  # NaN fails too
        raise InvalidInput(f"wait: must be a number of seconds from 0 to {most:g}",
                           fields=[FieldError("wait", f"must be a number of seconds from 0 to {most:g}")])
    return value


async def wait_for_reader(request: web.Request, reader: str, wait_s: float | None) -> bool | None:
    """With ``wait_s`` (a listing's ``?wait=``): whether ``reader`` (a control.catch_up.CatchUp in the
    state's extras) has copied into PostgreSQL everything written before now, waiting up to ``wait_s``
    for it; without, None. 503 when this control instance runs without Kafka."""
    if wait_s is None:
        return None
    catch_up = state(request).extras.get(reader)
    if catch_up is None:
        raise ServiceUnavailable(f"this control instance runs without Kafka and cannot wait for the {reader}")
    return bool(await catch_up.wait(wait_s))
