"""Replay jobs of an organisation: POST/GET /api/v1/orgs/{org}/replays, GET .../replays/{id}.

A job names the dead letters to replay, by ``ids`` or by a ``filter`` (api, stage, code, from, to), and
is sent in the background by control/replay_jobs.py at ``rate_per_second``. A ``dry_run`` only answers
what would be replayed. Org admins and global admins create jobs (audited); org viewers list and read
them; another organisation's jobs answer 404. docs/replay.md is the operator's guide.
"""
from __future__ import annotations

import dataclasses
import uuid
from typing import Any

from aiohttp import web

from control.filters import common, param_errors
from control.handlers.common import api_named, org_for, principal, record, reply, state
from control.handlers.dead_letters import STAGES
from control.handlers.paging import one_page, page_query
from control.replay import CONFIGS
from control.store.dead_letters import LetterFilter
from control.store.replays import (
    JobSpec,
    create_job,
    get_job,
    job_items,
    job_view,
    page_jobs,
    select_letters,
    succeeded_correlations,
)
from control.validation import is_uuid, raise_if, validate_body
from core.errors import FieldError, NotFound

__all__ = ["MAX_IDS", "MAX_ITEMS", "MAX_RATE", "REPLAY_CREATE", "routes"]

MAX_IDS = 1000  # ids one request may name
MAX_ITEMS = 10_000  # dead letters one job may hold (a filter matching more is refused: narrow it)
MAX_RATE = 1000

REPLAY_CREATE: dict[str, Any] = {
    "type": "object", "additionalProperties": False,
    "description": "exactly one of filter and ids",
    "properties": {
        "filter": {"type": "object", "additionalProperties": False,
                   "description": "the organisation's dead letters matching all of these ({}: every one)",
                   "properties": {
                       "api": {"type": "string", "minLength": 1, "maxLength": 100, "description": "an API id or name"},
                       "stage": {"type": "string", "enum": list(STAGES)},
                       "code": {"type": "string", "pattern": "^[a-z0-9_]{1,64}$", "description": "error code"},
                       "from": {"type": "string", "format": "date-time", "description": "failed at or after"},
                       "to": {"type": "string", "format": "date-time", "description": "failed before; not before from"},
                   }},
        "ids": {"type": "array", "items": {"type": "string", "format": "uuid"}, "minItems": 1, "maxItems": MAX_IDS,
                "uniqueItems": True, "description": "dead letter ids (from GET .../dead-letters)"},
        "dry_run": {"type": "boolean", "description": "only answer what would be replayed; send nothing"},
        "config": {"type": "string", "enum": list(CONFIGS),
                   "description": "current (default): through processors with the current API and connector; "
                                  "original: calls that reached egress keep their connector version (docs/replay.md)"},
        "rate_per_second": {"type": "integer", "minimum": 1, "maximum": MAX_RATE,
                            "description": "messages sent per second (default JUNCTION_REPLAY_RATE_PER_SECOND)"},
        "force": {"type": "boolean", "description": "replay even calls a later attempt already delivered"},
    },
}


def _selection(data: dict[str, Any]) -> tuple[list[str] | None, LetterFilter | None, str | None]:
    """The dead letters' ids, or their filter and the API name it gives instead of an id."""
    """The ids, or the filter; 422 naming each bad field (the schema has already been checked)."""
    errors: list[FieldError] = []
    if ("filter" in data) == ("ids" in data):
        raise_if([FieldError(name, "give exactly one of filter and ids") for name in ("filter", "ids")])
    if "ids" in data:
        ids = data["ids"]
        if len(ids) > MAX_IDS:
            errors.append(FieldError("ids", f"must have at most {MAX_IDS} items"))
        errors += [FieldError(f"ids[{n}]", "must be a dead letter id") for n, v in enumerate(ids) if not is_uuid(v)]
        raise_if(errors)
        return [str(uuid.UUID(v)) for v in ids], None, None
    f = data["filter"]
    shared = common(f, errors, prefix="filter.")
    stage = f.get("stage")
    if stage is not None and stage not in STAGES:
        errors.append(FieldError("filter.stage", f"must be one of {', '.join(STAGES)}"))
    raise_if(errors)
    return None, LetterFilter(api_id=shared.api_id, stage=stage, error_code=shared.error_code,
                              since=shared.since, until=shared.until), shared.api_name


async def create(request: web.Request) -> web.Response:
    st = state(request)
    data = await validate_body(request, REPLAY_CREATE, st.settings.control_max_body_bytes)
    ids, letters_filter, api_name = _selection(data)
    rate = int(data.get("rate_per_second", st.settings.replay_rate_per_second))
    config = data.get("config", "current")
    p = principal(request)
    async with st.db.acquire() as conn, conn.transaction():
        org = await org_for(conn, request, write=True)
        org_id = str(org["id"])
        if letters_filter is not None and api_name is not None:
            letters_filter = dataclasses.replace(letters_filter, api_id=await api_named(conn, org_id, api_name, "filter.api"))
        letters = await select_letters(conn, org_id, ids=ids, letters=letters_filter, limit=MAX_ITEMS + 1)
        if ids is not None:
            unknown = sorted(set(ids) - {str(r["id"]) for r in letters})
            raise_if([FieldError("ids", f"unknown dead letters of {org['slug']}: {', '.join(unknown[:20])}")] if unknown else [])
        elif len(letters) > MAX_ITEMS:
            raise_if([FieldError("filter", f"matches more than {MAX_ITEMS} dead letters: narrow it (from, to)")])
        if data.get("dry_run"):
            done = await succeeded_correlations(conn, org_id, [r["correlation_id"] for r in letters])
            return reply({"dry_run": True, "count": len(letters), "ids": [str(r["id"]) for r in letters],
                          "already_done": [str(r["id"]) for r in letters if r["correlation_id"] in done]})
        selection = {"ids": ids} if ids is not None else {"filter": data["filter"]}
        job_id = await create_job(conn, JobSpec(org_id, selection, config, rate, bool(data.get("force")),
                                                p.user_id, p.email), letters)
        await record(conn, request, action="create", resource_type="replay", resource_id=job_id, org_id=org_id,
                     before=None, after={**selection, "config": config, "rate_per_second": rate,
                                         "force": bool(data.get("force")), "total": len(letters)}, events=[])
        row = await get_job(conn, org_id, job_id)
    assert row is not None
    return reply({**job_view(row), "items": []}, status=201)


async def list_jobs(request: web.Request) -> web.Response:
    raise_if(param_errors(request.query, ("limit", "cursor")))
    limit, after = page_query(request)
    async with state(request).db.acquire() as conn:
        org = await org_for(conn, request)
        rows, next_cursor = one_page(await page_jobs(conn, str(org["id"]), limit + 1, after), limit)
    return reply({"items": [job_view(r) for r in rows], "next_cursor": next_cursor})


async def get_one(request: web.Request) -> web.Response:
    ref = request.match_info["id"]
    async with state(request).db.acquire() as conn:
        org = await org_for(conn, request)
        row = await get_job(conn, str(org["id"]), str(uuid.UUID(ref))) if is_uuid(ref) else None
        if row is None:
            raise NotFound(f"replay job {ref!r} not found", code="replay_not_found")
        items = await job_items(conn, str(row["id"]))
    return reply({**job_view(row), "items": items})


def routes() -> list[web.RouteDef]:
    base = "/api/v1/orgs/{org}/replays"
    return [web.post(base, create), web.get(base, list_jobs, allow_head=False), web.get(base + "/{id}", get_one, allow_head=False)]
