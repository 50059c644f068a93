"""Property tests for the control plane, each named after its seed property."""
from __future__ import annotations

import uuid
from typing import Any

import asyncpg
import pytest
from hypothesis import HealthCheck, given, settings as hsettings, strategies as st

from control.state import STATE
from junction.sdk import JunctionClient

PROPS = hsettings(max_examples=12, deadline=None, database=None,
                  suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])

METHODS = ["GET", "POST", "PUT", "PATCH", "DELETE"]
_literal = st.from_regex(r"[a-z][a-z0-9_-]{0,8}", fullmatch=True)


@st.composite
def api_specs(draw: Any) -> dict[str, Any]:
    segments = draw(st.lists(st.one_of(_literal, st.just(None)), min_size=0, max_size=4))
    parts, n = [], 0
    for seg in segments:
        if seg is None:
            parts.append(f"{{p{n}}}")
            n += 1
        else:
            parts.append(seg)
    return {
        "name": draw(st.from_regex(r"[A-Za-z0-9][A-Za-z0-9._-]{0,20}", fullmatch=True)),
        "methods": draw(st.lists(st.sampled_from(METHODS), min_size=1, max_size=5, unique=True)),
        "path": "/" + "/".join(["v1", *parts]),
        "timeout_ms": draw(st.integers(1, 120_000)),
        "auth": {"mode": draw(st.sampled_from(["none", "api_key", "basic"]))},
        "enabled": draw(st.booleans()),
    }


@PROPS
@given(spec=api_specs())
async def test_property_api_driven_configuration(control: Any, spec: dict[str, Any]) -> None:
    """Any valid API created through the API is emitted, as configured, on the config topic."""
    org = await control.new_org("adc")
    connector = await control.new_connector(org["slug"])
    r = await control.call("POST", f"/api/v1/orgs/{org['slug']}/apis", control.admin_token,
                           {**spec, "connector": connector["id"]})
    assert r.status == 201, r.body
    api = r.body
    await control.watch.wait_for(lambda: control.watch.document("api", api["id"]) is not None
                                 and control.watch.document("org", org["id"]) is not None, 5)
    doc = control.watch.document("api", api["id"])
    for key, value in spec.items():
        assert doc[key] == value, key
    assert doc["org"] == org["slug"] and doc["org_id"] == org["id"] and doc["connector"] == connector["id"]
    assert doc["version"] == 1 and doc["protocol"] == "rest"
    assert control.watch.document("connector", connector["id"])["target"] == connector["target"]


@PROPS
@given(ops=st.lists(st.sampled_from(["get", "put", "patch", "delete", "versions", "rollback", "list", "audit"]),
                    min_size=1, max_size=6),
       kind=st.sampled_from(["apis", "connectors"]), via_own_slug=st.booleans())
async def test_property_organisation_isolation(control: Any, ops: list[str], kind: str, via_own_slug: bool) -> None:
    """No user of one organisation can read or change another organisation's resources."""
    a, b = await control.new_org("iso"), await control.new_org("iso")
    conn_b = await control.new_connector(b["slug"])
    api_b = await control.new_api(b["slug"], conn_b["id"])
    target = conn_b if kind == "connectors" else api_b
    _, token_a = await control.new_user(a["slug"], "org_admin")
    org_ref = a["slug"] if via_own_slug else b["slug"]
    base = f"/api/v1/orgs/{org_ref}/{kind}/{target['id']}"
    for op in ops:
        if op == "list":
            r = await control.call("GET", f"/api/v1/orgs/{org_ref}/{kind}", token_a)
            assert r.status == (200 if via_own_slug else 404)
            if r.status == 200:
                assert target["id"] not in {i["id"] for i in r.body["items"]}
            continue
        if op == "audit":
            r = await control.call("GET", f"/api/v1/audit?org={b['slug']}", token_a)
            assert r.status == 404 and r.body["code"] == "org_not_found"  # as any other route of another org's
            r = await control.call("GET", "/api/v1/audit", token_a)
            assert all(e["org_id"] == a["id"] for e in r.body["items"])
            continue
        method, suffix, body = {
            "get": ("GET", "", None), "put": ("PUT", "", {"name": "x"}), "patch": ("PATCH", "", {"name": "x"}),
            "delete": ("DELETE", "", None), "versions": ("GET", "/versions", None),
            "rollback": ("POST", "/rollback", {"version": 1}),
        }[op]
        r = await control.call(method, base + suffix, token_a, body)
        # Either the org or the resource is unknown to this caller; invalid
        # bodies may be refused first, but never with the resource's data.
        assert r.status in (404, 422), (op, r.status, r.body)
        assert set(r.body) <= {"code", "message", "fields", "request_id"}, r.body  # an error, no data
    r = await control.call("GET", f"/api/v1/orgs/{b['slug']}/{kind}/{target['id']}", control.admin_token)
    assert r.status == 200 and r.body["version"] == 1


