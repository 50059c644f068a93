"""REST in, SOAP out, through the real egress pieces (zeep, the REST caller with its SSRF guard, a loopback
SOAP service): XML Schema attributes are arguments like elements, decimals in exponent form are exact,
deep arguments are a 422 with a depth limit, envelopes go where soap:address says (http stays http), and
answers come back in their XML Schema lexical form (base64Binary as base64, duration as ISO 8601).
"""
from __future__ import annotations

import base64
import json
from collections.abc import AsyncIterator
from decimal import Decimal
from typing import Any

import pytest
import pytest_asyncio
from aiohttp import web
from hypothesis import given, settings
from hypothesis import strategies as st
from lxml import etree

from core.errors import JunctionError
from core.ssrf import TargetNotAllowed
from egress.caller import RestCaller
from egress.soap import (
    MAX_ARGUMENT_DEPTH,
    SoapArgumentsInvalid,
    SoapCaller,
    argument_errors,
)
from egress.soap_wsdl import parse_wsdl, select_port
from tests.support import serving

NS = "urn:test:types"
WSDL = """<definitions xmlns="http://schemas.xmlsoap.org/wsdl/" xmlns:soap="http://schemas.xmlsoap.org/wsdl/soap/"
    xmlns:xsd="http://www.w3.org/2001/XMLSchema" xmlns:tns="urn:test:types" targetNamespace="urn:test:types">
  <types>
    <xsd:schema targetNamespace="urn:test:types" elementFormDefault="qualified">
      <xsd:complexType name="Line"><xsd:sequence>
        <xsd:element name="sku" type="xsd:string"/><xsd:element name="qty" type="xsd:int"/>
      </xsd:sequence><xsd:attribute name="lineNo" type="xsd:int"/></xsd:complexType>
      <xsd:complexType name="Node"><xsd:sequence>
        <xsd:element name="name" type="xsd:string"/><xsd:element name="child" type="tns:Node" minOccurs="0"/>
      </xsd:sequence></xsd:complexType>
      <xsd:complexType name="All"><xsd:sequence>
        <xsd:element name="d" type="xsd:decimal" minOccurs="0"/>
        <xsd:element name="f" type="xsd:double" minOccurs="0"/>
        <xsd:element name="dt" type="xsd:dateTime" minOccurs="0"/>
        <xsd:element name="bin" type="xsd:base64Binary" minOccurs="0"/>
        <xsd:element name="hex" type="xsd:hexBinary" minOccurs="0"/>
        <xsd:element name="dur" type="xsd:duration" minOccurs="0"/>
        <xsd:element name="lines" type="tns:Line" minOccurs="0" maxOccurs="unbounded" nillable="true"/>
        <xsd:element name="node" type="tns:Node" minOccurs="0"/>
      </xsd:sequence></xsd:complexType>
      <xsd:element name="Echo" type="tns:All"/>
      <xsd:element name="EchoResponse" type="tns:All"/>
    </xsd:schema>
  </types>
  <message name="EchoIn"><part name="parameters" element="tns:Echo"/></message>
  <message name="EchoOut"><part name="parameters" element="tns:EchoResponse"/></message>
  <portType name="TypesPort"><operation name="Echo"><input message="tns:EchoIn"/><output message="tns:EchoOut"/></operation></portType>
  <binding name="TypesSoap" type="tns:TypesPort">
    <soap:binding style="document" transport="http://schemas.xmlsoap.org/soap/http"/>
    <operation name="Echo"><soap:operation soapAction="urn:test:types#Echo"/>
      <input><soap:body use="literal"/></input><output><soap:body use="literal"/></output></operation>
  </binding>
  <service name="Types"><port name="TypesSoap" binding="tns:TypesSoap"><soap:address location="ADDRESS"/></port></service>
</definitions>
"""
ENV = "http://schemas.xmlsoap.org/soap/envelope/"


def _no_imports(location: str) -> bytes:
    raise AssertionError(f"the test WSDL imports nothing, yet {location} was asked for")


BINDING = select_port(parse_wsdl("http://types.example/types?wsdl", WSDL.replace("ADDRESS", "http://types.example/").encode(),
                                 _no_imports), "http://types.example/types?wsdl").binding
ECHO = BINDING.get("Echo")


@pytest_asyncio.fixture
async def service() -> AsyncIterator[dict[str, Any]]:
    """A loopback SOAP service: records each envelope, answers ``state["answer"]`` (an EchoResponse body)."""
    state: dict[str, Any] = {"posts": [], "answer": "<d>1</d>"}

    async def echo(request: web.Request) -> web.Response:
        state["posts"].append(await request.read())
        return web.Response(content_type="text/xml", text=(
            f'<s:Envelope xmlns:s="{ENV}" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"><s:Body>'
            f'<EchoResponse xmlns="{NS}">{state["answer"]}</EchoResponse></s:Body></s:Envelope>'))

    app = web.Application()
    app.router.add_post("/types", echo)
    async with serving(app) as url:
        state["url"] = f"{url}/types"
        yield state


