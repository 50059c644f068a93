"""REST in, SOAP out: the JSON arguments are checked against the WSDL before any envelope is sent.
A value that is no valid value of its element's XML Schema type, an argument the operation does not
have, or a required one left out is the caller's 422 ``invalid_soap_arguments`` with ``fields`` naming
each argument at fault, in a message with no zeep internals; the service is not called, so its
circuit breaker does not count the caller's mistakes. Against the real-world WSDLs served on loopback
(tests/soap_servers.py)."""
from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
import pytest_asyncio
from aiohttp import web

from core.settings import Settings
from tests.soap_servers import WSDL_DIR, SoapServers, serving_soap
from tests.support import IngressInstance, Stage, serving, wait_until

if not WSDL_DIR.is_dir():
    pytest.skip(f"the real-world WSDLs are not at {WSDL_DIR}", allow_module_level=True)

INT_RANGE = "must be a whole number from -2147483648 to 2147483647 (xsd:int)"
# A document/literal service with nested and repeated types and the simple types callers get wrong,
# uploaded with the connector; its endpoint is the loopback shop below.
SHOP_WSDL = """<definitions xmlns="http://schemas.xmlsoap.org/wsdl/" xmlns:soap="http://schemas.xmlsoap.org/wsdl/soap/"
             xmlns:xsd="http://www.w3.org/2001/XMLSchema" xmlns:tns="urn:example:shop" targetNamespace="urn:example:shop">
  <types>
    <xsd:schema targetNamespace="urn:example:shop" elementFormDefault="qualified">
      <xsd:simpleType name="Percent">
        <xsd:restriction base="xsd:int"><xsd:minInclusive value="0"/><xsd:maxInclusive value="100"/></xsd:restriction>
      </xsd:simpleType>
      <xsd:complexType name="Line">
        <xsd:sequence>
          <xsd:element name="sku" type="xsd:string"/>
          <xsd:element name="n" type="xsd:short"/>
        </xsd:sequence>
      </xsd:complexType>
      <xsd:complexType name="Order">
        <xsd:sequence>
          <xsd:element name="id" type="xsd:positiveInteger"/>
          <xsd:element name="paid" type="xsd:boolean"/>
          <xsd:element name="total" type="xsd:decimal"/>
          <xsd:element name="weight" type="xsd:double" minOccurs="0"/>
          <xsd:element name="day" type="xsd:date" minOccurs="0"/>
          <xsd:element name="when" type="xsd:dateTime" minOccurs="0"/>
          <xsd:element name="qty" type="xsd:unsignedByte" minOccurs="0"/>
          <xsd:element name="discount" type="tns:Percent" minOccurs="0"/>
          <xsd:element name="tags" type="xsd:string" minOccurs="0" maxOccurs="unbounded"/>
          <xsd:element name="lines" type="tns:Line" minOccurs="0" maxOccurs="unbounded"/>
        </xsd:sequence>
      </xsd:complexType>
      <xsd:element name="Book">
        <xsd:complexType>
          <xsd:sequence>
            <xsd:element name="order" type="tns:Order"/>
            <xsd:element name="note" type="xsd:string" minOccurs="0"/>
          </xsd:sequence>
        </xsd:complexType>
      </xsd:element>
      <xsd:element name="BookResponse">
        <xsd:complexType><xsd:sequence><xsd:element name="BookResult" type="xsd:string"/></xsd:sequence></xsd:complexType>
      </xsd:element>
    </xsd:schema>
  </types>
  <message name="BookIn"><part name="parameters" element="tns:Book"/></message>
  <message name="BookOut"><part name="parameters" element="tns:BookResponse"/></message>
  <portType name="ShopPort"><operation name="Book"><input message="tns:BookIn"/><output message="tns:BookOut"/></operation></portType>
  <binding name="ShopSoap" type="tns:ShopPort">
    <soap:binding transport="http://schemas.xmlsoap.org/soap/http" style="document"/>
    <operation name="Book"><soap:operation soapAction="urn:example:shop/Book"/>
      <input><soap:body use="literal"/></input><output><soap:body use="literal"/></output></operation>
  </binding>
  <service name="Shop"><port name="ShopSoap" binding="tns:ShopSoap"><soap:address location="http://127.0.0.1:1/shop"/></port></service>
</definitions>
"""
ORDER = {"id": 1, "paid": True, "total": "21.20", "weight": 1.5, "day": "2024-05-31", "when": "2024-05-31T12:00:00Z",
         "qty": 255, "discount": 10, "tags": ["a", "b"], "lines": [{"sku": "x", "n": 3}]}


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def soap_servers() -> AsyncIterator[SoapServers]:
    async with serving_soap() as servers:  # a port of this module's own: its breaker is no other test's
        yield servers


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def shop() -> AsyncIterator[dict[str, Any]]:
    """The shop's SOAP endpoint: every envelope it is sent, and a BookResponse to each."""
    state: dict[str, Any] = {"posts": []}

    async def book(request: web.Request) -> web.Response:
        state["posts"].append(await request.read())
        return web.Response(content_type="text/xml", text=(
            '<s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/"><s:Body>'
            '<BookResponse xmlns="urn:example:shop"><BookResult>booked</BookResult></BookResponse></s:Body></s:Envelope>'))

    app = web.Application()
    app.router.add_post("/shop", book)
    async with serving(app) as url:
        state["url"] = f"{url}/shop"
        yield state


