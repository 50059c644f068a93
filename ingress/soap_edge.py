"""The SOAP face of an inbound SOAP API: envelope in, JSON arguments out; JSON answer in, envelope out.

Everything here works from the API's :class:`~core.soap_contract.Contract` (computed by control at
save time): no WSDL is read on the request path. Envelopes are parsed with the hardened reader of
:mod:`core.soap_contract` (no DTD, no entities, bounded depth; the size is bounded by the body limit).
Every error is a :class:`~core.errors.JunctionError`, rendered once as a fault of the request's SOAP
version by :func:`fault_response` (docs/soap-to-rest.md, "Faults").
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass
from decimal import Decimal
from http import HTTPStatus
from typing import Any
from urllib.parse import quote
from xml.sax.saxutils import escape

from aiohttp import web
from lxml import etree

from core.errors import ClientError, FieldError, InvalidInput, JunctionError, MalformedBody, UpstreamError
from core.soap_contract import ADDRESS, SOAP11, SOAP12, Contract, Field, Operation, from_text, safe_xml, to_text

__all__ = [
    "ENVELOPE_NS", "FAULT_NS", "MAX_DEPTH", "OPERATION_HEADER", "Contracts", "SoapCall", "address_of", "answer",
    "fault_response", "guess_version", "is_wsdl_request", "json_bytes", "parse_call", "reply_error", "wsdl_response",
]

ENVELOPE_NS = {SOAP11: "http://schemas.xmlsoap.org/soap/envelope/", SOAP12: "http://www.w3.org/2003/05/soap-envelope"}
_VERSION_OF_NS = {ns: v for v, ns in ENVELOPE_NS.items()}
MEDIA_TYPE = {SOAP11: "text/xml", SOAP12: "application/soap+xml"}
FAULT_NS = "urn:junction:soap-fault"
OPERATION_HEADER = "X-Soap-Operation"
MAX_DEPTH = 64  # nested elements in an envelope; libxml2 refuses 256 on its own
_XSI_NIL = "{http://www.w3.org/2001/XMLSchema-instance}nil"
_XSI = "http://www.w3.org/2001/XMLSchema-instance"
# A Host header that can only be a host name or address and a port: anything else is refused, never echoed.
_HOST = re.compile(r"([A-Za-z0-9-]+(\.[A-Za-z0-9-]+)*\.?|\[[0-9A-Fa-f:.]+\])(:[0-9]{1,5})?")
# HTTP-level answers keep their status (and headers: WWW-Authenticate, Retry-After) under the fault.
_HTTP_LEVEL = frozenset({401, 403, 413, 429})
# Fault codes beside Client/Sender and Server/Receiver, by Junction error code.
_SPECIAL = {"soap_version_mismatch": "VersionMismatch", "soap_must_understand": "MustUnderstand"}


@dataclass(frozen=True)
class SoapCall:
    version: str
    operation: Operation
    arguments: dict[str, Any]


class Contracts:
    """Each API's contract, parsed from its config document once per version."""

    def __init__(self, max_entries: int = 4096) -> None:
        self._cache: dict[str, tuple[int, Contract]] = {}
        self._max = max_entries

    def of(self, api: dict[str, Any]) -> Contract:
        key, version = str(api.get("id")), int(api.get("version", 0))
        hit = self._cache.get(key)
        if hit is not None and hit[0] == version:
            return hit[1]
        if len(self._cache) >= self._max:
            self._cache.clear()
        contract = Contract.from_dict(api.get("contract") or {})
        self._cache[key] = (version, contract)
        return contract


def _error(message: str, code: str, status: int = 400) -> JunctionError:
    return MalformedBody(message, code=code, status=status)


def _media(content_type: str | None) -> tuple[str, dict[str, str]]:
    media, _, rest = (content_type or "").partition(";")
    params = {}
    for item in rest.split(";"):
        name, sep, value = item.partition("=")
        if sep:
            params[name.strip().lower()] = value.strip().strip('"')
    return media.strip().lower(), params


def guess_version(content_type: str | None) -> str:
    """The SOAP version to fault in before the envelope says: by its media type."""
    return SOAP12 if _media(content_type)[0] == MEDIA_TYPE[SOAP12] else SOAP11


def is_wsdl_request(request: web.Request) -> bool:
    return any(k.lower() == "wsdl" for k in request.query)


