"""XML Schema facets of simple types, read from the documents a WSDL loaded, and checked against a call's
arguments before anything is sent (egress/soap.py's :func:`argument_errors`).

zeep keeps only a restricted simple type's base type (its visitor drops the facets), so a value breaking a
restriction would reach the service. :func:`schema_facets` reads the same bytes zeep parsed (the WSDL and
every document it imported, fetched or uploaded: never a second fetch), once per loaded WSDL, in the
WSDL's parsing thread, and indexes the facets of:

* named simple types, by QName, and restrictions of restrictions (the facets of every step apply);
* anonymous simple types inline in an element or an attribute, by where they are declared: the complex type
  (named, or anonymous inside an element) and the local name, as :func:`argument_errors` walks the arguments.

Facets: enumeration, length, minLength, maxLength, pattern, min/maxInclusive, min/maxExclusive, totalDigits and
fractionDigits. Not checked: lists and unions (nor lengths of the built-in list types), range facets of dates,
times and durations, enumerations of dates, times, durations and QNames, the value of a complex type with
simple content. What cannot be read faithfully is no check, never a refusal.

Patterns come from a WSDL (an organisation admin's input, possibly hostile) and values from anonymous
callers, on the egress event loop: they are translated from the XML Schema dialect (implicitly anchored,
``^``/``$`` literal, ``\\i``/``\\c``, ``\\p{IsBlock}``, class subtraction ``[a-z-[aeiou]]``) into RE2, a
linear-time engine with no backtracking. A pattern that does not translate, or that RE2 refuses, is not
checked (logged once at INFO), and a value longer than ``MAX_PATTERN_INPUT`` characters is not matched.
"""
from __future__ import annotations

import functools
import logging
import struct
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any
from urllib.parse import urljoin

from core.safe_xml import XmlRefused, parse_xml
from core.soap_contract import MAX_DECIMAL_CHARS

__all__ = ["MAX_PATTERN_INPUT", "Facets", "Pattern", "SchemaFacets", "facet_error", "schema_facets", "translate_pattern"]

log = logging.getLogger(__name__)

XSD = "http://www.w3.org/2001/XMLSchema"
MAX_PATTERN_INPUT = 64 * 1024  # characters: a longer value is not matched against a pattern (other facets still apply)
MAX_SCHEMA_DEPTH = 256  # elements nested in one schema document (libxml2's own limit without huge_tree)
SHOWN_VALUES = 20  # enumeration values a message lists
SHOWN_PATTERN = 120  # characters of a pattern a message shows
_LOGGED_MAX = 1000  # patterns remembered as already logged
RE2_MAX_MEM = 2 * 1024 * 1024  # bytes of one compiled pattern (RE2's default is 8 MiB): a WSDL may hold many

Owner = tuple[str, ...]  # ("type", "{ns}Name"), ("element", "{ns}Name"), then local names of anonymous complex types

# The built-in atomic types by how their text is compared (XML Schema part 2, §3 and §4.3.6 whiteSpace).
_STRINGS = {"string": "preserve", "normalizedString": "replace", "token": "collapse", "language": "collapse",
            "Name": "collapse", "NCName": "collapse", "NMTOKEN": "collapse", "ID": "collapse", "IDREF": "collapse",
            "ENTITY": "collapse", "anyURI": "collapse"}
_INTEGERS = frozenset({"integer", "long", "int", "short", "byte", "nonNegativeInteger", "positiveInteger",
                       "nonPositiveInteger", "negativeInteger", "unsignedLong", "unsignedInt", "unsignedShort",
                       "unsignedByte"})
_DECIMALS = _INTEGERS | {"decimal"}
_FLOATS = frozenset({"float", "double"})
_BINARY = frozenset({"hexBinary", "base64Binary"})
_OTHERS = frozenset({"boolean", "dateTime", "date", "time", "duration", "gYear", "gYearMonth", "gMonth", "gMonthDay",
                     "gDay", "QName", "NOTATION"})
_ATOMIC = frozenset(_STRINGS) | _DECIMALS | _FLOATS | _BINARY | _OTHERS
_LOGGED: set[str] = set()


def _tag(local: str) -> str:
    return f"{{{XSD}}}{local}"


ANNOTATION, RESTRICTION, SIMPLE_TYPE, COMPLEX_TYPE = _tag("annotation"), _tag("restriction"), _tag("simpleType"), _tag("complexType")
ELEMENT, ATTRIBUTE, GROUP, ATTRIBUTE_GROUP = _tag("element"), _tag("attribute"), _tag("group"), _tag("attributeGroup")
_PARTICLES = frozenset({_tag("sequence"), _tag("choice"), _tag("all"), _tag("complexContent"), _tag("simpleContent")})
_DERIVATIONS = frozenset({_tag("extension"), RESTRICTION})
_GLOBALS = {SIMPLE_TYPE: "simpleType", COMPLEX_TYPE: "complexType", ELEMENT: "element", ATTRIBUTE: "attribute",
            GROUP: "group", ATTRIBUTE_GROUP: "attributeGroup"}
_BOUNDS = ("minInclusive", "minExclusive", "maxInclusive", "maxExclusive")
_LENGTHS = ("length", "minLength", "maxLength")
_DIGITS = ("totalDigits", "fractionDigits")


# -- what a simple type allows -------------------------------------------------------------------------------

@dataclass(frozen=True)
class Pattern:
    """The pattern facets of one restriction step (a value must match one of them), and their RE2 translation
    (None: not checked)."""

    sources: tuple[str, ...]
    regex: Any = field(default=None, compare=False)

    @property
    def shown(self) -> str:
        text = " | ".join(self.sources)
        return text[:SHOWN_PATTERN] + ("…" if len(text) > SHOWN_PATTERN else "")


@dataclass(frozen=True)
class Facets:
    """The facets of a restricted simple type, every restriction step's (the most derived first), over the
    built-in type the chain starts from."""

    builtin: str
    enumerations: tuple[tuple[tuple[str, ...], frozenset[Any]], ...] = ()  # (the values as written, their value keys)
    patterns: tuple[Pattern, ...] = ()
    lengths: tuple[tuple[str, int], ...] = ()  # (length | minLength | maxLength, n)
    bounds: tuple[tuple[str, str, Any], ...] = ()  # (minInclusive | …, the value as written, Decimal or float)
    digits: tuple[tuple[str, int], ...] = ()  # (totalDigits | fractionDigits, n)

    @property
    def empty(self) -> bool:
        return not (self.enumerations or self.patterns or self.lengths or self.bounds or self.digits)


