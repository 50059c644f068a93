"""Inbound SOAP APIs at save time: read a contract-first WSDL, or generate one from code-first
``operations``, into the :class:`~core.soap_contract.Contract` the API's config document carries.

Everything here is CPU work on untrusted XML: :func:`soap_contract` runs it in a thread. A WSDL is
parsed with the hardened reader of :mod:`core.soap_contract` (no DTD, no entities, bounded depth)
before zeep sees it, and zeep reads it with a transport that fetches nothing: a WSDL that imports
another document is refused, its schemas must be inline.
"""
from __future__ import annotations

import asyncio
import io
import re
from dataclasses import replace
from typing import Any
from urllib.parse import urlsplit

from lxml import etree

from core.errors import FieldError, InvalidInput
from core.soap_contract import ADDRESS, SOAP11, SOAP12, Contract, Field, Message, Operation, safe_xml

__all__ = ["MAX_NESTING", "check_protocol_fields", "generate_wsdl", "read_wsdl", "routed_methods", "soap_address_errors",
           "soap_contract"]

MAX_NESTING = 8  # object levels in one message: deeper (or recursive) types are refused
_WSDL_MAX_DEPTH = 64
_NCNAME = re.compile(r"[A-Za-z_][A-Za-z0-9_.-]*")
_URI = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*:\S+")
_NS = {
    "wsdl": "http://schemas.xmlsoap.org/wsdl/",
    "soap": "http://schemas.xmlsoap.org/wsdl/soap/",
    "soap12": "http://schemas.xmlsoap.org/wsdl/soap12/",
    "xsd": "http://www.w3.org/2001/XMLSchema",
}
_HTTP_TRANSPORT = "http://schemas.xmlsoap.org/soap/http"
SOAP_ONLY = ("wsdl", "operations", "namespace")
# XML Schema built-in types by local name, as the contract checks them; other built-ins (token, anyURI,
# time, duration, hexBinary, ...) travel as strings. Unsigned and unbounded integers are checked as long.
_XSD_TYPES = {
    "string": "string", "int": "int", "short": "int", "byte": "int", "unsignedShort": "int", "unsignedByte": "int",
    "long": "long", "unsignedInt": "long", "integer": "long", "decimal": "decimal", "double": "double",
    "float": "double", "boolean": "boolean", "dateTime": "dateTime", "date": "date", "base64Binary": "base64Binary",
}


class _Refused(Exception):
    """A WSDL Junction cannot serve; the message says why, for field ``wsdl``."""


def routed_methods(content: dict[str, Any]) -> list[str]:
    """The methods an API answers at its path: a SOAP API also answers GET (its ``?wsdl``)."""
    methods = [str(m).upper() for m in content.get("methods") or []]
    if content.get("protocol") == "soap" and "GET" not in methods and "*" not in methods:
        methods.append("GET")
    return sorted(methods)


def check_protocol_fields(content: dict[str, Any]) -> list[FieldError]:
    """What the body schema cannot say about ``protocol``: which fields go with which."""
    if content.get("protocol") != "soap":
        errors = [FieldError(k, "is only for a soap API (protocol soap)") for k in SOAP_ONLY if k in content]
        if not content.get("methods"):
            errors.append(FieldError("methods", "is required"))
        return errors
    errors = []
    if ("wsdl" in content) == ("operations" in content):
        errors.append(FieldError("wsdl", "a soap API takes either wsdl (contract first) or operations (code first)"))
    if "namespace" in content and "operations" not in content:
        errors.append(FieldError("namespace", "is only for code-first operations (the WSDL names its own)"))
    if [str(m).upper() for m in content.get("methods") or ["POST"]] != ["POST"]:
        errors.append(FieldError("methods", "a soap API takes POST (GET at its path serves ?wsdl)"))
    return errors


async def soap_contract(content: dict[str, Any], api_id: str | None) -> dict[str, Any]:
    """The contract of a soap API's content (InvalidInput naming the field at fault)."""
    if "wsdl" in content:
        return (await asyncio.to_thread(read_wsdl, content["wsdl"])).to_dict()
    namespace = content.get("namespace") or f"urn:junction:api:{api_id or content.get('name', 'api')}"
    return (await asyncio.to_thread(generate_wsdl, content["operations"], namespace, str(content.get("name") or "api"))).to_dict()


