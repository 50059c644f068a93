"""JSON <-> XML for connector scripts: ``xml_to_json`` and ``json_to_xml``, builtins of every script.

One convention both ways, the one egress uses for SOAP results (docs/connectors.md): an element
is an object of its children by local name, a repeated child a list, a leaf its text (a string:
no guessing of types), an empty leaf ``None``; attributes are ``"@name"`` keys and the text of an
element that also has children or attributes is ``"#text"``. So ``json_to_xml(xml_to_json(x))``
gives back ``x``'s structure (less namespaces prefixes, comments and the order of different
siblings).

Runs inside the worker only; parsing goes through :func:`safe_xml_fromstring` (no DTD, no
entities, bounded size).
"""
from __future__ import annotations

import re
import xml.etree.ElementTree as _ET
from typing import Any

from ._objects import safe_xml_fromstring

__all__ = ["json_to_xml", "xml_to_json"]

MAX_DEPTH = 100
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9._-]*$")


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def _value(node: _ET.Element, depth: int) -> Any:
    if depth > MAX_DEPTH:
        raise ValueError(f"XML nested deeper than {MAX_DEPTH} elements")
    children = [c for c in node if isinstance(c.tag, str)]
    text = (node.text or "").strip()
    if not children and not node.attrib:
        return node.text if text else None
    grouped: dict[str, list[Any]] = {}
    for child in children:
        grouped.setdefault(_local(child.tag), []).append(_value(child, depth + 1))
    out: dict[str, Any] = {f"@{_local(k)}": v for k, v in node.attrib.items()}
    out.update({name: values[0] if len(values) == 1 else values for name, values in grouped.items()})
    if text:
        out["#text"] = node.text
    return out


def xml_to_json(source: Any) -> dict[str, Any]:
    """``{root name: value}`` of an XML document (str or bytes) or an ElementTree element."""
    root = source if isinstance(source, _ET.Element) else safe_xml_fromstring(source)
    return {_local(root.tag): _value(root, 1)}


def _check_name(name: Any) -> str:
    if not isinstance(name, str) or not _NAME.match(name) or name.lower().startswith("xml"):
        raise ValueError(f"{name!r} is not a usable XML element or attribute name")
    return name


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float, str)):
        return str(value)
    raise ValueError(f"a {type(value).__name__} cannot be XML text")


def _fill(node: _ET.Element, value: Any, depth: int) -> None:
    if depth > MAX_DEPTH:
        raise ValueError(f"JSON nested deeper than {MAX_DEPTH} levels")
    if value is None:
        return
    if not isinstance(value, dict):
        node.text = _text(value)
        return
    for key, item in value.items():
        if key == "#text":
            node.text = _text(item)
        elif isinstance(key, str) and key.startswith("@"):
            node.set(_check_name(key[1:]), _text(item))
        else:
            for one in item if isinstance(item, list) else [item]:
                _fill(_ET.SubElement(node, _check_name(key)), one, depth + 1)


def json_to_xml(value: Any, root: str | None = None, namespace: str | None = None) -> str:
    """An XML document (a str, no declaration) of ``value``. Without ``root``, ``value`` must be an
    object with one key, the root's name (what :func:`xml_to_json` returns). ``namespace`` is the
    default namespace of every element."""
    if root is None:
        if not isinstance(value, dict) or len(value) != 1:
            raise ValueError("json_to_xml needs root=... unless the value is an object with a single key")
        (root, value), = value.items()
    element = _ET.Element(_check_name(root))
    if namespace is not None:
        element.set("xmlns", _text(namespace))
    _fill(element, value, 1)
    return _ET.tostring(element, encoding="unicode")
