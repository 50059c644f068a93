"""XML Schema facets, which zeep drops, read from the schema documents a WSDL loaded (egress/soap_facets.py)
and checked by argument_errors: named and anonymous simple types, restrictions of restrictions, where a
declaration is (nested, repeated, extended, by ref or group), every facet's rule and message, and patterns
in the XML Schema dialect run by RE2, so that a pattern built to backtrack cannot hold the event loop."""
from __future__ import annotations

import logging
from decimal import Decimal, localcontext
from pathlib import Path
from typing import Any
from xml.sax.saxutils import quoteattr

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from egress.soap import argument_errors
from egress.soap_facets import MAX_PATTERN_INPUT, Facets, facet_error, schema_facets, translate_pattern
from egress.soap_wsdl import parse_wsdl, select_port
from tests.wsdl_support import register_wsdl

WCF = Path(__file__).resolve().parents[3] / "shared" / "data" / "wsdl" / "wcf_service1" / "Service1.xsd"
SER = "http://schemas.microsoft.com/2003/10/Serialization/"
NS = "urn:test:facets"


def xsd(body: str, tns: str = NS) -> bytes:
    return (f'<xsd:schema xmlns:xsd="http://www.w3.org/2001/XMLSchema" xmlns:tns="{tns}" targetNamespace="{tns}">'
            f"{body}</xsd:schema>").encode()


def named(body: str, name: str) -> Facets | None:
    return schema_facets([("http://t.example/a.xsd", xsd(body))]).types[f"{{{NS}}}{name}"]


def restriction(base: str, facets: str, name: str = "T") -> str:
    return f'<xsd:simpleType name="{name}"><xsd:restriction base="{base}">{facets}</xsd:restriction></xsd:simpleType>'


def check(facets: Facets | None, text: str) -> str | None:
    assert facets is not None
    return facet_error(facets, text)


# -- reading the facets ---------------------------------------------------------------------------------------

def test_a_restriction_of_a_restriction_keeps_the_facets_of_every_step() -> None:
    body = (restriction("xsd:string", '<xsd:maxLength value="10"/>', "Name")
            + restriction("tns:Name", '<xsd:minLength value="2"/><xsd:pattern value="[A-Z].*"/>', "Short")
            + restriction("tns:Short", '<xsd:enumeration value="Al"/><xsd:enumeration value="Bob"/>'
                          '<xsd:enumeration value="Christopher"/>', "Known"))
    known = named(body, "Known")
    assert known is not None and known.builtin == "string"
    assert check(known, "Bob") is None
    assert check(known, "Eve") == "must be one of Al, Bob, Christopher"
    assert check(known, "Christopher") == "must be at most 10 characters"  # the enumeration allows it, Name does not
    short = named(body, "Short")
    assert check(short, "B") == "must be at least 2 characters"
    assert check(short, "bob") == "must match the pattern [A-Z].*"
    assert check(short, "Bobby") is None


def test_lists_unions_and_bases_not_in_the_documents_are_no_check() -> None:
    body = ('<xsd:simpleType name="L"><xsd:list itemType="xsd:int"/></xsd:simpleType>'
            '<xsd:simpleType name="U"><xsd:union memberTypes="xsd:int xsd:date"/></xsd:simpleType>'
            + restriction("tns:L", '<xsd:length value="2"/>', "LL")
            + restriction("xsd:NMTOKENS", '<xsd:maxLength value="1"/>', "Tokens")
            + restriction("other:Unknown", '<xsd:maxLength value="1"/>', "Elsewhere").replace(
                "<xsd:restriction", '<xsd:restriction xmlns:other="urn:elsewhere"'))
    for name in ("L", "U", "LL", "Tokens", "Elsewhere"):
        assert named(body, name) is None, name


def test_facets_are_read_from_the_real_wcf_serialization_schema() -> None:
    facets = schema_facets([("http://localhost:53068/Service1.svc?xsd=xsd1", WCF.read_bytes())])
    guid, duration, char = (facets.types[f"{{{SER}}}{n}"] for n in ("guid", "duration", "char"))
    assert check(guid, "0f8fad5b-d9cb-469f-a165-70867728950e") is None
    assert check(guid, "0f8fad5b-d9cb-469f-a165-70867728950") == (
        "must match the pattern [\\da-fA-F]{8}-[\\da-fA-F]{4}-[\\da-fA-F]{4}-[\\da-fA-F]{4}-[\\da-fA-F]{12}")
    assert check(duration, "-P10DT2H30M") is None
    assert check(duration, "P1Y") is not None and check(duration, "P1Y").startswith("must match the pattern \\-?P(")
    # duration's minInclusive and maxInclusive are not compared (no range check for durations): a huge one passes
    assert check(duration, "P99999999999D") is None and duration.bounds == ()
    assert char is not None and char.empty and char.builtin == "int"