# -- an outbound connector's uploaded WSDL -----------------------------------------------------------------
def soap_address_errors(target: dict[str, Any]) -> list[FieldError]:
    """Where a soap connector's envelopes would go, checked at save time when its WSDL is uploaded
    (``target.wsdl``): the soap:address of the port it calls (as egress/soap_wsdl.py select_port picks
    it) must be an http or https URL, unless ``target.address`` overrides it (checked as a URL
    itself). A WSDL with no wsdl:service has no address at all: it needs the override."""
    if "wsdl" not in target or "address" in target:
        return []
    try:
        root = safe_xml(str(target["wsdl"]).encode(), max_depth=_WSDL_MAX_DEPTH)
    except ValueError:
        return []  # refused already, naming why (control/checks.py)
    soap11, soap12 = f"{{{_NS['soap']}}}address", f"{{{_NS['soap12']}}}address"
    ports = []
    for port in root.iterfind(f"{{{_NS['wsdl']}}}service/{{{_NS['wsdl']}}}port"):
        address = port.find(soap11)
        address = address if address is not None else port.find(soap12)
        if address is not None:
            ports.append((port.get("name") or "", port.get("binding") or "", address))
    if not ports:
        return [FieldError("target.wsdl", "has no wsdl:service port with a soap:address or soap12:address: give "
                                          "target.address, the http(s) URL the envelopes are posted to")]
    if target.get("port") is not None:
        chosen = [p for p in ports if p[0] == target["port"]]
    elif target.get("binding") is not None:
        wanted = str(target["binding"]).rpartition("}")[2]
        chosen = [p for p in ports if p[1].rpartition(":")[2] == wanted]
    else:
        chosen = [p for p in ports if p[2].tag == soap11] or ports
    if not chosen:
        return []  # an unknown port or binding is named, with the WSDL's, when the connector is called
    name, _, address = chosen[0]
    location = (address.get("location") or "").strip()
    if _is_http_url(location):
        return []
    return [FieldError("target.wsdl", f"the soap:address of port {name[:100]} is {location[:200]!r}, not an http or "
                                      "https URL: correct it, or give target.address")]


def _is_http_url(url: str) -> bool:
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - ValueError for a port that is not a number
    except ValueError:
        return False
    return parts.scheme.lower() in ("http", "https") and bool(parts.hostname) and not any(c.isspace() for c in url)


# -- contract first ---------------------------------------------------------------------------------------
def read_wsdl(text: str) -> Contract:
    """The contract of a WSDL document (InvalidInput on field ``wsdl``)."""
    try:
        return _read_wsdl(text)
    except _Refused as exc:
        raise InvalidInput(f"wsdl: {exc}", code="invalid_wsdl", fields=[FieldError("wsdl", str(exc))]) from None


