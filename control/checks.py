"""Checks on API and connector content that need the database or another
package: path templates, route clashes, connector references, target URLs
and connector scripts. Each also fills in defaults."""
from __future__ import annotations

import asyncio
from typing import Any
from urllib.parse import urlsplit

import asyncpg
from lxml import etree

from control.soap_api import (
    check_protocol_fields,
    routed_methods,
    soap_address_errors,
    soap_contract,
)
from control.store.resources import API, CONNECTOR, content_of
from control.validation import check_url, raise_if
from core.breaker_state import origin_of
from core.client_address import address_rule_errors
from core.cors import cors_errors
from core.errors import Conflict, FieldError, InvalidInput
from core.routing import RouteTable, parse_template
from core.safe_xml import XmlRefused, parse_xml
from core.settings import Settings

__all__ = ["check_script", "check_soap_target", "prepare_api", "prepare_connector"]

API_DEFAULTS: dict[str, Any] = {"protocol": "rest", "auth": {"mode": "none"}, "enabled": True}
CONNECTOR_DEFAULTS: dict[str, Any] = {"script": None, "settings": {}}


async def prepare_api(conn: asyncpg.Connection, settings: Settings, org_id: str, api_id: str | None,
                      data: dict[str, Any]) -> dict[str, Any]:
    content = {**API_DEFAULTS, "timeout_ms": settings.default_timeout_ms, **data}
    content.pop("contract", None)  # computed here, never taken from a client (a read shows it)
    raise_if(check_protocol_fields(content))
    template = parse_template(content["path"], "path")
    if content["protocol"] == "soap":
        if template.params:
            raise_if([FieldError("path", "a soap API's path takes no parameters: it is the service's one address")])
        content["methods"] = ["POST"]
    raise_if(cors_errors(content.get("cors"), routed_methods(content)) + address_rule_errors(content.get("ip_restriction")))
    connector = content["connector"]
    row = await CONNECTOR.find(conn, org_id, connector)  # its id, or its name: stored as the id
    if row is None:
        raise InvalidInput(f"no connector {connector!r} in this organisation", code="unknown_connector",
                           fields=[FieldError("connector", "no such connector in this organisation")])
    content["connector"] = str(row["id"])
    table = RouteTable()
    for row in await API.list(conn, org_id):
        if api_id is not None and str(row["id"]) == api_id:
            continue
        other = content_of(row)
        try:
            other_template = parse_template(other["path"])
        except InvalidInput:  # stored under an older, looser rule: it routes nothing, so it clashes with nothing
            continue
        table.add(other_template, routed_methods(other), {"id": str(row["id"]), "name": other["name"]})
    clash = table.clashes(template, routed_methods(content))
    if clash is not None:
        raise Conflict(f"{content['path']} clashes with API {clash['name']!r} ({clash['id']})", code="route_clash",
                       fields=[FieldError("path", f"clashes with API {clash['id']} on a shared method")],
                       extra={"clashes_with": clash["id"]})
    if content["protocol"] == "soap":
        content["contract"] = await soap_contract(content, api_id)  # parsed in a thread
    return content


async def prepare_connector(data: dict[str, Any]) -> dict[str, Any]:
    content = {**CONNECTOR_DEFAULTS, **data}
    raise_if(check_url(content["target"]["url"], "target.url") + check_origins(content["target"]))
    # Parsing an uploaded WSDL is CPU work: off the event loop.
    raise_if(await asyncio.to_thread(check_soap_target, content["target"]))
    if content.get("script"):
        await check_script(content["script"])
    return content


def check_origins(target: dict[str, Any]) -> list[FieldError]:
    """A rest target's ``origins``: each scheme://host[:port] and nothing more (the path is target.url's),
    each once."""
    if "origins" not in target:
        return []
    if target.get("protocol") != "rest":
        return [FieldError("target.origins", "is a setting of rest targets only: a soap upstream is its WSDL's address")]
    errors: list[FieldError] = []
    seen: set[str] = set()
    for i, origin in enumerate(target["origins"]):
        field = f"target.origins[{i}]"
        problems = check_url(origin, field)
        if problems:
            errors += problems
            continue
        parts = urlsplit(origin)
        if parts.path not in ("", "/") or parts.query or parts.fragment or "?" in origin or "#" in origin:
            errors.append(FieldError(field, "must be scheme://host[:port] with no path: the path comes from target.url"))
        elif parts.username is not None or parts.password is not None:
            errors.append(FieldError(field, "takes no user or password: set credentials in target.auth"))
        elif origin_of(origin) in seen:
            errors.append(FieldError(field, f"{origin_of(origin)} is listed twice"))
        seen.add(origin_of(origin))
    return errors


SOAP_ONLY = ("wsdl", "documents", "address", "operation", "binding", "port")
MAX_UPLOADED_WSDL_BYTES = 512 * 1024  # the WSDL and its documents together: they travel in one config event
WSDL_NS = "http://schemas.xmlsoap.org/wsdl/"


def check_soap_target(target: dict[str, Any]) -> list[FieldError]:
    """A SOAP target's own keys: only on a soap target; an uploaded WSDL (and the documents it
    imports) well-formed, safe and small enough; an address override an http(s) URL. The
    operation may be left out: it then comes from the SOAP caller's ``X-Soap-Operation``."""
    if target.get("protocol") != "soap":
        return [FieldError(f"target.{key}", "is a setting of soap targets only") for key in SOAP_ONLY if key in target]
    errors = check_url(target["address"], "target.address") if "address" in target else []
    documents = target.get("documents") or {}
    if documents and "wsdl" not in target:
        errors.append(FieldError("target.documents", "needs target.wsdl: they are the documents an uploaded WSDL imports"))
    if "wsdl" in target:
        errors += _check_document(target["wsdl"], "target.wsdl", wsdl=True) or soap_address_errors(target)
    for location, text in documents.items():
        if not location.strip() or len(location) > 2048:
            errors.append(FieldError("target.documents", f"{location[:100]!r} is not a document location"))
        errors += _check_document(text, f"target.documents.{location}", wsdl=False)
    total = len(target.get("wsdl", "").encode()) + sum(len(t.encode()) for t in documents.values())
    if total > MAX_UPLOADED_WSDL_BYTES:
        errors.append(FieldError("target.documents" if documents else "target.wsdl",
                                 f"the uploaded WSDL and documents exceed {MAX_UPLOADED_WSDL_BYTES} bytes together"))
    return errors


def _check_document(text: str, field: str, *, wsdl: bool) -> list[FieldError]:
    try:
        root = parse_xml(text.encode("utf-8"), max_bytes=MAX_UPLOADED_WSDL_BYTES)
    except XmlRefused as exc:
        return [FieldError(field, str(exc))]
    if wsdl and etree.QName(root).text != f"{{{WSDL_NS}}}definitions":
        return [FieldError(field, "is not a WSDL 1.1 document (its root is not wsdl:definitions)")]
    return []


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