# -- each facet's rule ------------------------------------------------------------------------------------------

@pytest.mark.parametrize("base, facets, text, problem", [
    ("xsd:string", '<xsd:length value="3"/>', "abcd", "must be exactly 3 characters"),
    ("xsd:string", '<xsd:length value="3"/>', "äöü", None),  # characters, not UTF-8 bytes
    ("xsd:string", '<xsd:maxLength value="2"/>', "😀😀", None),
    ("xsd:string", '<xsd:enumeration value="a b"/>', "a  b", "must be one of a b"),  # a string keeps its spaces
    ("xsd:token", '<xsd:enumeration value="a b"/>', " a \t b ", None),  # a token's collapse
    ("xsd:int", '<xsd:enumeration value="1"/><xsd:enumeration value="20"/>', "020", None),  # values, not text
    ("xsd:int", '<xsd:enumeration value="1"/><xsd:enumeration value="20"/>', "2", "must be one of 1, 20"),
    ("xsd:boolean", '<xsd:enumeration value="true"/>', "1", None),
    ("xsd:boolean", '<xsd:enumeration value="true"/>', "false", "must be one of true"),
    ("xsd:int", '<xsd:minInclusive value="0"/>', "-1", "must be at least 0"),
    ("xsd:int", '<xsd:minInclusive value="0"/>', "0", None),
    ("xsd:int", '<xsd:minExclusive value="0"/>', "0", "must be greater than 0"),
    ("xsd:decimal", '<xsd:maxInclusive value="10.5"/>', "10.50", None),
    ("xsd:decimal", '<xsd:maxInclusive value="10.5"/>', "10.51", "must be at most 10.5"),
    ("xsd:decimal", '<xsd:maxExclusive value="10.5"/>', "10.5", "must be less than 10.5"),
    ("xsd:double", '<xsd:maxInclusive value="100"/>', "1E+308", "must be at most 100"),
    ("xsd:double", '<xsd:maxInclusive value="100"/>', "INF", "must be at most 100"),
    ("xsd:double", '<xsd:maxInclusive value="0.1"/>', "0.1000000000000000055", None),  # the same double
    ("xsd:float", '<xsd:enumeration value="0.1"/>', "0.100000001", None),  # the same float
    ("xsd:decimal", '<xsd:totalDigits value="5"/>', "123.45", None),
    ("xsd:decimal", '<xsd:totalDigits value="5"/>', "1234.56", "must have at most 5 digits"),
    ("xsd:decimal", '<xsd:totalDigits value="3"/>', "0.00100", None),  # 1 × 10^-3
    ("xsd:decimal", '<xsd:totalDigits value="3"/>', "0.00010", "must have at most 3 digits"),  # 1 × 10^-4
    ("xsd:decimal", '<xsd:totalDigits value="3"/>', "000120.000", None),
    ("xsd:decimal", '<xsd:fractionDigits value="2"/>', "1.250", None),
    ("xsd:decimal", '<xsd:fractionDigits value="2"/>', "1.255", "must have at most 2 digits after the decimal point"),
    ("xsd:decimal", '<xsd:maxInclusive value="1"/>', "0" * 2000 + "1", "must be a number of at most 1000 characters, "
                                                                      "for its range to be checked"),
    ("xsd:integer", '<xsd:maxInclusive value="99"/>', "1" + "0" * 900, "must be at most 99"),
    ("xsd:hexBinary", '<xsd:length value="2"/>', "0AFF", None),  # octets
    ("xsd:hexBinary", '<xsd:length value="2"/>', "0AFF00", "must be exactly 2 bytes"),
    ("xsd:base64Binary", '<xsd:maxLength value="4"/>', "AP8Agf4=", "must be at most 4 bytes"),  # 00 ff 00 81 fe
    ("xsd:base64Binary", '<xsd:maxLength value="5"/>', "AP8Agf4=", None),
    ("xsd:date", '<xsd:pattern value="\\d{4}-01-\\d{2}"/>', "2024-02-01", "must match the pattern \\d{4}-01-\\d{2}"),
    ("xsd:date", '<xsd:minInclusive value="2024-01-01"/>', "1999-01-01", None),  # date ranges: not compared
    ("xsd:dateTime", '<xsd:enumeration value="2024-01-01T00:00:00Z"/>', "2024-01-01T01:00:00+01:00", None),
    ("xsd:string", '<xsd:pattern value="a"/><xsd:pattern value="b"/>', "c", "must match one of the patterns a | b"),
    ("xsd:string", '<xsd:pattern value="a"/><xsd:pattern value="b"/>', "b", None),
])
def test_each_facet_is_checked_as_xml_schema_defines_it(base: str, facets: str, text: str, problem: str | None) -> None:
    assert check(named(restriction(base, facets), "T"), text) == problem