def facet_error(facets: Facets, text: str) -> str | None:
    """Why ``text`` (the XML text zeep writes for a value already valid for the built-in type) breaks one of
    ``facets``, or None."""
    builtin = facets.builtin
    value = _whitespace(builtin, text)
    for written, keys in facets.enumerations:
        key = _value_key(builtin, value)
        if key is not None and key not in keys:
            return f"must be one of {_listed(written)}"
    size = _size(builtin, value)
    if size is not None:
        unit = "bytes" if builtin in _BINARY else "characters"
        for facet, n in facets.lengths:
            if facet == "length" and size != n:
                return f"must be exactly {n} {unit}"
            if facet == "minLength" and size < n:
                return f"must be at least {n} {unit}"
            if facet == "maxLength" and size > n:
                return f"must be at most {n} {unit}"
    if len(value) <= MAX_PATTERN_INPUT:
        for pattern in facets.patterns:
            if pattern.regex is not None and pattern.regex.fullmatch(value) is None:
                many = len(pattern.sources) > 1
                return f"must match {'one of the patterns' if many else 'the pattern'} {pattern.shown}"
    if facets.bounds or facets.digits:
        return _number_error(facets, value)
    return None


def _number_error(facets: Facets, value: str) -> str | None:
    builtin = facets.builtin
    if builtin in _FLOATS:
        number: Any = _float(builtin, value)
        if number is None or number != number:  # NaN is no number to compare (nor does zeep's float() fail on it)
            return None
    elif builtin in _DECIMALS:
        if len(value) > MAX_DECIMAL_CHARS:
            return f"must be a number of at most {MAX_DECIMAL_CHARS} characters, for its range to be checked"
        try:
            number = Decimal(value)
        except InvalidOperation:
            return None
        if not number.is_finite():
            return None
    else:
        return None
    for facet, written, bound in facets.bounds:
        if facet == "minInclusive" and not number >= bound:
            return f"must be at least {written}"
        if facet == "minExclusive" and not number > bound:
            return f"must be greater than {written}"
        if facet == "maxInclusive" and not number <= bound:
            return f"must be at most {written}"
        if facet == "maxExclusive" and not number < bound:
            return f"must be less than {written}"
    if facets.digits and isinstance(number, Decimal):
        total, fraction = _digit_counts(number)
        for facet, n in facets.digits:
            if facet == "totalDigits" and total > n:
                return f"must have at most {n} digits"
            if facet == "fractionDigits" and fraction > n:
                return f"must have at most {n} digits after the decimal point"
    return None


def _digit_counts(number: Decimal) -> tuple[int, int]:
    """(totalDigits, fractionDigits) a decimal needs: as i × 10^-n with |i| < 10^total and n <= total (XML Schema
    part 2, §4.3.11), trailing zeros of the fraction not counted. Computed from the digits, never written out."""
    _, digits, exponent = number.as_tuple()
    assert isinstance(exponent, int)
    digits = tuple(digits)
    while len(digits) > 1 and digits[-1] == 0 and exponent < 0:
        digits, exponent = digits[:-1], exponent + 1
    significant = len(digits) - next((i for i, d in enumerate(digits) if d), len(digits))
    if significant == 0:
        return 1, 0
    if exponent >= 0:
        return significant + exponent, 0
    return max(significant, -exponent), -exponent


def _whitespace(builtin: str, text: str) -> str:
    rule = _STRINGS.get(builtin, "collapse")
    if rule == "preserve":
        return text
    replaced = text.replace("\t", " ").replace("\n", " ").replace("\r", " ")
    return replaced if rule == "replace" else " ".join(w for w in replaced.split(" ") if w)


def _size(builtin: str, value: str) -> int | None:
    """The length facets' measure: characters of text, octets of binary, None where they do not apply."""
    if builtin in _STRINGS:
        return len(value)
    if builtin == "hexBinary":
        return len(value) // 2
    if builtin == "base64Binary":
        compact = "".join(value.split())
        return len(compact) * 3 // 4 - len(compact) + len(compact.rstrip("="))
    return None


def _float(builtin: str, text: str) -> float | None:
    try:
        number = float({"INF": "inf", "-INF": "-inf", "+INF": "+inf"}.get(text, text))
    except (ValueError, OverflowError):
        return None
    if builtin == "float" and number == number and abs(number) != float("inf"):
        try:
            number = struct.unpack("f", struct.pack("f", number))[0]
        except OverflowError:
            number = float("inf") if number > 0 else float("-inf")
    return number


def _value_key(builtin: str, value: str) -> Any:
    """What ``value`` is in its type's value space, for comparing with an enumeration (None: not comparable)."""
    if builtin in _STRINGS:
        return value
    if builtin in _DECIMALS:
        if len(value) > MAX_DECIMAL_CHARS:
            return "(too long)"
        try:
            number = Decimal(value)
        except InvalidOperation:
            return None
        return number if number.is_finite() else None
    if builtin in _FLOATS:
        number = _float(builtin, value)
        return "NaN" if number is not None and number != number else number
    if builtin == "boolean":
        return {"true": True, "1": True, "false": False, "0": False}.get(value)
    if builtin == "hexBinary":
        try:
            return bytes.fromhex(value)
        except ValueError:
            return None
    if builtin == "base64Binary":
        import base64
        import binascii
        try:
            return base64.b64decode("".join(value.split()), validate=True)
        except (binascii.Error, ValueError):
            return None
    return None


def _listed(values: tuple[str, ...]) -> str:
    shown = [v if v else '""' for v in values[:SHOWN_VALUES]]
    return ", ".join(shown) + (", …" if len(values) > SHOWN_VALUES else "")


# -- reading them from the schemas ---------------------------------------------------------------------------

