"""REST in, SOAP out, through the real pipeline: the facets of the WSDL's restricted simple types (which
zeep drops) are checked before anything is sent. A value breaking one is the caller's 422
``invalid_soap_arguments`` naming the field and the rule, and the SOAP service receives nothing; a valid
call goes through. The WSDL is uploaded with its imported schema (WCF's serialization schema, read by
path) or fetched with it from the loopback service; a backtracking pattern answers at once, and a pattern
that does not translate refuses nothing."""
from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
import pytest_asyncio
from aiohttp import web
from lxml import etree

from tests.soap_servers import WSDL_DIR
from tests.support import IngressInstance, Stage, serving, wait_until
from tests.wsdl_support import register_wsdl

SER_XSD = WSDL_DIR / "wcf_service1" / "Service1.xsd"
if not SER_XSD.is_file():
    pytest.skip(f"the WCF serialization schema is not at {SER_XSD}", allow_module_level=True)

NS = "urn:example:facets"
ENV = "http://schemas.xmlsoap.org/soap/envelope/"
WSDL = register_wsdl("urn:example:facets", """\
      <xsd:simpleType name="Code"><xsd:restriction base="xsd:string">
        <xsd:enumeration value="A"/><xsd:enumeration value="B"/><xsd:enumeration value="C"/></xsd:restriction></xsd:simpleType>
      <xsd:simpleType name="Name"><xsd:restriction base="xsd:string"><xsd:maxLength value="10"/></xsd:restriction></xsd:simpleType>
      <xsd:simpleType name="Qty"><xsd:restriction base="xsd:int">
        <xsd:minInclusive value="1"/><xsd:maxInclusive value="99"/></xsd:restriction></xsd:simpleType>
      <xsd:simpleType name="Price"><xsd:restriction base="xsd:decimal">
        <xsd:minInclusive value="0"/><xsd:fractionDigits value="2"/></xsd:restriction></xsd:simpleType>
      <xsd:complexType name="Line">
        <xsd:sequence>
          <xsd:element name="qty" type="tns:Qty"/>
          <xsd:element name="price" type="tns:Price" minOccurs="0"/>
        </xsd:sequence>
        <xsd:attribute name="lineNo"><xsd:simpleType><xsd:restriction base="xsd:int">
          <xsd:minInclusive value="1"/></xsd:restriction></xsd:simpleType></xsd:attribute>
      </xsd:complexType>
      <xsd:element name="Register"><xsd:complexType><xsd:sequence>
        <xsd:element name="code" type="tns:Code"/>
        <xsd:element name="name" type="tns:Name" minOccurs="0"/>
        <xsd:element name="id" type="ser:guid" minOccurs="0"/>
        <xsd:element name="tag" minOccurs="0"><xsd:simpleType><xsd:restriction base="xsd:string">
          <xsd:pattern value="(a+)+$"/></xsd:restriction></xsd:simpleType></xsd:element>
        <xsd:element name="odd" minOccurs="0"><xsd:simpleType><xsd:restriction base="xsd:string">
          <xsd:pattern value="(x)\\1"/></xsd:restriction></xsd:simpleType></xsd:element>
        <xsd:element name="lines" type="tns:Line" minOccurs="0" maxOccurs="unbounded"/>
      </xsd:sequence></xsd:complexType></xsd:element>""", "ADDRESS")
GUID = "0f8fad5b-d9cb-469f-a165-70867728950e"
VALID = {"code": "B", "name": "Ada", "id": GUID, "tag": "aaa$", "odd": "anything", "lines": [
    {"qty": 1, "price": "9.90", "lineNo": 1}, {"qty": 99, "lineNo": 2}]}


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def service() -> AsyncIterator[dict[str, Any]]:
    """The SOAP service: serves its WSDL (``/svc?wsdl``) and the schema it imports (``/ser.xsd``), records
    every envelope posted to ``/svc`` and answers each with a RegisterResponse."""
    state: dict[str, Any] = {"posts": []}

    async def wsdl(request: web.Request) -> web.Response:
        return web.Response(content_type="text/xml", text=WSDL.replace("ADDRESS", state["address"]))

    async def schema(request: web.Request) -> web.Response:
        return web.Response(content_type="text/xml", body=SER_XSD.read_bytes())

    async def register(request: web.Request) -> web.Response:
        state["posts"].append(await request.read())
        return web.Response(content_type="text/xml", text=(
            f'<s:Envelope xmlns:s="{ENV}"><s:Body><RegisterResponse xmlns="{NS}"><ok>registered</ok></RegisterResponse>'
            "</s:Body></s:Envelope>"))

    app = web.Application()
    app.router.add_get("/svc", wsdl)
    app.router.add_get("/ser.xsd", schema)
    app.router.add_post("/svc", register)
    async with serving(app) as url:
        state["address"] = f"{url}/svc"
        state["wsdl_url"] = f"{url}/svc?wsdl"
        yield state


