"""A SOAP connector's own settings through the management API: an uploaded WSDL with the
documents it imports, an address override, and what is refused (unsafe or oversized XML,
SOAP settings on a REST target), each with the field at fault and nothing stored."""
from __future__ import annotations

import uuid
from typing import Any

import pytest

from control.checks import MAX_UPLOADED_WSDL_BYTES

WSDL = ('<definitions xmlns="http://schemas.xmlsoap.org/wsdl/" targetNamespace="urn:t">'
        '<import namespace="urn:x" location="types.xsd"/></definitions>')
XSD = '<xs:schema xmlns:xs="http://www.w3.org/2001/XMLSchema" targetNamespace="urn:x"/>'
BOMB = ('<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;">]>'
        '<definitions xmlns="http://schemas.xmlsoap.org/wsdl/">&lol2;</definitions>')
XXE = ('<?xml version="1.0"?><!DOCTYPE d [<!ENTITY x SYSTEM "file:///etc/passwd">]>'
       '<definitions xmlns="http://schemas.xmlsoap.org/wsdl/">&x;</definitions>')


def _target(**extra: Any) -> dict[str, Any]:
    return {"protocol": "soap", "url": "http://127.0.0.1:9/svc?wsdl", "operation": "Op", **extra}


def _fields(body: dict[str, Any]) -> dict[str, str]:
    return {f["field"]: f["message"] for f in body.get("fields", [])}


async def _create(control: Any, org: str, target: dict[str, Any]) -> Any:
    return await control.call("POST", f"/api/v1/orgs/{org}/connectors", control.admin_token,
                              {"name": f"c-{uuid.uuid4().hex[:8]}", "target": target})


async def test_an_uploaded_wsdl_its_documents_and_an_address_are_stored_and_versioned(control: Any) -> None:
    org = (await control.new_org("soapup"))["slug"]
    r = await _create(control, org, _target(wsdl=WSDL, documents={"types.xsd": XSD}, address="https://svc.example/run"))
    assert r.status == 201, r.body
    assert r.body["target"]["wsdl"] == WSDL and r.body["target"]["documents"] == {"types.xsd": XSD}
    base = f"/api/v1/orgs/{org}/connectors/{r.body['id']}"
    # The operation may now come from the SOAP caller: null removes it.
    r = await control.call("PATCH", base, control.admin_token, {"target": {"operation": None}})
    assert r.status == 200, r.body
    assert "operation" not in r.body["target"] and r.body["target"]["address"] == "https://svc.example/run"
    assert r.body["version"] == 2
    # This WSDL names no soap:address: without the connector's own, envelopes could go nowhere.
    r = await control.call("PATCH", base, control.admin_token, {"target": {"address": None}})
    assert r.status == 422 and [f["field"] for f in r.body["fields"]] == ["target.wsdl"], r.body


@pytest.mark.parametrize("extra, field, words", [
    ({"wsdl": BOMB}, "target.wsdl", "DOCTYPE"),
    ({"wsdl": XXE}, "target.wsdl", "DOCTYPE"),
    ({"wsdl": "<definitions"}, "target.wsdl", "not well-formed"),
    ({"wsdl": '<html><body>Not found</body></html>'}, "target.wsdl", "not a WSDL"),
    ({"wsdl": WSDL, "documents": {"types.xsd": BOMB}}, "target.documents.types.xsd", "DOCTYPE"),
    ({"documents": {"types.xsd": XSD}}, "target.documents", "needs target.wsdl"),
    ({"wsdl": WSDL + " " * MAX_UPLOADED_WSDL_BYTES}, "target.wsdl", "at most"),
    ({"wsdl": WSDL, "documents": {f"d{i}.xsd": XSD + " " * (MAX_UPLOADED_WSDL_BYTES // 4) for i in range(4)}},
     "target.documents", "together"),
    ({"wsdl": WSDL, "documents": {f"d{i}.xsd": XSD for i in range(51)}}, "target.documents", "at most 50"),
    ({"address": "file:///etc/passwd"}, "target.address", "http or https"),
    ({"address": "gopher://127.0.0.1:70/"}, "target.address", "http or https"),
])
async def test_unsafe_or_oversized_soap_settings_are_refused_with_the_field(
    control: Any, extra: dict[str, Any], field: str, words: str
) -> None:
    org = (await control.new_org("soapbad"))["slug"]
    r = await _create(control, org, _target(**extra))
    assert r.status == 422, r.body
    assert field in _fields(r.body) and words in _fields(r.body)[field], r.body
    listed = await control.call("GET", f"/api/v1/orgs/{org}/connectors", control.admin_token)
    assert listed.body["items"] == []  # nothing half-written


@pytest.mark.parametrize("key, value", [("wsdl", WSDL), ("documents", {"a.xsd": XSD}), ("address", "http://x.example/"),
                                        ("operation", "Op")])
async def test_a_rest_target_refuses_soap_settings(control: Any, key: str, value: Any) -> None:
    org = (await control.new_org("restsoap"))["slug"]
    r = await _create(control, org, {"protocol": "rest", "url": "http://127.0.0.1:9/x", key: value})
    assert r.status == 422 and f"target.{key}" in _fields(r.body), r.body
