"""An API stored under an older, looser path rule (a dot segment, which the current rule refuses) routes
nothing, and does not stop its organisation from making other APIs."""
from __future__ import annotations

import json
from typing import Any


async def test_a_stored_path_the_current_rule_refuses_clashes_with_nothing(control: Any) -> None:
    org = (await control.new_org("legacy"))["slug"]
    connector = await control.new_connector(org)
    old = await control.new_api(org, connector["id"], path="/p/x/b")
    await control.pool.execute("UPDATE apis SET content = content || $2::jsonb WHERE id = $1", old["id"],
                               json.dumps({"path": "/p/../b"}))
    made = await control.new_api(org, connector["id"], path="/p/{id}/b")  # asserts 201
    assert made["path"] == "/p/{id}/b"
    r = await control.call("POST", f"/api/v1/orgs/{org}/apis", control.admin_token,
                           {"name": "dots", "methods": ["GET"], "path": "/q/../b", "connector": connector["id"]})
    assert r.status == 422 and r.body["fields"][0]["field"] == "path", r.body
