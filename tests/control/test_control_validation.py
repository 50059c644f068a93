"""Every bad input gets a clear error: status, code, and the field at fault."""
from __future__ import annotations

import asyncio
import io
import time
import uuid
from typing import Any

import jwt


def _fields(body: dict[str, Any]) -> set[str]:
    return {f["field"] for f in body.get("fields", [])}


async def _setup(control: Any) -> tuple[str, dict[str, Any], dict[str, Any]]:
    org = await control.new_org("val")
    connector = await control.new_connector(org["slug"])
    api = await control.new_api(org["slug"], connector["id"], path="/orders/{id}", methods=["GET", "POST"])
    return org["slug"], connector, api


def _api_body(connector: str, **over: Any) -> dict[str, Any]:
    return {"name": f"a-{uuid.uuid4().hex[:8]}", "methods": ["GET"], "path": f"/x{uuid.uuid4().hex[:6]}",
            "connector": connector, **over}


async def test_malformed_json_is_400(control: Any) -> None:
    r = await control.call("POST", "/api/v1/orgs", control.admin_token, data=b"{not json",
                           headers={"Content-Type": "application/json"})
    assert r.status == 400 and r.body["code"] == "malformed_body"
    assert r.body["fields"][0]["field"] == "(body)" and "not valid JSON" in r.body["fields"][0]["message"]
    assert r.body["request_id"]
    r = await control.call("POST", "/api/v1/orgs", control.admin_token, data=b"  ",
                           headers={"Content-Type": "application/json"})
    assert r.status == 400 and r.body["fields"] == [{"field": "(body)", "message": "is empty; a JSON object is expected"}]


async def test_body_over_limit_is_413(control: Any) -> None:
    big = b'{"slug": "' + b"a" * (1024 * 1024 + 10) + b'"}'
    r = await control.call("POST", "/api/v1/orgs", control.admin_token, data=io.BytesIO(big),
                           headers={"Content-Type": "application/json"})
    assert r.status == 413 and r.body["code"] == "body_too_large" and r.body["fields"][0]["field"] == "(body)", r.body


async def test_api_field_errors(control: Any) -> None:
    slug, connector, _ = await _setup(control)
    url = f"/api/v1/orgs/{slug}/apis"
    cases = [
        (_api_body(connector["id"], path="/orders/{id"), "path", "invalid_path"),
        (_api_body(connector["id"], path="no-slash"), "path", "invalid_path"),
        (_api_body(str(uuid.uuid4())), "connector", "unknown_connector"),
        (_api_body("not-an-id"), "connector", "unknown_connector"),
        (_api_body(connector["id"], timeout_ms=0), "timeout_ms", "invalid_input"),
        (_api_body(connector["id"], timeout_ms=control.settings.max_timeout_ms + 1), "timeout_ms", "invalid_input"),
        (_api_body(connector["id"], bogus=1), "bogus", "invalid_input"),
        (_api_body(connector["id"], methods="GET"), "methods", "invalid_input"),
        (_api_body(connector["id"], methods=["FETCH"]), "methods[0]", "invalid_input"),
        (_api_body(connector["id"], timeout_ms="5"), "timeout_ms", "invalid_input"),
        (_api_body(connector["id"], name="bad\x00name"), "name", "invalid_input"),
        ({"name": "x", "path": "/x", "connector": connector["id"]}, "methods", "invalid_input"),  # rest needs methods
        # Lists longer than their maxItems (checked nowhere before: 1,001 ids answered 1,001 field errors).
        (_api_body(connector["id"], auth={"mode": "api_key", "consumers": [str(uuid.uuid4()) for _ in range(1001)]}),
         "auth.consumers", "invalid_input"),
        (_api_body(connector["id"], cache={"ttl_s": 60, "vary": [f"X-H{i}" for i in range(21)]}), "cache.vary",
         "invalid_input"),
        (_api_body(connector["id"], tags=[f"t{i}" for i in range(21)]), "tags", "invalid_input"),
    ]
    for body, field, code in cases:
        r = await control.call("POST", url, control.admin_token, body)
        assert r.status == 422, (body, r.body)
        assert r.body["code"] == code, (body, r.body)
        assert field in _fields(r.body), (body, r.body)


async def test_route_clash_is_409_with_field(control: Any) -> None:
    slug, connector, _ = await _setup(control)
    r = await control.call("POST", f"/api/v1/orgs/{slug}/apis", control.admin_token,
                           _api_body(connector["id"], path="/orders/{order}", methods=["POST"]))
    assert r.status == 409 and r.body["code"] == "route_clash" and _fields(r.body) == {"path"}
    # Same shape, other method: no clash.
    r = await control.call("POST", f"/api/v1/orgs/{slug}/apis", control.admin_token,
                           _api_body(connector["id"], path="/orders/{order}", methods=["DELETE"]))
    assert r.status == 201, r.body


async def test_name_clash_is_409(control: Any) -> None:
    slug, connector, api = await _setup(control)
    r = await control.call("POST", f"/api/v1/orgs/{slug}/apis", control.admin_token,
                           _api_body(connector["id"], name=api["name"]))
    assert r.status == 409 and r.body["code"] == "name_taken"
    r = await control.call("POST", "/api/v1/orgs", control.admin_token, {"slug": slug, "name": "again"})
    assert r.status == 409 and r.body["code"] == "slug_taken"


