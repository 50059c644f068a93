"""Resources are addressed by name as well as by id (Kong's ``{name or id}``), and PUT to a name creates or
replaces it, so that a set-up script can run twice: the second run changes nothing and answers no 409."""
from __future__ import annotations

import asyncio
import uuid
from typing import Any
from urllib.parse import quote

from hypothesis import HealthCheck, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from control.bodies import NAME_PATTERN
from junction.sdk import InvalidReference, JunctionAPIError, JunctionClient
from tests.control_support import ADMIN_EMAIL

TARGET = {"protocol": "rest", "url": "http://127.0.0.1:9/x", "method": "GET"}
RULE = {"metric": "error_rate", "comparison": ">", "threshold": 0.5}


def _connector(name: str, url: str = "http://127.0.0.1:9/x") -> dict[str, Any]:
    return {"name": name, "target": {**TARGET, "url": url}}


async def _count(control: Any, org: str, kind: str) -> int:
    r = await control.call("GET", f"/api/v1/orgs/{org}/{kind}", control.admin_token)
    assert r.status == 200, r.body
    return len(r.body["items"])


async def _audit_actions(control: Any, org: str, resource_id: str) -> list[str]:
    r = await control.call("GET", f"/api/v1/audit?org={org}", control.admin_token)
    assert r.status == 200, r.body
    return sorted(e["action"] for e in r.body["items"] if e["resource_id"] == resource_id)


async def test_every_kind_is_read_changed_versioned_and_deleted_by_name(control: Any) -> None:
    org = (await control.new_org("byname"))["slug"]
    conn = await control.new_connector(org, name="billing")
    api = await control.new_api(org, conn["id"], name="items")
    made = {
        "connectors": (conn, {"settings": {"region": "eu"}}),
        "apis": (api, {"timeout_ms": 1234}),
        "consumers": ((await control.call("POST", f"/api/v1/orgs/{org}/consumers", control.admin_token,
                                          {"name": "shop"})).body, {"enabled": False}),
        "alert-rules": ((await control.call("POST", f"/api/v1/orgs/{org}/alert-rules", control.admin_token,
                                            {"name": "errors", **RULE})).body, {"threshold": 0.9}),
    }
    for kind, (resource, change) in made.items():
        by_name = f"/api/v1/orgs/{org}/{kind}/{resource['name']}"
        r = await control.call("GET", by_name, control.admin_token)
        assert r.status == 200 and r.body["id"] == resource["id"], (kind, r.body)
        r = await control.call("PATCH", by_name, control.admin_token, change, headers={"If-Match": 'W/"1"'})
        assert r.status == 200 and r.body["version"] == 2, (kind, r.body)
        assert all(r.body[k] == v for k, v in change.items()), (kind, r.body)
        r = await control.call("GET", by_name + "/versions", control.admin_token)
        assert r.status == 200 and [v["version"] for v in r.body["items"]] == [1, 2], (kind, r.body)
        assert {v["created_by_email"] for v in r.body["items"]} == {ADMIN_EMAIL}, (kind, r.body)  # who, as people know them
        r = await control.call("GET", by_name + "/versions/2", control.admin_token)
        assert r.status == 200 and r.body["created_by_email"] == ADMIN_EMAIL, (kind, r.body)
    # Rollback and diff, by name too.
    r = await control.call("POST", f"/api/v1/orgs/{org}/apis/items/rollback", control.admin_token, {"version": 1})
    assert r.status == 200 and r.body["version"] == 3 and r.body["timeout_ms"] == api["timeout_ms"], r.body
    r = await control.call("GET", f"/api/v1/orgs/{org}/connectors/billing/versions/1/diff/2", control.admin_token)
    assert r.status == 200 and [c["field"] for c in r.body["changes"]] == ["settings.region"], r.body
    # Deleted by name, in the order references allow.
    for kind in ("alert-rules", "apis", "connectors", "consumers"):
        resource = made[kind][0]
        r = await control.call("DELETE", f"/api/v1/orgs/{org}/{kind}/{resource['name']}", control.admin_token)
        assert r.status == 204, (kind, r.body)
        r = await control.call("GET", f"/api/v1/orgs/{org}/{kind}/{resource['id']}", control.admin_token)
        assert r.status == 404, (kind, r.body)