@dataclass
class SchemaFacets:
    """The facets of a loaded WSDL's simple types, where :func:`argument_errors` meets them."""

    types: dict[str, Facets | None] = field(default_factory=dict)  # named simple types by {ns}name
    elements: dict[tuple[Owner, str], tuple[Facets | None, Owner | None]] = field(default_factory=dict)
    attributes: dict[tuple[Owner, str], Facets | None] = field(default_factory=dict)
    anonymous: frozenset[str] = frozenset()  # the names zeep gives inline simple types (their element's or attribute's)

    def top(self, body: Any, rpc: bool) -> Owner | None:
        """Where the input ``body`` (zeep's element) declares its children; None for rpc's generated wrapper."""
        kind = getattr(body, "type", None)
        if getattr(kind, "is_global", False) and getattr(kind, "qname", None) is not None:
            return ("type", kind.qname.text)
        if rpc or getattr(body, "qname", None) is None:
            return None
        return ("element", body.qname.text)

    def element(self, owner: Owner | None, element: Any) -> Facets | None:
        decl = self.elements.get((owner, element.name)) if owner is not None else None
        return decl[0] if decl is not None else self._named(element.type)

    def child(self, owner: Owner | None, element: Any) -> Owner | None:
        """Where a complex-typed ``element`` declares its own children."""
        decl = self.elements.get((owner, element.name)) if owner is not None else None
        if decl is not None and decl[1] is not None:
            return decl[1]
        kind = element.type
        if getattr(kind, "is_global", False) and getattr(kind, "qname", None) is not None:
            return ("type", kind.qname.text)
        return None

    def attribute(self, owner: Owner | None, attribute: Any) -> Facets | None:
        key = (owner, attribute.name)
        if owner is not None and key in self.attributes:
            return self.attributes[key]
        return self._named(attribute.type)

    def _named(self, kind: Any) -> Facets | None:
        """A simple type by its name, where the declaration was not found: unless zeep gives that name to an
        inline type too (it names one after its element), which would be a guess."""
        qname = getattr(kind, "qname", None)
        name = getattr(qname, "text", None)
        if name is None or name in self.anonymous:
            return None
        return self.types.get(name)


def schema_facets(documents: Iterable[tuple[str, bytes]]) -> SchemaFacets:
    """The facets of the simple types of ``documents`` ((location, bytes): the WSDL and what it imported, as
    zeep loaded them). Reading them never fails a WSDL's load: an unreadable part is no check."""
    try:
        return _Reader(documents).read()
    except Exception as exc:  # noqa: BLE001 - a courtesy check: zeep accepted the documents, and that decides
        log.info("the facets of a WSDL's simple types are not checked: %s: %s", type(exc).__name__, exc)
        return SchemaFacets()


@dataclass(frozen=True)
class _Scope:
    tns: str
    chameleon: bool  # a schema with no targetNamespace included into one that has it


class _Reader:
    def __init__(self, documents: Iterable[tuple[str, bytes]]) -> None:
        self.roots: dict[str, Any] = {}
        for location, data in documents:
            if location in self.roots:
                continue
            try:
                self.roots[location] = parse_xml(data, max_bytes=len(data) + 1, max_depth=MAX_SCHEMA_DEPTH)
            except XmlRefused:
                continue
        self.globals: dict[tuple[str, str], tuple[Any, _Scope]] = {}
        self.named: dict[str, Facets | None] = {}
        self.out = SchemaFacets()
        self.anonymous: set[str] = set()
        self.filled: set[Owner] = set()

    def read(self) -> SchemaFacets:
        self._collect()
        for (kind, name), (node, scope) in list(self.globals.items()):
            if kind == "simpleType":
                self.out.types[name] = self.simple_named(name, ())
            elif kind == "complexType":
                self.complex(node, scope, ("type", name), frozenset())
            elif kind == "element":
                self.element_type(node, scope, ("element", name), frozenset())
        self.out.anonymous = frozenset(self.anonymous)
        return self.out

    def _collect(self) -> None:
        queue: list[tuple[Any, str, _Scope]] = []
        for location, root in self.roots.items():
            for schema in root.iter(_tag("schema")):
                queue.append((schema, location, _Scope(schema.get("targetNamespace") or "", False)))
        done: set[tuple[int, str]] = set()
        while queue:
            schema, location, scope = queue.pop(0)
            if (id(schema), scope.tns) in done:
                continue
            done.add((id(schema), scope.tns))
            for child in schema:
                kind = _GLOBALS.get(child.tag)
                if kind is not None and child.get("name"):
                    self.globals.setdefault((kind, _clark(scope.tns, child.get("name"))), (child, scope))
                elif child.tag in (_tag("include"), _tag("redefine")) and child.get("schemaLocation") and scope.tns:
                    # a chameleon include: a schema with no namespace of its own takes the includer's
                    target = urljoin(location, child.get("schemaLocation").strip())
                    for included in self.roots[target].iter(_tag("schema")) if target in self.roots else ():
                        if not included.get("targetNamespace"):
                            queue.append((included, target, _Scope(scope.tns, True)))

    def qname(self, node: Any, text: str | None, scope: _Scope) -> str | None:
        if not text:
            return None
        prefix, _, local = text.strip().rpartition(":")
        namespace = node.nsmap.get(prefix or None)
        if prefix and namespace is None:
            return None
        if not namespace and scope.chameleon:
            namespace = scope.tns
        return _clark(namespace or "", local)

    # simple types

    def simple_named(self, name: str, seen: tuple[str, ...]) -> Facets | None:
        if name.startswith(f"{{{XSD}}}"):
            builtin = name.rpartition("}")[2]
            return Facets(builtin) if builtin in _ATOMIC else None  # anySimpleType, and the list types: no check
        if name in self.named:
            return self.named[name]
        found = self.globals.get(("simpleType", name))
        if found is None or name in seen:
            return None  # not in these documents, or a loop
        facets = self.simple(found[0], found[1], (*seen, name), name)
        self.named[name] = facets
        return facets

    def simple(self, node: Any, scope: _Scope, seen: tuple[str, ...], where: str) -> Facets | None:
        children = [c for c in node if isinstance(c.tag, str) and c.tag != ANNOTATION]
        if not children or children[0].tag != RESTRICTION:
            return None  # a list or a union: skipped rather than guessed
        restriction = children[0]
        if restriction.get("base"):
            base_name = self.qname(restriction, restriction.get("base"), scope)
            base = self.simple_named(base_name, seen) if base_name else None
        else:
            inline = [c for c in restriction if c.tag == SIMPLE_TYPE]
            base = self.simple(inline[0], scope, seen, where) if inline else None
        if base is None:
            return None
        return _restricted(base, restriction, where)

    # where elements and attributes are declared

    def element_type(self, node: Any, scope: _Scope, owner: Owner, seen: frozenset[Any]) -> tuple[Facets | None, Owner | None]:
        """The facets of an element's simple type, or where its complex type declares its children."""
        type_name = self.qname(node, node.get("type"), scope)
        if type_name:
            if ("complexType", type_name) in self.globals:
                return None, ("type", type_name)
            return self.simple_named(type_name, ()), None
        for child in node:
            if child.tag == SIMPLE_TYPE:
                self.anonymous.add(_clark(scope.tns, node.get("name") or ""))
                return self.simple(child, scope, (), _clark(scope.tns, node.get("name") or "")), None
            if child.tag == COMPLEX_TYPE:
                self.complex(child, scope, owner, seen)
                return None, owner
        return None, None

    def complex(self, node: Any, scope: _Scope, owner: Owner, seen: frozenset[Any]) -> None:
        if owner in self.filled:
            return
        self.filled.add(owner)
        self.content(node, scope, owner, seen)

    def content(self, node: Any, scope: _Scope, owner: Owner, seen: frozenset[Any]) -> None:
        for child in node:
            tag = child.tag
            if tag in _PARTICLES:
                self.content(child, scope, owner, seen)
            elif tag in _DERIVATIONS:  # of complex or simple content: its own declarations, then the base's
                self.content(child, scope, owner, seen)
                base = self.qname(child, child.get("base"), scope)
                found = self.globals.get(("complexType", base or ""))
                if found is not None and ("complexType", base) not in seen:
                    self.content(found[0], found[1], owner, seen | {("complexType", base)})
            elif tag in (GROUP, ATTRIBUTE_GROUP):
                kind = _GLOBALS[tag]
                ref = self.qname(child, child.get("ref"), scope)
                found = self.globals.get((kind, ref or ""))
                if found is not None and (kind, ref) not in seen:
                    self.content(found[0], found[1], owner, seen | {(kind, ref)})
            elif tag == ELEMENT:
                self.element(child, scope, owner, seen)
            elif tag == ATTRIBUTE:
                self.attribute(child, scope, owner)

    def element(self, node: Any, scope: _Scope, owner: Owner, seen: frozenset[Any]) -> None:
        ref = self.qname(node, node.get("ref"), scope)
        if ref:
            found = self.globals.get(("element", ref))
            name = ref.rpartition("}")[2]
            decl = self.element_type(found[0], found[1], ("element", ref), seen) if found else (None, None)
        else:
            name = node.get("name") or ""
            decl = self.element_type(node, scope, (*owner, name), seen)
        if name:
            self.out.elements.setdefault((owner, name), decl)

    def attribute(self, node: Any, scope: _Scope, owner: Owner) -> None:
        ref = self.qname(node, node.get("ref"), scope)
        if ref:
            found = self.globals.get(("attribute", ref))
            name = ref.rpartition("}")[2]
            node, scope = found if found is not None else (None, scope)
        else:
            name = node.get("name") or ""
        facets = None
        if node is not None:
            type_name = self.qname(node, node.get("type"), scope)
            inline = [c for c in node if c.tag == SIMPLE_TYPE]
            if type_name:
                facets = self.simple_named(type_name, ())
            elif inline:
                self.anonymous.add(_clark(scope.tns, node.get("name") or ""))
                facets = self.simple(inline[0], scope, (), _clark(scope.tns, node.get("name") or ""))
        if name:
            self.out.attributes.setdefault((owner, name), facets)