# -- a call ---------------------------------------------------------------------------------------------
def parse_call(body: bytes, content_type: str | None, soap_action: str | None, contract: Contract) -> SoapCall:
    """The operation and arguments of a request envelope (JunctionError otherwise, with the version to
    fault in as ``extra["soap_version"]`` when it is known)."""
    media, params = _media(content_type)
    if media not in MEDIA_TYPE.values():
        raise _error(f"a SOAP request is text/xml (SOAP 1.1) or application/soap+xml (SOAP 1.2), not "
                     f"{media[:100] or 'untyped'}", "soap_content_type", 415)
    try:
        root = safe_xml(body, max_depth=MAX_DEPTH)
    except ValueError as exc:
        raise _error(f"the envelope is refused: {exc}", "soap_envelope_invalid") from None
    name = etree.QName(root)
    if name.localname != "Envelope":
        raise _error("the document is not a SOAP Envelope", "soap_envelope_invalid")
    version = _VERSION_OF_NS.get(name.namespace or "")
    if version is None:
        raise _error("the Envelope is neither SOAP 1.1 nor SOAP 1.2", "soap_version_mismatch")
    if media != MEDIA_TYPE[version]:
        raise _error(f"SOAP {version} goes as {MEDIA_TYPE[version]}, not {media}", "soap_content_type", 415)
    if version not in contract.versions:
        raise _error(f"this API speaks SOAP {' and '.join(contract.versions)}, not {version}", "soap_version_mismatch")
    env = ENVELOPE_NS[version]
    action = (params.get("action") if version == SOAP12 else (soap_action or "").strip().strip('"')) or ""
    parts = [c for c in root if isinstance(c.tag, str)]
    if parts and parts[0].tag == f"{{{env}}}Header":
        _check_headers(parts.pop(0), env)
    if len(parts) != 1 or parts[0].tag != f"{{{env}}}Body":
        raise _error("the Envelope must hold an optional Header and one Body", "soap_envelope_invalid")
    payload = [c for c in parts[0] if isinstance(c.tag, str)]
    if len(payload) != 1:
        raise _error("the Body must hold exactly one element: the operation's", "soap_envelope_invalid")
    operation = _operation(contract, payload[0].tag, action, version)
    errors: list[FieldError] = []
    arguments = _object(payload[0], operation.input.fields, "", errors)
    if errors:
        raise InvalidInput(f"invalid arguments for {operation.name}: {errors[0].field}: {errors[0].message}",
                           code="soap_invalid_arguments", fields=errors)
    return SoapCall(version, operation, arguments)


def _check_headers(header: Any, env: str) -> None:
    for block in header:
        if isinstance(block.tag, str) and block.get(f"{{{env}}}mustUnderstand") in ("1", "true"):
            raise _error(f"header {etree.QName(block).localname} must be understood, and Junction does not "
                         "process SOAP headers", "soap_must_understand")


def _operation(contract: Contract, tag: str, action: str, version: str) -> Operation:
    candidates = contract.by_element(tag)
    if not candidates:
        raise _error(f"no operation of this API takes the element {etree.QName(tag).localname}", "soap_unknown_operation")
    if action:
        chosen = [o for o in candidates if o.accepts(version, action)]
        if not chosen:
            raise _error(f"the action {action[:200]} does not name the operation {candidates[0].name}",
                         "soap_action_mismatch")
        return chosen[0]
    return candidates[0]


def _object(node: Any, fields: tuple[Field, ...], where: str, errors: list[FieldError]) -> dict[str, Any]:
    if (node.text or "").strip():
        errors.append(FieldError(where or "(body)", "must hold elements, not text"))
    by_tag = {f.tag: f for f in fields}
    found: dict[str, list[Any]] = {}
    for child in node:
        if not isinstance(child.tag, str):
            continue
        field = by_tag.get(child.tag)
        if field is None:
            errors.append(FieldError(_join(where, etree.QName(child).localname), "is not an argument of this operation"))
            continue
        found.setdefault(field.name, []).append(child)
    out: dict[str, Any] = {}
    for field in fields:
        nodes = found.get(field.name, [])
        at = _join(where, field.name)
        if len(nodes) < field.min:
            errors.append(FieldError(at, "is required" if field.min == 1 else f"must appear at least {field.min} times"))
        if field.max is not None and len(nodes) > field.max:
            errors.append(FieldError(at, "must appear once at most" if field.max == 1 else
                                     f"must appear at most {field.max} times"))
        values = [_value(n, field, f"{at}[{i}]" if field.repeated else at, errors) for i, n in enumerate(nodes)]
        if field.repeated:
            out[field.name] = values
        elif values:
            out[field.name] = values[0]
    return out


