"""Organisations: /api/v1/orgs and /api/v1/orgs/{org}.

Besides slug, name and enabled, an organisation has a policy: a default
``rate_limit`` for its APIs, an ``ip_restriction`` every API of it applies
besides its own, a default ``cors`` for its APIs without one (an org admin's
to set, as the rate limit), and ``quotas`` overriding the deployment's (global
admins only). :func:`org_policy` reads it for the other handlers.
"""
from __future__ import annotations

import json
import uuid
from typing import Any

import asyncpg
from aiohttp import web

from control.documents import api_event, connector_event, consumer_event, org_event
from control.handlers.common import body, org_for, principal, record, reply, state
from control.handlers.paging import one_page, page_query
from control.store.consumers import CONSUMER, credential_hashes
from control.store.orgs import CALLER_POLICIES, POLICY_COLS, delete_org, insert_org, org_view, page_orgs, update_org
from control.store.resources import API, CONNECTOR, resource_view
from control.validation import is_uuid, raise_if
from control.versions import check_if_match
from core.client_address import address_rule_errors
from core.cors import cors_errors
from core.errors import Conflict, FieldError, InvalidInput

__all__ = ["org_policy", "routes"]


# Ingress answers these paths itself, so no organisation may be served under them.
RESERVED_SLUGS = frozenset({"healthz", "readyz", "metrics"})


def _check_slug(slug: str) -> None:
    if is_uuid(slug):
        raise InvalidInput("slug must not look like an id", fields=[FieldError("slug", "must not be a UUID")])
    if slug in RESERVED_SLUGS:
        raise InvalidInput(f"slug {slug!r} is reserved", fields=[FieldError("slug", f"is reserved ({', '.join(sorted(RESERVED_SLUGS))})")])


def _json(value: Any) -> Any:
    return json.loads(value) if isinstance(value, str) else value


def _policy_of(row: Any) -> dict[str, Any]:
    return {**{k: _json(row[k]) for k in CALLER_POLICIES}, "quotas": _json(row["quotas"])}


async def org_policy(conn: asyncpg.Connection, org_id: str) -> dict[str, Any]:
    """``{"rate_limit", "ip_restriction", "cors": {...} or None, "quotas": {overrides}}`` of one organisation."""
    row = await conn.fetchrow(f"SELECT {POLICY_COLS} FROM organisations WHERE id = $1", org_id)
    return _policy_of(row) if row else {**dict.fromkeys(CALLER_POLICIES), "quotas": {}}


def _check_policies(data: dict[str, Any]) -> None:
    """What the body schema cannot say about the organisation's ``ip_restriction`` and ``cors``: the checks
    of an API's own, but for methods, which differ from API to API (a method an API does not take is never
    allowed on it)."""
    raise_if(address_rule_errors(data.get("ip_restriction")) + cors_errors(data.get("cors"), None))


async def with_policy(conn: asyncpg.Connection, org: dict[str, Any]) -> dict[str, Any]:
    return {**org, **await org_policy(conn, org["id"])}


async def create(request: web.Request) -> web.Response:
    principal(request).require_global_admin()
    data = await body(request, "OrgCreate")
    _check_slug(data["slug"])
    async with state(request).db.acquire() as conn, conn.transaction():
        try:
            row = await insert_org(conn, str(uuid.uuid4()), data["slug"], data["name"], data.get("enabled", True))
        except asyncpg.UniqueViolationError:
            raise Conflict(f"slug {data['slug']!r} is taken", code="slug_taken",
                           fields=[FieldError("slug", "is taken")]) from None
        org = await with_policy(conn, org_view(row))
        await record(conn, request, action="create", resource_type="org", resource_id=org["id"],
                     org_id=org["id"], before=None, after=org, events=[org_event(org)])
    return reply(org, status=201, version=org["version"])


async def list_(request: web.Request) -> web.Response:
    p = principal(request)
    limit, after = page_query(request)
    async with state(request).db.acquire() as conn:
        rows, next_cursor = one_page(await page_orgs(conn, None if p.is_global_admin else p.org_id, limit + 1, after), limit)
    items = [{**org_view(r), **_policy_of(r)} for r in rows]
    return reply({"items": items, "next_cursor": next_cursor})


async def get(request: web.Request) -> web.Response:
    async with state(request).db.acquire() as conn:
        org = await with_policy(conn, org_view(await org_for(conn, request)))
    return reply(org, version=org["version"])