async def soap_api(stage: Stage, ingress: IngressInstance, wsdl_url: str, operation: str, **target: Any) -> dict[str, Any]:
    staged = await stage.api("", path="/soap", methods=["POST"],
                             target={"protocol": "soap", "url": wsdl_url, "operation": operation, **target})
    await wait_until(lambda: staged["api"]["id"] in ingress.snapshot.apis)
    return staged


async def call(ingress: IngressInstance, staged: dict[str, Any], payload: Any) -> tuple[int, dict[str, Any]]:
    async with aiohttp.ClientSession() as s:
        async with s.post(f"{ingress.url}/{staged['org']}/soap", json=payload, timeout=aiohttp.ClientTimeout(total=30)) as r:
            return r.status, await r.json()


def fields(body: dict[str, Any]) -> dict[str, str]:
    return {f["field"]: f["message"] for f in body.get("fields", [])}


@pytest.mark.parametrize("payload, field, message", [
    ({"intA": "abc", "intB": 1}, "intA", INT_RANGE),
    ({"intA": True, "intB": 1}, "intA", INT_RANGE + ", not true"),
    ({"intA": 1.5, "intB": 1}, "intA", INT_RANGE),
    ({"intA": 99999999999, "intB": 1}, "intA", INT_RANGE),  # over xsd:int, under xsd:long
    ({"intA": 1, "intB": -2147483649}, "intB", INT_RANGE),
    ({"intA": {"x": 1}, "intB": 1}, "intA", INT_RANGE + ", not an object"),
    ({"intA": [1, 2], "intB": 1}, "intA", "takes one value, not a list"),
    ({"intA": 1, "intB": 2, "extra": 3}, "extra", "is not an argument of Divide (intA, intB)"),
    ({"intA": 1}, "intB", "is required"),
    ({"intA": 1, "intB": None}, "intB", "is required"),
])
async def test_asmx_arguments_that_do_not_fit_the_wsdl_are_a_422_naming_the_field_and_nothing_is_sent(
    stage: Stage, ingress: IngressInstance, soap_servers: SoapServers, payload: dict[str, Any], field: str, message: str
) -> None:
    staged = await soap_api(stage, ingress, soap_servers.calculator_wsdl, "Divide")
    before = len(soap_servers.posts("/calculator.asmx"))
    status, body = await call(ingress, staged, payload)
    assert (status, body["code"]) == (422, "invalid_soap_arguments"), body
    assert fields(body) == {field: message}, body
    assert body["message"] == f"the arguments do not fit operation Divide (intA, intB): {field} {message}"
    assert "{http" not in body["message"] and "Signature" not in body["message"]  # no zeep internals
    assert len(soap_servers.posts("/calculator.asmx")) == before  # the service never saw it


async def test_every_argument_at_fault_is_named_at_once(stage: Stage, ingress: IngressInstance, soap_servers: SoapServers) -> None:
    staged = await soap_api(stage, ingress, soap_servers.calculator_wsdl, "Add")
    status, body = await call(ingress, staged, {"intA": "x", "nope": 1})
    assert status == 422, body
    assert fields(body) == {"intA": INT_RANGE, "nope": "is not an argument of Add (intA, intB)", "intB": "is required"}
    assert body["message"].endswith("(and 2 more)")