# -- patterns -------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("pattern, matching, other", [
    ("[a-z-[aeiou]]+", "xyz", "xaz"),  # class subtraction
    ("\\i\\c*", "_x-1.y", "1x"),  # XML name characters
    ("\\p{IsBasicLatin}+", "plain", "plaín"),  # a Unicode block
    ("\\p{IsGreek}+", "αβγ", "abc"),  # XML Schema 1.0's name of the Greek and Coptic block
    ("\\p{Lu}\\P{Lu}*", "Ábc", "aBC"),
    ("\\d+", "١٢٣", "12a"),  # \d is every decimal digit, not only ASCII
    ("\\w+", "naïve", "a-b"),
    ("[^\\s]+", "a\u00a0b", "a b"),  # \s is only space, tab, CR and LF
    ("a.c", "a\u00e9c", "a\nc"),  # . is any character but CR and LF
    ("^a$", "^a$", "a"),  # ^ and $ are plain characters
    ("ab|cd", "cd", "abcd"),  # anchored: the whole value
    ("[+\\-]?\\d{2,3}", "-123", "1234"),
    ("[a-c-[b]]", "c", "b"),
])
def test_xml_schema_patterns_mean_what_xml_schema_says(pattern: str, matching: str, other: str) -> None:
    facets = named(restriction("xsd:string", f"<xsd:pattern value={quoteattr(pattern)}/>"), "T")
    assert check(facets, matching) is None
    assert check(facets, other) == f"must match the pattern {pattern}"


def test_a_backtracking_pattern_answers_for_a_long_value_without_backtracking() -> None:
    facets = named(restriction("xsd:string", '<xsd:pattern value="(a+)+$"/><xsd:maxLength value="9000"/>'), "T")
    assert check(facets, "a" * 5000 + "!") == "must match the pattern (a+)+$"
    assert check(facets, "a" * 5000 + "$") is None
    nested = named(restriction("xsd:string", '<xsd:pattern value="((a|aa)+)+b"/>'), "T")
    assert check(nested, "a" * 20000) == "must match the pattern ((a|aa)+)+b"


def test_a_value_longer_than_the_bound_is_not_matched_against_a_pattern() -> None:
    facets = named(restriction("xsd:string", '<xsd:pattern value="b*"/>'), "T")
    assert check(facets, "a" * MAX_PATTERN_INPUT) == "must match the pattern b*"
    assert check(facets, "a" * (MAX_PATTERN_INPUT + 1)) is None


@pytest.mark.parametrize("pattern", ["(a)\\1", "a*?", "\\bword", "[a-z-b]", "\\p{IsNoSuchBlock}", "a{2,1}", "x{1001}"])
def test_a_pattern_not_translated_faithfully_is_no_check_and_logged_once(caplog: pytest.LogCaptureFixture, pattern: str) -> None:
    body = restriction("xsd:string", f"<xsd:pattern value={quoteattr(pattern)}/><xsd:maxLength value='3'/>", f"P{len(pattern)}")
    with caplog.at_level(logging.INFO, logger="egress.soap_facets"):
        facets = named(body, f"P{len(pattern)}")
        named(body, f"P{len(pattern)}")  # the same WSDL loaded again
    assert check(facets, "zzz") is None  # whatever the pattern meant, the value is not refused for it
    assert check(facets, "zzzz") == "must be at most 3 characters"  # the other facets still apply
    logged = [r for r in caplog.records if "pattern" in r.getMessage() and r.levelno == logging.INFO]
    assert len(logged) == 1 and repr(pattern)[1:-1][:20] in logged[0].getMessage(), logged


def test_translation_writes_only_literals_and_ranges_for_re2() -> None:
    assert translate_pattern("a^") == "\\x{61}\\x{5E}"
    assert translate_pattern("[a-c-[b]]{2}") == "(?:[\\x{61}\\x{63}]){2}"
    with pytest.raises(ValueError):
        translate_pattern("(?i)a")


# -- properties: a value built to fit passes, one just outside fails ------------------------------------------

WORDS = st.text(alphabet="abcXYZ019 _-", min_size=1, max_size=8).filter(lambda s: s.strip(" ") == s)


