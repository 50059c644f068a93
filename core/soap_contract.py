"""The contract of an inbound SOAP API: its operations, their arguments, and what each XML Schema type
means as JSON.

Control reads a WSDL (or generates one from code-first ``operations``) once, at save time, and carries
the result in the API's config document as ``soap`` (:meth:`Contract.to_dict`). Ingress then serves
calls from this model alone: no zeep and no WSDL parsing on the request path.

Document shape (all plain JSON)::

    {"versions": ["1.1", "1.2"],                  # the SOAP versions the WSDL binds
     "wsdl": "<definitions …>",                   # served at ?wsdl; ADDRESS stands for the gateway URL
     "operations": [{"name": "Add", "action": "http://tempuri.org/Add",
                     "actions": [["1.1", "http://tempuri.org/Add"], ["1.2", "urn:add12"]],  # each binding's (optional)
                     "input":  {"element": "{http://tempuri.org/}Add", "fields": [FIELD, …]},
                     "output": {"element": "{http://tempuri.org/}AddResponse", "fields": [FIELD, …]} or null}]}
    FIELD = {"name": "intA", "ns": "http://tempuri.org/" ("" when unqualified), "type": "int",
             "min": 1, "max": 1 (null: unbounded), "nillable": false, "fields": [FIELD, …] (type object only)}
"""
from __future__ import annotations

import base64
import binascii
import math
import re
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from core.safe_xml import XmlRefused, parse_xml

__all__ = [
    "ADDRESS", "MAX_DECIMAL_CHARS", "Contract", "Field", "Message", "Operation", "SCALAR_TYPES", "SOAP11", "SOAP12",
    "TYPES", "from_text", "plain_length", "safe_xml", "to_text",
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
# Decimal text as a JSON string may carry it: plain, or in exponent form (Decimal() alone also takes 1_0 and NaN).
_DECIMAL_INPUT = re.compile(r"[+-]?([0-9]+(\.[0-9]*)?|\.[0-9]+)([eE][+-]?[0-9]+)?")
_DOUBLE = re.compile(r"[+-]?([0-9]+(\.[0-9]*)?|\.[0-9]+)([eE][+-]?[0-9]+)?")
_ZONE = r"(Z|[+-]((0[0-9]|1[0-3]):[0-5][0-9]|14:00))?"
_DATE = re.compile(r"-?[0-9]{4,}-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])" + _ZONE)
_DATETIME = re.compile(r"-?[0-9]{4,}-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])"
                       r"T(([01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9](\.[0-9]+)?|24:00:00(\.0+)?)" + _ZONE)
_RANGES = {"int": (-2**31, 2**31 - 1), "long": (-2**63, 2**63 - 1)}
# The longest plain text of an xsd:decimal Junction writes or reads (digits, sign, point): far past any
# real amount, and short of a 31-byte 1e20000000 becoming 20 MB of zeros.
MAX_DECIMAL_CHARS = 1000
_MAX_INT_DIGITS = 20  # more digits (leading zeros aside) are past any xsd:long
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
    # (SOAP version, soapAction) of each binding of the operation, where a WSDL's bindings differ; empty: ``action``.
    actions: tuple[tuple[str, str], ...] = ()

    def to_dict(self) -> dict[str, Any]:
        out = {"name": self.name, "action": self.action, "input": self.input.to_dict(),
               "output": self.output.to_dict() if self.output else None}
        if self.actions:
            out["actions"] = [list(a) for a in self.actions]
        return out

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Operation:
        return cls(str(d["name"]), str(d.get("action") or ""), Message.from_dict(d["input"]),
                   Message.from_dict(d["output"]) if d.get("output") else None,
                   tuple((str(v), str(a or "")) for v, a in d.get("actions") or ()))

    def accepts(self, version: str, action: str) -> bool:
        """Whether a call of SOAP ``version`` naming ``action`` is one of this operation: the action of one
        of its bindings of that version (any action where that binding gives none)."""
        mine = {a for v, a in self.actions if v == version} if self.actions else {self.action}
        return action in mine or "" in mine


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
        if len(value.lstrip("+-").lstrip("0")) > _MAX_INT_DIGITS:  # before int(): its cost grows with the digits
            raise ValueError(f"is out of range for {kind}")
        number = int(value)
        low, high = _RANGES[kind]
        if not low <= number <= high:
            raise ValueError(f"is out of range for {kind}")
        return number
    if kind == "decimal":
        if not _DECIMAL.fullmatch(value) or len(value) > MAX_DECIMAL_CHARS:
            raise ValueError("is not a decimal" if len(value) <= MAX_DECIMAL_CHARS
                             else f"has more than {MAX_DECIMAL_CHARS} characters")
        return Decimal(value)
    if kind == "double":
        # INF and NaN are doubles, but no JSON number can carry them; nor can 1e400, which is INF as a double.
        if not _DOUBLE.fullmatch(value) or len(value) > MAX_DECIMAL_CHARS or not math.isfinite(float(value)):
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
        low, high = _RANGES[kind]
        if isinstance(value, (float, Decimal)):
            # Range first: int() of a Decimal 1E+200000 would build a 200,000-digit number.
            if not (math.isfinite(value) and low <= value <= high):
                raise ValueError(f"is out of range for {kind}")
            if value != int(value):
                raise ValueError(f"is not an {kind}")
            value = int(value)
        if isinstance(value, int) and not low <= value <= high:  # before str(): a huge int writes out slowly
            raise ValueError(f"is out of range for {kind}")
        text = str(value) if isinstance(value, (int, str)) else ""
        return str(from_text(kind, text))
    if kind == "decimal":
        if isinstance(value, (int, float, Decimal)):
            number = Decimal(value) if isinstance(value, int) else Decimal(_number_text(value))
        elif isinstance(value, str) and _DECIMAL_INPUT.fullmatch(value.strip(_XML_WS)):
            number = Decimal(value.strip(_XML_WS))
        else:
            raise ValueError("is not a decimal")
        if not number.is_finite():
            raise ValueError("is not a decimal")
        if plain_length(number) > MAX_DECIMAL_CHARS:  # before format(): its text would be that long
            raise ValueError(f"has more than {MAX_DECIMAL_CHARS} characters written out")
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
    if isinstance(value, int) and value.bit_length() > 3 * MAX_DECIMAL_CHARS:  # str() of it is slow, and refused
        raise ValueError(f"has more than {MAX_DECIMAL_CHARS} digits")
    return str(value)


def plain_length(number: Decimal) -> int:
    """How many characters ``format(number, "f")`` writes (a bound: sign and point counted), computed
    without writing them."""
    sign, digits, exponent = number.as_tuple()
    assert isinstance(exponent, int)
    n = len(digits)
    body = n + exponent if exponent >= 0 else max(n, -exponent + 1) + 1
    return body + sign



def safe_xml(data: bytes, *, max_depth: int, max_bytes: int = 2**31) -> Any:
    """The root element of an untrusted document (WSDL or envelope), or ValueError saying why not:
    :func:`core.safe_xml.parse_xml`, which refuses a DTD it can see in the bytes, plus the parsed
    document's own word, which also covers a DTD in UTF-16."""
    root = parse_xml(data, max_bytes=max_bytes, max_depth=max_depth)
    docinfo = root.getroottree().docinfo
    if docinfo.doctype or docinfo.internalDTD is not None:
        raise XmlRefused("a document with a DOCTYPE or ENTITY declaration is refused")
    return root