@pytest.mark.parametrize("payload", [{"intA": "42", "intB": " 2 "}, {"intA": -2147483648, "intB": 2147483647}])
async def test_valid_values_in_any_json_form_still_call_the_service(
    stage: Stage, ingress: IngressInstance, soap_servers: SoapServers, payload: dict[str, Any]
) -> None:
    staged = await soap_api(stage, ingress, soap_servers.calculator_wsdl, "Add")
    status, body = await call(ingress, staged, payload)
    assert status == 200, body
    assert body == {"AddResult": int(payload["intA"]) + int(payload["intB"])}


async def test_metro_soap12_arguments_are_checked_the_same_way(stage: Stage, ingress: IngressInstance, soap_servers: SoapServers) -> None:
    staged = await soap_api(stage, ingress, soap_servers.metro_wsdl, "addNumbers")
    before = len(soap_servers.posts("/AddNumbers"))
    status, body = await call(ingress, staged, {"arg0": "x", "arg1": 2})
    assert (status, fields(body)) == (422, {"arg0": INT_RANGE}), body
    assert len(soap_servers.posts("/AddNumbers")) == before
    assert await call(ingress, staged, {"arg0": 1, "arg1": 2}) == (200, {"return": 3})


async def test_rpc_literal_string_parts_take_text_and_numbers_but_not_objects(
    stage: Stage, ingress: IngressInstance, soap_servers: SoapServers
) -> None:
    staged = await soap_api(stage, ingress, soap_servers.cxf_wsdl, "greetMe")
    assert await call(ingress, staged, {"in": 7}) == (200, {"out": "Hello 7"})
    status, body = await call(ingress, staged, {"in": {"name": "x"}})
    assert (status, fields(body)) == (422, {"in": "must be text (xsd:string), not an object"}), body


async def test_names_and_text_no_reply_or_envelope_could_carry_are_named_not_a_500(
    stage: Stage, ingress: IngressInstance, soap_servers: SoapServers
) -> None:
    staged = await soap_api(stage, ingress, soap_servers.cxf_wsdl, "greetMe")
    status, body = await call(ingress, staged, {"in": "a", "\udce9": 1})  # a lone surrogate, escaped in the JSON
    assert (status, fields(body)) == (422, {"\\udce9": "is not an argument of greetMe (in)"}), body
    status, body = await call(ingress, staged, {"in": "a\x00b"})
    assert (status, fields(body)) == (422, {"in": "has a character XML cannot carry (a control character or a lone surrogate)"})


async def test_bad_arguments_do_not_open_the_services_circuit_breaker(
    settings: Settings, stage: Stage, ingress: IngressInstance, soap_servers: SoapServers
) -> None:
    staged = await soap_api(stage, ingress, soap_servers.calculator_wsdl, "Multiply")
    for _ in range(settings.breaker_fail_max + 1):  # more than the failures that would open it
        status, body = await call(ingress, staged, {"intA": "abc", "intB": 1})
        assert status == 422, body
    assert await call(ingress, staged, {"intA": 6, "intB": 7}) == (200, {"MultiplyResult": 42})


@pytest.mark.parametrize("change, field, message", [
    ({"id": 0}, "order.id", "must be a whole number of at least 1 (xsd:positiveInteger)"),
    ({"paid": "yes"}, "order.paid", "must be true or false (xsd:boolean)"),
    ({"total": "12,50"}, "order.total", "must be a number (xsd:decimal)"),
    ({"total": True}, "order.total", "must be a number (xsd:decimal), not true"),
    ({"weight": "heavy"}, "order.weight", "must be a number (xsd:double)"),
    ({"day": "2024-13-40"}, "order.day", "must be a date such as 2024-05-31 (xsd:date)"),
    ({"when": 1717156800}, "order.when", "must be a date and time such as 2024-05-31T12:00:00Z (xsd:dateTime)"),
    ({"qty": 256}, "order.qty", "must be a whole number from 0 to 255 (xsd:unsignedByte)"),
    ({"discount": "ten"}, "order.discount", INT_RANGE),  # a simple type restricting xsd:int
    ({"tags": ["a", {"b": 1}]}, "order.tags[1]", "must be text (xsd:string), not an object"),
    ({"lines": [{"sku": "x", "n": 40000}]}, "order.lines[0].n", "must be a whole number from -32768 to 32767 (xsd:short)"),
    ({"lines": [{"sku": "x", "n": 1, "colour": "red"}]}, "order.lines[0].colour", "is not a field of order.lines[0]"),
    ({"lines": [{"n": 1}]}, "order.lines[0].sku", "is required"),
    ({"lines": "x"}, "order.lines", "must be an object with sku, n"),
])
async def test_nested_values_of_each_simple_type_are_checked_where_they_are(
    stage: Stage, ingress: IngressInstance, shop: dict[str, Any], change: dict[str, Any], field: str, message: str
) -> None:
    staged = await soap_api(stage, ingress, "http://shop.example/shop?wsdl", "Book", wsdl=SHOP_WSDL, address=shop["url"])
    before = len(shop["posts"])
    status, body = await call(ingress, staged, {"order": {**ORDER, **change}})
    assert (status, fields(body)) == (422, {field: message}), body
    assert len(shop["posts"]) == before