def _value(node: Any, field: Field, at: str, errors: list[FieldError]) -> Any:
    if node.get(_XSI_NIL) in ("true", "1"):
        if not field.nillable:
            errors.append(FieldError(at, "must not be nil"))
        return None
    if field.type == "object":
        return _object(node, field.fields, at, errors)
    if any(isinstance(c.tag, str) for c in node):
        errors.append(FieldError(at, f"must be a {field.type} value, not elements"))
        return None
    try:
        return from_text(field.type, node.text or "")
    except ValueError as exc:
        errors.append(FieldError(at, str(exc)))
        return None


def _join(where: str, name: str) -> str:
    return f"{where}.{name}" if where else name


def json_bytes(value: Any) -> bytes:
    """Compact JSON, a Decimal written as the number it is (json would refuse it, or lose digits as a float)."""
    return _json(value).encode()


def _json(value: Any) -> str:
    if isinstance(value, Decimal):
        return format(value, "f")
    if isinstance(value, dict):
        return "{" + ",".join(f"{json.dumps(str(k))}:{_json(v)}" for k, v in value.items()) + "}"
    if isinstance(value, list):
        return "[" + ",".join(_json(v) for v in value) + "]"
    return json.dumps(value, ensure_ascii=False)


# -- the answer -------------------------------------------------------------------------------------------
def answer(version: str, operation: Operation, reply_body: bytes) -> bytes:
    """The response envelope of ``operation`` for the upstream's JSON answer (UpstreamError
    ``soap_bad_upstream_answer`` when it does not fit the operation's output)."""
    assert operation.output is not None
    output = operation.output
    try:
        value = json.loads(reply_body, parse_float=Decimal) if reply_body.strip() else {}
    except (ValueError, RecursionError):
        raise _bad_answer([FieldError("(answer)", "is not JSON")]) from None
    if not isinstance(value, dict):
        if len(output.fields) != 1:
            raise _bad_answer([FieldError("(answer)", "is not a JSON object")])
        value = {output.fields[0].name: value}  # a bare value answers an output of one field
    env = ENVELOPE_NS[version]
    root = etree.Element(f"{{{env}}}Envelope", nsmap={"soap": env, "xsi": _XSI})
    body = etree.SubElement(root, f"{{{env}}}Body")
    wrapper_ns = etree.QName(output.element).namespace
    wrapper = etree.SubElement(body, output.element, nsmap={"tns": wrapper_ns} if wrapper_ns else None)
    errors: list[FieldError] = []
    _fill(wrapper, output.fields, value, "", errors)
    if errors:
        raise _bad_answer(errors)
    return etree.tostring(root, xml_declaration=True, encoding="UTF-8")


def _bad_answer(errors: list[FieldError]) -> UpstreamError:
    return UpstreamError("the upstream's answer does not fit the operation's output", code="soap_bad_upstream_answer",
                         fields=errors)


def _fill(parent: Any, fields: tuple[Field, ...], value: dict[str, Any], where: str, errors: list[FieldError]) -> None:
    for field in fields:
        at = _join(where, field.name)
        item = value.get(field.name)
        if item is None:
            if field.name in value and field.nillable:
                etree.SubElement(parent, field.tag).set(_XSI_NIL, "true")
            elif field.min > 0:
                errors.append(FieldError(at, "is required"))
            continue
        items = item if field.repeated and isinstance(item, list) else [item]
        if len(items) < field.min or (field.max is not None and len(items) > field.max):
            errors.append(FieldError(at, f"must have {field.min} to {field.max or 'any number of'} items"))
            continue
        for i, one in enumerate(items):
            here = f"{at}[{i}]" if field.repeated else at
            node = etree.SubElement(parent, field.tag)
            if one is None and field.nillable:
                node.set(_XSI_NIL, "true")
            elif field.type == "object":
                if isinstance(one, dict):
                    _fill(node, field.fields, one, here, errors)
                else:
                    errors.append(FieldError(here, "must be an object"))
            else:
                try:
                    node.text = to_text(field.type, one)
                except ValueError as exc:
                    errors.append(FieldError(here, str(exc)))