async def test_put_to_a_new_name_creates_it_and_running_it_again_changes_nothing(control: Any) -> None:
    org = (await control.new_org("upsert"))["slug"]
    url = f"/api/v1/orgs/{org}/connectors/orders"
    first = await control.call("PUT", url, control.admin_token, _connector("orders"))
    assert first.status == 201 and first.body["version"] == 1 and first.headers["ETag"] == 'W/"1"', first.body
    again = await control.call("PUT", url, control.admin_token, _connector("orders"))
    assert again.status == 200 and again.body["id"] == first.body["id"] and again.body["version"] == 1, again.body
    changed = await control.call("PUT", url, control.admin_token, _connector("orders", "http://127.0.0.1:9/y"))
    assert changed.status == 200 and changed.body["version"] == 2, changed.body
    assert changed.body["target"]["url"] == "http://127.0.0.1:9/y"
    # One create and one update in the audit trail: the repeated PUT wrote nothing.
    assert await _audit_actions(control, org, first.body["id"]) == ["create", "update"]
    # An API's connector may be named too; it is stored, and shown, as the id.
    r = await control.call("PUT", f"/api/v1/orgs/{org}/apis/order-status", control.admin_token,
                           {"name": "order-status", "methods": ["GET"], "path": "/orders/{id}", "connector": "orders"})
    assert r.status == 201 and r.body["connector"] == first.body["id"], r.body
    r = await control.call("PUT", f"/api/v1/orgs/{org}/apis/order-status", control.admin_token,
                           {"name": "order-status", "methods": ["GET"], "path": "/orders/{id}",
                            "connector": first.body["id"]})
    assert r.status == 200 and r.body["version"] == 1, r.body  # the same API, by name or by id
    # And a consumer (credentials are not in its body: they stay).
    r = await control.call("PUT", f"/api/v1/orgs/{org}/consumers/shop", control.admin_token, {"name": "shop"})
    assert r.status == 201 and r.body["enabled"] is True, r.body
    key = await control.call("POST", f"/api/v1/orgs/{org}/consumers/shop/keys", control.admin_token, {})
    assert key.status == 201, key.body
    r = await control.call("PUT", f"/api/v1/orgs/{org}/consumers/shop", control.admin_token,
                           {"name": "shop", "enabled": False})
    assert r.status == 200 and r.body["version"] == 3 and r.body["enabled"] is False, r.body
    keys = await control.call("GET", f"/api/v1/orgs/{org}/consumers/shop/keys", control.admin_token)
    assert [k["id"] for k in keys.body["items"]] == [key.body["id"]], keys.body


async def test_a_put_that_may_not_go_on_changes_nothing(control: Any) -> None:
    org = (await control.new_org("putno"))["slug"]
    base = f"/api/v1/orgs/{org}/connectors"
    made = await control.call("PUT", f"{base}/kept", control.admin_token, _connector("kept"))
    assert made.status == 201, made.body
    cases = [
        # a body naming another resource than the path: a rename needs the id
        ("new-one", _connector("other"), {}, 422, "invalid_input", "name"),
        ("kept", _connector("renamed"), {}, 422, "invalid_input", "name"),
        # If-Match needs something to match; If-None-Match: * only creates
        ("new-two", _connector("new-two"), {"If-Match": 'W/"1"'}, 412, "precondition_failed", None),
        ("kept", _connector("kept", "http://127.0.0.1:9/z"), {"If-None-Match": "*"}, 412, "precondition_failed", None),
        ("kept", _connector("kept", "http://127.0.0.1:9/z"), {"If-Match": 'W/"7"'}, 412, "precondition_failed", None),
        # an id is the server's to give: an unknown one is not created
        (str(uuid.uuid4()), _connector("by-id"), {}, 404, "not_found", None),
        # a name the create schema refuses, and a body without one
        ("-dash-first", _connector("-dash-first"), {}, 422, "invalid_input", "name"),
        ("no-name", {"target": TARGET}, {}, 422, "invalid_input", "name"),
        ("bad-url", _connector("bad-url", "ftp://x"), {}, 422, "invalid_input", "target.url"),
    ]
    for ref, body, headers, status, code, field in cases:
        r = await control.call("PUT", f"{base}/{quote(ref)}", control.admin_token, body, headers=headers)
        assert (r.status, r.body["code"]) == (status, code), (ref, r.status, r.body)
        if field:
            assert field in [f["field"] for f in r.body["fields"]], (ref, r.body)
    assert await _count(control, org, "connectors") == 1
    kept = await control.call("GET", f"{base}/kept", control.admin_token)
    assert kept.body["version"] == 1 and kept.body["target"]["url"] == TARGET["url"], kept.body
    # A viewer may read by name, not create by name.
    _, viewer = await control.new_user(org, "org_viewer")
    assert (await control.call("GET", f"{base}/kept", viewer)).status == 200
    r = await control.call("PUT", f"{base}/viewer-made", viewer, _connector("viewer-made"))
    assert r.status == 403, r.body
    # Creating by PUT counts against the quota as POST does.
    r = await control.call("PATCH", f"/api/v1/orgs/{org}", control.admin_token, {"quotas": {"connectors": 1}})
    assert r.status == 200, r.body
    r = await control.call("PUT", f"{base}/over-quota", control.admin_token, _connector("over-quota"))
    assert r.status == 403 and r.body["code"] == "quota_exceeded", r.body
    assert await _count(control, org, "connectors") == 1