async def test_valid_values_of_each_simple_type_go_to_the_service_as_xml_schema_text(
    stage: Stage, ingress: IngressInstance, shop: dict[str, Any]
) -> None:
    staged = await soap_api(stage, ingress, "http://shop.example/shop?wsdl", "Book", wsdl=SHOP_WSDL, address=shop["url"])
    status, body = await call(ingress, staged, {"order": {**ORDER, "paid": "false", "total": 3, "weight": "1E3"}})
    assert (status, body) == (200, {"BookResult": "booked"})
    sent = shop["posts"][-1].decode()
    for text in ("<ns0:paid>false</ns0:paid>", "<ns0:total>3</ns0:total>", "<ns0:weight>1E3</ns0:weight>",
                 "<ns0:qty>255</ns0:qty>", "<ns0:n>3</ns0:n>"):
        assert text in sent, sent


# A recursive type (a tree) and an attribute, answered by the shop's BookResponse.
TREE_WSDL = SHOP_WSDL.replace('<xsd:element name="Book">', '''<xsd:complexType name="Node">
        <xsd:sequence><xsd:element name="name" type="xsd:string"/><xsd:element name="child" type="tns:Node" minOccurs="0"/></xsd:sequence>
        <xsd:attribute name="rank" type="xsd:int"/>
      </xsd:complexType>
      <xsd:element name="Plant"><xsd:complexType><xsd:sequence><xsd:element name="root" type="tns:Node"/></xsd:sequence></xsd:complexType></xsd:element>
      <xsd:element name="Book">''').replace('<message name="BookIn"><part name="parameters" element="tns:Book"/></message>',
                                             '<message name="BookIn"><part name="parameters" element="tns:Plant"/></message>')


def _tree(levels: int) -> bytes:
    return b'{"root":' + b'{"name":"n","child":' * (levels - 1) + b'{"name":"leaf","rank":1}' + b"}" * (levels - 1) + b"}"


async def test_deep_arguments_of_a_recursive_type_are_a_422_with_the_depth_limit_not_a_recursion_error(
    stage: Stage, ingress: IngressInstance, shop: dict[str, Any]
) -> None:
    staged = await soap_api(stage, ingress, "http://shop.example/shop?wsdl", "Book", wsdl=TREE_WSDL, address=shop["url"])
    before = len(shop["posts"])
    for levels in (200, 900):
        async with aiohttp.ClientSession() as s:
            async with s.post(f"{ingress.url}/{staged['org']}/soap", data=_tree(levels),
                              headers={"Content-Type": "application/json"}) as r:
                status, body = r.status, await r.json()
        assert (status, body["code"], fields(body)) == (
            422, "invalid_soap_arguments", {"(body)": "nests objects and arrays deeper than 64 levels"}), body
        assert "Recursion" not in body["message"]
    assert len(shop["posts"]) == before
    status, body = await call(ingress, staged, {"root": {"name": "a", "rank": 2, "child": {"name": "b", "rank": 3}}})
    assert (status, body) == (200, {"BookResult": "booked"})
    assert b'rank="2"' in shop["posts"][-1] and b'rank="3"' in shop["posts"][-1]
    status, body = await call(ingress, staged, {"root": {"name": "a", "rank": "first"}})
    assert (status, fields(body)) == (422, {"root.rank": INT_RANGE}), body