# -- faults -----------------------------------------------------------------------------------------------
def fault_response(version: str, err: JunctionError, *, correlation_id: str | None = None,
                   headers: dict[str, str] | None = None) -> web.Response:
    """``err`` as a fault of ``version``: Client/Sender for a 4xx, Server/Receiver otherwise.

    HTTP status: 500 for SOAP 1.1 (as its HTTP binding says), 400 for a SOAP 1.2 Sender fault and 500
    for a Receiver one; 401, 403, 413 and 429 keep their own, which clients and proxies act on.
    """
    sender = 400 <= err.status < 500
    env = ENVELOPE_NS[version]
    special = _SPECIAL.get(err.code)
    root = etree.Element(f"{{{env}}}Envelope", nsmap={"soap": env})
    fault = etree.SubElement(etree.SubElement(root, f"{{{env}}}Body"), f"{{{env}}}Fault")
    if version == SOAP11:
        etree.SubElement(fault, "faultcode").text = f"soap:{special or ('Client' if sender else 'Server')}"
        etree.SubElement(fault, "faultstring").text = err.message
        detail = etree.SubElement(fault, "detail")
    else:
        code = etree.SubElement(etree.SubElement(fault, f"{{{env}}}Code"), f"{{{env}}}Value")
        code.text = f"soap:{special or ('Sender' if sender else 'Receiver')}"
        reason = etree.SubElement(etree.SubElement(fault, f"{{{env}}}Reason"), f"{{{env}}}Text")
        reason.set("{http://www.w3.org/XML/1998/namespace}lang", "en")
        reason.text = err.message
        detail = etree.SubElement(fault, f"{{{env}}}Detail")
    info = etree.SubElement(detail, f"{{{FAULT_NS}}}error", nsmap={"j": FAULT_NS})
    etree.SubElement(info, f"{{{FAULT_NS}}}code").text = err.code
    etree.SubElement(info, f"{{{FAULT_NS}}}status").text = str(err.status)
    for f in err.fields:
        node = etree.SubElement(info, f"{{{FAULT_NS}}}field", name=f.field)
        node.text = f.message
    if correlation_id:
        etree.SubElement(info, f"{{{FAULT_NS}}}correlationId").text = correlation_id
    if err.status in _HTTP_LEVEL:
        status = err.status
    else:
        status = 400 if version == SOAP12 and sender else 500
    out = {**(headers or {}), **err.headers}
    return web.Response(status=status, body=etree.tostring(root, xml_declaration=True, encoding="UTF-8"),
                        headers=out, content_type=MEDIA_TYPE[version], charset="utf-8")


def reply_error(reply: dict[str, Any]) -> JunctionError:
    """The error a failed reply stands for, told without the upstream's own words: its status and code."""
    status = int(reply["status"])
    code = reply.get("error_code") or "upstream_error"
    try:
        phrase = HTTPStatus(status).phrase
    except ValueError:
        phrase = "Error"
    who = "Junction" if reply.get("error_code") else "the upstream"
    return JunctionError(f"{who} answered {status} {phrase}", code=code, status=status)


# -- ?wsdl ------------------------------------------------------------------------------------------------
def address_of(request: web.Request, public_base_url: str, org: str, path: str) -> str:
    """The API's URL as a caller reaches it: the configured public base URL, else this request's
    scheme and Host (ClientError for a Host that is not a plain host[:port])."""
    base = public_base_url.rstrip("/")
    if not base:
        host = request.host
        if not _HOST.fullmatch(host or ""):
            raise ClientError("the Host header is not a host name and port", code="invalid_host")
        base = f"{request.scheme}://{host}"
    return f"{base}/{quote(org, safe='')}{quote(path, safe='/-._~!$&()*+,;=:@')}"


def wsdl_response(contract: Contract, address: str) -> web.Response:
    text = contract.wsdl.replace(ADDRESS, escape(address, {'"': "&quot;", "'": "&apos;"}))
    return web.Response(body=text.encode(), content_type="text/xml", charset="utf-8")