def _clark(namespace: str, local: str) -> str:
    return f"{{{namespace}}}{local}" if namespace else local


def _restricted(base: Facets, restriction: Any, where: str) -> Facets:
    """``base`` narrowed by the facets of one ``xsd:restriction``."""
    builtin = base.builtin
    values: dict[str, list[str]] = {}
    for child in restriction:
        if isinstance(child.tag, str) and child.tag.startswith(f"{{{XSD}}}") and child.get("value") is not None:
            values.setdefault(child.tag.rpartition("}")[2], []).append(child.get("value"))
    enumerations = base.enumerations
    if "enumeration" in values:
        keys = [_value_key(builtin, _whitespace(builtin, v)) for v in values["enumeration"]]
        if any(k is None for k in keys):  # a type whose values are not compared here, or a value not read
            _skipped(where, "enumeration", f"values of xsd:{builtin} are not compared")
        else:
            enumerations = ((tuple(values["enumeration"]), frozenset(keys)), *enumerations)
    patterns = base.patterns
    if "pattern" in values:
        patterns = (Pattern(tuple(values["pattern"]), _compiled(values["pattern"], where)), *patterns)
    lengths = tuple((f, n) for f in _LENGTHS for n in map(_count, values.get(f, ())) if n is not None) + base.lengths
    digits = tuple((f, n) for f in _DIGITS for n in map(_count, values.get(f, ())) if n is not None) + base.digits
    bounds = base.bounds
    if builtin in _DECIMALS or builtin in _FLOATS:
        read = []
        for facet in _BOUNDS:
            for written in values.get(facet, ()):
                bound = _float(builtin, written.strip()) if builtin in _FLOATS else _value_key(builtin, written.strip())
                if bound is None or bound == "(too long)" or bound != bound:
                    _skipped(where, facet, f"{written!r} is not read as xsd:{builtin}")
                else:
                    read.append((facet, written.strip(), bound))
        bounds = (*read, *bounds)
    return Facets(builtin, enumerations, patterns, lengths, bounds, digits)


def _count(text: str) -> int | None:
    text = text.strip()
    return int(text) if text.isascii() and text.isdigit() and len(text) <= 18 else None


def _skipped(where: str, facet: str, why: str) -> None:
    key = f"{where} {facet} {why}"
    if key in _LOGGED:
        return
    if len(_LOGGED) < _LOGGED_MAX:
        _LOGGED.add(key)
    log.info("the %s facet of XML Schema type %s is not checked: %s", facet, where, why)


def _compiled(sources: list[str], where: str) -> Any:
    """The RE2 of a step's patterns (any of them matching the whole value), or None: not checked."""
    import re2

    try:
        translated = [translate_pattern(s) for s in sources]
    except ValueError as exc:
        _skipped(where, "pattern", f"{_shown(' | '.join(sources))} does not translate to RE2 ({exc})")
        return None
    options = re2.Options()
    options.log_errors = False
    options.max_mem = RE2_MAX_MEM  # past it, RE2 answers without its DFA cache: slower, still linear
    try:
        return re2.compile("|".join(f"(?:{t})" for t in translated), options)
    except re2.error as exc:
        _skipped(where, "pattern", f"{_shown(' | '.join(sources))}: RE2 refuses its translation ({exc})")
        return None


