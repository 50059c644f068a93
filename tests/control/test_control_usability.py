"""What a new user following the README runs into: trying a connector script
(saved or not, with path parameters and a sample response), updating a SOAP
connector's URL, and getting into the global admin account. Against the live
control server, its sandbox and the session's real PostgreSQL."""
from __future__ import annotations

import json
import logging
import uuid
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import pytest
import pytest_asyncio

from control.bodies import request_schemas
from junction.sdk import JunctionAPIError, JunctionClient
from tests.control_support import run_cli

# The README's example connector script, as printed there.
README_SCRIPT = '''
def transform_request(request, ctx):
    # GET /orders/{id}  ->  GetOrderStatus(orderId=id): a SOAP call's body is the JSON of its arguments
    request.set_json({"orderId": request.path_params["id"]})

def transform_response(response, ctx):
    order = response.json()            # the SOAP result, as JSON
    response.set_json({"id": order["orderId"], "status": order["status"], "total": float(order["total"])})
'''
SOAP_RESULT = {"orderId": "A-42", "status": "processing", "total": "21.20"}
SOAP_TARGET = {"protocol": "soap", "url": "http://127.0.0.1:9/orders?wsdl", "operation": "GetOrderStatus"}


def _fields(body: dict[str, Any]) -> dict[str, str]:
    return {f["field"]: f["message"] for f in body.get("fields", [])}


# -- 1. connector try-out ---------------------------------------------------

async def test_try_unsaved_readme_script_with_path_params_and_response(control: Any) -> None:
    """The README's script reads request.path_params["id"] and has a
    transform_response: both run, before any connector is saved."""
    org = await control.new_org("try")
    r = await control.call("POST", f"/api/v1/orgs/{org['slug']}/connectors/test", control.admin_token, {
        "script": README_SCRIPT,
        "request": {"method": "GET", "path": "/orders/A-42", "path_params": {"id": "A-42"}},
        "response": {"status": 200, "json": SOAP_RESULT},
    })
    assert r.status == 200, r.body
    assert "error" not in r.body, r.body
    assert r.body["ran"] == ["transform_request", "transform_response"]
    assert json.loads(r.body["request"]["body"]) == {"orderId": "A-42"}
    assert r.body["request"]["path_params"] == {"id": "A-42"}
    assert ["Content-Type", "application/json"] in r.body["request"]["headers"]
    assert r.body["response"]["status"] == 200
    assert json.loads(r.body["response"]["body"]) == {"id": "A-42", "status": "processing", "total": 21.2}
    # Nothing was saved.
    r = await control.call("GET", f"/api/v1/orgs/{org['slug']}/connectors", control.admin_token)
    assert r.body["items"] == []


async def test_try_without_path_params_names_the_failing_line(control: Any) -> None:
    """Without path_params the README's script fails as it would on a route
    with no {id}: a 200 with the error, its stage and the script line."""
    org = await control.new_org("try")
    r = await control.call("POST", f"/api/v1/orgs/{org['slug']}/connectors/test", control.admin_token,
                           {"script": README_SCRIPT, "request": {"path": "/orders/A-42"}})
    assert r.status == 200, r.body
    assert r.body["error"]["code"] == "transform_failed"
    assert r.body["error"]["stage"] == "request"
    assert r.body["error"]["line"] == 4
    assert "KeyError" in r.body["error"]["message"] and "'id'" in r.body["error"]["message"]
    assert r.body["ran"] == [] and "request" not in r.body