@pytest_asyncio.fixture
async def soap() -> AsyncIterator[SoapCaller]:
    caller = RestCaller(connect_timeout_s=2, allow_private=True)  # the loopback service is the upstream
    await caller.start()
    try:
        yield SoapCaller(caller.get_bytes, caller.post)
    finally:
        await caller.stop()


async def call(soap: SoapCaller, address: str, args: Any, *, wsdl_url: str = "http://types.example/types?wsdl",
               **options: Any) -> Any:
    body = args if isinstance(args, bytes) else json.dumps(args).encode()
    _, answer = await soap.call(wsdl_url, "Echo", body, [], 10, document=WSDL.replace("ADDRESS", address), **options)
    return json.loads(answer)


def sent(state: dict[str, Any]) -> etree._Element:
    return etree.fromstring(state["posts"][-1]).find(f"{{{ENV}}}Body/{{{NS}}}Echo")


# -- 3: attributes --------------------------------------------------------------------------------------
async def test_an_xsd_attribute_is_an_argument_like_an_element_and_comes_back_as_the_same_key(
    soap: SoapCaller, service: dict[str, Any]
) -> None:
    service["answer"] = '<lines lineNo="7"><sku>A</sku><qty>1</qty></lines>'
    answer = await call(soap, service["url"], {"lines": [{"sku": "A", "qty": 1, "lineNo": 7}]})
    line = sent(service).find(f"{{{NS}}}lines")
    assert line.get("lineNo") == "7" and line.findtext(f"{{{NS}}}sku") == "A"
    assert answer["lines"] == [{"sku": "A", "qty": 1, "lineNo": 7}]  # the answer's keys are the arguments' keys


@pytest.mark.parametrize("value", ["seven", 1.5, 2**40, True, {"x": 1}])
def test_an_attribute_value_is_checked_against_its_type(value: Any) -> None:
    errors = argument_errors(ECHO, {"lines": [{"sku": "A", "qty": 1, "lineNo": value}]})
    assert [(e.field, e.message.split(" (xsd:")[0]) for e in errors] == [
        ("lines[0].lineNo", "must be a whole number from -2147483648 to 2147483647")], errors


# -- 8: decimals in exponent form -----------------------------------------------------------------------
async def test_a_json_number_in_exponent_form_is_an_exact_decimal_and_a_double(soap: SoapCaller, service: dict[str, Any]) -> None:
    await call(soap, service["url"], b'{"d": 1e30, "f": 1e30}')
    echo = sent(service)
    assert echo.findtext(f"{{{NS}}}d") == "1" + "0" * 30
    assert float(echo.findtext(f"{{{NS}}}f")) == 1e30


@settings(max_examples=200, deadline=None)
@given(st.decimals(allow_nan=False, allow_infinity=False, min_value=Decimal("-1e300"), max_value=Decimal("1e300")))
def test_every_json_number_within_bounds_is_a_valid_decimal_argument_sent_exactly(number: Decimal) -> None:
    assert argument_errors(ECHO, {"d": number, "f": number}) == []
    text = ECHO.input.body.type.elements[0][1].type.xmlvalue(number)
    assert Decimal(text) == number and "e" not in text.lower()


@pytest.mark.parametrize("body, field", [(b'{"d": 1e20000000}', "d"), (b'{"f": 1e400}', "f"), (b'{"f": -1e400}', "f")])
async def test_a_number_past_its_types_bounds_is_a_422_not_megabytes_or_infinity(
    soap: SoapCaller, service: dict[str, Any], body: bytes, field: str
) -> None:
    with pytest.raises(SoapArgumentsInvalid) as info:
        await call(soap, service["url"], body)
    assert [f.field for f in info.value.fields] == [field] and info.value.status == 422
    assert service["posts"] == []


# -- 6: deep arguments ----------------------------------------------------------------------------------
def _nested(levels: int) -> bytes:
    """``{"node": …}`` with ``levels`` Nodes, each the child of the one before (written out: json.dumps recurses)."""
    return b'{"node":' + b'{"name":"n","child":' * (levels - 1) + b'{"name":"leaf"}' + b"}" * (levels - 1) + b"}"