def _shown(text: str) -> str:
    return repr(text[:SHOWN_PATTERN] + ("…" if len(text) > SHOWN_PATTERN else ""))


# -- XML Schema regular expressions as RE2 -------------------------------------------------------------------
# XML Schema part 2, appendix F: every pattern is anchored at both ends, ^ and $ are ordinary characters,
# . is any character but \n and \r, \d is \p{Nd}, \s only [ \t\n\r], \w is everything but \p{P}, \p{Z} and
# \p{C}; \i and \c are XML's name characters (here XML 1.0 fifth edition's); \p{IsBlock} names a Unicode block;
# [a-z-[aeiou]] subtracts a class. Character classes are computed as code point ranges and written out, so RE2
# sees only literals, ranges, groups, alternation and counted repetition: nothing of its own dialect.

Ranges = list[tuple[int, int]]
_MAX_CODE = 0x10FFFF
_META = frozenset(".\\?*+{}()|[]")
_SINGLE = {"n": "\n", "r": "\r", "t": "\t", "\\": "\\", "|": "|", ".": ".", "?": "?", "*": "*", "+": "+", "(": "(",
           ")": ")", "{": "{", "}": "}", "-": "-", "[": "[", "]": "]", "^": "^", "$": "$"}
_CATEGORIES = ("L", "Lu", "Ll", "Lt", "Lm", "Lo", "M", "Mn", "Mc", "Me", "N", "Nd", "Nl", "No", "P", "Pc", "Pd", "Ps",
               "Pe", "Pi", "Pf", "Po", "Z", "Zs", "Zl", "Zp", "S", "Sm", "Sc", "Sk", "So", "C", "Cc", "Cf", "Co", "Cn", "Cs")
_NAME_START: Ranges = [(0x3A, 0x3A), (0x41, 0x5A), (0x5F, 0x5F), (0x61, 0x7A), (0xC0, 0xD6), (0xD8, 0xF6), (0xF8, 0x2FF),
                       (0x370, 0x37D), (0x37F, 0x1FFF), (0x200C, 0x200D), (0x2070, 0x218F), (0x2C00, 0x2FEF),
                       (0x3001, 0xD7FF), (0xF900, 0xFDCF), (0xFDF0, 0xFFFD), (0x10000, 0xEFFFF)]
