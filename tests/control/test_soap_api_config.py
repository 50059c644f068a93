"""An inbound SOAP API through the management API: a contract-first WSDL or code-first operations
become the contract its config document carries; what is refused names the field at fault and
leaves nothing stored."""
from __future__ import annotations

import uuid
from typing import Any

import pytest

from tests.soap_servers import WSDL_DIR

CALCULATOR = WSDL_DIR / "calculator.wsdl"
BOMB = ('<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;">]>'
        '<definitions xmlns="http://schemas.xmlsoap.org/wsdl/">&lol2;</definitions>')
XXE = ('<?xml version="1.0"?><!DOCTYPE d [<!ENTITY x SYSTEM "file:///etc/passwd">]>'
       '<definitions xmlns="http://schemas.xmlsoap.org/wsdl/">&x;</definitions>')
ADD = {"name": "Add", "input": [{"name": "intA", "type": "int"}, {"name": "intB", "type": "int"}],
       "output": [{"name": "AddResult", "type": "int"}]}

needs_wsdls = pytest.mark.skipif(not WSDL_DIR.is_dir(), reason=f"the real-world WSDLs are not at {WSDL_DIR}")


def _fields(body: dict[str, Any]) -> dict[str, str]:
    return {f["field"]: f["message"] for f in body.get("fields", [])}


async def _setup(control: Any, prefix: str) -> tuple[str, str]:
    org = (await control.new_org(prefix))["slug"]
    connector = await control.new_connector(org)
    return org, connector["id"]


async def _create(control: Any, org: str, connector: str, **fields: Any) -> Any:
    body = {"name": f"s-{uuid.uuid4().hex[:8]}", "protocol": "soap", "path": "/calc", "connector": connector, **fields}
    return await control.call("POST", f"/api/v1/orgs/{org}/apis", control.admin_token, body)


@needs_wsdls
async def test_a_contract_first_api_carries_its_contract_and_serves_get_for_its_wsdl(control: Any) -> None:
    org, connector = await _setup(control, "soapc")
    r = await _create(control, org, connector, wsdl=CALCULATOR.read_text())
    assert r.status == 201, r.body
    assert r.body["methods"] == ["POST"]
    contract = r.body["contract"]
    assert contract["versions"] == ["1.1", "1.2"]
    add = next(o for o in contract["operations"] if o["name"] == "Add")
    assert add["action"] == "http://tempuri.org/Add"
    assert add["input"]["element"] == "{http://tempuri.org/}Add"
    assert [(f["name"], f["type"], f["min"], f["max"]) for f in add["input"]["fields"]] == [("intA", "int", 1, 1),
                                                                                           ("intB", "int", 1, 1)]
    assert add["output"]["fields"][0]["name"] == "AddResult"
    # The config document routes GET too (?wsdl), and carries the contract: ingress reads no WSDL.
    await control.watch.wait_for(lambda: control.watch.document("api", r.body["id"]) is not None)
    doc = control.watch.document("api", r.body["id"])
    assert doc["methods"] == ["GET", "POST"] and doc["contract"] == contract
    # What a read shows can be sent back as it is (the contract is recomputed, not taken).
    view = {k: v for k, v in r.body.items() if k in ("name", "protocol", "path", "connector", "wsdl", "contract", "methods")}
    again = await control.call("PUT", f"/api/v1/orgs/{org}/apis/{r.body['id']}", control.admin_token, view)
    assert again.status == 200 and again.body["version"] == 1, again.body  # nothing changed: no new version
    forged = await control.call("PATCH", f"/api/v1/orgs/{org}/apis/{r.body['id']}", control.admin_token,
                                {"contract": {"versions": ["1.1"], "operations": [], "wsdl": "x"}})
    assert forged.status == 200 and forged.body["contract"] == contract


async def test_code_first_operations_generate_a_contract_with_both_soap_versions(control: Any) -> None:
    org, connector = await _setup(control, "soapg")
    ops = [ADD, {"name": "Order", "input": [
        {"name": "lines", "type": "object", "repeated": True,
         "fields": [{"name": "sku", "type": "string"}, {"name": "qty", "type": "long", "required": False}]},
        {"name": "when", "type": "dateTime", "required": False}],
        "output": [{"name": "total", "type": "decimal"}]}]
    r = await _create(control, org, connector, operations=ops)
    assert r.status == 201, r.body
    contract = r.body["contract"]
    assert contract["versions"] == ["1.1", "1.2"]
    namespace = f"urn:junction:api:{r.body['id']}"
    order = contract["operations"][1]
    assert order["action"] == f"{namespace}/Order"
    lines = order["input"]["fields"][0]
    assert (lines["type"], lines["min"], lines["max"]) == ("object", 1, None)
    assert [(f["name"], f["min"]) for f in lines["fields"]] == [("sku", 1), ("qty", 0)]
    assert 'soap12:address location="urn:junction:gateway-address"' in contract["wsdl"]
    r = await control.call("PATCH", f"/api/v1/orgs/{org}/apis/{r.body['id']}", control.admin_token,
                           {"namespace": "urn:example:calc"})
    assert r.status == 200 and r.body["contract"]["operations"][0]["input"]["element"] == "{urn:example:calc}Add"