async def test_names_never_reach_another_organisation(control: Any) -> None:
    mine, theirs = (await control.new_org("mine"))["slug"], (await control.new_org("theirs"))["slug"]
    secret = await control.new_connector(theirs, name="payroll")
    await control.new_api(theirs, secret["id"], name="salaries")
    admin, token = await control.new_user(mine, "org_admin")
    for kind, name in (("connectors", "payroll"), ("apis", "salaries")):
        for ref in (name, quote(name)):
            r = await control.call("GET", f"/api/v1/orgs/{mine}/{kind}/{ref}", token)
            assert r.status == 404, r.body
    # A PUT of the same name in my organisation makes my own, and leaves theirs alone.
    r = await control.call("PUT", f"/api/v1/orgs/{mine}/connectors/payroll", token, _connector("payroll"))
    assert r.status == 201 and r.body["id"] != secret["id"], r.body
    theirs_now = await control.call("GET", f"/api/v1/orgs/{theirs}/connectors/payroll", control.admin_token)
    assert theirs_now.body["version"] == 1 and theirs_now.body["id"] == secret["id"]
    # Their connector by name or id is no connector of mine for an API, nor their API for my alert rule.
    for connector in ("payroll-x", secret["id"]):
        r = await control.call("POST", f"/api/v1/orgs/{mine}/apis", token,
                               {"name": "a", "methods": ["GET"], "path": "/a", "connector": connector})
        assert r.status == 422 and r.body["fields"][0]["field"] == "connector", r.body
    r = await control.call("POST", f"/api/v1/orgs/{mine}/alert-rules", token, {"name": "r", **RULE, "api": "salaries"})
    assert r.status == 422 and r.body["fields"][0]["field"] == "api", r.body
    # Another organisation's path is refused before any name is looked up.
    r = await control.call("PUT", f"/api/v1/orgs/{theirs}/connectors/payroll", token, _connector("payroll"))
    assert r.status == 404 and r.body["code"] == "org_not_found", r.body


async def test_an_alert_rule_names_its_api_and_a_global_rule_needs_the_id(control: Any) -> None:
    org = (await control.new_org("rulename"))["slug"]
    conn = await control.new_connector(org)
    api = await control.new_api(org, conn["id"], name="checkout")
    r = await control.call("PUT", f"/api/v1/orgs/{org}/alert-rules/slow", control.admin_token,
                           {"name": "slow", **RULE, "api": "checkout"})
    assert r.status == 201 and r.body["api"] == api["id"], r.body
    # Names repeat across organisations: a global rule takes an id only.
    name = f"g-{uuid.uuid4().hex[:8]}"
    r = await control.call("PUT", f"/api/v1/alert-rules/{name}", control.admin_token, {"name": name, **RULE, "api": "checkout"})
    assert r.status == 422 and r.body["fields"][0]["field"] == "api", r.body
    r = await control.call("PUT", f"/api/v1/alert-rules/{name}", control.admin_token, {"name": name, **RULE, "api": api["id"]})
    assert r.status == 201 and r.body["api"] == api["id"], r.body
    r = await control.call("DELETE", f"/api/v1/alert-rules/{name}", control.admin_token)
    assert r.status == 204, r.body


async def test_concurrent_puts_of_one_new_name_make_one_resource(control: Any) -> None:
    org = (await control.new_org("race"))["slug"]
    url = f"/api/v1/orgs/{org}/connectors/once"
    replies = await asyncio.gather(*(control.call("PUT", url, control.admin_token, _connector("once"))
                                     for _ in range(8)))
    assert sorted(r.status for r in replies) == [200] * 7 + [201], [(r.status, r.body) for r in replies]
    assert len({r.body["id"] for r in replies}) == 1 and {r.body["version"] for r in replies} == {1}
    assert await _count(control, org, "connectors") == 1


async def test_a_name_in_the_form_of_an_id_is_found_by_name(control: Any) -> None:
    org = (await control.new_org("uuidname"))["slug"]
    name = str(uuid.uuid4())
    made = await control.call("POST", f"/api/v1/orgs/{org}/connectors", control.admin_token, _connector(name))
    assert made.status == 201, made.body
    r = await control.call("GET", f"/api/v1/orgs/{org}/connectors/{name}", control.admin_token)
    assert r.status == 200 and r.body["id"] == made.body["id"], r.body
    r = await control.call("PUT", f"/api/v1/orgs/{org}/connectors/{name}", control.admin_token,
                           _connector(name, "http://127.0.0.1:9/moved"))
    assert r.status == 200 and r.body["version"] == 2, r.body


