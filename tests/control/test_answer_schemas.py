"""Every field a resource's answer carries is documented in the OpenAPI document, in a schema the value
meets: the SDKs' types come from it, so a field missing there is a field their users cannot see.

Resources are made with every field their bodies take, then their answers (create, get, list) are checked
against the document's schema closed (no property it does not name). And statically: every field a body
takes is in the answer's schema, but the write-only ones (passwords, secrets); and the Python SDK's types
(hand-written TypedDicts) name exactly the documented fields."""
from __future__ import annotations

import copy
import typing
import uuid
from typing import Any

import jsonschema_rs
import pytest

from control.openapi import ECHOED_FIELDS
from junction import sdk
from tests.soap_servers import WSDL_DIR

WRITE_ONLY = {"User": {"password"}, "AlertRule": {"webhook_secret"}}  # and auth.secret of an API, below


def _closed(node: Any) -> Any:
    """The schema with every object that names its properties closed to others."""
    if isinstance(node, dict):
        out = {k: _closed(v) for k, v in node.items()}
        if isinstance(node.get("properties"), dict) and "additionalProperties" not in node:
            out["additionalProperties"] = False
        return out
    if isinstance(node, list):
        return [_closed(v) for v in node]
    return node


def _validator(doc: dict[str, Any], name: str) -> Any:
    return jsonschema_rs.validator_for({"$ref": f"#/components/schemas/{name}",
                                        "components": _closed(copy.deepcopy(doc["components"]))})


def _problems(validator: Any, value: Any) -> list[str]:
    return [f"{'/'.join(map(str, e.instance_path))}: {e.message}" for e in validator.iter_errors(value)]


async def _document(control: Any) -> dict[str, Any]:
    r = await control.call("GET", "/api/v1/openapi.json")
    assert r.status == 200
    return r.body


async def test_every_field_a_body_takes_is_in_the_answers_schema(control: Any) -> None:
    schemas = (await _document(control))["components"]["schemas"]
    for resource, bodies, _ in ECHOED_FIELDS:
        taken = {f for b in bodies for f in schemas[b]["properties"]}
        missing = taken - set(schemas[resource]["properties"]) - WRITE_ONLY.get(resource, set())
        assert not missing, f"{resource}: the answer's schema lacks {sorted(missing)}"
        leaked = set(schemas[resource]["properties"]) & WRITE_ONLY.get(resource, set())
        assert not leaked, f"{resource}: a write-only field is documented in the answer: {sorted(leaked)}"
    assert "secret" not in schemas["Api"]["properties"]["auth"]["properties"], "an API's jwt secret is write-only"


async def test_the_python_sdks_types_name_every_documented_field(control: Any) -> None:
    schemas = (await _document(control))["components"]["schemas"]
    for name in ("Org", "User", "Connector", "Api", "Consumer", "ApiKey", "NewApiKey", "Token"):
        typed, documented = set(typing.get_type_hints(getattr(sdk, name))), set(schemas[name]["properties"])
        assert typed == documented, f"junction.sdk.{name}: lacks {sorted(documented - typed)}, more {sorted(typed - documented)}"


