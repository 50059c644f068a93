"""Versioned resources — APIs and connectors — under /api/v1/orgs/{org}.

Create writes version 1; PUT (replace), PATCH (top-level merge; a connector's
``target`` merges key by key) and rollback write the next version. Every
write holds the organisation's row lock, so route and name clash checks see
every concurrent change.

Secrets are write-only: an API's jwt ``auth.secret``, a connector's
``secret_fields`` and its upstream credentials (``target.auth``, the
``target.tls`` client key: :mod:`core.upstream_secrets`) are stored sealed
(:mod:`core.sealing`) and every answer, version, diff and audit row shows them
masked (:func:`present`); only the config document carries the sealed values.

Creates count against the organisation's quotas under its row lock, so two
concurrent creates cannot both take the last place.

Lists are paginated: ``?limit=N`` (1 to 1000, default 100) and ``?cursor=``
the opaque ``next_cursor`` of the previous page; ``next_cursor`` is null on
the last page. The order is stable: creation time, then id.
"""
from __future__ import annotations

import json
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import asyncpg
from aiohttp import web

from control.checks import prepare_api, prepare_connector
from control.documents import api_event, connector_event
from control.handlers.common import body, check_put, org_for, principal, put_data, record, reply, state
from control.handlers.orgs import org_policy
from control.handlers.paging import one_page, tagged_page_query
from control.store.outbox import OutboxEvent
from control.store.resources import (
    API,
    CONNECTOR,
    Kind,
    content_of,
    resource_view,
    version_view,
    with_tags,
)
from control.validation import (
    check_auth,
    check_quota,
    check_upstream_auth,
    quota_limit,
    raise_if,
)
from control.versions import check_if_match, diff
from core.connector_secrets import MASK, SEALED_KEY, masked, seal_secret_settings
from core.errors import Conflict, FieldError, InvalidInput, NotFound
from core.sealing import SealError, sealer_for
from core.settings import Settings
from core.upstream_secrets import SEALED_KEY as UPSTREAM_SEALED
from core.upstream_secrets import has_secrets as has_upstream_secrets
from core.upstream_secrets import seal_target, shown_target, unmask_target

__all__ = ["Scope", "Spec", "org_scope", "present", "routes", "versioned_routes"]

# (conn, request, org id (None: the global scope), resource id, body) -> the content to store
Prepare = Callable[[asyncpg.Connection, web.Request, "str | None", str, dict[str, Any]], Awaitable[dict[str, Any]]]


JWT_SECRET_SEALED = "secret_sealed"


async def _stored(conn: asyncpg.Connection, kind: Kind, org_id: str, id_: str) -> dict[str, Any]:
    row = await kind.get(conn, org_id, id_)
    return content_of(row) if row is not None else {}


async def _prepare_api(conn: asyncpg.Connection, request: web.Request, org_id: str, id_: str,
                       data: dict[str, Any]) -> dict[str, Any]:
    content = await prepare_api(conn, state(request).settings, org_id, id_, data)
    auth = dict(content.get("auth") or {"mode": "none"})
    auth.pop("secret_set", None)  # what reads show; echoing it back changes nothing
    if auth.get("mode") == "jwt" and "secret" not in auth and "jwks_url" not in auth \
            and JWT_SECRET_SEALED not in auth:
        # Left out (a PUT or PATCH of what a read showed): keep the stored secret.
        kept = ((await _stored(conn, API, org_id, id_)).get("auth") or {}).get(JWT_SECRET_SEALED)
        if kept:
            auth[JWT_SECRET_SEALED] = kept
    raise_if(check_auth(auth, content.get("rate_limit")))
    await _check_consumers(conn, org_id, auth.get("consumers") or [])
    if "secret" in auth:
        auth[JWT_SECRET_SEALED] = _seal_jwt_secret(request, id_, auth.pop("secret"),
                                                   ((await _stored(conn, API, org_id, id_)).get("auth") or {}))
    content["auth"] = auth
    return content


def _seal_jwt_secret(request: web.Request, api_id: str, secret: str, stored_auth: dict[str, Any]) -> str:
    """Sealed for this API only; the stored blob again when the secret is the
    same, so an unchanged save writes no new version."""
    sealer = sealer_for(state(request).settings)
    context = f"api-jwt:{api_id}"
    old = stored_auth.get(JWT_SECRET_SEALED)
    if old:
        try:
            if sealer.open_json(old, context) == secret:
                return str(old)
        except SealError:
            pass
    return sealer.seal_json(secret, context)


