"""An organisation's caller policies through the management API: ``ip_restriction`` and ``cors`` are shown,
set and removed (null) with PATCH as the organisation's ``rate_limit`` is, by its admins and global admins
only (a viewer gets 403, another organisation's admin 404, and a refused write changes nothing), checked as an
API's are (422 naming the field), versioned with their ETag and If-Match, audited, carried to the request path
in the organisation's config event, passed through by the Python SDK, and part of a declarative document."""
from __future__ import annotations

import json
from typing import Any

import pytest

from control.resync import current_config_events
from junction.declarative import DocumentError, apply_plan, export_document, load_document, make_plan
from junction.sdk import JunctionAPIError, JunctionClient

RULE = {"allow": ["10.0.0.0/8", "2001:db8::/32"], "deny": ["10.6.0.0/16"]}
CORS = {"origins": ["https://app.example.com", "https://*.example.com"], "methods": ["GET", "DELETE"],
        "exposed_headers": ["X-Correlation-Id"], "max_age_s": 600}


def _fields(body: Any) -> list[str]:
    return [f["field"] for f in body.get("fields", [])]


async def test_an_org_admin_sets_shows_and_removes_both_and_each_change_is_versioned_audited_and_published(
        control: Any) -> None:
    org = await control.new_org("opa")
    slug = org["slug"]
    assert org["ip_restriction"] is None and org["cors"] is None
    _, admin = await control.new_user(slug, "org_admin")
    r = await control.call("PATCH", f"/api/v1/orgs/{slug}", admin, {"ip_restriction": RULE, "cors": CORS})
    assert r.status == 200 and r.body["ip_restriction"] == RULE and r.body["cors"] == CORS, r.body
    assert r.body["version"] == org["version"] + 1 and r.headers["ETag"] == f'W/"{r.body["version"]}"'
    shown = await control.call("GET", f"/api/v1/orgs/{slug}", admin)
    assert shown.body["ip_restriction"] == RULE and shown.body["cors"] == CORS
    listed = await control.call("GET", "/api/v1/orgs", admin)
    assert [(o["ip_restriction"], o["cors"]) for o in listed.body["items"]] == [(RULE, CORS)]
    # The request path gets both, with the version ingress keeps what it compiles by.
    await control.watch.wait_for(lambda: (control.watch.document("org", org["id"]) or {}).get("cors") == CORS)
    doc = control.watch.document("org", org["id"])
    assert doc["ip_restriction"] == RULE and doc["version"] == r.body["version"]
    # And a resync (the whole configuration published again, after a broker lost it) carries them too.
    async with control.pool.acquire() as conn:
        events = await current_config_events(conn)
    resynced = [json.loads(e["document"]) for e in events if e["kind"] == "org" and e["id"] == org["id"]]
    assert [(d["ip_restriction"], d["cors"], d["version"]) for d in resynced] == [(RULE, CORS, r.body["version"])]
    # The same again is no change; a stale If-Match is refused and changes nothing.
    same = await control.call("PATCH", f"/api/v1/orgs/{slug}", admin, {"cors": CORS})
    assert same.status == 200 and same.body["version"] == r.body["version"]
    stale = await control.call("PATCH", f"/api/v1/orgs/{slug}", admin, {"cors": None}, headers={"If-Match": '"1"'})
    assert stale.status == 412, stale.body
    # One policy removed leaves the other.
    r = await control.call("PATCH", f"/api/v1/orgs/{slug}", admin, {"cors": None},
                           headers={"If-Match": r.headers["ETag"]})
    assert r.status == 200 and r.body["cors"] is None and r.body["ip_restriction"] == RULE, r.body
    await control.watch.wait_for(lambda: (control.watch.document("org", org["id"]) or {}).get("version") == r.body["version"])
    assert control.watch.document("org", org["id"])["cors"] is None
    r = await control.call("PATCH", f"/api/v1/orgs/{slug}", admin, {"ip_restriction": None})
    assert r.status == 200 and r.body["ip_restriction"] is None
    audit = await control.call("GET", f"/api/v1/audit?org={slug}&resource_type=org", control.admin_token)
    changes = [(e["before"].get("ip_restriction"), e["after"].get("ip_restriction"), e["before"].get("cors"),
                e["after"].get("cors")) for e in audit.body["items"] if e["action"] == "update"]
    assert changes == [(RULE, None, None, None), (RULE, RULE, CORS, None), (None, RULE, None, CORS)], changes