@settings(max_examples=60, deadline=None)
@given(st.lists(WORDS, min_size=1, max_size=6, unique=True), st.data())
def test_a_value_of_the_enumeration_passes_and_any_other_fails(values: list[str], data: st.DataObject) -> None:
    facets = named(restriction("xsd:string", "".join(f"<xsd:enumeration value={quoteattr(v)}/>" for v in values)), "T")
    assert check(facets, data.draw(st.sampled_from(values))) is None
    other = data.draw(WORDS.filter(lambda s: s not in values))
    assert check(facets, other) == f"must be one of {', '.join(values)}"


@settings(max_examples=60, deadline=None)
@given(st.integers(0, 40), st.integers(0, 40), st.data())
def test_a_value_within_the_lengths_passes_and_one_character_more_or_less_fails(low: int, extra: int, data: st.DataObject) -> None:
    high = low + extra
    facets = named(restriction("xsd:string", f'<xsd:minLength value="{low}"/><xsd:maxLength value="{high}"/>'), "T")
    char = data.draw(st.sampled_from("aé😀 "))
    assert check(facets, char * data.draw(st.integers(low, high))) is None
    assert check(facets, char * (high + 1)) == f"must be at most {high} characters"
    if low:
        assert check(facets, char * (low - 1)) == f"must be at least {low} characters"


@settings(max_examples=80, deadline=None)
@given(st.integers(-10**30, 10**30), st.integers(0, 10**30), st.data())
def test_a_number_within_the_range_passes_and_the_next_one_outside_fails(low: int, span: int, data: st.DataObject) -> None:
    high = low + span
    facets = named(restriction("xsd:integer", f'<xsd:minInclusive value="{low}"/><xsd:maxInclusive value="{high}"/>'), "T")
    assert check(facets, str(data.draw(st.integers(low, high)))) is None
    assert check(facets, str(high + 1)) == f"must be at most {high}"
    assert check(facets, str(low - 1)) == f"must be at least {low}"
    exclusive = named(restriction("xsd:decimal", f'<xsd:minExclusive value="{low}"/>'), "T")
    assert check(exclusive, f"{low}.000") == f"must be greater than {low}"
    with localcontext(prec=100):
        just_above = Decimal(low) + Decimal("1e-20")
    assert check(exclusive, str(just_above)) is None


# -- where a declaration is: argument_errors with a WSDL's facets ----------------------------------------------

WSDL = register_wsdl("urn:test:facets", """\
      <xsd:simpleType name="Code"><xsd:restriction base="xsd:string">
        <xsd:enumeration value="A"/><xsd:enumeration value="B"/><xsd:enumeration value="C"/></xsd:restriction></xsd:simpleType>
      <xsd:simpleType name="Qty"><xsd:restriction base="xsd:int">
        <xsd:minInclusive value="1"/><xsd:maxExclusive value="100"/></xsd:restriction></xsd:simpleType>
      <xsd:simpleType name="Sku"><xsd:restriction base="xsd:token"><xsd:pattern value="[A-Z]{3}-\\d{3}"/></xsd:restriction></xsd:simpleType>
      <xsd:simpleType name="Codes"><xsd:list itemType="tns:Code"/></xsd:simpleType>
      <xsd:element name="Zip"><xsd:simpleType><xsd:restriction base="xsd:string"><xsd:length value="5"/></xsd:restriction></xsd:simpleType></xsd:element>
      <xsd:group name="Contact"><xsd:sequence>
        <xsd:element name="email" minOccurs="0"><xsd:simpleType><xsd:restriction base="xsd:string">
          <xsd:pattern value="[^@]+@[^@]+"/></xsd:restriction></xsd:simpleType></xsd:element>
      </xsd:sequence></xsd:group>
      <xsd:complexType name="Line">
        <xsd:sequence>
          <xsd:element name="sku" type="tns:Sku"/>
          <xsd:element name="qty" type="tns:Qty"/>
          <xsd:element name="note" minOccurs="0"><xsd:simpleType><xsd:restriction base="xsd:string">
            <xsd:maxLength value="5"/></xsd:restriction></xsd:simpleType></xsd:element>
        </xsd:sequence>
        <xsd:attribute name="lineNo"><xsd:simpleType><xsd:restriction base="xsd:int">
          <xsd:minInclusive value="1"/><xsd:maxInclusive value="999"/></xsd:restriction></xsd:simpleType></xsd:attribute>
      </xsd:complexType>
      <xsd:complexType name="Special"><xsd:complexContent><xsd:extension base="tns:Line">
        <xsd:sequence><xsd:element name="flag" type="tns:Code"/></xsd:sequence>
      </xsd:extension></xsd:complexContent></xsd:complexType>
      <xsd:complexType name="Other"><xsd:sequence><xsd:element name="note" type="xsd:string"/></xsd:sequence></xsd:complexType>
      <xsd:element name="Register"><xsd:complexType><xsd:sequence>
        <xsd:element name="code" type="tns:Code"/>
        <xsd:element name="codes" type="tns:Codes" minOccurs="0"/>
        <xsd:element name="id" type="ser:guid" minOccurs="0"/>
        <xsd:element ref="tns:Zip" minOccurs="0"/>
        <xsd:group ref="tns:Contact"/>
        <xsd:element name="lines" type="tns:Line" minOccurs="0" maxOccurs="unbounded"/>
        <xsd:element name="special" type="tns:Special" minOccurs="0"/>
        <xsd:element name="other" type="tns:Other" minOccurs="0"/>
        <xsd:element name="extra" minOccurs="0"><xsd:complexType><xsd:sequence>
          <xsd:element name="note"><xsd:simpleType><xsd:restriction base="xsd:string"><xsd:maxLength value="2"/>
          </xsd:restriction></xsd:simpleType></xsd:element>
        </xsd:sequence></xsd:complexType></xsd:element>
      </xsd:sequence></xsd:complexType></xsd:element>""", "http://facets.example/s")