_NAME_MORE: Ranges = [(0x2D, 0x2E), (0x30, 0x39), (0xB7, 0xB7), (0x300, 0x36F), (0x203F, 0x2040)]
# Unicode blocks (Blocks.txt, Unicode 14) as \p{Is…} names them: the block's name without spaces.
_BLOCK_TEXT = """
0000-007F:BasicLatin 0080-00FF:Latin-1Supplement 0100-017F:LatinExtended-A 0180-024F:LatinExtended-B
0250-02AF:IPAExtensions 02B0-02FF:SpacingModifierLetters 0300-036F:CombiningDiacriticalMarks
0370-03FF:GreekandCoptic 0400-04FF:Cyrillic 0500-052F:CyrillicSupplement 0530-058F:Armenian 0590-05FF:Hebrew
0600-06FF:Arabic 0700-074F:Syriac 0750-077F:ArabicSupplement 0780-07BF:Thaana 07C0-07FF:NKo 0800-083F:Samaritan
0840-085F:Mandaic 0860-086F:SyriacSupplement 0870-089F:ArabicExtended-B 08A0-08FF:ArabicExtended-A
0900-097F:Devanagari 0980-09FF:Bengali 0A00-0A7F:Gurmukhi 0A80-0AFF:Gujarati 0B00-0B7F:Oriya 0B80-0BFF:Tamil
0C00-0C7F:Telugu 0C80-0CFF:Kannada 0D00-0D7F:Malayalam 0D80-0DFF:Sinhala 0E00-0E7F:Thai 0E80-0EFF:Lao
0F00-0FFF:Tibetan 1000-109F:Myanmar 10A0-10FF:Georgian 1100-11FF:HangulJamo 1200-137F:Ethiopic
1380-139F:EthiopicSupplement 13A0-13FF:Cherokee 1400-167F:UnifiedCanadianAboriginalSyllabics 1680-169F:Ogham
16A0-16FF:Runic 1700-171F:Tagalog 1720-173F:Hanunoo 1740-175F:Buhid 1760-177F:Tagbanwa 1780-17FF:Khmer
1800-18AF:Mongolian 18B0-18FF:UnifiedCanadianAboriginalSyllabicsExtended 1900-194F:Limbu 1950-197F:TaiLe
1980-19DF:NewTaiLue 19E0-19FF:KhmerSymbols 1A00-1A1F:Buginese 1A20-1AAF:TaiTham
1AB0-1AFF:CombiningDiacriticalMarksExtended 1B00-1B7F:Balinese 1B80-1BBF:Sundanese 1BC0-1BFF:Batak 1C00-1C4F:Lepcha
1C50-1C7F:OlChiki 1C80-1C8F:CyrillicExtended-C 1C90-1CBF:GeorgianExtended 1CC0-1CCF:SundaneseSupplement
1CD0-1CFF:VedicExtensions 1D00-1D7F:PhoneticExtensions 1D80-1DBF:PhoneticExtensionsSupplement
1DC0-1DFF:CombiningDiacriticalMarksSupplement 1E00-1EFF:LatinExtendedAdditional 1F00-1FFF:GreekExtended
2000-206F:GeneralPunctuation 2070-209F:SuperscriptsandSubscripts 20A0-20CF:CurrencySymbols
20D0-20FF:CombiningDiacriticalMarksforSymbols 2100-214F:LetterlikeSymbols 2150-218F:NumberForms 2190-21FF:Arrows
2200-22FF:MathematicalOperators 2300-23FF:MiscellaneousTechnical 2400-243F:ControlPictures
2440-245F:OpticalCharacterRecognition 2460-24FF:EnclosedAlphanumerics 2500-257F:BoxDrawing 2580-259F:BlockElements
25A0-25FF:GeometricShapes 2600-26FF:MiscellaneousSymbols 2700-27BF:Dingbats
27C0-27EF:MiscellaneousMathematicalSymbols-A 27F0-27FF:SupplementalArrows-A 2800-28FF:BraillePatterns
2900-297F:SupplementalArrows-B 2980-29FF:MiscellaneousMathematicalSymbols-B
2A00-2AFF:SupplementalMathematicalOperators 2B00-2BFF:MiscellaneousSymbolsandArrows 2C00-2C5F:Glagolitic
2C60-2C7F:LatinExtended-C 2C80-2CFF:Coptic 2D00-2D2F:GeorgianSupplement 2D30-2D7F:Tifinagh
2D80-2DDF:EthiopicExtended 2DE0-2DFF:CyrillicExtended-A 2E00-2E7F:SupplementalPunctuation
2E80-2EFF:CJKRadicalsSupplement 2F00-2FDF:KangxiRadicals 2FF0-2FFF:IdeographicDescriptionCharacters
3000-303F:CJKSymbolsandPunctuation 3040-309F:Hiragana 30A0-30FF:Katakana 3100-312F:Bopomofo
3130-318F:HangulCompatibilityJamo 3190-319F:Kanbun 31A0-31BF:BopomofoExtended 31C0-31EF:CJKStrokes
31F0-31FF:KatakanaPhoneticExtensions 3200-32FF:EnclosedCJKLettersandMonths 3300-33FF:CJKCompatibility
3400-4DBF:CJKUnifiedIdeographsExtensionA 4DC0-4DFF:YijingHexagramSymbols 4E00-9FFF:CJKUnifiedIdeographs
A000-A48F:YiSyllables A490-A4CF:YiRadicals A4D0-A4FF:Lisu A500-A63F:Vai A640-A69F:CyrillicExtended-B A6A0-A6FF:Bamum
A700-A71F:ModifierToneLetters A720-A7FF:LatinExtended-D A800-A82F:SylotiNagri A830-A83F:CommonIndicNumberForms
A840-A87F:Phags-pa A880-A8DF:Saurashtra A8E0-A8FF:DevanagariExtended A900-A92F:KayahLi A930-A95F:Rejang
A960-A97F:HangulJamoExtended-A A980-A9DF:Javanese A9E0-A9FF:MyanmarExtended-B AA00-AA5F:Cham
AA60-AA7F:MyanmarExtended-A AA80-AADF:TaiViet AAE0-AAFF:MeeteiMayekExtensions AB00-AB2F:EthiopicExtended-A
AB30-AB6F:LatinExtended-E AB70-ABBF:CherokeeSupplement ABC0-ABFF:MeeteiMayek AC00-D7AF:HangulSyllables
D7B0-D7FF:HangulJamoExtended-B D800-DB7F:HighSurrogates DB80-DBFF:HighPrivateUseSurrogates DC00-DFFF:LowSurrogates
E000-F8FF:PrivateUseArea F900-FAFF:CJKCompatibilityIdeographs FB00-FB4F:AlphabeticPresentationForms
FB50-FDFF:ArabicPresentationForms-A FE00-FE0F:VariationSelectors FE10-FE1F:VerticalForms
FE20-FE2F:CombiningHalfMarks FE30-FE4F:CJKCompatibilityForms FE50-FE6F:SmallFormVariants
FE70-FEFF:ArabicPresentationForms-B FF00-FFEF:HalfwidthandFullwidthForms FFF0-FFFF:Specials
10000-1007F:LinearBSyllabary 10080-100FF:LinearBIdeograms 10100-1013F:AegeanNumbers 10140-1018F:AncientGreekNumbers
10190-101CF:AncientSymbols 101D0-101FF:PhaistosDisc 10280-1029F:Lycian 102A0-102DF:Carian
102E0-102FF:CopticEpactNumbers 10300-1032F:OldItalic 10330-1034F:Gothic 10350-1037F:OldPermic 10380-1039F:Ugaritic
103A0-103DF:OldPersian 10400-1044F:Deseret 10450-1047F:Shavian 10480-104AF:Osmanya 104B0-104FF:Osage
10500-1052F:Elbasan 10530-1056F:CaucasianAlbanian 10570-105BF:Vithkuqi 10600-1077F:LinearA
10780-107BF:LatinExtended-F 10800-1083F:CypriotSyllabary 10840-1085F:ImperialAramaic 10860-1087F:Palmyrene
10880-108AF:Nabataean 108E0-108FF:Hatran 10900-1091F:Phoenician 10920-1093F:Lydian 10980-1099F:MeroiticHieroglyphs
109A0-109FF:MeroiticCursive 10A00-10A5F:Kharoshthi 10A60-10A7F:OldSouthArabian 10A80-10A9F:OldNorthArabian
10AC0-10AFF:Manichaean 10B00-10B3F:Avestan 10B40-10B5F:InscriptionalParthian 10B60-10B7F:InscriptionalPahlavi
10B80-10BAF:PsalterPahlavi 10C00-10C4F:OldTurkic 10C80-10CFF:OldHungarian 10D00-10D3F:HanifiRohingya
10E60-10E7F:RumiNumeralSymbols 10E80-10EBF:Yezidi 10F00-10F2F:OldSogdian 10F30-10F6F:Sogdian 10F70-10FAF:OldUyghur
10FB0-10FDF:Chorasmian 10FE0-10FFF:Elymaic 11000-1107F:Brahmi 11080-110CF:Kaithi 110D0-110FF:SoraSompeng
11100-1114F:Chakma 11150-1117F:Mahajani 11180-111DF:Sharada 111E0-111FF:SinhalaArchaicNumbers 11200-1124F:Khojki
11280-112AF:Multani 112B0-112FF:Khudawadi 11300-1137F:Grantha 11400-1147F:Newa 11480-114DF:Tirhuta
11580-115FF:Siddham 11600-1165F:Modi 11660-1167F:MongolianSupplement 11680-116CF:Takri 11700-1174F:Ahom
11800-1184F:Dogra 118A0-118FF:WarangCiti 11900-1195F:DivesAkuru 119A0-119FF:Nandinagari 11A00-11A4F:ZanabazarSquare
11A50-11AAF:Soyombo 11AB0-11ABF:UnifiedCanadianAboriginalSyllabicsExtended-A 11AC0-11AFF:PauCinHau
11C00-11C6F:Bhaiksuki 11C70-11CBF:Marchen 11D00-11D5F:MasaramGondi 11D60-11DAF:GunjalaGondi 11EE0-11EFF:Makasar
11FB0-11FBF:LisuSupplement 11FC0-11FFF:TamilSupplement 12000-123FF:Cuneiform
12400-1247F:CuneiformNumbersandPunctuation 12480-1254F:EarlyDynasticCuneiform 12F90-12FFF:Cypro-Minoan
13000-1342F:EgyptianHieroglyphs 13430-1343F:EgyptianHieroglyphFormatControls 14400-1467F:AnatolianHieroglyphs
16800-16A3F:BamumSupplement 16A40-16A6F:Mro 16A70-16ACF:Tangsa 16AD0-16AFF:BassaVah 16B00-16B8F:PahawhHmong
16E40-16E9F:Medefaidrin 16F00-16F9F:Miao 16FE0-16FFF:IdeographicSymbolsandPunctuation 17000-187FF:Tangut
18800-18AFF:TangutComponents 18B00-18CFF:KhitanSmallScript 18D00-18D7F:TangutSupplement 1AFF0-1AFFF:KanaExtended-B
1B000-1B0FF:KanaSupplement 1B100-1B12F:KanaExtended-A 1B130-1B16F:SmallKanaExtension 1B170-1B2FF:Nushu
1BC00-1BC9F:Duployan 1BCA0-1BCAF:ShorthandFormatControls 1CF00-1CFCF:ZnamennyMusicalNotation
1D000-1D0FF:ByzantineMusicalSymbols 1D100-1D1FF:MusicalSymbols 1D200-1D24F:AncientGreekMusicalNotation
1D2E0-1D2FF:MayanNumerals 1D300-1D35F:TaiXuanJingSymbols 1D360-1D37F:CountingRodNumerals
1D400-1D7FF:MathematicalAlphanumericSymbols 1D800-1DAAF:SuttonSignWriting 1DF00-1DFFF:LatinExtended-G
1E000-1E02F:GlagoliticSupplement 1E100-1E14F:NyiakengPuachueHmong 1E290-1E2BF:Toto 1E2C0-1E2FF:Wancho
1E7E0-1E7FF:EthiopicExtended-B 1E800-1E8DF:MendeKikakui 1E900-1E95F:Adlam 1EC70-1ECBF:IndicSiyaqNumbers
1ED00-1ED4F:OttomanSiyaqNumbers 1EE00-1EEFF:ArabicMathematicalAlphabeticSymbols 1F000-1F02F:MahjongTiles
1F030-1F09F:DominoTiles 1F0A0-1F0FF:PlayingCards 1F100-1F1FF:EnclosedAlphanumericSupplement
1F200-1F2FF:EnclosedIdeographicSupplement 1F300-1F5FF:MiscellaneousSymbolsandPictographs 1F600-1F64F:Emoticons
1F650-1F67F:OrnamentalDingbats 1F680-1F6FF:TransportandMapSymbols 1F700-1F77F:AlchemicalSymbols
1F780-1F7FF:GeometricShapesExtended 1F800-1F8FF:SupplementalArrows-C 1F900-1F9FF:SupplementalSymbolsandPictographs
1FA00-1FA6F:ChessSymbols 1FA70-1FAFF:SymbolsandPictographsExtended-A 1FB00-1FBFF:SymbolsforLegacyComputing
20000-2A6DF:CJKUnifiedIdeographsExtensionB 2A700-2B73F:CJKUnifiedIdeographsExtensionC
2B740-2B81F:CJKUnifiedIdeographsExtensionD 2B820-2CEAF:CJKUnifiedIdeographsExtensionE
2CEB0-2EBEF:CJKUnifiedIdeographsExtensionF 2F800-2FA1F:CJKCompatibilityIdeographsSupplement
30000-3134F:CJKUnifiedIdeographsExtensionG E0000-E007F:Tags E0100-E01EF:VariationSelectorsSupplement
F0000-FFFFF:SupplementaryPrivateUseArea-A 100000-10FFFF:SupplementaryPrivateUseArea-B
"""
# Names XML Schema 1.0 gave blocks that Unicode has renamed or split since.
_BLOCK_ALIASES: dict[str, Ranges] = {"greek": [(0x370, 0x3FF)], "combiningmarksforsymbols": [(0x20D0, 0x20FF)],
                                     "privateuse": [(0xE000, 0xF8FF), (0xF0000, 0x10FFFF)]}


