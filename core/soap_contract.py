"""The contract of an inbound SOAP API: its operations, their arguments, and what each XML Schema type
means as JSON.

Control reads a WSDL (or generates one from code-first ``operations``) once, at save time, and carries
the result in the API's config document as ``soap`` (:meth:`Contract.to_dict`). Ingress then serves
calls from this model alone: no zeep and no WSDL parsing on the request path.

Document shape (all plain JSON)::

    {"versions": ["1.1", "1.2"],                  # the SOAP versions the WSDL binds
     "wsdl": "<definitions …>",                   # served at ?wsdl; ADDRESS stands for the gateway URL
     "operations": [{"name": "Add", "action": "http://tempuri.org/Add",
                     "input":  {"element": "{http://tempuri.org/}Add", "fields": [FIELD, …]},
                     "output": {"element": "{http://tempuri.org/}AddResponse", "fields": [FIELD, …]} or null}]}
    FIELD = {"name": "intA", "ns": "http://tempuri.org/" ("" when unqualified), "type": "int",
             "min": 1, "max": 1 (null: unbounded), "nillable": false, "fields": [FIELD, …] (type object only)}
"""
from __future__ import annotations

import base64
import binascii
import re
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any

from core.safe_xml import XmlRefused, parse_xml

__all__ = [
    "ADDRESS", "Contract", "Field", "Message", "Operation", "SCALAR_TYPES", "SOAP11", "SOAP12", "TYPES",
    "from_text", "safe_xml", "to_text",
]

SOAP11 = "1.1"
SOAP12 = "1.2"
# What control writes where every soap:address / soap12:address location was; ingress puts the
# API's public URL (XML-escaped) in its place when it serves ?wsdl.
ADDRESS = "urn:junction:gateway-address"
SCALAR_TYPES = ("string", "int", "long", "decimal", "double", "boolean", "dateTime", "date", "base64Binary")
TYPES = (*SCALAR_TYPES, "object")

_INT = re.compile(r"[+-]?[0-9]+")
_DECIMAL = re.compile(r"[+-]?([0-9]+(\.[0-9]*)?|\.[0-9]+)")
_DOUBLE = re.compile(r"[+-]?([0-9]+(\.[0-9]*)?|\.[0-9]+)([eE][+-]?[0-9]+)?")
_ZONE = r"(Z|[+-]((0[0-9]|1[0-3]):[0-5][0-9]|14:00))?"
_DATE = re.compile(r"-?[0-9]{4,}-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])" + _ZONE)
_DATETIME = re.compile(r"-?[0-9]{4,}-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])"
                       r"T(([01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9](\.[0-9]+)?|24:00:00(\.0+)?)" + _ZONE)
_RANGES = {"int": (-2**31, 2**31 - 1), "long": (-2**63, 2**63 - 1)}
_XML_WS = " \t\r\n"


@dataclass(frozen=True)
class Field:
    name: str
    ns: str  # "" for an unqualified element
    type: str  # one of TYPES
    min: int = 1
    max: int | None = 1  # None: unbounded
    nillable: bool = False
    fields: tuple[Field, ...] = ()

    @property
    def repeated(self) -> bool:
        return self.max is None or self.max > 1

    @property
    def tag(self) -> str:
        return f"{{{self.ns}}}{self.name}" if self.ns else self.name

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"name": self.name, "ns": self.ns, "type": self.type, "min": self.min, "max": self.max,
                               "nillable": self.nillable}
        if self.fields:
            out["fields"] = [f.to_dict() for f in self.fields]
        return out

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Field:
        return cls(str(d["name"]), str(d.get("ns") or ""), str(d["type"]), int(d.get("min", 1)),
                   None if d.get("max", 1) is None else int(d.get("max", 1)), bool(d.get("nillable", False)),
                   tuple(cls.from_dict(f) for f in d.get("fields") or ()))


@dataclass(frozen=True)
class Message:
    element: str  # Clark notation: {namespace}local
    fields: tuple[Field, ...]

    def to_dict(self) -> dict[str, Any]:
        return {"element": self.element, "fields": [f.to_dict() for f in self.fields]}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Message:
        return cls(str(d["element"]), tuple(Field.from_dict(f) for f in d.get("fields") or ()))


@dataclass(frozen=True)
class Operation:
    name: str
    action: str  # the soapAction ("" when the WSDL gives none)
    input: Message
    output: Message | None  # None: one-way

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "action": self.action, "input": self.input.to_dict(),
                "output": self.output.to_dict() if self.output else None}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Operation:
        return cls(str(d["name"]), str(d.get("action") or ""), Message.from_dict(d["input"]),
                   Message.from_dict(d["output"]) if d.get("output") else None)