WSDL_URL = "http://facets.example/s?wsdl"
DOCUMENTS = {"http://facets.example/ser.xsd": WCF.read_bytes()} if WCF.is_file() else {}


def _operation() -> tuple[Any, Any]:
    client = parse_wsdl(WSDL_URL, WSDL.encode(), DOCUMENTS.__getitem__)
    facets = schema_facets([(WSDL_URL, WSDL.encode()), *DOCUMENTS.items()])
    return select_port(client, WSDL_URL).binding.get("Register"), facets


@pytest.fixture(scope="module")
def register() -> tuple[Any, Any]:
    if not WCF.is_file():
        pytest.skip(f"the WCF schema is not at {WCF}")
    return _operation()


GUID = "0f8fad5b-d9cb-469f-a165-70867728950e"
LINE = {"sku": "ABC-123", "qty": 1, "lineNo": 1}


@pytest.mark.parametrize("args, field, message", [
    ({"code": "D"}, "code", "must be one of A, B, C"),
    ({"code": "A", "id": "not-a-guid"}, "id", "must match the pattern [\\da-fA-F]{8}-[\\da-fA-F]{4}-[\\da-fA-F]{4}-"
                                                "[\\da-fA-F]{4}-[\\da-fA-F]{12}"),
    ({"code": "A", "Zip": "1234"}, "Zip", "must be exactly 5 characters"),  # a ref to a global element
    ({"code": "A", "email": "nobody"}, "email", "must match the pattern [^@]+@[^@]+"),  # in a group
    ({"code": "A", "lines": [LINE, {**LINE, "qty": 100}]}, "lines[1].qty", "must be less than 100"),
    ({"code": "A", "lines": [{**LINE, "sku": "abc-123"}]}, "lines[0].sku", "must match the pattern [A-Z]{3}-\\d{3}"),
    ({"code": "A", "lines": [{**LINE, "note": "too long"}]}, "lines[0].note", "must be at most 5 characters"),
    ({"code": "A", "lines": [{**LINE, "lineNo": 0}]}, "lines[0].lineNo", "must be at least 1"),  # an attribute's inline type
    ({"code": "A", "special": {**LINE, "qty": 0, "flag": "A"}}, "special.qty", "must be at least 1"),  # from the base type
    ({"code": "A", "special": {**LINE, "flag": "Z"}}, "special.flag", "must be one of A, B, C"),
    ({"code": "A", "extra": {"note": "abc"}}, "extra.note", "must be at most 2 characters"),  # its own note, not Line's
])
def test_facets_are_checked_where_the_argument_is(register: tuple[Any, Any], args: dict[str, Any], field: str, message: str) -> None:
    operation, facets = register
    assert [(e.field, e.message) for e in argument_errors(operation, args, facets)] == [(field, message)]
    assert argument_errors(operation, args) == []  # without the facets, as zeep alone sees it


def test_valid_values_and_unchecked_types_pass(register: tuple[Any, Any]) -> None:
    operation, facets = register
    args = {"code": "C", "id": GUID.upper(), "Zip": "12345", "email": "a@b", "lines": [LINE, {**LINE, "sku": " XYZ-999 ",
            "qty": 99, "note": "short", "lineNo": 999}], "special": {**LINE, "flag": "B"},
            "other": {"note": "a note longer than five"}, "extra": {"note": "ok"}, "codes": "A B"}
    assert argument_errors(operation, args, facets) == []
