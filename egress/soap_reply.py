"""Reading what a SOAP upstream answered: a result, a fault, or something that is no envelope.

The result keeps its element names: the children of the response wrapper element become the
keys of a JSON object (``{"MultiplyResult": 42}``; rpc/literal: the parts, ``{"out": "Hello"}``),
where zeep's own ``process_reply`` would unwrap a single child to its bare value.

A fault, SOAP 1.1 (``faultcode``/``faultstring``/``detail``) or 1.2 (``Code/Value``,
``Subcode``, ``Reason/Text``, ``Detail``), is a 502 ``soap_fault``. An answer that is no
envelope of the binding's version (an HTML error page, a 415, an empty body) is a 502
``upstream_error`` naming the upstream's status with a short excerpt.

An answer with a ``Content-Encoding`` (gzip, deflate, br) is decoded first: egress asks for
``identity``, but a server may compress anyway (IIS static compression, a proxy in front). Its
decoded size is bounded like every body (``JUNCTION_MAX_BODY_BYTES``): a decoder is never asked for
more than one byte past the limit, so a zip bomb is a 502 ``upstream_response_too_large``, not a
worker out of memory.
"""
from __future__ import annotations

import base64
import datetime as dt
import json
import re
import zlib
from decimal import Decimal
from typing import Any

from lxml import etree

from core.errors import UpstreamError

try:  # a dependency of Junction (ingress decodes br bodies); br answers are read only where it is installed
    import brotli
except ImportError:  # pragma: no cover
    brotli = None
from core.safe_xml import safe_parser

__all__ = ["EXCERPT_CHARS", "SoapFault", "decode_answer", "read_reply"]

EXCERPT_CHARS = 200
SOAP11_ENV = "http://schemas.xmlsoap.org/soap/envelope/"
SOAP12_ENV = "http://www.w3.org/2003/05/soap-envelope"
_WS = re.compile(r"\s+")


class SoapFault(UpstreamError):
    code = "soap_fault"


class _Undecodable(Exception):
    """A compressed answer that is no valid stream of its coding."""


def _excerpt(body: bytes) -> str:
    text = _WS.sub(" ", body[: EXCERPT_CHARS * 4].decode("utf-8", "replace")).strip()
    return text[:EXCERPT_CHARS] + ("…" if len(text) > EXCERPT_CHARS else "")


def _not_soap(status: int, content_type: str, body: bytes, why: str) -> UpstreamError:
    excerpt = _excerpt(body)
    shown = f": {excerpt!r}" if excerpt else ""
    return UpstreamError(f"the upstream answered {status} ({content_type or 'no Content-Type'}) {why}{shown}",
                         extra={"upstream_status": status, "excerpt": excerpt})


def _json_default(value: Any) -> Any:
    """A value of zeep's as JSON, in its XML Schema lexical form (what the SOAP-to-REST direction reads too)."""
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, dt.timedelta) or type(value).__name__ == "Duration":  # xsd:duration (isodate's Duration)
        import isodate

        return isodate.duration_isoformat(value)
    if hasattr(value, "isoformat"):
        return value.isoformat()
    if isinstance(value, bytes):  # xsd:base64Binary, decoded by zeep: base64 text again (xsd:hexBinary stays hex text)
        return base64.b64encode(value).decode("ascii")
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


def decode_answer(content_encoding: str, body: bytes, limit: int) -> bytes:
    """``body`` decoded from its ``Content-Encoding`` (as is when none), of at most ``limit`` bytes;
    an UpstreamError for a coding Junction cannot read, a stream that does not decode, or more."""
    codings = [c.strip().lower() for c in content_encoding.split(",")]
    codings = [c for c in codings if c and c != "identity"]
    if not codings or not body:
        return body
    coding = codings[0]
    if len(codings) > 1 or coding not in ("gzip", "x-gzip", "deflate", "br"):
        raise UpstreamError(f"the upstream answered in Content-Encoding {content_encoding.strip()[:100]!r}, "
                            "which Junction cannot decode (it asked for identity)")
    try:
        decoded = _brotli(body, limit) if coding == "br" else _zlib(coding, body, limit)
    except (zlib.error, _Undecodable) as exc:
        raise UpstreamError(f"the upstream's {coding} answer does not decode: {exc}") from None
    if len(decoded) > limit:
        raise UpstreamError(f"the upstream's answer exceeds {limit} bytes once decoded from {coding} (JUNCTION_MAX_BODY_BYTES)",
                            code="upstream_response_too_large")
    return decoded


def _zlib(coding: str, body: bytes, limit: int) -> bytes:
    """gzip (members in sequence, RFC 1952) or deflate (zlib-wrapped or raw, as servers send both);
    stops one byte past ``limit``."""
    out = bytearray()
    data = body
    while data:
        if coding == "deflate":
            wbits = zlib.MAX_WBITS if (data[0] & 0x0F == 8 and len(data) > 1 and (data[0] << 8 | data[1]) % 31 == 0) \
                else -zlib.MAX_WBITS
        else:
            wbits = 16 + zlib.MAX_WBITS
        decoder = zlib.decompressobj(wbits)
        out += decoder.decompress(data, limit + 1 - len(out))  # the room is never 0 (which would mean no bound)
        if len(out) > limit:
            return bytes(out)
        if not decoder.eof:
            raise _Undecodable("the stream ends early")
        data = decoder.unused_data if coding != "deflate" else b""
    return bytes(out)


def _brotli(body: bytes, limit: int) -> bytes:
    if brotli is None:
        raise UpstreamError("the upstream answered in Content-Encoding br, which this installation cannot decode "
                            "(no brotli module)")
    decoder = brotli.Decompressor()
    try:
        out = bytearray(decoder.process(body, output_buffer_limit=limit + 1))
        while len(out) <= limit and not decoder.can_accept_more_data():  # output held back by the bound
            more = decoder.process(b"", output_buffer_limit=limit + 1 - len(out))
            if not more:
                break
            out += more
    except brotli.error as exc:
        raise _Undecodable(str(exc) or "not a br stream") from None
    if len(out) <= limit and not decoder.is_finished():
        raise _Undecodable("the stream ends early")
    return bytes(out)


_XSI_NIL = "{http://www.w3.org/2001/XMLSchema-instance}nil"


def _nil_is_empty(body: etree._Element | None) -> None:
    """An ``xsi:nil`` element made the empty element zeep reads as None (JSON null): zeep reads a nil element of
    a complex type that has the nil attribute as an object of nulls (a nil item of a list too)."""
    if body is None:
        return
    for node in body.iter():
        if isinstance(node.tag, str) and node.get(_XSI_NIL) in ("true", "1") and len(node) == 0:
            node.attrib.clear()
            node.text = None


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
    _nil_is_empty(soap_body)
    try:
        # zeep's SoapMessage.deserialize, short of its last step that unwraps a single child.
        result = output.envelope(**output._deserialize_body(soap_body)).body
    except Exception as exc:  # noqa: BLE001 - zeep raises many shapes for an answer that does not fit the WSDL
        raise UpstreamError(f"the SOAP answer does not fit the WSDL: {type(exc).__name__}: {exc}",
                            code="soap_bad_response", extra={"upstream_status": status, "excerpt": _excerpt(body)}) from None
    from zeep.helpers import serialize_object

    return json.dumps(serialize_object(result, dict), default=_json_default).encode()
