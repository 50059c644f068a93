"""Seed property 14, access control enforcement: for every kind of caller and every operation of the
newer management resources (consumers and their credentials, security events, global admins, usage),
the answer is exactly what the roles allow — and a refused call changes nothing."""
from __future__ import annotations

import uuid
from typing import Any

from hypothesis import HealthCheck, given, settings as hsettings, strategies as st

PROPS = hsettings(max_examples=40, deadline=None, database=None,
                  suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])

CALLERS = ["global_admin", "org_admin", "other_org_admin", "org_viewer", "anonymous", "logged_out", "disabled"]
OPS = ["list_consumers", "create_consumer", "get_consumer", "create_key", "list_keys", "revoke_key",
       "security_events", "list_admins", "usage", "org_usage"]
GLOBAL_ONLY = {"security_events", "list_admins", "usage"}


def expected(caller: str, op: str) -> int:
    """The status the roles allow (docs/control.md, docs/security.md): who is not authenticated is 401;
    global-admin resources are 403 to anyone else; inside an organisation, admins of it may do everything,
    its viewers get 403 (credentials are not theirs to read), and another organisation's admins 404."""
    if caller in ("anonymous", "logged_out", "disabled"):
        return 401
    if caller == "global_admin":
        return 201 if op in ("create_consumer", "create_key") else 204 if op == "revoke_key" else 200
    if op in GLOBAL_ONLY:
        return 403
    if caller == "other_org_admin":
        return 404
    if caller == "org_viewer":
        return 403
    return 201 if op in ("create_consumer", "create_key") else 204 if op == "revoke_key" else 200


async def _token(control: Any, caller: str, home: dict[str, Any], other: dict[str, Any]) -> str | None:
    if caller == "global_admin":
        return control.admin_token
    if caller == "anonymous":
        return None
    role = "org_viewer" if caller == "org_viewer" else "org_admin"
    user, token = await control.new_user(other["slug"] if caller == "other_org_admin" else home["slug"], role)
    if caller == "logged_out":
        r = await control.call("POST", "/api/v1/auth/logout", token)
        assert r.status in (200, 204), r.body
    elif caller == "disabled":
        # A second admin stays, so this one may be disabled (the last admin of an organisation may not).
        await control.new_user(home["slug"], "org_admin")
        r = await control.call("PATCH", f"/api/v1/orgs/{home['slug']}/users/{user['id']}", control.admin_token,
                               {"enabled": False})
        assert r.status == 200, r.body
    return token


@PROPS
@given(caller=st.sampled_from(CALLERS), op=st.sampled_from(OPS))
async def test_property_14_access_control_enforcement(control: Any, caller: str, op: str) -> None:
    home, other = await control.new_org("ac"), await control.new_org("ac")
    admin = control.admin_token
    r = await control.call("POST", f"/api/v1/orgs/{home['slug']}/consumers", admin, {"name": f"c-{uuid.uuid4().hex[:8]}"})
    consumer = r.body
    r = await control.call("POST", f"/api/v1/orgs/{home['slug']}/consumers/{consumer['id']}/keys", admin, {})
    key = r.body
    token = await _token(control, caller, home, other)
    base = f"/api/v1/orgs/{home['slug']}/consumers"
    one = f"{base}/{consumer['id']}"
    calls = {
        "list_consumers": ("GET", base, None),
        "create_consumer": ("POST", base, {"name": f"n-{uuid.uuid4().hex[:8]}"}),
        "get_consumer": ("GET", one, None),
        "create_key": ("POST", f"{one}/keys", {}),
        "list_keys": ("GET", f"{one}/keys", None),
        "revoke_key": ("DELETE", f"{one}/keys/{key['id']}", None),
        "security_events": ("GET", "/api/v1/security-events", None),
        "list_admins": ("GET", "/api/v1/admins", None),
        "usage": ("GET", "/api/v1/usage", None),
        "org_usage": ("GET", f"/api/v1/orgs/{home['slug']}/usage", None),
    }
    method, path, body = calls[op]
    r = await control.call(method, path, token, body)
    assert r.status == expected(caller, op), (caller, op, r.status, r.body)
    if r.status >= 400:
        assert isinstance(r.body, dict) and r.body.get("code"), r.body  # a machine-readable refusal
    # A refused write changed nothing: the consumer has its one key, and no other consumer appeared.
    if r.status >= 400 and method != "GET":
        keys = await control.call("GET", f"{one}/keys", admin)
        assert [k["id"] for k in keys.body["items"]] == [key["id"]]
        listed = await control.call("GET", base, admin)
        assert [c["id"] for c in listed.body["items"]] == [consumer["id"]]


async def test_a_nul_byte_in_an_organisation_reference_is_no_organisation(control: Any) -> None:
    """PostgreSQL text cannot hold NUL; asking for such a name must be refused or 'no such organisation', not
    a 500. As a query parameter it is refused, as on every list (tests/control/test_query_params.py)."""
    r = await control.call("GET", "/api/v1/security-events?org=a%00b", control.admin_token)
    assert r.status == 422 and [f["field"] for f in r.body["fields"]] == ["org"], r.body
    r = await control.call("GET", "/api/v1/orgs/a%00b", control.admin_token)
    assert r.status == 404 and r.body["code"]


async def test_the_producer_key_is_the_installations_for_every_signed_in_user_and_no_one_else(control: Any) -> None:
    """GET /api/v1/producer-key: the public half of the key pair processors open producers' credentials with
    (docs/async-producers.md), derived from the seal key; 401 without a token."""
    import base64

    from core.sealing import PRODUCER_VERSION, sealer_for

    expected = base64.b64encode(sealer_for(control.settings).producer_public_key()).decode()
    home = await control.new_org("pk")
    _, viewer = await control.new_user(home["slug"], "org_viewer")
    for token in (control.admin_token, viewer):
        r = await control.call("GET", "/api/v1/producer-key", token)
        assert r.status == 200, r.body
        assert r.body["public_key"] == expected and r.body["version_byte"] == PRODUCER_VERSION
        assert "RFC 9180" in r.body["suite"]
    r = await control.call("GET", "/api/v1/producer-key")
    assert r.status == 401 and r.body["code"] == "unauthorized", r.body