async def soap_api(stage: Stage, ingress: IngressInstance, service: dict[str, Any], how: str) -> dict[str, Any]:
    if how == "uploaded":  # the WSDL and the schema it imports, uploaded with the connector; its own location unreachable
        target = {"url": "http://facets.example/svc?wsdl", "wsdl": WSDL.replace("ADDRESS", "http://facets.example/svc"),
                  "documents": {"ser.xsd": SER_XSD.read_text(encoding="utf-8")}, "address": service["address"]}
    else:  # fetched from the service, with the schema it imports
        target = {"url": service["wsdl_url"]}
    staged = await stage.api("", path="/register", methods=["POST"],
                             target={"protocol": "soap", "operation": "Register", **target})
    await wait_until(lambda: staged["api"]["id"] in ingress.snapshot.apis)
    return staged


async def call(ingress: IngressInstance, staged: dict[str, Any], payload: Any) -> tuple[int, dict[str, Any]]:
    async with aiohttp.ClientSession() as s:
        async with s.post(f"{ingress.url}/{staged['org']}/register", json=payload,
                          timeout=aiohttp.ClientTimeout(total=30)) as r:
            return r.status, await r.json()


def fields(body: dict[str, Any]) -> dict[str, str]:
    return {f["field"]: f["message"] for f in body.get("fields", [])}


GUID_RULE = "must match the pattern [\\da-fA-F]{8}-[\\da-fA-F]{4}-[\\da-fA-F]{4}-[\\da-fA-F]{4}-[\\da-fA-F]{12}"


@pytest.mark.parametrize("how", ["uploaded", "fetched"])
@pytest.mark.parametrize("change, field, message", [
    ({"code": "D"}, "code", "must be one of A, B, C"),
    ({"name": "Ada Lovelace"}, "name", "must be at most 10 characters"),
    ({"id": GUID[:-1]}, "id", GUID_RULE),  # a type of the imported schema
    ({"lines": [VALID["lines"][0], {"qty": 100, "lineNo": 2}]}, "lines[1].qty", "must be at most 99"),
    ({"lines": [{"qty": 1, "price": "-0.01"}]}, "lines[0].price", "must be at least 0"),
    ({"lines": [{"qty": 1, "price": 9.999}]}, "lines[0].price", "must have at most 2 digits after the decimal point"),
    ({"lines": [{"qty": 1, "lineNo": 0}]}, "lines[0].lineNo", "must be at least 1"),  # an attribute
])
async def test_a_value_breaking_a_facet_is_a_422_naming_the_field_and_the_service_receives_nothing(
    stage: Stage, ingress: IngressInstance, service: dict[str, Any], how: str, change: dict[str, Any], field: str, message: str
) -> None:
    staged = await soap_api(stage, ingress, service, how)
    before = len(service["posts"])
    status, body = await call(ingress, staged, {**VALID, **change})
    assert (status, body["code"], fields(body)) == (422, "invalid_soap_arguments", {field: message}), body
    assert body["message"].endswith(f": {field} {message}")
    assert len(service["posts"]) == before


@pytest.mark.parametrize("how", ["uploaded", "fetched"])
async def test_a_valid_call_goes_through_with_its_values(
    stage: Stage, ingress: IngressInstance, service: dict[str, Any], how: str
) -> None:
    staged = await soap_api(stage, ingress, service, how)
    assert await call(ingress, staged, VALID) == (200, {"ok": "registered"})
    sent = etree.fromstring(service["posts"][-1]).find(f"{{{ENV}}}Body/{{{NS}}}Register")
    assert [sent.findtext(f"{{{NS}}}{n}") for n in ("code", "name", "id", "tag")] == ["B", "Ada", GUID, "aaa$"]
    assert [line.get("lineNo") for line in sent.findall(f"{{{NS}}}lines")] == ["1", "2"]


async def test_a_backtracking_pattern_refuses_a_long_value_at_once_and_the_gateway_keeps_answering(
    stage: Stage, ingress: IngressInstance, service: dict[str, Any]
) -> None:
    staged = await soap_api(stage, ingress, service, "uploaded")
    before = len(service["posts"])
    status, body = await call(ingress, staged, {**VALID, "tag": "a" * 5000 + "!"})
    assert (status, fields(body)) == (422, {"tag": "must match the pattern (a+)+$"}), body
    assert len(service["posts"]) == before
    assert await call(ingress, staged, {**VALID, "tag": "a" * 5000 + "$"}) == (200, {"ok": "registered"})


async def test_a_pattern_that_does_not_translate_refuses_nothing(
    stage: Stage, ingress: IngressInstance, service: dict[str, Any]
) -> None:
    staged = await soap_api(stage, ingress, service, "uploaded")
    status, body = await call(ingress, staged, {**VALID, "odd": "not x twice"})
    assert (status, body) == (200, {"ok": "registered"})
    assert b"not x twice" in service["posts"][-1]