def _read_wsdl(text: str) -> Contract:
    from zeep import Settings as ZeepSettings
    from zeep.wsdl import Document
    from zeep.wsdl.bindings.soap import Soap11Binding, Soap12Binding

    if ADDRESS in text:
        raise _Refused(f"must not contain {ADDRESS} (Junction writes it where the service address goes)")
    try:
        root = safe_xml(text.encode(), max_depth=_WSDL_MAX_DEPTH)
    except ValueError as exc:
        raise _Refused(str(exc)) from None
    if root.tag != f"{{{_NS['wsdl']}}}definitions":
        raise _Refused("is not a WSDL 1.1 document (its root is not wsdl:definitions)")
    for body in root.iter(f"{{{_NS['soap']}}}body", f"{{{_NS['soap12']}}}body"):
        if body.get("use") == "encoded":
            raise _Refused("uses SOAP encoding (use=\"encoded\"): only literal is supported")
    addresses = list(root.iter(f"{{{_NS['soap']}}}address", f"{{{_NS['soap12']}}}address"))
    if not addresses:
        raise _Refused("has no service port with a soap:address or soap12:address")
    for address in addresses:
        address.set("location", ADDRESS)
    template = etree.tostring(root, xml_declaration=True, encoding="UTF-8").decode()
    settings = ZeepSettings(strict=True, forbid_dtd=True, forbid_entities=True, forbid_external=True, xml_huge_tree=False)
    try:
        document = Document(io.BytesIO(template.encode()), transport=_NoFetch(), settings=settings)
    except _Refused:
        raise
    except Exception as exc:  # noqa: BLE001 - zeep's errors on a broken WSDL are of many kinds; each is the user's to fix
        if type(exc).__name__ == "ExternalReferenceForbidden":  # zeep's own refusal of an import
            _NoFetch().load(str(getattr(exc, "url", "") or "an external document"))
        raise _Refused(f"is not a valid WSDL: {str(exc)[:300]}") from None
    versions: list[str] = []
    operations: dict[str, Operation] = {}
    actions: dict[str, list[tuple[str, str]]] = {}  # each binding's (version, soapAction) of an operation
    for service in document.services.values():
        for port in service.ports.values():
            binding = port.binding
            version = SOAP12 if isinstance(binding, Soap12Binding) else SOAP11 if isinstance(binding, Soap11Binding) else None
            if version is None:
                continue  # an HTTP binding: not served
            if version not in versions:
                versions.append(version)
            for name, op in binding._operations.items():
                if name not in operations:
                    operations[name] = _operation(name, op)
                pair = (version, str(op.soapaction or ""))
                if pair not in actions.setdefault(name, []):
                    actions[name].append(pair)
    if not operations:
        raise _Refused("binds no operation to SOAP 1.1 or 1.2")
    # Where the bindings give an operation different actions (a SOAP 1.2 binding's own), each is kept for its version.
    ops = tuple(replace(op, actions=tuple(actions[name])) if len({a for _, a in actions[name]}) > 1 else op
                for name, op in operations.items())
    return Contract(tuple(sorted(versions)), ops, template)


class _NoFetch:
    """zeep's transport for control: a WSDL is read from its text alone, never from the network or disk."""

    def load(self, url: str) -> bytes:
        raise _Refused(f"imports {url[:200]}: external documents are not fetched; inline the schemas in wsdl:types")


def _operation(name: str, op: Any) -> Operation:
    if op.style != "document":
        raise _Refused(f"operation {name} is {op.style} style: only document/literal is supported")
    return Operation(name, str(op.soapaction or ""), _message(name, "input", op.input),
                     _message(name, "output", op.output) if op.output is not None else None)


def _message(op_name: str, kind: str, message: Any) -> Message:
    from zeep.xsd import ComplexType

    body = getattr(message, "body", None)
    if body is None or not isinstance(body.type, ComplexType) or body.qname is None:
        raise _Refused(f"operation {op_name}: its {kind} must be one element of a complex type "
                       "(document/literal wrapped)")
    return Message(body.qname.text, _fields(body.type, f"operation {op_name} {kind}", 1))


def _fields(xsd_type: Any, where: str, depth: int) -> tuple[Field, ...]:
    if depth > MAX_NESTING:
        raise _Refused(f"{where}: nests objects deeper than {MAX_NESTING} levels (recursive types are not supported)")
    out: list[Field] = []
    for _, particle in xsd_type.elements_nested:
        out.extend(_particle(particle, where, depth))
    return tuple(out)


def _particle(particle: Any, where: str, depth: int) -> list[Field]:
    from zeep.xsd.elements.any import Any as XsdAny
    from zeep.xsd.elements.element import Element
    from zeep.xsd.elements.indicators import All, Choice, Group, Sequence

    if isinstance(particle, XsdAny):
        raise _Refused(f"{where}: xsd:any is not supported (Junction checks every argument)")
    if isinstance(particle, Choice):
        raise _Refused(f"{where}: xsd:choice is not supported")
    if isinstance(particle, Element):
        return [_field(particle, where, depth)]
    if isinstance(particle, (Sequence, All, Group)):
        if particle.max_occurs != 1 or particle.min_occurs not in (0, 1):
            raise _Refused(f"{where}: a repeated sequence or group is not supported")
        children = [particle.child] if isinstance(particle, Group) else list(particle)
        fields = [f for child in children for f in _particle(child, where, depth)]
        if particle.min_occurs == 0:  # an optional group makes its members optional
            fields = [Field(f.name, f.ns, f.type, 0, f.max, f.nillable, f.fields) for f in fields]
        return fields
    raise _Refused(f"{where}: unsupported schema particle {type(particle).__name__}")