def translate_pattern(pattern: str) -> str:
    """The RE2 syntax of the XML Schema regular expression ``pattern`` (to be matched with ``fullmatch``), or
    ValueError saying what is not translated faithfully."""
    return _Translator(pattern).translate()


class _Translator:
    def __init__(self, source: str) -> None:
        self.s = source
        self.i = 0

    def peek(self, ahead: int = 0) -> str | None:
        j = self.i + ahead
        return self.s[j] if j < len(self.s) else None

    def take(self) -> str:
        c = self.peek()
        if c is None:
            raise ValueError("the pattern ends too soon")
        self.i += 1
        return c

    def translate(self) -> str:
        out = self.regexp()
        if self.i != len(self.s):
            raise ValueError(f"unexpected {self.s[self.i]!r} at {self.i}")
        return out

    def regexp(self) -> str:
        branches = [self.branch()]
        while self.peek() == "|":
            self.i += 1
            branches.append(self.branch())
        return "|".join(branches)

    def branch(self) -> str:
        pieces = []
        while self.peek() is not None and self.peek() not in "|)":
            pieces.append(self.piece())
        return "".join(pieces)

    def piece(self) -> str:
        atom = self.atom()
        c = self.peek()
        if c is not None and c in "?*+":
            self.i += 1
            return f"(?:{atom}){c}"
        if c == "{":
            return f"(?:{atom}){self.quantity()}"
        return atom

    def quantity(self) -> str:
        end = self.s.find("}", self.i)
        if end < 0:
            raise ValueError("an unclosed {")
        low, comma, high = self.s[self.i + 1:end].partition(",")
        if not (low.isascii() and low.isdigit()) or (high and not (high.isascii() and high.isdigit())):
            raise ValueError(f"the quantity {self.s[self.i:end + 1]!r}")
        if high and int(high) < int(low):
            raise ValueError(f"the quantity {self.s[self.i:end + 1]!r}")
        self.i = end + 1
        return "{" + str(int(low)) + (comma and ",") + (str(int(high)) if high else "") + "}"

    def atom(self) -> str:
        c = self.peek()
        if c == "(":
            self.i += 1
            inner = self.regexp()
            if self.peek() != ")":
                raise ValueError("an unclosed (")
            self.i += 1
            return f"(?:{inner})"
        if c == "[":
            return _written(self.class_expression())
        if c == "\\":
            escaped = self.escape()
            return _written(escaped if isinstance(escaped, list) else [(escaped, escaped)])
        if c == ".":
            self.i += 1
            return _written(_complement([(0x0A, 0x0A), (0x0D, 0x0D)]))
        if c is None or c in _META:
            raise ValueError(f"{c!r} where a character or a group is expected")
        self.i += 1
        return _written([(ord(c), ord(c))])

    def escape(self) -> int | Ranges:
        """After a backslash: a character (its code point) or a class (its ranges)."""
        self.i += 1
        c = self.take()
        if c in _SINGLE:
            return ord(_SINGLE[c])
        if c in "sS":
            found = [(0x09, 0x0A), (0x0D, 0x0D), (0x20, 0x20)]
        elif c in "iI":
            found = _NAME_START
        elif c in "cC":
            found = _union(_NAME_START + _NAME_MORE)
        elif c in "dD":
            found = _category("Nd")
        elif c in "wW":
            found = _complement(_union(_category("P") + _category("Z") + _category("C")))
        elif c in "pP":
            if self.take() != "{":
                raise ValueError(f"\\{c} without {{")
            end = self.s.find("}", self.i)
            if end < 0:
                raise ValueError(f"an unclosed \\{c}{{")
            name = self.s[self.i:end]
            self.i = end + 1
            found = _named_class(name)
        else:
            raise ValueError(f"the escape \\{c}")
        return _complement(found) if c.isupper() else found

    def class_expression(self) -> Ranges:
        self.i += 1  # [
        negated = self.peek() == "^"
        if negated:
            self.i += 1
        items: Ranges = []
        subtracted: Ranges | None = None
        first = True
        while True:
            c = self.peek()
            if c is None:
                raise ValueError("an unclosed [")
            if c == "]":
                if first:
                    raise ValueError("an empty class")
                self.i += 1
                break
            if c == "-" and self.peek(1) == "[" and not first:
                self.i += 1
                subtracted = self.class_expression()
                if self.peek() != "]":
                    raise ValueError("a class subtraction that is not last in its class")
                self.i += 1
                break
            start = self.class_char(first)
            first = False
            if isinstance(start, int) and self.peek() == "-" and self.peek(1) not in ("]", "[", None):
                self.i += 1
                end = self.class_char(False)
                if not isinstance(end, int) or end < start:
                    raise ValueError("a character range that is no range")
                items.append((start, end))
            elif isinstance(start, int):
                items.append((start, start))
            else:
                items.extend(start)
        found = _union(items)
        if negated:
            found = _complement(found)
        if subtracted is not None:
            found = _intersect(found, _complement(subtracted))
        return found

    def class_char(self, first: bool) -> int | Ranges:
        c = self.peek()
        if c == "\\":
            return self.escape()
        if c == "[":
            raise ValueError("an unescaped [ in a class")
        if c == "-" and not first and self.peek(1) != "]":
            raise ValueError("a - inside a class that is no range")
        self.i += 1
        return ord(c) if c is not None else 0


