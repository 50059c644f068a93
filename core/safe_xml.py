"""The one way Junction parses XML it did not write: WSDLs people upload, envelopes callers
send, answers upstreams give.

Nothing from outside the document is read (no DTD, no entities, no network), a document
declaring a DOCTYPE is refused before parsing (the billion laughs and external entities
both need one), and size and depth are bounded.
"""
from __future__ import annotations

import re

from lxml import etree

__all__ = ["MAX_DEPTH", "XmlRefused", "parse_xml", "safe_parser"]

MAX_DEPTH = 100
_DECLARATION = re.compile(rb"<!\s*(DOCTYPE|ENTITY)", re.I)


class XmlRefused(ValueError):
    """The document is not well-formed, too large, too deep, or declares a DTD."""


def safe_parser() -> etree.XMLParser:
    # huge_tree=False keeps libxml2's own limits on text size and nesting as a second fence.
    return etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False, huge_tree=False,
                           remove_comments=True, remove_pis=True)


def parse_xml(data: bytes, *, max_bytes: int, max_depth: int = MAX_DEPTH) -> etree._Element:
    """The root element of ``data``, or :class:`XmlRefused` saying why not."""
    if len(data) > max_bytes:
        raise XmlRefused(f"the document exceeds {max_bytes} bytes")
    if _DECLARATION.search(data):
        raise XmlRefused("a document with a DOCTYPE or ENTITY declaration is refused")
    if not data.strip():
        raise XmlRefused("the document is empty")
    try:
        root = etree.fromstring(data, parser=safe_parser())
    except etree.XMLSyntaxError as exc:
        raise XmlRefused(f"not well-formed XML: {exc}") from None
    if root is None:
        raise XmlRefused("the document has no root element")
    if _depth(root) > max_depth:
        raise XmlRefused(f"the document nests deeper than {max_depth} elements")
    return root


def _depth(root: etree._Element) -> int:
    deepest = 0
    stack = [(root, 1)]
    while stack:
        node, depth = stack.pop()
        deepest = max(deepest, depth)
        stack.extend((child, depth + 1) for child in node if isinstance(child.tag, str))
    return deepest