async def _check_consumers(conn: asyncpg.Connection, org_id: str, refs: list[str]) -> None:
    known = {str(r["id"]) for r in await conn.fetch(
        "SELECT id FROM consumers WHERE org_id = $1 AND id = ANY($2::uuid[])", org_id, refs)} if refs else set()
    raise_if([FieldError(f"auth.consumers[{i}]", "no such consumer in this organisation")
              for i, ref in enumerate(refs) if ref not in known])


async def _prepare_connector(conn: asyncpg.Connection, request: web.Request, org_id: str, id_: str,
                             data: dict[str, Any]) -> dict[str, Any]:
    content = await prepare_connector(data)
    settings = state(request).settings
    quotas = (await org_policy(conn, org_id))["quotas"]
    if content.get("script"):
        limit = quota_limit(settings, quotas, "script_bytes")
        check_quota("script_bytes", "script", len(content["script"].encode()), limit, "the script is too large")
    limit = quota_limit(settings, quotas, "settings_bytes")
    check_quota("settings_bytes", "settings", len(json.dumps(content.get("settings") or {}).encode()), limit,
                "the settings are too large")
    stored = await _stored(conn, CONNECTOR, org_id, id_)
    given = content.get("settings") or {}
    raise_if([FieldError(f"settings.{name}", "was a secret setting, and ******** is its mask, not its value: send the "
                                             "value to keep it as a plain setting")
              for name in _unmarked(stored, content) if given.get(name) == MASK])
    previous = content.get(SEALED_KEY) or stored.get(SEALED_KEY)
    sealer = sealer_for(settings) if content.get("secret_fields") else None
    content = seal_secret_settings(content, id_, previous, sealer)
    return {**content, "target": _seal_upstream(settings, id_, content["target"], stored.get("target") or {})}


def _seal_upstream(settings: Settings, connector_id: str, target: dict[str, Any],
                   stored_target: dict[str, Any]) -> dict[str, Any]:
    """The target as stored: upstream credentials checked in clear, then sealed
    (a mask sent back keeps the stored value)."""
    sealer = sealer_for(settings) if has_upstream_secrets(target) else None
    previous = target.get(UPSTREAM_SEALED) or stored_target.get(UPSTREAM_SEALED)
    clear = unmask_target(target, connector_id, previous, sealer)
    raise_if(check_upstream_auth(clear, allow_private=settings.allow_private_targets))
    return seal_target(clear, connector_id, previous, sealer)


def present(kind: Kind, content: dict[str, Any]) -> dict[str, Any]:
    """What people may see of a resource or a version's content: no sealed value."""
    if kind is CONNECTOR:
        shown = masked(content)
        target = shown.get("target")
        return {**shown, "target": shown_target(target)} if isinstance(target, dict) else shown
    auth = content.get("auth")
    if kind is API and isinstance(auth, dict) and JWT_SECRET_SEALED in auth:
        shown = {k: v for k, v in auth.items() if k != JWT_SECRET_SEALED}
        return {**content, "auth": {**shown, "secret_set": True}}
    return content


SEALED_FIELDS = (f"auth.{JWT_SECRET_SEALED}", SEALED_KEY, f"target.{UPSTREAM_SEALED}")


def _present_changes(changes: list[dict[str, Any]], sealed: tuple[str, ...] = SEALED_FIELDS) -> list[dict[str, Any]]:
    """A diff of stored contents, its sealed values masked: a changed secret shows as changed."""
    return [{**c, "before": MASK if c["before"] is not None else None, "after": MASK if c["after"] is not None else None}
            if c["field"] in sealed else c for c in changes]


def _merge_top(old: dict[str, Any], data: dict[str, Any]) -> dict[str, Any]:
    return {**old, **data}


