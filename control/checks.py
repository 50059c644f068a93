"""Checks on API and connector content that need the database or another
package: path templates, route clashes, connector references, target URLs
and connector scripts. Each also fills in defaults."""
from __future__ import annotations

import asyncio
from typing import Any

import asyncpg

from control.store.resources import API, content_of
from control.validation import check_url, is_uuid, raise_if
from core.errors import Conflict, FieldError, InvalidInput
from core.routing import RouteTable, parse_template
from core.settings import Settings

__all__ = ["check_script", "prepare_api", "prepare_connector"]

API_DEFAULTS: dict[str, Any] = {"protocol": "rest", "auth": {"mode": "none"}, "enabled": True}
CONNECTOR_DEFAULTS: dict[str, Any] = {"script": None, "settings": {}}


async def prepare_api(conn: asyncpg.Connection, settings: Settings, org_id: str, api_id: str | None,
                      data: dict[str, Any]) -> dict[str, Any]:
    content = {**API_DEFAULTS, "timeout_ms": settings.default_timeout_ms, **data}
    template = parse_template(content["path"], "path")
    connector = content["connector"]
    if not is_uuid(connector) or not await conn.fetchval(
            "SELECT 1 FROM connectors WHERE org_id = $1 AND id = $2", org_id, connector):
        raise InvalidInput(f"no connector {connector!r} in this organisation", code="unknown_connector",
                           fields=[FieldError("connector", "no such connector in this organisation")])
    table = RouteTable()
    for row in await API.list(conn, org_id):
        if api_id is not None and str(row["id"]) == api_id:
            continue
        other = content_of(row)
        table.add(parse_template(other["path"]), other["methods"], {"id": str(row["id"]), "name": other["name"]})
    clash = table.clashes(template, content["methods"])
    if clash is not None:
        raise Conflict(f"{content['path']} clashes with API {clash['name']!r} ({clash['id']})", code="route_clash",
                       fields=[FieldError("path", f"clashes with API {clash['id']} on a shared method")],
                       extra={"clashes_with": clash["id"]})
    return content


async def prepare_connector(data: dict[str, Any]) -> dict[str, Any]:
    content = {**CONNECTOR_DEFAULTS, **data}
    raise_if(check_url(content["target"]["url"], "target.url"))
    if content["target"].get("protocol") == "soap" and not content["target"].get("operation"):
        raise_if([FieldError("target.operation", "is required for a soap target")])
    if content.get("script"):
        await check_script(content["script"])
    return content


async def check_script(source: str) -> None:
    """Refuse a script that does not compile under the sandbox rules
    (ScriptCompileError: 422 ``script_invalid`` with field ``script`` and line)."""
    try:
        # Imported lazily: without the sandbox package scripts are not checked.
        from sandbox import compile_check
    except ImportError:
        return
    # Compiling a large script takes a while; keep the event loop free.
    await asyncio.to_thread(compile_check, source)
