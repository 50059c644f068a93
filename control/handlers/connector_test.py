"""Connector try-out: run a connector script on a sample request and/or a
sample upstream response in the sandbox, without calling the upstream.

- ``POST /api/v1/orgs/{org}/connectors/{id}/test``: a saved connector, with its
  current script, or an unsaved ``script`` given in the body.
- ``POST /api/v1/orgs/{org}/connectors/test``: a connector not saved yet; the
  body's ``script`` is required.

``request`` runs ``transform_request`` (with ``path_params``, as an API's path
template gives them); ``response`` runs ``transform_response``. Given neither,
``transform_request`` runs on ``GET /``. Input errors are 422 with ``fields``
(an unsaved script that does not compile is ``script_invalid`` with its line,
as on save). Script errors are the answer (200 with ``error``), not a failure.
"""
from __future__ import annotations

import asyncio
import base64
import binascii
import json
import re
from typing import Any

from aiohttp import web

from control.checks import check_script
from control.handlers.common import body, org_for, reply, state
from control.store.resources import CONNECTOR, content_of
from control.validation import raise_if
from core.errors import FieldError, JunctionError, NotFound, ServiceUnavailable
from core.connector_secrets import MASK
from core.headers import HEADER_NAME
from core.scripts import script_ctx, script_request, script_response

__all__ = ["routes"]

_BAD_VALUE = re.compile(r"[\r\n\x00]")


def _check_headers(headers: dict[str, str], where: str) -> list[FieldError]:
    """Sample headers are what an HTTP caller or upstream could send: token names, no line breaks."""
    errors = []
    for name, value in headers.items():
        if not HEADER_NAME.fullmatch(name):
            errors.append(FieldError(f"{where}.{name}", "is not a valid header name"))
        elif _BAD_VALUE.search(value):
            errors.append(FieldError(f"{where}.{name}", "must not contain CR, LF or NUL"))
    return errors


def _sample_body(sample: dict[str, Any], where: str, headers: list[list[str]],
                 errors: list[FieldError]) -> bytes:
    """The sample's body as bytes, from ``body`` (text or base64) or ``json``."""
    has_json = "json" in sample
    raw = sample.get("body")
    if has_json and raw is not None:
        errors.append(FieldError(f"{where}.json", "give body or json, not both"))
        return b""
    if has_json:
        if sample.get("body_base64"):
            errors.append(FieldError(f"{where}.body_base64", "only applies to body"))
        if not any(k.lower() == "content-type" for k, _ in headers):
            headers.append(["Content-Type", "application/json"])
        text = json.dumps(sample["json"], separators=(",", ":"), ensure_ascii=False)
        # Lone surrogates cannot be UTF-8: keep them as JSON escapes.
        return (json.dumps(sample["json"], separators=(",", ":")) if _has_surrogates(text) else text).encode()
    if raw is None:
        return b""
    if sample.get("body_base64"):
        try:
            return base64.b64decode(raw, validate=True)
        except (binascii.Error, ValueError):
            errors.append(FieldError(f"{where}.body", "is not valid base64"))
            return b""
    if _has_surrogates(raw):
        errors.append(FieldError(f"{where}.body", "is not valid Unicode text; send bytes base64-encoded with body_base64"))
        return b""
    return raw.encode()


def _has_surrogates(text: str) -> bool:
    return any("\ud800" <= c <= "\udfff" for c in text)


def _request_sample(req: dict[str, Any], target: dict[str, Any], errors: list[FieldError]) -> dict[str, Any]:
    headers_in = req.get("headers") or {}
    errors.extend(_check_headers(headers_in, "request.headers"))
    headers = [[k, v] for k, v in headers_in.items()]
    data = _sample_body(req, "request", headers, errors)
    target_method = str(target.get("method") or "")
    call = {
        # The caller's method; without one the target's (unless it passes any method on), else GET.
        "method": req.get("method") or (target_method if target_method not in ("", "*") else "GET"),
        "path": req.get("path") or "/",
        "query": [{"name": k, "value": v} for k, v in (req.get("query") or {}).items()],
        "headers": [{"name": k, "value": v} for k, v in headers],
        "body": data,
    }
    return script_request(call, req.get("path_params") or {})