def _written(ranges: Ranges) -> str:
    if not ranges:
        return "[^\\x{0}-\\x{10FFFF}]"  # matches nothing, as an empty XML Schema class
    if len(ranges) == 1 and ranges[0][0] == ranges[0][1]:
        return f"\\x{{{ranges[0][0]:X}}}"
    return "[" + "".join(f"\\x{{{lo:X}}}" if lo == hi else f"\\x{{{lo:X}}}-\\x{{{hi:X}}}" for lo, hi in ranges) + "]"


def _union(ranges: Ranges) -> Ranges:
    merged: Ranges = []
    for lo, hi in sorted(ranges):
        if merged and lo <= merged[-1][1] + 1:
            merged[-1] = (merged[-1][0], max(merged[-1][1], hi))
        else:
            merged.append((lo, hi))
    return merged


def _complement(ranges: Ranges) -> Ranges:
    out: Ranges = []
    nxt = 0
    for lo, hi in _union(ranges):
        if lo > nxt:
            out.append((nxt, lo - 1))
        nxt = hi + 1
    if nxt <= _MAX_CODE:
        out.append((nxt, _MAX_CODE))
    return out


def _intersect(a: Ranges, b: Ranges) -> Ranges:
    out: Ranges = []
    i = j = 0
    a, b = _union(a), _union(b)
    while i < len(a) and j < len(b):
        lo, hi = max(a[i][0], b[j][0]), min(a[i][1], b[j][1])
        if lo <= hi:
            out.append((lo, hi))
        if a[i][1] < b[j][1]:
            i += 1
        else:
            j += 1
    return out


def _named_class(name: str) -> Ranges:
    if name.startswith("Is"):
        found = _blocks().get(_loose(name[2:]))
        if found is None:
            raise ValueError(f"the block \\p{{{name}}}")
        return found
    if name not in _CATEGORIES:
        raise ValueError(f"the category \\p{{{name}}}")
    return _category(name)


def _loose(name: str) -> str:
    return name.replace(" ", "").replace("_", "").replace("-", "").lower()


@functools.cache
def _blocks() -> dict[str, Ranges]:
    found: dict[str, Ranges] = {}
    for item in _BLOCK_TEXT.split():
        span, _, name = item.partition(":")
        lo, _, hi = span.partition("-")
        found[_loose(name)] = [(int(lo, 16), int(hi, 16))]
    found.update(_BLOCK_ALIASES)
    return found


def _category(name: str) -> Ranges:
    return _categories()[name]


@functools.cache
def _categories() -> dict[str, Ranges]:
    """Each Unicode general category (and each one-letter group) as code point ranges: one pass over the code
    points (a fifth of a second), the first time a pattern needs one."""
    table: dict[str, Ranges] = {}
    category = unicodedata.category
    current, start = category("\x00"), 0
    for code in range(1, _MAX_CODE + 2):
        here = category(chr(code)) if code <= _MAX_CODE else ""
        if here != current:
            table.setdefault(current, []).append((start, code - 1))
            current, start = here, code
    for group in "LMNPZSC":
        table[group] = _union([r for name, ranges in table.items() if len(name) == 2 and name[0] == group for r in ranges])
    for name in _CATEGORIES:
        table.setdefault(name, [])
    return table
