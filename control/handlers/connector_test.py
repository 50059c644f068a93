"""POST /api/v1/orgs/{org}/connectors/{id}/test: run the connector's current
request transform on a sample request in the sandbox, without calling the
upstream. Script errors are the answer (200 with ``error``), not a failure."""
from __future__ import annotations

import asyncio
import base64
from typing import Any

from aiohttp import web

from control.handlers.common import body, org_for, reply, state
from control.store.resources import CONNECTOR, content_of
from control.validation import is_uuid
from core.errors import JunctionError, NotFound, ServiceUnavailable

__all__ = ["routes"]


def _sample(req: dict[str, Any], target: dict[str, Any]) -> dict[str, Any]:
    raw = req.get("body")
    return {
        "method": req.get("method") or target.get("method") or "GET",
        "path": req.get("path") or "/",
        "path_params": {},
        "query": [[k, v] for k, v in (req.get("query") or {}).items()],
        "headers": [[k, v] for k, v in (req.get("headers") or {}).items()],
        "body": raw.encode() if isinstance(raw, str) else b"",
        "url": None,
    }


def _jsonable(value: dict[str, Any]) -> dict[str, Any]:
    out = dict(value)
    raw = out.get("body")
    if isinstance(raw, (bytes, bytearray)):
        try:
            out["body"] = bytes(raw).decode("utf-8")
            out["body_base64"] = False
        except UnicodeDecodeError:
            out["body"] = base64.b64encode(bytes(raw)).decode()
            out["body_base64"] = True
    return out


async def test_connector(request: web.Request) -> web.Response:
    data = await body(request, "ConnectorTestRequest")
    st = state(request)
    ref = request.match_info["id"]
    async with st.db.acquire() as conn:
        org = await org_for(conn, request, write=True)  # runs code: admins only
        row = await CONNECTOR.get(conn, str(org["id"]), ref) if is_uuid(ref) else None
    if row is None:
        raise NotFound(f"connector {ref!r} not found")
    content = content_of(row)
    if st.sandbox is None:
        raise ServiceUnavailable("the script sandbox is not running", code="sandbox_unavailable")
    if not content.get("script"):
        # No script: the request goes out unchanged.
        return reply({"request": _jsonable(_sample(data["request"], content["target"])), "logs": []})
    from sandbox import ScriptRef

    version = int(row["version"])
    script = ScriptRef(org["slug"], str(row["id"]), version, content["script"])
    ctx = {"org": org["slug"], "api": "", "api_id": "", "config_version": version, "connector_version": version,
           "settings": content.get("settings") or {}}
    try:
        result = await st.sandbox.transform_request(script, _sample(data["request"], content["target"]), ctx)
    except asyncio.CancelledError:
        raise
    except JunctionError as err:
        return reply({"error": {"code": err.code, "message": err.message, "line": err.extra.get("line")},
                      "logs": list(getattr(err, "script_logs", None) or [])})
    return reply({"request": _jsonable(result.value or {}), "logs": list(result.logs)})


def routes() -> list[web.RouteDef]:
    return [web.post("/api/v1/orgs/{org}/connectors/{id}/test", test_connector)]