async def test_try_saved_connector_with_unsaved_script(control: Any) -> None:
    org = await control.new_org("try")
    s = org["slug"]
    saved = "def transform_request(request, ctx):\n    request.headers['x-version'] = 'saved'\n"
    connector = await control.new_connector(s, target=SOAP_TARGET, script=saved, settings={"tag": "t1"})
    url = f"/api/v1/orgs/{s}/connectors/{connector['id']}/test"
    r = await control.call("POST", url, control.admin_token, {"request": {"path_params": {"id": "B-7"}}})
    assert r.status == 200 and ["x-version", "saved"] in r.body["request"]["headers"], r.body
    draft = README_SCRIPT.replace(
        'request.set_json({"orderId": request.path_params["id"]})',
        'request.set_json({"orderId": request.path_params["id"], "tag": ctx.settings["tag"]})')
    r = await control.call("POST", url, control.admin_token, {
        "script": draft, "request": {"path_params": {"id": "B-7"}}, "response": {"json": SOAP_RESULT}})
    assert r.status == 200 and "error" not in r.body, r.body
    assert json.loads(r.body["request"]["body"]) == {"orderId": "B-7", "tag": "t1"}  # the saved settings
    assert json.loads(r.body["response"]["body"])["total"] == 21.2
    # settings can be tried too; the saved connector is untouched either way.
    r = await control.call("POST", url, control.admin_token, {
        "script": draft, "settings": {"tag": "t2"}, "request": {"path_params": {"id": "B-7"}}})
    assert json.loads(r.body["request"]["body"])["tag"] == "t2", r.body
    r = await control.call("GET", f"/api/v1/orgs/{s}/connectors/{connector['id']}", control.admin_token)
    assert r.body["version"] == 1 and r.body["script"] == saved
    # The saved script still answers as before (the draft did not replace it in the workers' cache).
    r = await control.call("POST", url, control.admin_token, {"request": {}})
    assert ["x-version", "saved"] in r.body["request"]["headers"], r.body


async def test_try_refuses_a_script_that_does_not_compile_with_its_line(control: Any) -> None:
    org = await control.new_org("try")
    s = org["slug"]
    connector = await control.new_connector(s)
    bad = "def transform_request(request, ctx):\n    x = 1\n    return (\n"
    for url in (f"/api/v1/orgs/{s}/connectors/test", f"/api/v1/orgs/{s}/connectors/{connector['id']}/test"):
        r = await control.call("POST", url, control.admin_token, {"script": bad, "request": {}})
        assert r.status == 422, (url, r.body)
        assert r.body["code"] == "script_invalid" and "script" in _fields(r.body), r.body
        assert r.body["line"] == 3, r.body
    # As on save, a script needs transform_request.
    r = await control.call("POST", f"/api/v1/orgs/{s}/connectors/test", control.admin_token,
                           {"script": "def transform_response(response, ctx):\n    pass\n"})
    assert r.status == 422 and r.body["code"] == "script_invalid", r.body


async def test_try_response_only_and_script_without_transform_response(control: Any) -> None:
    org = await control.new_org("try")
    s = org["slug"]
    r = await control.call("POST", f"/api/v1/orgs/{s}/connectors/test", control.admin_token, {
        "script": README_SCRIPT, "response": {"status": 201, "headers": {"X-Up": "1"}, "json": SOAP_RESULT}})
    assert r.status == 200 and r.body["ran"] == ["transform_response"], r.body
    assert "request" not in r.body and r.body["response"]["status"] == 201
    assert ["X-Up", "1"] in r.body["response"]["headers"]
    request_only = "def transform_request(request, ctx):\n    ctx.log('hi')\n"
    r = await control.call("POST", f"/api/v1/orgs/{s}/connectors/test", control.admin_token, {
        "script": request_only, "request": {"body": "x"}, "response": {"status": 404, "body": "missing"}})
    assert r.status == 200 and r.body["ran"] == ["transform_request"], r.body
    assert r.body["response"] == {"status": 404, "headers": [], "body": "missing", "body_base64": False}
    assert any("hi" in line for line in r.body["logs"])
    failing = request_only + "\ndef transform_response(response, ctx):\n    reject(409, 'taken', code='order_taken')\n"
    r = await control.call("POST", f"/api/v1/orgs/{s}/connectors/test", control.admin_token,
                           {"script": failing, "request": {}, "response": {}})
    assert r.status == 200, r.body
    assert r.body["error"]["stage"] == "response" and r.body["error"]["code"] == "order_taken"
    assert r.body["error"]["status"] == 409
    assert r.body["ran"] == ["transform_request"] and "request" in r.body
    # Binary samples go in and come out base64-encoded.
    r = await control.call("POST", f"/api/v1/orgs/{s}/connectors/test", control.admin_token, {
        "script": request_only, "request": {"body": "/w==", "body_base64": True}})
    assert r.body["request"]["body"] == "/w==" and r.body["request"]["body_base64"] is True, r.body