async def test_bad_slug_and_url(control: Any) -> None:
    for slug in ("UPPER", "a", "-x", "has space", str(uuid.uuid4()), "healthz", "readyz", "metrics"):
        r = await control.call("POST", "/api/v1/orgs", control.admin_token, {"slug": slug, "name": "n"})
        assert r.status == 422 and "slug" in _fields(r.body), (slug, r.body)
    org = await control.new_org("url")
    for url in ("ftp://example.com/x", "example.com", "http://", "javascript:alert(1)"):
        r = await control.call("POST", f"/api/v1/orgs/{org['slug']}/connectors", control.admin_token,
                               {"name": "c", "target": {"protocol": "rest", "url": url}})
        assert r.status == 422 and "target.url" in _fields(r.body), (url, r.body)
    r = await control.call("POST", f"/api/v1/orgs/{org['slug']}/connectors", control.admin_token,
                           {"name": "c", "target": {"protocol": "rest", "url": "http://x", "method": "FETCH"}})
    assert r.status == 422 and "target.method" in _fields(r.body)


async def test_other_org_is_404(control: Any) -> None:
    slug_a, conn_a, api_a = await _setup(control)
    slug_b, _, _ = await _setup(control)
    _, admin_b = await control.new_user(slug_b, "org_admin")
    for method, path in [("GET", f"/api/v1/orgs/{slug_a}"), ("GET", f"/api/v1/orgs/{slug_a}/apis"),
                         ("GET", f"/api/v1/orgs/{slug_b}/apis/{api_a['id']}"),
                         ("DELETE", f"/api/v1/orgs/{slug_b}/connectors/{conn_a['id']}"),
                         ("GET", f"/api/v1/orgs/{slug_a}/apis/{api_a['id']}/versions")]:
        r = await control.call(method, path, admin_b)
        assert r.status == 404, (method, path, r.body)


async def test_etag_and_if_match(control: Any) -> None:
    slug, _, api = await _setup(control)
    url = f"/api/v1/orgs/{slug}/apis/{api['id']}"
    r = await control.call("GET", url, control.admin_token)
    assert r.headers["ETag"] == 'W/"1"'
    r = await control.call("PATCH", url, control.admin_token, {"timeout_ms": 1234}, headers={"If-Match": 'W/"7"'})
    assert r.status == 412 and r.body["code"] == "precondition_failed"
    r = await control.call("PATCH", url, control.admin_token, {"timeout_ms": 1234}, headers={"If-Match": 'W/"1"'})
    assert r.status == 200 and r.body["version"] == 2 and r.headers["ETag"] == 'W/"2"'
    # The same stale tag now loses: the classic lost-update guard.
    r = await control.call("PATCH", url, control.admin_token, {"timeout_ms": 99}, headers={"If-Match": 'W/"1"'})
    assert r.status == 412


async def test_connector_in_use_is_409(control: Any) -> None:
    slug, connector, _ = await _setup(control)
    r = await control.call("DELETE", f"/api/v1/orgs/{slug}/connectors/{connector['id']}", control.admin_token)
    assert r.status == 409 and r.body["code"] == "connector_in_use"


async def test_unauthenticated_is_401(control: Any) -> None:
    r = await control.call("GET", "/api/v1/orgs")
    assert r.status == 401
    r = await control.call("GET", "/api/v1/orgs", "garbage")
    assert r.status == 401 and r.body["code"] == "invalid_token"
    expired = jwt.encode({"sub": str(uuid.uuid4()), "exp": int(time.time()) - 10}, control.settings.jwt_secret,
                         algorithm="HS256")
    r = await control.call("GET", "/api/v1/orgs", expired)
    assert r.status == 401 and r.body["code"] == "token_expired"
    r = await control.call("POST", "/api/v1/auth/login", json_body={"email": "root@example.com", "password": "nope"})
    assert r.status == 401 and r.body["code"] == "invalid_credentials"


async def test_wrong_role_is_403(control: Any) -> None:
    slug, connector, api = await _setup(control)
    _, viewer = await control.new_user(slug, "org_viewer")
    _, admin = await control.new_user(slug, "org_admin")
    r = await control.call("PATCH", f"/api/v1/orgs/{slug}/apis/{api['id']}", viewer, {"timeout_ms": 10})
    assert r.status == 403 and r.body["code"] == "forbidden"
    r = await control.call("GET", f"/api/v1/orgs/{slug}/apis/{api['id']}", viewer)
    assert r.status == 200
    r = await control.call("POST", "/api/v1/orgs", admin, {"slug": f"x-{uuid.uuid4().hex[:6]}", "name": "x"})
    assert r.status == 403
    r = await control.call("PATCH", f"/api/v1/orgs/{slug}", admin, {"enabled": False})
    assert r.status == 403


