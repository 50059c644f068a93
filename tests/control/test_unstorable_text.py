"""Attack: JSON may escape a lone UTF-16 surrogate (``"\\ud800"``), which is no character. PostgreSQL cannot
store it and UTF-8 cannot encode it; anywhere a body carries text, it is a 422 naming the field, and nothing
is written, never a 500."""
from __future__ import annotations

import uuid
from typing import Any

import pytest

LONE = ["\ud800", "a\udfffb", "x\udc00"]


def _bodies(org: str, connector: str) -> list[tuple[str, str, dict[str, Any], str]]:
    target = {"protocol": "rest", "url": "http://127.0.0.1:9/x", "method": "GET"}
    c, u = f"/api/v1/orgs/{org}/connectors", f"/api/v1/orgs/{org}/users"
    return [
        ("POST", c, {"name": "s1", "target": target, "settings": {"k": "§"}}, "settings.k"),
        ("POST", c, {"name": "s2", "target": target, "settings": {"n": {"deep": ["§"]}}}, "settings.n.deep[0]"),
        ("POST", c, {"name": "s3", "target": {**target, "headers": {"X-A": "§"}}}, "target.headers.X-A"),
        ("POST", c, {"name": "s4", "target": {**target, "url": "http://127.0.0.1:9/§"}}, "target.url"),
        ("POST", c, {"name": "s§", "target": target}, "name"),
        ("PATCH", f"/api/v1/orgs/{org}", {"name": "§"}, "name"),
        ("POST", u, {"email": "x§@example.com", "password": "password-123", "role": "org_viewer"}, "email"),
        ("POST", u, {"email": "y@example.com", "password": "pass§word-123", "role": "org_viewer"}, "password"),
        ("POST", f"/api/v1/orgs/{org}/consumers", {"name": "c§"}, "name"),
        ("POST", f"/api/v1/orgs/{org}/apis", {"name": "a", "methods": ["GET"], "path": "/p/§", "connector": connector},
         "path"),
    ]


def _with(value: Any, text: str) -> Any:
    """``value`` with ``text`` in place of each ``§``."""
    if isinstance(value, str):
        return value.replace("§", text)
    if isinstance(value, dict):
        return {_with(k, text): _with(v, text) for k, v in value.items()}
    if isinstance(value, list):
        return [_with(v, text) for v in value]
    return value


@pytest.mark.parametrize("text", LONE)
async def test_a_lone_surrogate_is_422_naming_the_field(control: Any, text: str) -> None:
    org = (await control.new_org("sur"))["slug"]
    connector = await control.new_connector(org)
    for method, path, body, field in _bodies(org, connector["id"]):
        r = await control.call(method, path, control.admin_token, _with(body, text))
        assert r.status == 422, (path, body, r.status, r.body)
        assert r.body["code"] == "invalid_input" and field in [f["field"] for f in r.body["fields"]], (field, r.body)
    # Nothing was half-written: the organisation is as it was, and it holds only what the test made.
    r = await control.call("GET", f"/api/v1/orgs/{org}", control.admin_token)
    assert r.body["name"] == org
    for kind, expected in (("connectors", 1), ("users", 0), ("consumers", 0), ("apis", 0)):
        r = await control.call("GET", f"/api/v1/orgs/{org}/{kind}", control.admin_token)
        assert len(r.body["items"]) == expected, (kind, r.body)


async def test_a_lone_surrogate_in_a_key_is_422(control: Any) -> None:
    org = (await control.new_org("surk"))["slug"]
    r = await control.call("POST", f"/api/v1/orgs/{org}/connectors", control.admin_token,
                           {"name": f"k-{uuid.uuid4().hex[:6]}", "target": {"protocol": "rest", "url": "http://127.0.0.1:9/x"},
                            "settings": {"\ud800": 1}})
    assert r.status == 422 and r.body["fields"][0]["field"] == "settings", r.body


async def test_a_paired_surrogate_is_a_character_and_is_kept(control: Any) -> None:
    org = (await control.new_org("surp"))["slug"]
    c = await control.new_connector(org, settings={"emoji": "\U0001f600"})
    r = await control.call("GET", f"/api/v1/orgs/{org}/connectors/{c['id']}", control.admin_token)
    assert r.body["settings"] == {"emoji": "\U0001f600"}