async def patch(request: web.Request) -> web.Response:
    data = await body(request, "OrgUpdate")
    if "slug" in data:
        _check_slug(data["slug"])
    _check_policies(data)
    if ("slug" in data or "enabled" in data or "quotas" in data):
        # The slug is the ingress URL prefix, enabled switches all traffic and
        # quotas bound what the organisation may hold: platform decisions, so
        # only a global admin makes them.
        principal(request).require_global_admin()
    async with state(request).db.acquire() as conn, conn.transaction():
        before = await with_policy(conn, org_view(await org_for(conn, request, write=True, lock=True)))
        check_if_match(request.headers.get("If-Match"), before["version"])
        merged = {k: data.get(k, before[k]) for k in ("slug", "name", "enabled", *CALLER_POLICIES)}
        quotas = {k: v for k, v in {**before["quotas"], **data.get("quotas", {})}.items() if v is not None}
        if all(merged[k] == before[k] for k in merged) and quotas == before["quotas"]:
            return reply(before, version=before["version"])
        try:
            async with conn.transaction():
                row = await update_org(conn, before["id"], merged["slug"], merged["name"], merged["enabled"])
                await conn.execute("UPDATE organisations SET rate_limit = $2::jsonb, quotas = $3::jsonb,"
                                   " ip_restriction = $4::jsonb, cors = $5::jsonb WHERE id = $1",
                                   before["id"], json.dumps(merged["rate_limit"]), json.dumps(quotas),
                                   json.dumps(merged["ip_restriction"]), json.dumps(merged["cors"]))
                after = await with_policy(conn, org_view(row))
        except asyncpg.UniqueViolationError:
            raise Conflict(f"slug {merged['slug']!r} is taken", code="slug_taken",
                           fields=[FieldError("slug", "is taken")]) from None
        events = [org_event(after)]
        if after["slug"] != before["slug"]:
            # Documents carry the slug; re-emit them so a replay of the
            # compacted topic routes under the new one.
            for kind, make in ((CONNECTOR, connector_event), (API, api_event)):
                events += [make(resource_view(r, after["slug"])) for r in await kind.list(conn, after["id"])]
            hashes = await credential_hashes(conn, after["id"])
            events += [consumer_event(view, hashes.get(view["id"])) for view in
                       (resource_view(r, after["slug"]) for r in await CONSUMER.list(conn, after["id"]))]
        await record(conn, request, action="update", resource_type="org", resource_id=after["id"],
                     org_id=after["id"], before=before, after=after, events=events)
    return reply(after, version=after["version"])


async def delete(request: web.Request) -> web.Response:
    principal(request).require_global_admin()
    async with state(request).db.acquire() as conn, conn.transaction():
        before = org_view(await org_for(conn, request, write=True, lock=True))
        check_if_match(request.headers.get("If-Match"), before["version"])
        # The organisation's own rules go with it; a global rule watching one of its APIs would be left watching
        # nothing, and refused on every change after (as deleting that API alone is refused). Its APIs' rows are
        # locked first: a global rule being pointed at one of them meanwhile waits, then finds no API.
        await conn.execute("SELECT id FROM apis WHERE org_id = $1 FOR UPDATE", before["id"])
        rules = await conn.fetch("SELECT r.id FROM alert_rules r JOIN apis a ON a.id::text = r.content->>'api'"
                                 " WHERE r.org_id IS NULL AND a.org_id = $1 ORDER BY r.created_at, r.id", before["id"])
        if rules:
            raise Conflict("global alert rules watch APIs of this organisation; delete them or change their api first",
                           code="api_in_use", extra={"alert_rules": [str(r["id"]) for r in rules]})
        events = [api_event(resource_view(r, before["slug"]), "delete") for r in await API.list(conn, before["id"])]
        events += [connector_event(resource_view(r, before["slug"]), "delete")
                   for r in await CONNECTOR.list(conn, before["id"])]
        events += [consumer_event(resource_view(r, before["slug"]), None, "delete")
                   for r in await CONSUMER.list(conn, before["id"])]
        events.append(org_event(before, "delete"))
        await delete_org(conn, before["id"])
        await record(conn, request, action="delete", resource_type="org", resource_id=before["id"],
                     org_id=before["id"], before=before, after=None, events=events)
    return web.Response(status=204)


def routes() -> list[web.RouteDef]:
    return [
        web.post("/api/v1/orgs", create),
        web.get("/api/v1/orgs", list_, allow_head=False),
        web.get("/api/v1/orgs/{org}", get, allow_head=False),
        web.patch("/api/v1/orgs/{org}", patch),
        web.delete("/api/v1/orgs/{org}", delete),
    ]