@PROPS
@given(changes=st.lists(st.fixed_dictionaries({}, optional={
    "timeout_ms": st.integers(1, 120_000),
    "methods": st.lists(st.sampled_from(METHODS), min_size=1, max_size=3, unique=True),
    "enabled": st.booleans(),
    "auth": st.sampled_from([{"mode": "none"}, {"mode": "api_key"}]),
}), min_size=1, max_size=5), pick=st.integers(0, 100))
async def test_property_configuration_consistency(control: Any, changes: list[dict[str, Any]], pick: int) -> None:
    """Versions are monotonic, rollback restores exactly an old content, and the
    last config event for the resource equals its latest version."""
    org = await control.new_org("cc")
    connector = await control.new_connector(org["slug"])
    api = await control.new_api(org["slug"], connector["id"])
    url = f"/api/v1/orgs/{org['slug']}/apis/{api['id']}"
    version = 1
    for change in changes:
        r = await control.call("PATCH", url, control.admin_token, change)
        assert r.status == 200, r.body
        assert r.body["version"] in (version, version + 1)  # unchanged content keeps the version
        version = r.body["version"]
    versions = (await control.call("GET", url + "/versions", control.admin_token)).body["items"]
    assert [v["version"] for v in versions] == list(range(1, version + 1))
    k = 1 + pick % version
    r = await control.call("POST", url + "/rollback", control.admin_token, {"version": k})
    # A rollback to the content already there writes no version, as a PATCH that changes nothing.
    same = versions[k - 1]["content"] == versions[version - 1]["content"]
    latest = version if same else version + 1
    assert r.status == 200 and r.body["version"] == latest
    restored = (await control.call("GET", f"{url}/versions/{latest}", control.admin_token)).body["content"]
    assert restored == versions[k - 1]["content"]
    current = r.body
    await control.watch.wait_for(
        lambda: (control.watch.document("api", api["id"]) or {}).get("version") == latest, 5)
    doc = control.watch.document("api", api["id"])
    for key in ("name", "methods", "path", "timeout_ms", "auth", "enabled", "connector"):
        assert doc[key] == current[key] == restored[key]


@PROPS
@given(actions=st.lists(st.sampled_from(["patch_api", "patch_connector", "create_user", "patch_user", "patch_org"]),
                        min_size=1, max_size=4),
       attack=st.sampled_from(["UPDATE audit_log SET action = 'x'", "DELETE FROM audit_log",
                               "TRUNCATE audit_log", "UPDATE audit_log SET before = NULL WHERE id > 0"]))
async def test_property_audit_trail_immutability(control: Any, actions: list[str], attack: str) -> None:
    """Every change has exactly one audit row with before/after and its request
    id; the table refuses UPDATE, DELETE and TRUNCATE even from the app's own pool."""
    org = await control.new_org("aud")
    connector = await control.new_connector(org["slug"])
    api = await control.new_api(org["slug"], connector["id"])
    user, _ = await control.new_user(org["slug"], "org_viewer")
    base = f"/api/v1/orgs/{org['slug']}"
    for i, action in enumerate(actions):
        request_id = uuid.uuid4().hex
        path, body, rid, method = {
            "patch_api": (f"{base}/apis/{api['id']}", {"timeout_ms": 1000 + i}, api["id"], "PATCH"),
            "patch_connector": (f"{base}/connectors/{connector['id']}", {"settings": {"i": i}}, connector["id"], "PATCH"),
            "create_user": (f"{base}/users", {"email": f"n{uuid.uuid4().hex[:8]}@x.io", "password": "secret-pw-1",
                                              "role": "org_viewer"}, None, "POST"),
            "patch_user": (f"{base}/users/{user['id']}", {"password": "another-pw-2"}, user["id"], "PATCH"),
            "patch_org": (base, {"name": f"name {i}"}, org["id"], "PATCH"),
        }[action]
        r = await control.call(method, path, control.admin_token, body, headers={"X-Request-Id": request_id})
        assert r.status in (200, 201), r.body
        rid = rid or r.body["id"]
        rows = await control.pool.fetch("SELECT * FROM audit_log WHERE request_id = $1", request_id)
        assert len(rows) == 1
        row = rows[0]
        assert row["resource_id"] == rid and row["actor_email"] == "root@example.com"
        assert row["after"] is not None and (row["before"] is not None or action == "create_user")
        text = (row["before"] or "") + row["after"]
        assert "password_hash" not in text and "secret-pw-1" not in text and "another-pw-2" not in text
    count = await control.pool.fetchval("SELECT count(*) FROM audit_log")
    app_pool = control.app[STATE].pool  # the application's own connections
    async with app_pool.acquire() as conn:
        with pytest.raises(asyncpg.PostgresError, match="append-only"):
            await conn.execute(attack)
    assert await control.pool.fetchval("SELECT count(*) FROM audit_log") == count


ROLES = ["global_admin", "org_admin", "org_viewer"]


@PROPS
@given(role=st.sampled_from(ROLES), own=st.booleans(),
       op=st.sampled_from(["read_api", "list_apis", "write_api", "create_connector", "list_users", "create_user",
                           "read_audit", "list_orgs"]))