@dataclass(frozen=True)
class Contract:
    versions: tuple[str, ...]
    operations: tuple[Operation, ...]
    wsdl: str

    def to_dict(self) -> dict[str, Any]:
        return {"versions": list(self.versions), "operations": [o.to_dict() for o in self.operations], "wsdl": self.wsdl}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Contract:
        return cls(tuple(d.get("versions") or ()), tuple(Operation.from_dict(o) for o in d.get("operations") or ()),
                   str(d.get("wsdl") or ""))

    def by_element(self, tag: str) -> list[Operation]:
        return [o for o in self.operations if o.input.element == tag]


def from_text(kind: str, text: str) -> Any:
    """The JSON value of an element's text (ValueError when it is not a valid ``kind``).

    decimal comes back as a Decimal (written to JSON as the number it is, no precision lost);
    dateTime, date and base64Binary stay strings, checked and trimmed.
    """
    if kind == "string":
        return text
    value = text.strip(_XML_WS)
    if kind in _RANGES:
        if not _INT.fullmatch(value):
            raise ValueError(f"is not an {kind}")
        number = int(value)
        low, high = _RANGES[kind]
        if not low <= number <= high:
            raise ValueError(f"is out of range for {kind}")
        return number
    if kind == "decimal":
        if not _DECIMAL.fullmatch(value):
            raise ValueError("is not a decimal")
        return Decimal(value)
    if kind == "double":
        # INF and NaN are doubles, but no JSON number can carry them.
        if not _DOUBLE.fullmatch(value):
            raise ValueError("is not a finite double")
        return float(value)
    if kind == "boolean":
        if value in ("true", "1"):
            return True
        if value in ("false", "0"):
            return False
        raise ValueError("is not a boolean (true, false, 1 or 0)")
    if kind == "dateTime":
        if not _DATETIME.fullmatch(value):
            raise ValueError("is not a dateTime (such as 2024-05-01T12:30:00Z)")
        return value
    if kind == "date":
        if not _DATE.fullmatch(value):
            raise ValueError("is not a date (such as 2024-05-01)")
        return value
    if kind == "base64Binary":
        compact = "".join(value.split())
        try:
            base64.b64decode(compact, validate=True)
        except (binascii.Error, ValueError):
            raise ValueError("is not base64") from None
        return compact
    raise ValueError(f"has the unsupported type {kind}")


def to_text(kind: str, value: Any) -> str:
    """An element's text for a JSON value (ValueError when the value does not fit ``kind``).

    Lenient where nothing is lost: an upstream's ``"5"`` fills an int, ``5`` a string."""
    if isinstance(value, (dict, list)) or value is None:
        raise ValueError(f"must be a single {kind} value")
    if kind == "string":
        if isinstance(value, bool):
            return "true" if value else "false"
        return value if isinstance(value, str) else _number_text(value)
    if kind == "boolean":
        if isinstance(value, bool):
            return "true" if value else "false"
        if isinstance(value, str) and value in ("true", "false", "1", "0"):
            return value
        raise ValueError("is not a boolean")
    if isinstance(value, bool):
        raise ValueError(f"is not a {kind}")
    if kind in _RANGES:
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        elif isinstance(value, Decimal) and value == value.to_integral_value():
            value = int(value)
        text = str(value) if isinstance(value, (int, str)) else ""
        return str(from_text(kind, text))
    if kind == "decimal":
        text = _number_text(value) if isinstance(value, (int, float, Decimal)) else str(value)
        try:
            number = Decimal(text)
        except InvalidOperation:
            raise ValueError("is not a decimal") from None
        if not number.is_finite():
            raise ValueError("is not a decimal")
        return format(number, "f")
    if kind == "double":
        text = _number_text(value) if isinstance(value, (int, float, Decimal)) else str(value)
        from_text("double", text)
        return text
    if not isinstance(value, str):
        raise ValueError(f"is not a {kind}")
    return str(from_text(kind, value))


def _number_text(value: int | float | Decimal) -> str:
    if isinstance(value, float):
        return repr(value)
    return str(value)



def safe_xml(data: bytes, *, max_depth: int, max_bytes: int = 2**31) -> Any:
    """The root element of an untrusted document (WSDL or envelope), or ValueError saying why not:
    :func:`core.safe_xml.parse_xml`, which refuses a DTD it can see in the bytes, plus the parsed
    document's own word, which also covers a DTD in UTF-16."""
    root = parse_xml(data, max_bytes=max_bytes, max_depth=max_depth)
    docinfo = root.getroottree().docinfo
    if docinfo.doctype or docinfo.internalDTD is not None:
        raise XmlRefused("a document with a DOCTYPE or ENTITY declaration is refused")
    return root