def _unmarked(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    """The settings secret in ``old`` and no longer in ``new``."""
    still = set(new.get("secret_fields") or [])
    return [name for name in old.get("secret_fields") or [] if name not in still]


def _merge_connector(old: dict[str, Any], data: dict[str, Any]) -> dict[str, Any]:
    """PATCH of a connector: top-level fields replace, but ``target`` merges key
    by key, so changing its URL keeps the protocol, operation and method; a
    null removes a key."""
    merged = {**old, **data}
    unmarked = _unmarked(old, merged)
    if unmarked and "settings" not in data:
        # The stored settings hold no value for a secret (it is sealed apart): merged as they are, it would go.
        raise_if([FieldError("secret_fields", f"{name} stops being secret: send settings with its value (kept in "
                                              "clear) or without it (removed)") for name in unmarked])
    if "target" in data:
        target = {**(old.get("target") or {}), **data["target"]}
        merged["target"] = {k: v for k, v in target.items() if v is not None}
    return merged


@dataclass(frozen=True)
class Scope:
    """Where a resource lives: an organisation, or (``id`` None) the global scope of global alert rules."""

    id: str | None
    slug: str | None


async def org_scope(conn: asyncpg.Connection, request: web.Request, *, write: bool = False, lock: bool = False) -> Scope:
    """The organisation of the path (:func:`org_for`: 404 unless readable, 403 unless writable)."""
    org = await org_for(conn, request, write=write, lock=lock)
    return Scope(str(org["id"]), org["slug"])


@dataclass(frozen=True)
class Spec:
    kind: Kind
    plural: str
    create_schema: str
    update_schema: str
    prepare: Prepare
    event: Callable[[dict[str, Any], str], OutboxEvent] | None  # the config event of a change; None: none
    merge: Callable[[dict[str, Any], dict[str, Any]], dict[str, Any]] = _merge_top
    quota: str = ""  # the organisation quota a create counts against; "": none
    scope: Callable[..., Awaitable[Scope]] = org_scope  # who may read and write where
    base: str = ""  # the collection's path; default /api/v1/orgs/{org}/<plural>
    show: Callable[[Kind, dict[str, Any]], dict[str, Any]] = present  # what people may see: no sealed value
    sealed: tuple[str, ...] = SEALED_FIELDS  # stored fields a diff shows masked

    @property
    def label(self) -> str:
        return {"api": "API"}.get(self.kind.name, self.kind.name.replace("_", " "))


SPECS = (
    Spec(API, "apis", "ApiCreate", "ApiUpdate", _prepare_api, api_event, quota="apis"),
    Spec(CONNECTOR, "connectors", "ConnectorCreate", "ConnectorUpdate", _prepare_connector, connector_event,
         _merge_connector, quota="connectors"),
)


async def check_count_quota(conn: asyncpg.Connection, request: web.Request, kind: Kind, org_id: str,
                            name: str) -> None:
    """Refuse one more of ``kind`` past the organisation's quota; the caller
    holds the organisation's row lock, so the count cannot change meanwhile."""
    limit = quota_limit(state(request).settings, (await org_policy(conn, org_id))["quotas"], name)
    check_quota(name, f"quotas.{name}", await kind.count(conn, org_id) + 1, limit,
                f"the organisation has {limit} {name}, its quota")


async def _current(conn: asyncpg.Connection, spec: Spec, org_id: str | None, ref: str, *, lock: bool = False) -> asyncpg.Record:
    row = await spec.kind.find(conn, org_id, ref, for_update=lock)
    if row is None:
        raise NotFound(f"{spec.label} {ref!r} not found")
    return row


async def _check_name(conn: asyncpg.Connection, spec: Spec, org_id: str | None, name: str, id_: str | None) -> None:
    if await spec.kind.name_taken(conn, org_id, name, id_):
        raise Conflict(f"a {spec.label} named {name!r} exists in this organisation", code="name_taken",
                       fields=[FieldError("name", "is taken")])


def _handlers(spec: Spec) -> list[web.RouteDef]:
    base = spec.base or f"/api/v1/orgs/{{org}}/{spec.plural}"
    one = base + "/{id}"

    def shown(view: dict[str, Any]) -> dict[str, Any]:
        return spec.show(spec.kind, view)

    async def write_version(conn: asyncpg.Connection, request: web.Request, org: Scope,
                            before: dict[str, Any] | None, content: dict[str, Any], action: str,
                            id_: str) -> dict[str, Any]:
        org_id = org.id
        version = before["version"] + 1 if before else 1
        row = await spec.kind.write(conn, org_id, id_, version, content, principal(request).user_id)
        after = resource_view(row, org.slug)
        await record(conn, request, action=action, resource_type=spec.kind.name, resource_id=id_, org_id=org_id,
                     before=shown(before) if before else None, after=shown(after),
                     events=[spec.event(after, "upsert")] if spec.event else [])
        return after

    async def create_in(conn: asyncpg.Connection, request: web.Request, org: Scope,
                        data: dict[str, Any]) -> dict[str, Any]:
        """Version 1 of a new resource; the caller holds the organisation's lock."""
        await _check_name(conn, spec, org.id, data["name"], None)
        if spec.quota:
            await check_count_quota(conn, request, spec.kind, str(org.id), spec.quota)
        id_ = str(uuid.uuid4())  # known before prepare: secrets are sealed for this id
        content = await spec.prepare(conn, request, org.id, id_, with_tags(data))
        return await write_version(conn, request, org, None, content, "create", id_)

    async def create(request: web.Request) -> web.Response:
        data = await body(request, spec.create_schema)
        async with state(request).db.acquire() as conn, conn.transaction():
            org = await spec.scope(conn, request, write=True, lock=True)
            after = await create_in(conn, request, org, data)
        return reply(shown(after), status=201, version=after["version"])

    async def list_(request: web.Request) -> web.Response:
        limit, after, tags = tagged_page_query(request)
        async with state(request).db.acquire() as conn:
            org = await spec.scope(conn, request)
            rows, next_cursor = one_page(await spec.kind.page(conn, org.id, limit + 1, after, tags), limit)
        return reply({"items": [shown(resource_view(r, org.slug)) for r in rows], "next_cursor": next_cursor})

    async def get(request: web.Request) -> web.Response:
        async with state(request).db.acquire() as conn:
            org = await spec.scope(conn, request)
            view = resource_view(await _current(conn, spec, org.id, request.match_info["id"]), org.slug)
        return reply(shown(view), version=view["version"])

    async def locked_current(conn: Any, request: web.Request) -> tuple[Scope, str | None, Any, dict[str, Any]]:
        """The organisation (locked for writing) and the resource's current row,
        once the caller's If-Match agrees with its version."""
        org = await spec.scope(conn, request, write=True, lock=True)
        org_id = org.id
        row = await _current(conn, spec, org_id, request.match_info["id"], lock=True)
        before = resource_view(row, org.slug)
        check_if_match(request.headers.get("If-Match"), before["version"])
        return org, org_id, row, before

    async def change(conn: asyncpg.Connection, request: web.Request, org: Scope, row: asyncpg.Record,
                     data: dict[str, Any], *, replace: bool) -> dict[str, Any]:
        """The next version of a locked resource, once If-Match agrees; the same one when nothing changed."""
        before = resource_view(row, org.slug)
        check_if_match(request.headers.get("If-Match"), before["version"])
        old = content_of(row)
        merged = with_tags(data if replace else spec.merge(old, data))
        await _check_name(conn, spec, org.id, merged["name"], before["id"])
        content = await spec.prepare(conn, request, org.id, before["id"], merged)
        if content == old:  # nothing changed: no new version, no audit row
            return before
        return await write_version(conn, request, org, before, content, "update", before["id"])

    async def put(request: web.Request) -> web.Response:
        """Replace the resource the path names; a name nothing has yet creates it, so a script that sets up
        its resources can run again and change nothing."""
        ref = request.match_info["id"]
        raw = await put_data(request)
        async with state(request).db.acquire() as conn, conn.transaction():
            org = await spec.scope(conn, request, write=True, lock=True)
            row = await spec.kind.find(conn, org.id, ref, for_update=True)
            data = check_put(request, raw, spec.create_schema, ref, row, spec.label)
            if row is not None:
                after = await change(conn, request, org, row, data, replace=True)
                return reply(shown(after), version=after["version"])
            after = await create_in(conn, request, org, data)
        return reply(shown(after), status=201, version=after["version"])

    async def patch(request: web.Request) -> web.Response:
        data = await body(request, spec.update_schema)
        async with state(request).db.acquire() as conn, conn.transaction():
            org = await spec.scope(conn, request, write=True, lock=True)
            row = await _current(conn, spec, org.id, request.match_info["id"], lock=True)
            after = await change(conn, request, org, row, data, replace=False)
        return reply(shown(after), version=after["version"])

    async def delete(request: web.Request) -> web.Response:
        async with state(request).db.acquire() as conn, conn.transaction():
            org = await spec.scope(conn, request, write=True, lock=True)
            org_id = org.id
            before = resource_view(await _current(conn, spec, org_id, request.match_info["id"], lock=True), org.slug)
            check_if_match(request.headers.get("If-Match"), before["version"])
            if spec.kind is CONNECTOR:
                users = await conn.fetch("SELECT id FROM apis WHERE org_id = $1 AND connector_id = $2", org_id, before["id"])
                if users:
                    raise Conflict("the connector is used by APIs; delete or repoint them first", code="connector_in_use",
                                   extra={"apis": [str(r["id"]) for r in users]})
            if spec.kind is API:
                # A rule left watching a deleted API would never fire again, and say nothing about it. A global
                # rule (a global admin's) holds it too; its id is named only to whom may change it.
                rules = await conn.fetch("SELECT id, org_id FROM alert_rules WHERE (org_id = $1 OR org_id IS NULL)"
                                         " AND content->>'api' = $2 ORDER BY created_at, id", org_id, before["id"])
                if rules:
                    own = [str(r["id"]) for r in rules if r["org_id"] is not None]
                    others = [str(r["id"]) for r in rules if r["org_id"] is None]
                    shown_global = others if principal(request).is_global_admin else []
                    raise Conflict("alert rules watch this API; delete them or change their api first"
                                   + ("" if not others or shown_global else
                                      f" ({len(others)} of them global: a global admin manages those)"),
                                   code="api_in_use", extra={"alert_rules": own + shown_global})
            await spec.kind.delete(conn, org_id, before["id"])
            await record(conn, request, action="delete", resource_type=spec.kind.name, resource_id=before["id"],
                         org_id=org_id, before=shown(before), after=None,
                         events=[spec.event(before, "delete")] if spec.event else [])
        return web.Response(status=204)

    async def versions(request: web.Request) -> web.Response:
        async with state(request).db.acquire() as conn:
            org = await spec.scope(conn, request)
            row = await _current(conn, spec, org.id, request.match_info["id"])
            rows = await spec.kind.list_versions(conn, org.id, str(row["id"]))
        return reply({"items": [shown_version(dict(version_view(r), id=str(row["id"]))) for r in rows]})

    async def _version(conn: asyncpg.Connection, org_id: str, id_: str, n: int) -> dict[str, Any]:
        row = await spec.kind.get_version(conn, org_id, id_, n)
        if row is None:
            raise NotFound(f"version {n} not found", code="version_not_found")
        return dict(version_view(row), id=id_)

    def shown_version(v: dict[str, Any]) -> dict[str, Any]:
        return {**v, "content": spec.show(spec.kind, v["content"])}

    def _int(raw: str | None, name: str) -> int:
        if raw is None or not raw.isdigit() or len(raw) > 9 or int(raw) < 1:
            raise InvalidInput(f"{name} must be a positive integer", fields=[FieldError(name, "must be a positive integer")])
        return int(raw)

    async def version(request: web.Request) -> web.Response:
        n = _int(request.match_info["n"], "n")
        async with state(request).db.acquire() as conn:
            org = await spec.scope(conn, request)
            row = await _current(conn, spec, org.id, request.match_info["id"])
            return reply(shown_version(await _version(conn, org.id, str(row["id"]), n)))

    async def _diff(request: web.Request, a: int, b: int) -> web.Response:
        async with state(request).db.acquire() as conn:
            org = await spec.scope(conn, request)
            row = await _current(conn, spec, org.id, request.match_info["id"])
            va = await _version(conn, org.id, str(row["id"]), a)
            vb = await _version(conn, org.id, str(row["id"]), b)
        return reply({"id": str(row["id"]), "from": a, "to": b,
                      "changes": _present_changes(diff(va["content"], vb["content"]), spec.sealed)})

    async def diff_path(request: web.Request) -> web.Response:
        return await _diff(request, _int(request.match_info["a"], "a"), _int(request.match_info["b"], "b"))

    async def diff_query(request: web.Request) -> web.Response:
        return await _diff(request, _int(request.query.get("from"), "from"), _int(request.query.get("to"), "to"))

    async def rollback(request: web.Request) -> web.Response:
        data = await body(request, "RollbackRequest")
        async with state(request).db.acquire() as conn, conn.transaction():
            org, org_id, row, before = await locked_current(conn, request)
            target = await spec.kind.get_version(conn, org_id, before["id"], data["version"])
            if target is None:
                raise NotFound(f"version {data['version']} not found", code="version_not_found")
            old = content_of(target)
            await _check_name(conn, spec, org_id, old["name"], before["id"])
            content = await spec.prepare(conn, request, org_id, before["id"], old)
            if content == content_of(row):  # as a PUT or PATCH that changes nothing: no new version, no audit row
                return reply(shown(before), version=before["version"])
            after = await write_version(conn, request, org, before, content, "rollback", before["id"])
        return reply(shown(after), version=after["version"])

    return [
        web.post(base, create),
        web.get(base, list_, allow_head=False),
        web.get(one, get, allow_head=False),
        web.put(one, put),
        web.patch(one, patch),
        web.delete(one, delete),
        web.get(one + "/versions", versions, allow_head=False),
        web.get(one + "/versions/{n}", version, allow_head=False),
        web.get(one + "/versions/{a}/diff/{b}", diff_path, allow_head=False),
        web.get(one + "/diff", diff_query, allow_head=False),
        web.post(one + "/rollback", rollback),
    ]


def versioned_routes(spec: Spec) -> list[web.RouteDef]:
    """The routes of a versioned resource (CRUD, versions, diff, rollback) under ``spec.base``."""
    return _handlers(spec)


def routes() -> list[web.RouteDef]:
    return [r for spec in SPECS for r in _handlers(spec)]