async def test_try_validates_input_with_fields(control: Any) -> None:
    org = await control.new_org("try")
    s = org["slug"]
    connector = await control.new_connector(s)
    one = f"/api/v1/orgs/{s}/connectors/{connector['id']}/test"
    new = f"/api/v1/orgs/{s}/connectors/test"
    cases = [
        (new, {"request": {}}, "script"),  # an unsaved connector needs its script
        (new, {"script": None}, "script"),
        (one, {"request": {"path_params": {"id": 7}}}, "request.path_params.id"),
        (one, {"request": {"method": "FETCH"}}, "request.method"),
        (one, {"request": {"headers": {"bad name": "v"}}}, "request.headers.bad name"),
        (one, {"request": {"headers": {"X-A": "a\r\nX-B: b"}}}, "request.headers.X-A"),
        (one, {"request": {"body": "a", "json": {"a": 1}}}, "request.json"),
        (one, {"request": {"body": "not base64!", "body_base64": True}}, "request.body"),
        (one, {"response": {"status": 700}}, "response.status"),
        (one, {"response": {"status": "200"}}, "response.status"),
        (one, {"response": {"headers": {"é": "v"}}}, "response.headers.é"),
        (one, {"response": {"statuscode": 200}}, "response.statuscode"),
        (one, {"request": {}, "target": {}}, "target"),
    ]
    for url, payload, field in cases:
        r = await control.call("POST", url, control.admin_token, payload)
        assert r.status == 422 and r.body["code"] == "invalid_input", (payload, r.body)
        assert field in _fields(r.body), (payload, r.body)
    # A viewer may not run code; another organisation's connector is not found.
    _, viewer = await control.new_user(s, "org_viewer")
    r = await control.call("POST", new, viewer, {"script": README_SCRIPT})
    assert r.status == 403
    other = await control.new_org("try")
    r = await control.call("POST", f"/api/v1/orgs/{other['slug']}/connectors/{connector['id']}/test",
                           control.admin_token, {"request": {}})
    assert r.status == 404


async def test_openapi_describes_the_try_out(control: Any) -> None:
    r = await control.call("GET", "/api/v1/openapi.json")
    doc = r.body
    schemas = doc["components"]["schemas"]
    expected = request_schemas(control.settings)
    assert schemas["ConnectorTestRequest"] == expected["ConnectorTestRequest"]
    assert schemas["ConnectorTryRequest"] == expected["ConnectorTryRequest"]
    test_props = schemas["ConnectorTestRequest"]["properties"]
    assert {"script", "settings", "request", "response"} <= set(test_props)
    assert {"path_params", "json", "body"} <= set(test_props["request"]["properties"])
    assert {"status", "headers", "json", "body"} <= set(test_props["response"]["properties"])
    assert schemas["ConnectorTryRequest"]["required"] == ["script"]
    for path, body in (("/api/v1/orgs/{org}/connectors/{id}/test", "ConnectorTestRequest"),
                       ("/api/v1/orgs/{org}/connectors/test", "ConnectorTryRequest")):
        op = doc["paths"][path]["post"]
        assert op["requestBody"]["content"]["application/json"]["schema"]["$ref"].endswith(body)
        assert "422" in op["responses"] and "200" in op["responses"]
    result = schemas["ConnectorTestResult"]["properties"]
    assert {"ran", "request", "response", "error", "logs"} <= set(result)
    # The update schema lets a connector's target be patched key by key.
    update_target = schemas["ConnectorUpdate"]["properties"]["target"]
    assert "required" not in update_target and None in update_target["properties"]["method"]["enum"]


async def test_sdk_try_out(control: Any) -> None:
    org = await control.new_org("trysdk")
    s = org["slug"]
    async with JunctionClient(control.base_url, control.admin_token) as jc:
        out = await jc.test_connector(s, script=README_SCRIPT, path_params={"id": "C-1"},
                                      response={"json": SOAP_RESULT})
        assert out["ran"] == ["transform_request", "transform_response"], out
        assert json.loads(out["request"]["body"]) == {"orderId": "C-1"}
        assert json.loads(out["response"]["body"])["id"] == "A-42"
        conn = await jc.create_connector(s, "orders", SOAP_TARGET, script=README_SCRIPT)
        out = await jc.test_connector(s, conn["id"], path_params={"id": "C-2"}, json={"ignored": True})
        assert json.loads(out["request"]["body"]) == {"orderId": "C-2"}, out
        out = await jc.test_connector(s, conn["id"], response={"status": 200, "json": SOAP_RESULT})
        assert out["ran"] == ["transform_response"], out
        with pytest.raises(JunctionAPIError) as info:
            await jc.test_connector(s, script="def transform_request(r, c):\n  return (\n")
        assert info.value.status == 422 and info.value.code == "script_invalid"
        assert [f.field for f in info.value.fields] == ["script"]
        with pytest.raises(ValueError):
            await jc.test_connector(s)