@pytest.mark.skipif(not WSDL_DIR.is_dir(), reason=f"the real-world WSDLs are not at {WSDL_DIR}")
async def test_answers_with_every_field_set_carry_only_documented_fields(control: Any) -> None:
    doc = await _document(control)
    org = (await control.new_org("answers"))["slug"]
    admin = control.admin_token
    base = f"/api/v1/orgs/{org}"
    answers: dict[str, list[Any]] = {name: [] for name in ("Org", "User", "Connector", "Api", "Consumer", "AlertRule")}

    async def made(path: str, body: dict[str, Any], kind: str) -> dict[str, Any]:
        r = await control.call("POST", base + path, admin, body)
        assert r.status == 201, r.body
        answers[kind].append(r.body)
        return r.body

    r = await control.call("PATCH", base, admin, {"rate_limit": {"requests": 100, "per_seconds": 60, "by": "ip"},
                                                  "quotas": {"apis": 50}})
    assert r.status == 200, r.body
    answers["Org"].append(r.body)
    await made("/users", {"email": f"u{uuid.uuid4().hex[:8]}@example.com", "password": "password-123",
                          "role": "org_viewer"}, "User")
    connector = await made("/connectors", {
        "name": "every-field", "description": "all of them", "tags": ["a", "b"],
        "target": {"protocol": "rest", "url": "http://127.0.0.1:9/x/{id}", "method": "GET"},
        "script": "def transform_request(request, ctx):\n    return request\n",
        "settings": {"token": "s3cret", "region": "eu"}, "secret_fields": ["token"],
        "retry": {"attempts": 3}}, "Connector")
    await made("/apis", {
        "name": "rest-every-field", "description": "all of them", "tags": ["a"], "methods": ["GET", "POST"],
        "path": "/every/{id}", "connector": connector["id"], "timeout_ms": 4000, "enabled": True,
        "auth": {"mode": "jwt", "algorithms": ["HS256"], "secret": "a-jwt-secret-of-32-bytes-or-more!!"},
        "rate_limit": {"requests": 10, "per_seconds": 1, "by": "consumer"},
        "cors": {"origins": ["https://app.example.com"], "credentials": True, "max_age_s": 600},
        "ip_restriction": {"allow": ["10.0.0.0/8"], "deny": ["10.0.0.1"]},
        "cache": {"ttl_s": 30}, "async_fallback": True, "idempotency_ttl_s": 3600}, "Api")
    await made("/apis", {
        "name": "soap-code-first", "protocol": "soap", "path": "/calc", "connector": connector["id"],
        "namespace": "urn:example:calc",
        "operations": [{"name": "Add", "input": [{"name": "a", "type": "int"}, {"name": "b", "type": "int"}],
                        "output": [{"name": "sum", "type": "int"}]}]}, "Api")
    await made("/apis", {"name": "soap-contract-first", "protocol": "soap", "path": "/calc-wsdl",
                         "connector": connector["id"], "wsdl": (WSDL_DIR / "calculator.wsdl").read_text()}, "Api")
    await made("/consumers", {"name": "partner", "tags": ["gold"], "enabled": True,
                              "rate_limit": {"requests": 1000, "per_seconds": 60}}, "Consumer")
    await made("/alert-rules", {
        "name": "errors", "description": "too many", "tags": ["ops"], "metric": "error_rate", "comparison": ">",
        "threshold": 0.5, "window": "1m", "duration": "20s", "webhook_secret": "a-webhook-secret-of-some-length",
        "channels": {"webhooks": ["https://hooks.example.com/x"]}}, "AlertRule")
    for path, kind in (("/connectors", "Connector"), ("/apis", "Api"), ("/consumers", "Consumer"),
                       ("/alert-rules", "AlertRule"), ("/users", "User")):
        r = await control.call("GET", base + path, admin)
        assert r.status == 200, r.body
        answers[kind] += r.body["items"]
        for item in r.body["items"][:3]:
            one = await control.call("GET", f"{base}{path}/{item['id']}", admin)
            assert one.status == 200, one.body
            answers[kind].append(one.body)

    problems = []
    for kind, bodies in answers.items():
        validator = _validator(doc, kind)
        for body in bodies:
            problems += [f"{kind} {body.get('name') or body.get('email') or body.get('slug')}: {p}"
                         for p in _problems(validator, body)]
    assert not problems, "\n".join(problems)
    # What the test means to look at is there: the fields the answers' schemas used to lack.
    api = next(a for a in answers["Api"] if a["name"] == "rest-every-field")
    assert api["cors"]["origins"] == ["https://app.example.com"] and api["ip_restriction"]["deny"] == ["10.0.0.1"]
    assert answers["Consumer"][0]["rate_limit"] == {"requests": 1000, "per_seconds": 60}
    assert "secret" not in api["auth"] and api["auth"]["secret_set"] is True
    assert "webhook_secret" not in answers["AlertRule"][0]
    assert answers["Connector"][0]["settings"]["token"] == "********"
