"""Attack: inputs to the management API that reached PostgreSQL, zlib or the stack unchecked and answered 500.
Each is a client error naming what is wrong, and nothing is written."""
from __future__ import annotations

import gzip
import json
from typing import Any

import pytest

KINDS = ["connectors", "apis", "consumers", "alert-rules"]


@pytest.mark.parametrize("kind", KINDS)
async def test_a_nul_in_a_name_or_id_path_segment_is_404(control: Any, kind: str) -> None:
    org = (await control.new_org("nul"))["slug"]
    for method, suffix, body in (("GET", "", None), ("DELETE", "", None), ("PATCH", "", {"name": "renamed"}),
                                 ("GET", "b/versions", None)):
        r = await control.call(method, f"/api/v1/orgs/{org}/{kind}/a%00{suffix}", control.admin_token, body)
        assert r.status == 404 and r.body["code"] == "not_found", (method, kind, r.status, r.body)


@pytest.mark.parametrize("encoding", ["gzip", "deflate", "br"])
async def test_a_body_its_content_encoding_does_not_match_is_400(control: Any, encoding: str) -> None:
    org = (await control.new_org("enc"))["slug"]
    raw = json.dumps({"name": "c1"}).encode()
    for path, token in ((f"/api/v1/orgs/{org}/consumers", control.admin_token), ("/api/v1/auth/login", None)):
        r = await control.call("POST", path, token, data=raw,
                               headers={"Content-Encoding": encoding, "Content-Type": "application/json"})
        assert r.status == 400 and r.body["code"] == "malformed_body", (path, r.status, r.body)
        assert [f["field"] for f in r.body["fields"]] == ["(body)"]
    r = await control.call("GET", f"/api/v1/orgs/{org}/consumers", control.admin_token)
    assert r.body["items"] == []
    # A body that is what its encoding says goes through.
    r = await control.call("POST", f"/api/v1/orgs/{org}/consumers", control.admin_token, data=gzip.compress(raw),
                           headers={"Content-Encoding": "gzip", "Content-Type": "application/json"})
    assert r.status == 201, r.body


@pytest.mark.parametrize("depth", [65, 500, 900, 980])
async def test_json_nested_past_the_limit_is_400_naming_the_body(control: Any, depth: int) -> None:
    org = (await control.new_org("deep"))["slug"]
    settings = '{"a":' * (depth - 1) + "1" + "}" * (depth - 1)
    raw = '{"name": "deep", "target": {"protocol": "rest", "url": "http://127.0.0.1:9/x"}, "settings": ' + settings + "}"
    r = await control.call("POST", f"/api/v1/orgs/{org}/connectors", control.admin_token, data=raw.encode(),
                           headers={"Content-Type": "application/json"})
    assert r.status == 400 and r.body["code"] == "malformed_body", (depth, r.status, r.body)
    assert "nested deeper than 64" in r.body["message"] or "not valid JSON" in r.body["message"], r.body
    assert (await control.call("GET", f"/api/v1/orgs/{org}/connectors", control.admin_token)).body["items"] == []


async def test_json_nested_to_the_limit_is_kept(control: Any) -> None:
    org = (await control.new_org("deepok"))["slug"]
    settings: Any = 1
    for _ in range(63):  # the body's object and settings' 63 levels: 64
        settings = {"a": settings}
    c = await control.new_connector(org, settings=settings)
    r = await control.call("GET", f"/api/v1/orgs/{org}/connectors/{c['id']}", control.admin_token)
    assert r.body["settings"] == settings


async def test_a_key_is_made_without_a_body_and_a_bad_one_is_still_refused(control: Any) -> None:
    """The key body's one field is optional, so the body may be left out (as Kong's key-auth); one that is
    sent is still checked."""
    org = (await control.new_org("keys"))["slug"]
    r = await control.call("POST", f"/api/v1/orgs/{org}/consumers", control.admin_token, {"name": "c"})
    keys = f"/api/v1/orgs/{org}/consumers/c/keys"
    r = await control.call("POST", keys, control.admin_token)
    assert r.status == 201 and r.body["key"] and r.body["expires_at"] is None, r.body
    for raw, status in ((b"{bad", 400), (b'{"expires": 1}', 422), (b"[]", 422)):
        r = await control.call("POST", keys, control.admin_token, data=raw, headers={"Content-Type": "application/json"})
        assert r.status == status, (raw, r.body)
    r = await control.call("GET", keys, control.admin_token)
    assert len(r.body) == 1, r.body