async def test_cli_try_out(control: Any, tmp_path: Any) -> None:
    org = await control.new_org("trycli")
    s = org["slug"]
    script = tmp_path / "orders.py"
    script.write_text(README_SCRIPT)
    url = ["--url", control.base_url]
    rc, data, err = await run_cli(control, "connectors", "test", s, "--script-file", str(script),
                               "--path-param", "id=D-4", "--response-body", json.dumps(SOAP_RESULT), *url)
    assert rc == 0, err
    assert data["ran"] == ["transform_request", "transform_response"], data
    assert json.loads(data["request"]["body"]) == {"orderId": "D-4"}
    assert json.loads(data["response"]["body"])["total"] == 21.2


# -- 3. updating a connector's target keeps the rest of it ----------------------

async def test_patch_merges_the_connector_target(control: Any) -> None:
    org = await control.new_org("upd")
    s = org["slug"]
    conn = await control.new_connector(s, target=SOAP_TARGET)
    base = f"/api/v1/orgs/{s}/connectors/{conn['id']}"
    r = await control.call("PATCH", base, control.admin_token, {"target": {"url": "http://127.0.0.1:9/v2?wsdl"}})
    assert r.status == 200, r.body
    assert r.body["target"] == {**SOAP_TARGET, "url": "http://127.0.0.1:9/v2?wsdl"}
    assert r.body["version"] == 2
    rest = await control.new_connector(s, target={"protocol": "rest", "url": "http://127.0.0.1:9/a", "method": "PUT",
                                                  "headers": {"X-A": "1"}})
    base = f"/api/v1/orgs/{s}/connectors/{rest['id']}"
    r = await control.call("PATCH", base, control.admin_token, {"target": {"url": "http://127.0.0.1:9/b"}})
    assert r.body["target"] == {"protocol": "rest", "url": "http://127.0.0.1:9/b", "method": "PUT",
                                "headers": {"X-A": "1"}}, r.body
    # null removes a key; protocol and url cannot be removed.
    r = await control.call("PATCH", base, control.admin_token, {"target": {"method": None}})
    assert r.status == 200 and "method" not in r.body["target"], r.body
    r = await control.call("PATCH", base, control.admin_token, {"target": {"url": None}})
    assert r.status == 422 and "target.url" in _fields(r.body), r.body
    # A REST target takes no SOAP settings; PUT still replaces the whole target.
    r = await control.call("PATCH", base, control.admin_token, {"target": {"address": "http://127.0.0.1:9/x"}})
    assert r.status == 422 and "target.address" in _fields(r.body), r.body
    r = await control.call("PUT", base, control.admin_token,
                           {"name": rest["name"], "target": {"protocol": "rest", "url": "http://127.0.0.1:9/c"}})
    assert r.body["target"] == {"protocol": "rest", "url": "http://127.0.0.1:9/c"}, r.body


async def test_cli_update_target_url_keeps_a_soap_connector_soap(control: Any) -> None:
    org = await control.new_org("updcli")
    s = org["slug"]
    conn = await control.new_connector(s, target=SOAP_TARGET)
    url = ["--url", control.base_url]
    rc, data, err = await run_cli(control, "connectors", "update", s, conn["id"],
                               "--target-url", "http://127.0.0.1:9/v3?wsdl", *url)
    assert rc == 0, err
    assert data["target"] == {**SOAP_TARGET, "url": "http://127.0.0.1:9/v3?wsdl"}, data
    rc, data, err = await run_cli(control, "connectors", "update", s, conn["id"], "--operation", "GetOrder", *url)
    assert rc == 0 and data["target"]["operation"] == "GetOrder" and data["target"]["protocol"] == "soap", err
    # Create still defaults to REST, and takes --operation for SOAP.
    rc, data, err = await run_cli(control, "connectors", "create", s, "--name", "r", "--target-url",
                               "http://127.0.0.1:9/r", "--method", "get", *url)
    assert rc == 0 and data["target"] == {"protocol": "rest", "url": "http://127.0.0.1:9/r", "method": "GET"}, err
    rc, data, err = await run_cli(control, "connectors", "create", s, "--name", "so", "--protocol", "soap",
                               "--target-url", "http://127.0.0.1:9/s?wsdl", "--operation", "Op", *url)
    assert rc == 0 and data["target"] == {"protocol": "soap", "url": "http://127.0.0.1:9/s?wsdl",
                                          "operation": "Op"}, err
    rest_id = data["id"]
    rc, data, err = await run_cli(control, "connectors", "update", s, rest_id, "--method", "post", *url)
    assert rc == 0 and data["target"]["method"] == "POST" and data["target"]["operation"] == "Op", err


