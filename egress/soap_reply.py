"""Reading what a SOAP upstream answered: a result, a fault, or something that is no envelope.

The result keeps its element names: the children of the response wrapper element become the
keys of a JSON object (``{"MultiplyResult": 42}``; rpc/literal: the parts, ``{"out": "Hello"}``),
where zeep's own ``process_reply`` would unwrap a single child to its bare value.

A fault, SOAP 1.1 (``faultcode``/``faultstring``/``detail``) or 1.2 (``Code/Value``,
``Subcode``, ``Reason/Text``, ``Detail``), is a 502 ``soap_fault``. An answer that is no
envelope of the binding's version (an HTML error page, a 415, an empty body) is a 502
``upstream_error`` naming the upstream's status with a short excerpt.
"""
from __future__ import annotations

import json
import re
from decimal import Decimal
from typing import Any

from lxml import etree

from core.errors import UpstreamError
from core.safe_xml import safe_parser

__all__ = ["EXCERPT_CHARS", "SoapFault", "read_reply"]

EXCERPT_CHARS = 200
SOAP11_ENV = "http://schemas.xmlsoap.org/soap/envelope/"
SOAP12_ENV = "http://www.w3.org/2003/05/soap-envelope"
_WS = re.compile(r"\s+")


class SoapFault(UpstreamError):
    code = "soap_fault"


def _excerpt(body: bytes) -> str:
    text = _WS.sub(" ", body[: EXCERPT_CHARS * 4].decode("utf-8", "replace")).strip()
    return text[:EXCERPT_CHARS] + ("…" if len(text) > EXCERPT_CHARS else "")


def _not_soap(status: int, content_type: str, body: bytes, why: str) -> UpstreamError:
    excerpt = _excerpt(body)
    shown = f": {excerpt!r}" if excerpt else ""
    return UpstreamError(f"the upstream answered {status} ({content_type or 'no Content-Type'}) {why}{shown}",
                         extra={"upstream_status": status, "excerpt": excerpt})


def _json_default(value: Any) -> Any:
    if isinstance(value, Decimal):
        return str(value)
    if hasattr(value, "isoformat"):
        return value.isoformat()
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return str(value)


def _xml_to_json(node: etree._Element) -> Any:
    """A fault detail as JSON: local names as keys, repeated names as lists, leaves as text."""
    children = [c for c in node if isinstance(c.tag, str)]
    if not children:
        return (node.text or "").strip()
    out: dict[str, Any] = {}
    for child in children:
        name = etree.QName(child).localname
        value = _xml_to_json(child)
        if name in out:
            out[name] = [*out[name], value] if isinstance(out[name], list) else [out[name], value]
        else:
            out[name] = value
    return out


def _fault(fault: etree._Element, envelope_ns: str, status: int) -> SoapFault:
    if envelope_ns == SOAP12_ENV:
        ns = {"e": SOAP12_ENV}
        code = fault.findtext("e:Code/e:Value", namespaces=ns) or ""
        subcodes = [v.text or "" for v in fault.iterfind(".//e:Subcode/e:Value", namespaces=ns)]
        reason = fault.findtext("e:Reason/e:Text", namespaces=ns) or ""
        detail = fault.find("e:Detail", namespaces=ns)
    else:  # SOAP 1.1: the fault's children are unqualified
        code = fault.findtext("faultcode") or ""
        subcodes = []
        reason = fault.findtext("faultstring") or ""
        detail = fault.find("detail")
    extra: dict[str, Any] = {"fault_code": code.strip(), "upstream_status": status}
    if subcodes:
        extra["fault_subcodes"] = [s.strip() for s in subcodes]
    if detail is not None:
        extra["fault_detail"] = _xml_to_json(detail)
    return SoapFault(f"SOAP fault: {reason.strip()}", extra=extra)


def read_reply(binding: Any, operation: Any, status: int, content_type: str, body: bytes) -> bytes:
    """The JSON body of the Reply for the upstream's answer; raises SoapFault or UpstreamError."""
    envelope_ns = binding.nsmap["soap-env"]
    if status in (201, 202) and not body.strip():
        return b"null"  # a one-way operation accepted
    if not body.strip():
        raise _not_soap(status, content_type, body, "with an empty body")
    try:
        root = etree.fromstring(body, safe_parser())
    except etree.XMLSyntaxError:
        raise _not_soap(status, content_type, body, "with no SOAP envelope") from None
    if root.getroottree().docinfo.doctype:  # SOAP forbids a DTD; an HTML page has one
        raise _not_soap(status, content_type, body, "with no SOAP envelope")
    if root.tag != f"{{{envelope_ns}}}Envelope":
        other = {SOAP11_ENV: "1.1", SOAP12_ENV: "1.2"}.get(etree.QName(root).namespace or "")
        why = (f"with a SOAP {other} envelope to a SOAP {'1.2' if envelope_ns == SOAP12_ENV else '1.1'} call" if other
               else "with no SOAP envelope")
        raise _not_soap(status, content_type, body, why)
    fault = root.find(f"{{{envelope_ns}}}Body/{{{envelope_ns}}}Fault")
    if fault is not None:
        raise _fault(fault, envelope_ns, status)
    if status != 200:
        raise _not_soap(status, content_type, body, "with an envelope that holds no fault")
    output = operation.output
    if output is None:
        return b"null"
    soap_body = root.find(f"{{{envelope_ns}}}Body")
    try:
        # zeep's SoapMessage.deserialize, short of its last step that unwraps a single child.
        result = output.envelope(**output._deserialize_body(soap_body)).body
    except Exception as exc:  # noqa: BLE001 - zeep raises many shapes for an answer that does not fit the WSDL
        raise UpstreamError(f"the SOAP answer does not fit the WSDL: {type(exc).__name__}: {exc}",
                            code="soap_bad_response", extra={"upstream_status": status, "excerpt": _excerpt(body)}) from None
    from zeep.helpers import serialize_object

    return json.dumps(serialize_object(result, dict), default=_json_default).encode()