def _response_sample(resp: dict[str, Any], errors: list[FieldError]) -> dict[str, Any]:
    headers_in = resp.get("headers") or {}
    errors.extend(_check_headers(headers_in, "response.headers"))
    headers = [[k, v] for k, v in headers_in.items()]
    data = _sample_body(resp, "response", headers, errors)
    return script_response(int(resp.get("status", 200)), [(k, v) for k, v in headers], data)


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


async def _try(request: web.Request, data: dict[str, Any], *, org: Any, connector: dict[str, Any],
               script: str | None) -> web.Response:
    """Run ``script`` on the body's samples; ``connector`` is the saved content (or a stand-in)."""
    st = state(request)
    errors: list[FieldError] = []
    if "request" in data or "response" not in data:
        req_sample: dict[str, Any] | None = _request_sample(data.get("request") or {}, connector.get("target") or {}, errors)
    else:
        req_sample = None
    resp_sample = _response_sample(data["response"], errors) if "response" in data else None
    raise_if(errors)
    if script:
        await check_script(script)  # 422 script_invalid with the line, as on save
    result: dict[str, Any] = {"ran": [], "logs": []}
    if not script:
        # No script: the request and the response pass unchanged.
        if req_sample is not None:
            result["request"] = _jsonable(req_sample)
        if resp_sample is not None:
            result["response"] = _jsonable(resp_sample)
        return reply(result)
    if st.sandbox is None:
        raise ServiceUnavailable("the script sandbox is not running", code="sandbox_unavailable")
    from sandbox import ScriptRef

    version = int(connector.get("version") or 0)
    saved = bool(connector.get("id")) and script == connector.get("script")
    # An unsaved script gets its own cache key in the workers, so it never stands in for a saved version.
    ref = ScriptRef(org["slug"], str(connector["id"]) if saved else f"try:{connector.get('id') or 'new'}",
                    version, script)
    settings = data["settings"] if "settings" in data else (connector.get("settings") or {})
    # Secret settings stay sealed here: a try-out script could print them to whoever runs it. The script sees
    # the mask in their place, so it runs instead of failing on a missing key.
    settings = {**{name: MASK for name in connector.get("secret_fields") or []}, **settings}
    ctx = script_ctx(org["slug"], None, {"version": version, "settings": settings})
    stage = "request"
    try:
        if req_sample is not None:
            out = await st.sandbox.transform_request(ref, req_sample, ctx)
            result["ran"].append("transform_request")
            result["logs"].extend(out.logs)
            result["request"] = _jsonable(out.value or req_sample)
        if resp_sample is not None:
            stage = "response"
            out = await st.sandbox.transform_response(ref, resp_sample, ctx)
            if out.value is not None:
                result["ran"].append("transform_response")
            result["logs"].extend(out.logs)
            # No transform_response in the script: the response goes back unchanged.
            result["response"] = _jsonable(out.value if out.value is not None else resp_sample)
    except asyncio.CancelledError:
        raise
    except JunctionError as err:
        result["error"] = {"code": err.code, "message": err.message, "line": err.extra.get("line"),
                           "status": err.status, "stage": stage}
        result["logs"].extend(getattr(err, "script_logs", None) or [])
    return reply(result)


async def test_connector(request: web.Request) -> web.Response:
    data = await body(request, "ConnectorTestRequest")
    st = state(request)
    ref = request.match_info["id"]
    async with st.db.acquire() as conn:
        org = await org_for(conn, request, write=True)  # runs code: admins only
        row = await CONNECTOR.find(conn, str(org["id"]), ref)
    if row is None:
        raise NotFound(f"connector {ref!r} not found")
    content = {**content_of(row), "id": str(row["id"]), "version": int(row["version"])}
    script = data["script"] if "script" in data else content.get("script")
    return await _try(request, data, org=org, connector=content, script=script)


async def try_new_connector(request: web.Request) -> web.Response:
    data = await body(request, "ConnectorTryRequest")
    async with state(request).db.acquire() as conn:
        org = await org_for(conn, request, write=True)
    return await _try(request, data, org=org, connector={}, script=data["script"])


def routes() -> list[web.RouteDef]:
    return [
        web.post("/api/v1/orgs/{org}/connectors/test", try_new_connector),
        web.post("/api/v1/orgs/{org}/connectors/{id}/test", test_connector),
    ]