async def test_sdk_update_connector_target_keeps_soap(control: Any) -> None:
    org = await control.new_org("updsdk")
    s = org["slug"]
    async with JunctionClient(control.base_url, control.admin_token) as jc:
        conn = await jc.create_connector(s, "orders", SOAP_TARGET)
        updated = await jc.update_connector(s, conn["id"], if_version=1, target={"url": "http://127.0.0.1:9/z?wsdl"})
        assert updated["target"] == {**SOAP_TARGET, "url": "http://127.0.0.1:9/z?wsdl"}
        assert updated["version"] == 2
        diff = await jc.diff(s, "connectors", conn["id"], 1, 2)
        assert diff["changes"] == [{"field": "target.url", "before": SOAP_TARGET["url"],
                                    "after": "http://127.0.0.1:9/z?wsdl"}]


# -- 2. the global admin's password -------------------------------------------

@pytest_asyncio.fixture(loop_scope="session")
async def own_schema(control: Any) -> AsyncIterator[Any]:
    """Settings on a schema of their own, so the default admin@localhost is ours alone."""
    schema = f"t_adm_{uuid.uuid4().hex[:10]}"
    yield control.settings.with_overrides(database_schema=schema)
    conn = await asyncpg.connect(control.settings.database_url)
    try:
        await conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
    finally:
        await conn.close()


async def _hash_of(settings: Any, email: str) -> str | None:
    conn = await asyncpg.connect(settings.database_url, server_settings={"search_path": settings.database_schema})
    try:
        return await conn.fetchval("SELECT password_hash FROM users WHERE lower(email) = lower($1)", email)
    finally:
        await conn.close()


async def test_admin_password_without_email_uses_the_default_admin(own_schema: Any, caplog: Any) -> None:
    from control.admin import DEFAULT_ADMIN_EMAIL, create_admin, ensure_admin
    from control.auth import check_password

    # Another global admin exists already (junction admin create): the password must not be dropped.
    await create_admin(own_schema, "ops@example.com", "ops-password-1")
    s = own_schema.with_overrides(admin_email="", admin_password="chosen-password-1")
    assert await ensure_admin(s) == (DEFAULT_ADMIN_EMAIL, "chosen-password-1")
    assert await check_password("chosen-password-1", await _hash_of(s, DEFAULT_ADMIN_EMAIL))
    # Next start: it exists, nothing is shown; the same password is not worth a warning.
    with caplog.at_level(logging.WARNING, logger="control.admin"):
        assert await ensure_admin(s) == (DEFAULT_ADMIN_EMAIL, None)
    assert not caplog.records
    # Another password for an existing admin is not applied, and says so.
    with caplog.at_level(logging.WARNING, logger="control.admin"):
        assert await ensure_admin(s.with_overrides(admin_password="other-password-2")) == (DEFAULT_ADMIN_EMAIL, None)
    assert any("junction admin reset-password admin@localhost" in r.getMessage() for r in caplog.records)
    assert await check_password("chosen-password-1", await _hash_of(s, DEFAULT_ADMIN_EMAIL))
    # Neither set: any existing global admin will do.
    email, password = await ensure_admin(own_schema.with_overrides(admin_email="", admin_password=""))
    assert email in ("ops@example.com", DEFAULT_ADMIN_EMAIL) and password is None