async def test_each_bad_policy_is_refused_naming_its_field_and_nothing_is_saved(control: Any) -> None:
    org = await control.new_org("opv")
    slug = org["slug"]
    cases = [
        ({"ip_restriction": {"allow": ["10.0.0.1/8"]}}, "ip_restriction.allow[0]", "host bits"),
        ({"ip_restriction": {"deny": ["10.0.0.0/8", "lb.internal"]}}, "ip_restriction.deny[1]", "not an address"),
        ({"ip_restriction": {}}, "ip_restriction", "needs allow or deny"),
        ({"ip_restriction": {"allow": ["10.0.0.0/8"], "block": ["x"]}}, "ip_restriction", ""),
        ({"cors": {"origins": ["null"]}}, "cors.origins[0]", "null"),
        ({"cors": {"origins": ["https://App.example.com"]}}, "cors.origins[0]", "lowercase"),
        ({"cors": {"origins": ["*"], "credentials": True}}, "cors.credentials", "list the origins"),
        ({"cors": {"methods": ["GET"]}}, "cors.origins", "is required"),
        ({"cors": {"origins": ["https://a.example"], "methods": ["FETCH"]}}, "cors.methods[0]", ""),
        # Both bad at once: both named.
        ({"cors": {"origins": ["null"]}, "ip_restriction": {}}, "cors.origins[0]", "null"),
    ]
    for body, field, words in cases:
        r = await control.call("PATCH", f"/api/v1/orgs/{slug}", control.admin_token, body)
        assert r.status == 422 and r.body["code"] == "invalid_input", (body, r.body)
        found = [f for f in r.body["fields"] if f["field"].startswith(field)]
        assert found and words in found[0]["message"], (body, r.body)
    assert set(_fields(r.body)) == {"cors.origins[0]", "ip_restriction"}, r.body
    after = await control.call("GET", f"/api/v1/orgs/{slug}", control.admin_token)
    assert after.body["version"] == org["version"] and after.body["cors"] is None and after.body["ip_restriction"] is None
    # Methods are not checked against one API's: the organisation's policy is for APIs of any methods.
    r = await control.call("PATCH", f"/api/v1/orgs/{slug}", control.admin_token,
                           {"cors": {"origins": ["https://a.example"], "methods": ["PATCH"]}})
    assert r.status == 200, r.body


@pytest.mark.parametrize("caller", ["org_viewer", "other_org_admin", "anonymous"])
async def test_attack_a_viewer_another_organisations_admin_or_nobody_cannot_set_them(control: Any, caller: str) -> None:
    org, other = await control.new_org("opx"), await control.new_org("opx")
    slug = org["slug"]
    r = await control.call("PATCH", f"/api/v1/orgs/{slug}", control.admin_token, {"ip_restriction": RULE})
    assert r.status == 200
    token = None
    if caller != "anonymous":
        _, token = await control.new_user(slug if caller == "org_viewer" else other["slug"],
                                          "org_viewer" if caller == "org_viewer" else "org_admin")
    expected = {"org_viewer": 403, "other_org_admin": 404, "anonymous": 401}[caller]
    for body in ({"ip_restriction": None}, {"ip_restriction": {"allow": ["0.0.0.0/0"]}},
                 {"cors": {"origins": ["*"]}}, {"cors": None}):
        for ref in (slug, org["id"]):
            r = await control.call("PATCH", f"/api/v1/orgs/{ref}", token, body)
            assert r.status == expected and r.body["code"], (caller, body, r.status, r.body)
    shown = await control.call("GET", f"/api/v1/orgs/{slug}", control.admin_token)
    assert shown.body["ip_restriction"] == RULE and shown.body["cors"] is None
    assert shown.body["version"] == org["version"] + 1  # none of it was written


async def test_the_sdk_and_a_declarative_document_carry_both(control: Any) -> None:
    org, copy_ = (await control.new_org("opd"))["slug"], (await control.new_org("opd-cp"))["slug"]
    async with JunctionClient(control.base_url, control.admin_token) as jc:
        updated = await jc.update_org(org, ip_restriction=RULE, cors=CORS)
        assert updated["ip_restriction"] == RULE and updated["cors"] == CORS
        with pytest.raises(JunctionAPIError) as err:
            await jc.update_org(org, cors={"origins": ["null"]})
        assert err.value.status == 422 and [f.field for f in err.value.fields] == ["cors.origins[0]"]
        doc = await export_document(jc, org)
        assert doc["ip_restriction"] == RULE and doc["cors"] == CORS
        assert (await make_plan(jc, org, load_document(json.dumps(doc), {}), prune=True)).changes == []
        plan = await make_plan(jc, copy_, load_document(json.dumps({**doc, "org": copy_}), {}), prune=False)
        assert [c.to_dict() for c in plan.changes] == [{"action": "update", "kind": "org", "name": copy_,
                                                       "fields": ["cors", "ip_restriction"]}]
        await apply_plan(jc, plan)
        got = await jc.get_org(copy_)
        assert got["ip_restriction"] == RULE and got["cors"] == CORS
        await apply_plan(jc, await make_plan(jc, copy_, load_document(
            '{"format": "junction/v1", "cors": null, "ip_restriction": null}', {}), prune=False))
        got = await jc.get_org(copy_)
        assert got["ip_restriction"] is None and got["cors"] is None
        # A document's bad shape is named before anything changes; a tagged document may not hold them.
        with pytest.raises(DocumentError) as bad:
            await make_plan(jc, org, load_document(json.dumps({"format": "junction/v1", "cors": {"origins": "x"}}), {}),
                            prune=False)
        assert [f for f, _ in bad.value.fields] and all(f.startswith("cors") for f, _ in bad.value.fields)
        with pytest.raises(DocumentError) as tagged:
            await make_plan(jc, org, load_document(json.dumps({"format": "junction/v1", "tag": "team",
                                                               "ip_restriction": None}), {}), prune=False)
        assert [f for f, _ in tagged.value.fields] == ["ip_restriction"]
