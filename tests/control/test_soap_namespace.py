"""A code-first SOAP API's ``namespace`` is checked as the WSDL will be written with it: a value
that looks like an absolute URI but that lxml refuses (a quote, ``<``, ``>``, non-ASCII, a brace
that would break the ``{namespace}name`` form) is a 422 on ``namespace``, never a 500."""
from __future__ import annotations

import uuid
from typing import Any

import pytest

ADD = {"name": "Add", "input": [{"name": "intA", "type": "int"}, {"name": "intB", "type": "int"}],
       "output": [{"name": "AddResult", "type": "int"}]}


async def _create(control: Any, org: str, connector: str, namespace: str) -> Any:
    body = {"name": f"ns-{uuid.uuid4().hex[:8]}", "protocol": "soap", "path": "/calc", "connector": connector,
            "operations": [ADD], "namespace": namespace}
    return await control.call("POST", f"/api/v1/orgs/{org}/apis", control.admin_token, body)


@pytest.mark.parametrize("namespace", ['urn:x"><evil/>', "urn:a<b", "urn:x>y", "urn:caf\u00e9", "urn:x%zz",
                                       "urn:x{y}", "urn:x}y", "urn:x\\y"])
async def test_a_namespace_lxml_refuses_is_a_422_on_namespace_and_nothing_is_stored(control: Any, namespace: str) -> None:
    org = (await control.new_org("soapns"))["slug"]
    connector = (await control.new_connector(org))["id"]
    r = await _create(control, org, connector, namespace)
    assert r.status == 422, r.body
    assert r.body["code"] == "invalid_input"
    fields = {f["field"]: f["message"] for f in r.body["fields"]}
    assert "absolute URI" in fields["namespace"], r.body
    listed = await control.call("GET", f"/api/v1/orgs/{org}/apis", control.admin_token)
    assert listed.body["items"] == []


async def test_an_ordinary_namespace_still_makes_the_api(control: Any) -> None:
    org = (await control.new_org("soapns"))["slug"]
    connector = (await control.new_connector(org))["id"]
    r = await _create(control, org, connector, "http://example.com/calc?v=1&x='y'")
    assert r.status == 201, r.body
    assert r.body["contract"]["operations"][0]["input"]["element"] == "{http://example.com/calc?v=1&x='y'}Add"