async def test_admin_reset_password(control: Any) -> None:
    from control.admin import create_admin

    email = f"lost{uuid.uuid4().hex[:6]}@x.io"
    await create_admin(control.settings, email, "forgotten-password-1")
    rc, data, err = await run_cli(control, "admin", "reset-password", email, "--password", "remembered-pw-2")
    assert rc == 0 and data["email"] == email and "generated_password" not in data, err
    assert data["version"] == 2
    await control.login(email, "remembered-pw-2")
    r = await control.call("POST", "/api/v1/auth/login", json_body={"email": email, "password": "forgotten-password-1"})
    assert r.status == 401
    rc, data, err = await run_cli(control, "admin", "reset-password", email.upper())
    assert rc == 0 and data["generated_password"], err
    await control.login(email, data["generated_password"])
    rows = await control.pool.fetch(
        "SELECT actor_email, action, before::text AS b, after::text AS a FROM audit_log"
        " WHERE resource_id = $1 AND action = 'update' ORDER BY id", data["id"])
    assert [r["actor_email"] for r in rows] == ["system", "system"]
    assert all('"password_changed": true' in r["a"] for r in rows)
    assert not any("remembered-pw-2" in r["a"] + r["b"] or "password_hash" in r["a"] for r in rows)
    rc, data, err = await run_cli(control, "admin", "reset-password", f"nobody{uuid.uuid4().hex[:6]}@x.io")
    assert rc == 1 and json.loads(err)["code"] == "not_found", err
    rc, data, err = await run_cli(control, "admin", "reset-password", email, "--password", "short")
    assert rc == 1 and json.loads(err)["fields"][0]["field"] == "password", err


async def test_admin_reset_password_of_an_email_with_accounts_in_several_organisations(control: Any) -> None:
    """One e-mail may have an account in each organisation: the operator names which, and an ambiguous
    e-mail changes nothing. A global admin's account is the one an e-mail alone names (recovery must not be
    blocked by an org admin making an account of the same e-mail)."""
    a, b = (await control.new_org("rpa"))["slug"], (await control.new_org("rpb"))["slug"]
    email = f"twice{uuid.uuid4().hex[:6]}@x.io"
    for org, password in ((a, "password-in-a"), (b, "password-in-b")):
        r = await control.call("POST", f"/api/v1/orgs/{org}/users", control.admin_token,
                               {"email": email, "password": password, "role": "org_viewer"})
        assert r.status == 201, r.body
    rc, data, err = await run_cli(control, "admin", "reset-password", email, "--password", "password-new-1")
    assert rc == 1 and json.loads(err)["code"] == "ambiguous_email" and sorted(json.loads(err)["orgs"]) == sorted([a, b]), err
    await control.login(email, "password-in-a")  # nothing changed
    await control.login(email, "password-in-b")
    rc, data, err = await run_cli(control, "admin", "reset-password", email, "--org", b, "--password", "password-new-1")
    assert rc == 0 and data["org_id"] is not None and data["email"] == email, err
    r = await control.call("POST", "/api/v1/auth/login", json_body={"email": email, "password": "password-in-b"})
    assert r.status == 401
    await control.login(email, "password-in-a")  # the other account is untouched
    rc, data, err = await run_cli(control, "admin", "reset-password", email, "--org", "no-such-org", "--password", "password-new-2")
    assert rc == 1 and json.loads(err)["code"] == "not_found", err

    # A global admin's e-mail, taken by an account in an organisation: the e-mail alone names the global admin.
    from control.admin import create_admin
    admin = f"root{uuid.uuid4().hex[:6]}@x.io"
    await create_admin(control.settings, admin, "global-password-1")
    r = await control.call("POST", f"/api/v1/orgs/{a}/users", control.admin_token,
                           {"email": admin, "password": "password-in-a", "role": "org_admin"})
    assert r.status == 201, r.body
    rc, data, err = await run_cli(control, "admin", "reset-password", admin, "--password", "global-password-2")
    assert rc == 0 and data["org_id"] is None and data["role"] == "global_admin", err
    await control.login(admin, "global-password-2")
    await control.login(admin, "password-in-a")


async def test_an_empty_required_text_is_named_empty_not_counted(control: Any) -> None:
    org = (await control.new_org("empty"))["slug"]
    conn = await control.new_connector(org)
    r = await control.call("POST", f"/api/v1/orgs/{org}/apis", control.admin_token,
                           {"name": "e", "methods": ["GET"], "path": "", "connector": conn["id"]})
    assert r.status == 422 and {"field": "path", "message": "must not be empty"} in r.body["fields"], r.body