def _field(element: Any, where: str, depth: int) -> Field:
    from zeep.xsd import ComplexType
    from zeep.xsd.types.builtins import BuiltinType

    qname = element.qname
    name, ns = (qname.localname, qname.namespace or "") if hasattr(qname, "localname") else (str(qname), "")
    high = None if element.max_occurs == "unbounded" else int(element.max_occurs)
    here = f"{where} {name}"
    kind = element.type
    if isinstance(kind, ComplexType):
        return Field(name, ns, "object", int(element.min_occurs), high, bool(element.nillable),
                     _fields(kind, here, depth + 1))
    scalar = None
    for cls in type(kind).__mro__:
        if issubclass(cls, BuiltinType) and getattr(cls, "_default_qname", None) is not None:
            scalar = _XSD_TYPES.get(etree.QName(cls._default_qname).localname, "string")
            break
    if scalar is None:
        raise _Refused(f"{here}: has no simple XML Schema type Junction can check (anyType?)")
    return Field(name, ns, scalar, int(element.min_occurs), high, bool(element.nillable))


# -- code first -----------------------------------------------------------------------------------------
def generate_wsdl(operations: list[dict[str, Any]], namespace: str, api_name: str) -> Contract:
    """A document/literal wrapped WSDL, bound to SOAP 1.1 and 1.2, for code-first ``operations``
    (InvalidInput naming the field at fault, such as ``operations[0].input[1].type``)."""
    errors = _check_operations(operations, namespace)
    if errors:
        raise InvalidInput(f"{errors[0].field}: {errors[0].message}", fields=errors)
    ops = tuple(Operation(
        str(op["name"]), str(op.get("action") or f"{namespace.rstrip('/#')}/{op['name']}"),
        Message(f"{{{namespace}}}{op['name']}", _declared(op.get("input") or [], namespace)),
        Message(f"{{{namespace}}}{op['name']}Response", _declared(op.get("output") or [], namespace)),
    ) for op in operations)
    return Contract((SOAP11, SOAP12), ops, _wsdl_text(ops, namespace, _ncname(api_name)))


def _declared(fields: list[dict[str, Any]], namespace: str) -> tuple[Field, ...]:
    return tuple(Field(str(f["name"]), namespace, "object" if f.get("fields") else str(f["type"]),
                       1 if f.get("required", True) else 0, None if f.get("repeated") else 1, False,
                       _declared(f.get("fields") or [], namespace)) for f in fields)


def _namespace_ok(namespace: str) -> bool:
    """An absolute URI that the WSDL can be written with: lxml refuses some that the pattern lets
    through (a quote, ``<``, ``>``, a bad %-escape, non-ASCII), and braces would break the
    ``{namespace}name`` form every element name is made in."""
    if not _URI.fullmatch(namespace) or len(namespace) > 512 or "{" in namespace or "}" in namespace:
        return False
    try:
        etree.Element(f"{{{namespace}}}probe", nsmap={"tns": namespace})
    except ValueError:
        return False
    return True


def _check_operations(operations: list[dict[str, Any]], namespace: str) -> list[FieldError]:
    errors: list[FieldError] = []
    if not _namespace_ok(namespace):
        errors.append(FieldError("namespace", "must be an absolute URI, such as urn:example:calculator "
                                              "(ASCII, no spaces, quotes, braces, < or >)"))
    names = [str(op.get("name")) for op in operations]
    for i, name in enumerate(names):
        if name in names[:i]:
            errors.append(FieldError(f"operations[{i}].name", f"repeats the operation {name}"))
        elif f"{name}" in {f"{other}Response" for other in names}:
            errors.append(FieldError(f"operations[{i}].name", f"clashes with the response element of operation "
                                                              f"{name[:-len('Response')]}"))
    for i, op in enumerate(operations):
        for kind in ("input", "output"):
            errors += _check_fields(op.get(kind) or [], f"operations[{i}].{kind}", 1)
    return errors


