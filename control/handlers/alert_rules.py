"""Alert rules (docs/alerts.md): versioned, audited resources on the machinery of APIs and connectors
(control/handlers/resources.py: versions, diff, rollback, If-Match, audit).

An organisation's rules live under ``/api/v1/orgs/{org}/alert-rules``: its viewers read, its admins
write, other organisations' callers get 404. Global rules, which watch every organisation at once,
live under ``/api/v1/alert-rules`` and are a global admin's alone (others: 403).

Every webhook URL passes the SSRF guard's pre-flight when saved (and the guard itself when sent).
The webhook signing secret is write-only: stored sealed, shown as ``webhook_secret_set``.
"""
from __future__ import annotations

from typing import Any

import asyncpg
from aiohttp import web

from control.alerting.rules import (
    SECRET_SEALED,
    check_rule,
    has_webhooks,
    normalise,
    seal_secret,
    shown,
)
from control.handlers.common import principal, state
from control.handlers.resources import Scope, Spec, versioned_routes
from control.store.resources import ALERT_RULE, API, Kind, content_of
from control.validation import is_uuid, raise_if
from core.errors import FieldError
from core.sealing import sealer_for
from core.ssrf import TargetPolicy

__all__ = ["GLOBAL_RULES", "ORG_RULES", "global_scope", "routes"]


async def global_scope(conn: asyncpg.Connection, request: web.Request, *, write: bool = False,
                       lock: bool = False) -> Scope:
    """The global rules: a global admin's alone. ``lock`` serialises their writers, as an organisation's
    row lock does for its resources (name checks see every concurrent change)."""
    principal(request).require_global_admin()
    if lock:
        await conn.execute("SELECT pg_advisory_xact_lock(hashtext(current_schema() || ':global-alert-rules'))")
    return Scope(None, None)


async def _prepare(conn: asyncpg.Connection, request: web.Request, org_id: str | None, id_: str,
                   data: dict[str, Any]) -> dict[str, Any]:
    settings = state(request).settings
    content = normalise(data)
    errors = check_rule(content, TargetPolicy(allow_private=settings.allow_private_targets))
    api = content.get("api")
    if isinstance(api, str):
        if org_id is not None:  # by id or name, stored as the id
            row = await API.find(conn, org_id, api)
            found = str(row["id"]) if row is not None else None
        else:  # a global rule's API is in any organisation: names repeat across them, ids do not
            # FOR SHARE: the API cannot be deleted until this rule is written, and a deletion under way (it
            # locks the API's row, FOR NO KEY UPDATE, before it looks for rules) makes this wait, then find no API.
            found = api if is_uuid(api) and await conn.fetchval(
                "SELECT 1 FROM apis WHERE id = $1::uuid FOR SHARE", api) else None
        if found is None:
            errors.append(FieldError("api", "no such API" + (" in this organisation" if org_id else "")))
        else:
            content["api"] = found
    raise_if(errors)
    stored = await ALERT_RULE.get(conn, org_id, id_)
    previous = content.get(SECRET_SEALED) or (content_of(stored).get(SECRET_SEALED) if stored is not None else None)
    if content.get("webhook_secret") is not None or previous:
        content = seal_secret(content, id_, previous, sealer_for(settings))
    if has_webhooks(content) and not content.get(SECRET_SEALED):
        raise_if([FieldError("webhook_secret", "is required with webhook channels: it signs every webhook")])
    return content


def _show(kind: Kind, content: dict[str, Any]) -> dict[str, Any]:
    return shown(content)


ORG_RULES = Spec(ALERT_RULE, "alert-rules", "AlertRuleCreate", "AlertRuleUpdate", _prepare, None,
                 show=_show, sealed=(SECRET_SEALED,))
GLOBAL_RULES = Spec(ALERT_RULE, "alert-rules", "AlertRuleCreate", "AlertRuleUpdate", _prepare, None,
                    scope=global_scope, base="/api/v1/alert-rules", show=_show, sealed=(SECRET_SEALED,))


def routes() -> list[web.RouteDef]:
    return [*versioned_routes(ORG_RULES), *versioned_routes(GLOBAL_RULES)]