@hsettings(max_examples=20, deadline=None, database=None,
           suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(name=st.from_regex(NAME_PATTERN, fullmatch=True))
async def test_property_any_valid_name_round_trips_through_the_path(control: Any, name: str) -> None:
    org = (await control.new_org("anyname"))["slug"]
    url = f"/api/v1/orgs/{org}/consumers/{quote(name, safe='')}"
    made = await control.call("PUT", url, control.admin_token, {"name": name})
    assert made.status == 201 and made.body["name"] == name, (name, made.body)
    r = await control.call("GET", url, control.admin_token)
    assert r.status == 200 and r.body["id"] == made.body["id"], (name, r.body)
    r = await control.call("DELETE", url, control.admin_token)
    assert r.status == 204 and await _count(control, org, "consumers") == 0, (name, r.body)


async def test_the_sdk_upserts_so_a_setup_script_runs_twice(control: Any) -> None:
    org = (await control.new_org("sdkup"))["slug"]

    async def setup(jc: JunctionClient) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
        conn = await jc.upsert_connector(org, "orders", TARGET, script="def transform_request(request, ctx):\n    pass\n")
        api = await jc.upsert_api(org, "order-status", ["GET"], "/orders/{id}", "orders", timeout_ms=5000)
        shop = await jc.upsert_consumer(org, "shop")
        return conn, api, shop

    async with JunctionClient(control.base_url, control.admin_token) as jc:
        first = await setup(jc)
        second = await setup(jc)
        assert [r["version"] for r in first] == [1, 1, 1] == [r["version"] for r in second]
        assert [r["id"] for r in first] == [r["id"] for r in second]
        assert first[1]["connector"] == first[0]["id"]
        try:
            await jc.create_connector(org, "orders", TARGET)
        except JunctionAPIError as exc:
            assert exc.status == 409 and exc.code == "name_taken"
        else:
            raise AssertionError("create_connector of a taken name did not answer 409")


async def test_the_sdk_keeps_an_id_or_name_inside_its_own_path_segment(control: Any) -> None:
    # An application passes a name it read from its user to the SDK. The HTTP client resolves `..`, even
    # percent-encoded, and `/` or `?` would start another segment or the query: each would reach another
    # resource with the application's token, here deleting a consumer through delete_api.
    org = (await control.new_org("sdkseg"))["slug"]
    async with JunctionClient(control.base_url, control.admin_token) as jc:
        shop = await jc.upsert_consumer(org, "shop front")
        assert (await jc.get_consumer(org, "shop front"))["id"] == shop["id"]  # a space, encoded
        for hostile in ("../consumers/shop front", "x/../../consumers/shop front", "a?x=1", "a#b", "%2e%2e"):
            try:
                await jc.delete_api(org, hostile)
            except JunctionAPIError as exc:
                assert exc.status == 404 and exc.code == "not_found", (hostile, exc.status, exc.code)
            else:
                raise AssertionError(f"delete_api({hostile!r}) answered without an error")
        for dots in (".", "..", ""):
            try:
                await jc.get_connector(org, dots)  # would read the organisation itself as a connector
            except InvalidReference:
                pass
            else:
                raise AssertionError(f"get_connector({dots!r}) was sent")
        assert (await jc.get_consumer(org, shop["id"]))["version"] == 1


async def test_the_audit_trail_of_an_organisation_is_404_to_outsiders_and_outlives_its_deletion(control: Any) -> None:
    """Read as any other route of an organisation: another's is a 404, not an empty page that looks like a
    quiet trail. A global admin still reads a deleted organisation's trail, by the id its rows keep."""
    org, other = await control.new_org("trail"), await control.new_org("trailx")
    await control.new_connector(org["slug"], name="kept")
    _, outsider = await control.new_user(other["slug"], "org_admin")
    for ref in (org["slug"], org["id"], "no-such-org"):
        r = await control.call("GET", f"/api/v1/audit?org={ref}", outsider)
        assert r.status == 404 and r.body["code"] == "org_not_found", (ref, r.body)
    r = await control.call("DELETE", f"/api/v1/orgs/{org['slug']}", control.admin_token)
    assert r.status == 204, r.body
    r = await control.call("GET", f"/api/v1/audit?org={org['id']}", control.admin_token)
    assert r.status == 200 and {"connector", "org"} <= {e["resource_type"] for e in r.body["items"]}, r.body
    assert (await control.call("GET", f"/api/v1/audit?org={org['slug']}", control.admin_token)).status == 404
    assert (await control.call("GET", f"/api/v1/audit?org={org['id']}", outsider)).status == 404