async def test_delete_then_404_and_delete_event(control: Any) -> None:
    slug, _, api = await _setup(control)
    r = await control.call("DELETE", f"/api/v1/orgs/{slug}/apis/{api['id']}", control.admin_token)
    assert r.status == 204
    r = await control.call("GET", f"/api/v1/orgs/{slug}/apis/{api['id']}", control.admin_token)
    assert r.status == 404
    await control.watch.wait_for(lambda: control.watch.latest.get(f"api/{api['id']}", {}).get("op") == "delete")


async def test_org_delete_emits_deletes_for_children(control: Any) -> None:
    slug, connector, api = await _setup(control)
    org_id = (await control.call("GET", f"/api/v1/orgs/{slug}", control.admin_token)).body["id"]
    r = await control.call("DELETE", f"/api/v1/orgs/{slug}", control.admin_token)
    assert r.status == 204
    keys = [f"api/{api['id']}", f"connector/{connector['id']}", f"org/{org_id}"]
    await control.watch.wait_for(lambda: all(control.watch.latest.get(k, {}).get("op") == "delete" for k in keys))


async def test_diff_and_versions(control: Any) -> None:
    slug, _, api = await _setup(control)
    url = f"/api/v1/orgs/{slug}/apis/{api['id']}"
    await control.call("PATCH", url, control.admin_token, {"timeout_ms": 777, "methods": ["GET"]})
    r = await control.call("GET", url + "/versions/1/diff/2", control.admin_token)
    assert r.status == 200
    changes = {c["field"]: (c["before"], c["after"]) for c in r.body["changes"]}
    assert changes == {"timeout_ms": (control.settings.default_timeout_ms, 777), "methods": (["GET", "POST"], ["GET"])}
    r2 = await control.call("GET", url + "/diff?from=1&to=2", control.admin_token)
    assert r2.body["changes"] == r.body["changes"]
    r = await control.call("GET", url + "/versions/9", control.admin_token)
    assert r.status == 404


SCRIPT = '''
def transform_request(request, ctx):
    ctx.log("seen " + request.method)
    request.headers["x-added"] = ctx.settings.get("tag", "none")
    request.body = b"changed"
    return request
'''


async def test_connector_script_checked_and_tried(control: Any) -> None:
    org = await control.new_org("scr")
    s = org["slug"]
    r = await control.call("POST", f"/api/v1/orgs/{s}/connectors", control.admin_token,
                           {"name": "bad", "target": {"protocol": "rest", "url": "http://x"}, "script": "def nope(:\n"})
    assert r.status == 422 and "script" in _fields(r.body), r.body
    connector = await control.new_connector(s, script=SCRIPT, settings={"tag": "t1"})
    r = await control.call("POST", f"/api/v1/orgs/{s}/connectors/{connector['id']}/test", control.admin_token,
                           {"request": {"method": "POST", "path": "/a", "headers": {"h": "v"}, "body": "hi"}})
    assert r.status == 200, r.body
    assert "request" in r.body, r.body
    assert r.body["request"]["body"] == "changed"
    assert ["x-added", "t1"] in [list(h) for h in r.body["request"]["headers"]]
    assert any("seen POST" in line for line in r.body["logs"])
    boom = "def transform_request(request, ctx):\n    x = 1\n    return 1 // 0\n"
    r = await control.call("PUT", f"/api/v1/orgs/{s}/connectors/{connector['id']}", control.admin_token,
                           {"name": connector["name"], "target": connector["target"], "script": boom})
    assert r.status == 200 and r.body["version"] == 2
    r = await control.call("POST", f"/api/v1/orgs/{s}/connectors/{connector['id']}/test", control.admin_token,
                           {"request": {"method": "GET"}})
    assert r.status == 200 and r.body["error"]["line"] == 3, r.body


async def test_migrations_idempotent_and_concurrent(control: Any) -> None:
    from core.db import make_pool
    from control.migrate import apply_migrations

    pool = await make_pool(control.settings, max_size=4)
    try:
        results = await asyncio.gather(*(apply_migrations(pool) for _ in range(3)))
    finally:
        await pool.close()
    assert results == [[], [], []]


async def test_ensure_admin(control: Any) -> None:
    from control.admin import ensure_admin

    email = f"boot{uuid.uuid4().hex[:6]}@x.io"
    s = control.settings.with_overrides(admin_email=email, admin_password="")
    first = await ensure_admin(s)
    assert first[0] == email and first[1]
    assert await ensure_admin(s) == (email, None)
    await control.login(email, first[1])
    # No email configured and an admin exists: nothing new is created.
    existing, password = await ensure_admin(control.settings.with_overrides(admin_email=""))
    assert password is None and existing


async def test_any_method_api_and_connector(control: Any) -> None:
    org = await control.new_org("any")
    connector = await control.new_connector(org["slug"], target={"protocol": "rest", "url": "http://x/echo", "method": "*"})
    await control.new_api(org["slug"], connector["id"], methods=["*"], path="/echo")
    r = await control.call("POST", f"/api/v1/orgs/{org['slug']}/apis", control.admin_token,
                           _api_body(connector["id"], path="/echo", methods=["PATCH"]))
    assert r.status == 409 and r.body["code"] == "route_clash"