@pytest.mark.parametrize("levels", [200, 900, 5000])
async def test_arguments_nested_past_the_limit_are_a_422_naming_it(soap: SoapCaller, service: dict[str, Any], levels: int) -> None:
    with pytest.raises(SoapArgumentsInvalid) as info:
        await call(soap, service["url"], _nested(levels))
    err = info.value
    assert (err.status, err.code) == (422, "invalid_soap_arguments")
    assert f"deeper than {MAX_ARGUMENT_DEPTH} levels" in err.message and "Recursion" not in err.message
    assert service["posts"] == []


async def test_arguments_nested_up_to_the_limit_are_sent(soap: SoapCaller, service: dict[str, Any]) -> None:
    await call(soap, service["url"], _nested(MAX_ARGUMENT_DEPTH - 1))  # the arguments object is a level too
    depth, node = 0, sent(service).find(f"{{{NS}}}node")
    while node is not None:
        depth, node = depth + 1, node.find(f"{{{NS}}}child")
    assert depth == MAX_ARGUMENT_DEPTH - 1


# -- 5 and 9: where the envelopes go --------------------------------------------------------------------
async def test_an_http_soap_address_stays_http_when_the_wsdl_is_an_https_location(
    soap: SoapCaller, service: dict[str, Any]
) -> None:
    assert service["url"].startswith("http://")
    answer = await call(soap, service["url"], {"d": 2}, wsdl_url="https://types.example/types?wsdl")
    assert answer["d"] == "1" and len(service["posts"]) == 1


async def test_the_ssrf_guard_still_checks_the_soap_address(service: dict[str, Any]) -> None:
    caller = RestCaller(connect_timeout_s=2)  # private targets refused
    await caller.start()
    try:
        with pytest.raises(TargetNotAllowed):
            await call(SoapCaller(caller.get_bytes, caller.post), service["url"], {"d": 2},
                       wsdl_url="https://types.example/types?wsdl")
    finally:
        await caller.stop()
    assert service["posts"] == []


@pytest.mark.parametrize("address", ["ftp://types.example/x", "types.example/x", "urn:x"])
async def test_a_soap_address_that_is_no_http_url_is_named_at_call_time(soap: SoapCaller, address: str) -> None:
    with pytest.raises(JunctionError) as info:
        await call(soap, address, {"d": 2})
    assert info.value.code == "invalid_upstream_url"
    assert "soap:address of port TypesSoap" in info.value.message and address in info.value.message


async def test_a_wsdl_without_a_service_is_called_at_the_connectors_address(soap: SoapCaller, service: dict[str, Any]) -> None:
    document = WSDL.split("<service")[0] + "</definitions>"
    _, answer = await soap.call("http://types.example/types?wsdl", "Echo", b'{"d": 2}', [], 10, document=document,
                                address=service["url"])
    assert json.loads(answer)["d"] == "1"


# -- 2 and 7: answers in their lexical form -------------------------------------------------------------
async def test_binary_and_duration_answers_keep_their_xml_schema_text(soap: SoapCaller, service: dict[str, Any]) -> None:
    raw = bytes(range(256))
    service["answer"] = f"<bin>{base64.b64encode(raw).decode()}</bin><hex>0AFF</hex><dur>P1DT2H</dur>"
    answer = await call(soap, service["url"], {"d": 1})
    assert base64.b64decode(answer["bin"]) == raw
    assert (answer["hex"], answer["dur"]) == ("0AFF", "P1DT2H")


@settings(max_examples=50, deadline=None)
@given(st.binary(min_size=1, max_size=64))
def test_any_base64_answer_reads_back_as_the_same_bytes(raw: bytes) -> None:
    from egress.soap_reply import read_reply

    envelope = (f'<s:Envelope xmlns:s="{ENV}"><s:Body><EchoResponse xmlns="{NS}"><bin>{base64.b64encode(raw).decode()}</bin>'
                "</EchoResponse></s:Body></s:Envelope>").encode()
    answer = json.loads(read_reply(BINDING, ECHO, 200, "text/xml", envelope))
    assert base64.b64decode(answer["bin"], validate=True) == raw


async def test_a_nil_item_of_a_list_or_a_nil_object_is_null_and_an_absent_element_is_null_too(
    soap: SoapCaller, service: dict[str, Any]
) -> None:
    service["answer"] = ('<lines xsi:nil="true"/><lines lineNo="2"><sku>A</sku><qty>1</qty></lines>'
                         '<node xsi:nil="true"/>')
    answer = await call(soap, service["url"], {"d": 1})
    assert answer["lines"] == [None, {"sku": "A", "qty": 1, "lineNo": 2}]
    assert answer["node"] is None and answer["d"] is None  # nil and absent alike (docs/rest-to-soap.md)