async def test_property_role_based_data_filtering(control: Any, role: str, own: bool, op: str) -> None:
    """global_admin sees all; org_admin all in its own org; org_viewer reads its own org only."""
    home, other = await control.new_org("rb"), await control.new_org("rb")
    target = home if own else other
    conn_t = await control.new_connector(target["slug"])
    api_t = await control.new_api(target["slug"], conn_t["id"])
    token = control.admin_token if role == "global_admin" else (await control.new_user(home["slug"], role))[1]
    sees = role == "global_admin" or own
    writes = role == "global_admin" or (own and role == "org_admin")
    t = target["slug"]
    if op == "read_api":
        r = await control.call("GET", f"/api/v1/orgs/{t}/apis/{api_t['id']}", token)
        assert r.status == (200 if sees else 404)
    elif op == "list_apis":
        r = await control.call("GET", f"/api/v1/orgs/{t}/apis", token)
        assert r.status == (200 if sees else 404)
        if sees:
            assert [i["id"] for i in r.body["items"]] == [api_t["id"]]
    elif op == "write_api":
        r = await control.call("PATCH", f"/api/v1/orgs/{t}/apis/{api_t['id']}", token, {"timeout_ms": 42})
        assert r.status == (200 if writes else 403 if sees else 404)
    elif op == "create_connector":
        r = await control.call("POST", f"/api/v1/orgs/{t}/connectors", token,
                               {"name": "new", "target": {"protocol": "rest", "url": "https://example.com"}})
        assert r.status == (201 if writes else 403 if sees else 404)
    elif op == "list_users":
        r = await control.call("GET", f"/api/v1/orgs/{t}/users", token)
        assert r.status == (200 if sees else 404)
    elif op == "create_user":
        r = await control.call("POST", f"/api/v1/orgs/{t}/users", token,
                               {"email": f"x{uuid.uuid4().hex[:8]}@x.io", "password": "password-1", "role": "org_viewer"})
        assert r.status == (201 if writes else 403 if sees else 404)
    elif op == "read_audit":
        r = await control.call("GET", f"/api/v1/audit?org={t}&resource_id={api_t['id']}", token)
        assert r.status == (200 if sees else 404) and (sees is False or len(r.body["items"]) == 1)
    elif op == "list_orgs":
        async with JunctionClient(control.base_url, token) as jc:  # every page: the run's other tests made many
            ids = {o["id"] for o in await jc.list_orgs()}
        assert home["id"] in ids and ((other["id"] in ids) == (role == "global_admin"))
        if role != "global_admin":
            assert ids == {home["id"]}


@PROPS
@given(org_count=st.integers(1, 3), actor=st.sampled_from(["global_admin", "org_admin"]))
async def test_property_administrative_capabilities(control: Any, org_count: int, actor: str) -> None:
    """A global admin manages organisations and anything inside every one; an
    org admin manages users and config of its own organisation only."""
    if actor == "global_admin":
        token = control.admin_token
        orgs = [await control.new_org("adm") for _ in range(org_count)]
    else:
        orgs = [await control.new_org("adm")]
        _, token = await control.new_user(orgs[0]["slug"], "org_admin")
        r = await control.call("POST", "/api/v1/orgs", token, {"slug": f"n-{uuid.uuid4().hex[:8]}", "name": "n"})
        assert r.status == 403
        r = await control.call("DELETE", f"/api/v1/orgs/{orgs[0]['slug']}", token)
        assert r.status == 403
    for org in orgs:
        s = org["slug"]
        r = await control.call("POST", f"/api/v1/orgs/{s}/users", token,
                               {"email": f"m{uuid.uuid4().hex[:8]}@x.io", "password": "password-1", "role": "org_viewer"})
        assert r.status == 201
        user_id = r.body["id"]
        r = await control.call("PATCH", f"/api/v1/orgs/{s}/users/{user_id}", token, {"role": "org_admin"})
        assert r.status == 200 and r.body["role"] == "org_admin"
        conn = await control.new_connector(s, token)
        api = await control.new_api(s, conn["id"], token)
        r = await control.call("PATCH", f"/api/v1/orgs/{s}", token, {"name": "Renamed"})
        assert r.status == 200 and r.body["name"] == "Renamed"
        r = await control.call("GET", f"/api/v1/audit?org={s}", token)
        assert {"user", "api", "connector", "org"} <= {e["resource_type"] for e in r.body["items"]}
        r = await control.call("DELETE", f"/api/v1/orgs/{s}/users/{user_id}", token)
        if actor == "global_admin":  # it is the organisation's only admin, which stays (409 last_admin)
            assert r.status == 409 and r.body["code"] == "last_admin"
            r = await control.call("PATCH", f"/api/v1/orgs/{s}/users/{user_id}", token, {"role": "org_viewer"})
            assert r.status == 409
        else:  # the acting org admin remains
            assert r.status == 204
        assert api["version"] == 1
    if actor == "global_admin":
        for org in orgs:
            r = await control.call("DELETE", f"/api/v1/orgs/{org['slug']}", token)
            assert r.status == 204
            r = await control.call("GET", f"/api/v1/orgs/{org['slug']}", token)
            assert r.status == 404