def _check_fields(fields: list[dict[str, Any]], where: str, depth: int) -> list[FieldError]:
    errors: list[FieldError] = []
    seen: set[str] = set()
    for j, f in enumerate(fields):
        at = f"{where}[{j}]"
        if f.get("name") in seen:
            errors.append(FieldError(f"{at}.name", f"repeats the field {f.get('name')}"))
        seen.add(str(f.get("name")))
        kind, children = f.get("type"), f.get("fields")
        if kind == "object" and not children:
            errors.append(FieldError(f"{at}.fields", "an object field needs its fields"))
        elif kind != "object" and children is not None:
            errors.append(FieldError(f"{at}.fields", "only an object field has fields (type object)"))
        if children:
            if depth >= MAX_NESTING:
                errors.append(FieldError(f"{at}.fields", f"objects nest at most {MAX_NESTING} levels"))
            else:
                errors += _check_fields(children, f"{at}.fields", depth + 1)
    return errors


def _ncname(text: str) -> str:
    name = re.sub(r"[^A-Za-z0-9_.-]", "_", text) or "api"
    return name if _NCNAME.fullmatch(name) else f"_{name}"


def _wsdl_text(ops: tuple[Operation, ...], namespace: str, service: str) -> str:
    w, s11, s12, xsd = (f"{{{_NS[k]}}}" for k in ("wsdl", "soap", "soap12", "xsd"))
    root = etree.Element(w + "definitions", nsmap={**_NS, "tns": namespace},
                         attrib={"targetNamespace": namespace, "name": service})
    schema = etree.SubElement(etree.SubElement(root, w + "types"), xsd + "schema",
                              attrib={"targetNamespace": namespace, "elementFormDefault": "qualified"})
    for op in ops:
        for message in (op.input, op.output):
            assert message is not None
            _schema_element(schema, etree.QName(message.element).localname, message.fields, xsd)
    for op in ops:
        for suffix, message in (("Request", op.input), ("Response", op.output)):
            assert message is not None
            node = etree.SubElement(root, w + "message", name=f"{op.name}{suffix}")
            etree.SubElement(node, w + "part", name="parameters", element=f"tns:{etree.QName(message.element).localname}")
    port_type = etree.SubElement(root, w + "portType", name=f"{service}PortType")
    for op in ops:
        node = etree.SubElement(port_type, w + "operation", name=op.name)
        etree.SubElement(node, w + "input", message=f"tns:{op.name}Request")
        etree.SubElement(node, w + "output", message=f"tns:{op.name}Response")
    for soap, label in ((s11, "Soap11"), (s12, "Soap12")):
        binding = etree.SubElement(root, w + "binding", name=f"{service}{label}Binding", type=f"tns:{service}PortType")
        etree.SubElement(binding, soap + "binding", style="document", transport=_HTTP_TRANSPORT)
        for op in ops:
            node = etree.SubElement(binding, w + "operation", name=op.name)
            etree.SubElement(node, soap + "operation", soapAction=op.action, style="document")
            for kind in ("input", "output"):
                etree.SubElement(etree.SubElement(node, w + kind), soap + "body", use="literal")
    svc = etree.SubElement(root, w + "service", name=service)
    for soap, label in ((s11, "Soap11"), (s12, "Soap12")):
        port = etree.SubElement(svc, w + "port", name=f"{service}{label}", binding=f"tns:{service}{label}Binding")
        etree.SubElement(port, soap + "address", location=ADDRESS)
    return etree.tostring(root, xml_declaration=True, encoding="UTF-8", pretty_print=True).decode()


def _schema_element(parent: Any, name: str, fields: tuple[Field, ...], xsd: str) -> None:
    node = etree.SubElement(parent, xsd + "element", name=name)
    sequence = etree.SubElement(etree.SubElement(node, xsd + "complexType"), xsd + "sequence")
    for f in fields:
        _nested(sequence, f, xsd)


def _nested(parent: Any, f: Field, xsd: str) -> None:
    occurs = {"minOccurs": str(f.min), "maxOccurs": "unbounded" if f.max is None else str(f.max)}
    if f.type != "object":
        etree.SubElement(parent, xsd + "element", name=f.name, type=f"xsd:{f.type}", attrib=occurs)
        return
    node = etree.SubElement(parent, xsd + "element", name=f.name, attrib=occurs)
    inner = etree.SubElement(etree.SubElement(node, xsd + "complexType"), xsd + "sequence")
    for sub in f.fields:
        _nested(inner, sub, xsd)