@pytest.mark.parametrize("fields, field, words", [
    ({"wsdl": "<definitions/>", "operations": [ADD]}, "wsdl", "either wsdl"),
    ({}, "wsdl", "either wsdl"),
    ({"operations": [ADD], "methods": ["GET", "POST"]}, "methods", "POST"),
    ({"operations": [ADD], "path": "/calc/{id}"}, "path", "no parameters"),
    ({"operations": [{**ADD, "input": [{"name": "intA", "type": "int"}, {"name": "intB", "type": "integer"}]}]},
     "operations[0].input[1].type", "must be one of"),
    ({"operations": [{**ADD, "input": [{"name": "o", "type": "object"}]}]}, "operations[0].input[0].fields", "needs"),
    ({"operations": [{**ADD, "input": [{"name": "s", "type": "string", "fields": [{"name": "x", "type": "int"}]}]}]},
     "operations[0].input[0].fields", "only an object"),
    ({"operations": [{**ADD, "output": [{"name": "1bad", "type": "int"}]}]}, "operations[0].output[0].name", "must match"),
    ({"operations": [ADD, ADD]}, "operations[1].name", "repeats"),
    ({"operations": [ADD, {"name": "AddResponse"}]}, "operations[1].name", "clashes"),
    ({"operations": [{**ADD, "input": [{"name": "a", "type": "int"}, {"name": "a", "type": "int"}]}]},
     "operations[0].input[1].name", "repeats"),
    ({"operations": [ADD], "namespace": "not a uri"}, "namespace", "absolute URI"),
    ({"wsdl": BOMB}, "wsdl", "DOCTYPE"),
    ({"wsdl": XXE}, "wsdl", "DOCTYPE"),
    ({"wsdl": "<definitions"}, "wsdl", "not well-formed"),
    ({"wsdl": "<html><body>Not found</body></html>"}, "wsdl", "not a WSDL"),
    ({"wsdl": "<a>" * 200 + "</a>" * 200}, "wsdl", "deeper"),
    ({"wsdl": '<definitions xmlns="http://schemas.xmlsoap.org/wsdl/" targetNamespace="urn:t"/>'}, "wsdl", "no service port"),
    ({"wsdl": "x" * 524289}, "wsdl", "at most"),
])
async def test_invalid_soap_apis_are_refused_with_the_field_and_nothing_is_stored(
    control: Any, fields: dict[str, Any], field: str, words: str
) -> None:
    org, connector = await _setup(control, "soapbad")
    r = await _create(control, org, connector, **fields)
    assert r.status == 422, r.body
    assert field in _fields(r.body) and words in _fields(r.body)[field], r.body
    listed = await control.call("GET", f"/api/v1/orgs/{org}/apis", control.admin_token)
    assert listed.body["items"] == []


@needs_wsdls
@pytest.mark.parametrize("name, words", [
    ("wcf_service1/Service1.wsdl", "imports http://localhost:53068/Service1.svc?xsd=xsd0"),  # never fetched
    ("hello_world_rpc_lit.wsdl", "rpc style"),
])
async def test_wsdls_junction_cannot_serve_are_refused_without_any_fetch(control: Any, name: str, words: str) -> None:
    org, connector = await _setup(control, "soapwsdl")
    r = await _create(control, org, connector, wsdl=(WSDL_DIR / name).read_text())
    assert r.status == 422 and words in _fields(r.body)["wsdl"], r.body


@pytest.mark.parametrize("fields, field", [
    ({"wsdl": "<definitions/>"}, "wsdl"), ({"operations": [ADD]}, "operations"), ({"namespace": "urn:x"}, "namespace"),
])
async def test_a_rest_api_takes_no_soap_fields(control: Any, fields: dict[str, Any], field: str) -> None:
    org, connector = await _setup(control, "soaprest")
    r = await control.call("POST", f"/api/v1/orgs/{org}/apis", control.admin_token,
                           {"name": "r", "methods": ["GET"], "path": "/r", "connector": connector, **fields})
    assert r.status == 422 and "only for a soap API" in _fields(r.body)[field], r.body


async def test_a_rest_api_still_needs_methods(control: Any) -> None:
    org, connector = await _setup(control, "soapm")
    r = await control.call("POST", f"/api/v1/orgs/{org}/apis", control.admin_token,
                           {"name": "r", "path": "/r", "connector": connector})
    assert r.status == 422 and _fields(r.body) == {"methods": "is required"}, r.body


async def test_a_soap_api_holds_get_at_its_path_for_its_wsdl(control: Any) -> None:
    org, connector = await _setup(control, "soapclash")
    assert (await _create(control, org, connector, operations=[ADD])).status == 201
    r = await control.call("POST", f"/api/v1/orgs/{org}/apis", control.admin_token,
                           {"name": "r", "methods": ["GET"], "path": "/calc", "connector": connector})
    assert r.status == 409 and r.body["code"] == "route_clash", r.body
