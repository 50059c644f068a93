"""Rolling back to a version that cannot exist: past what a version number can be is a 422 naming
``version`` (it was a 500 from PostgreSQL's int4), one that does not exist yet is a 404, for both kinds."""
from __future__ import annotations

from typing import Any


async def test_rollback_to_an_impossible_version(control: Any) -> None:
    org = (await control.new_org("rb"))["slug"]
    connector = await control.new_connector(org)
    api = await control.new_api(org, connector["id"])
    for url in (f"/api/v1/orgs/{org}/connectors/{connector['id']}", f"/api/v1/orgs/{org}/apis/{api['id']}"):
        for version in (2**31, 10**23):
            r = await control.call("POST", url + "/rollback", control.admin_token, {"version": version})
            assert r.status == 422 and [f["field"] for f in r.body["fields"]] == ["version"], (url, version, r.body)
        r = await control.call("POST", url + "/rollback", control.admin_token, {"version": 2**31 - 1})
        assert r.status == 404 and r.body["code"] == "version_not_found", r.body
        r = await control.call("GET", url, control.admin_token)
        assert r.body["version"] == 1


async def test_a_rollback_to_what_is_there_already_writes_nothing(control: Any) -> None:
    org = (await control.new_org("rbeq"))["slug"]
    connector = await control.new_connector(org)
    api = await control.new_api(org, connector["id"])
    url = f"/api/v1/orgs/{org}/apis/{api['id']}"
    r = await control.call("PATCH", url, control.admin_token, {"timeout_ms": 4321})
    assert r.status == 200 and r.body["version"] == 2
    for version, expected in ((2, 2), (1, 3), (1, 3), (3, 3)):  # to itself; back; again; to the same content
        r = await control.call("POST", url + "/rollback", control.admin_token, {"version": version})
        assert r.status == 200 and r.body["version"] == expected, (version, r.body)
    audit = await control.pool.fetchval("SELECT count(*) FROM audit_log WHERE resource_id = $1 AND action = 'rollback'",
                                        api["id"])
    assert audit == 1
