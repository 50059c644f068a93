"""Consumers and their credentials through the live control server: CRUD,
pagination, RBAC, versions and audit, the config document read back from the
config topic, secrets shown once and never again, and quotas."""
from __future__ import annotations

import asyncio
import hashlib
import json
import uuid
from datetime import datetime, timedelta, timezone
from typing import Any

import bcrypt
import pytest
from aiokafka import TopicPartition
from hypothesis import HealthCheck, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from core.kafka import make_consumer

PROPS = hsettings(max_examples=8, deadline=None, suppress_health_check=list(HealthCheck))


def _url(org: str, *parts: str) -> str:
    return "/".join([f"/api/v1/orgs/{org}/consumers", *parts])


async def _consumer(control: Any, org: str, token: str | None = None, **fields: Any) -> dict[str, Any]:
    r = await control.call("POST", _url(org), token or control.admin_token, {"name": f"c-{uuid.uuid4().hex[:8]}", **fields})
    assert r.status == 201, r.body
    return r.body


async def _doc(control: Any, consumer_id: str, version: int) -> dict[str, Any]:
    await control.watch.wait_for(lambda: (control.watch.document("consumer", consumer_id) or {}).get("version") == version)
    return control.watch.document("consumer", consumer_id)


async def _topic_bytes(control: Any) -> bytes:
    """Every record of the config topic, raw, up to its current end."""
    tp = TopicPartition(control.settings.topics.config, 0)
    consumer = make_consumer(control.settings)
    await consumer.start()
    try:
        consumer.assign([tp])
        await consumer.seek_to_beginning(tp)
        end = (await consumer.end_offsets([tp]))[tp]
        out = bytearray()
        while await consumer.position(tp) < end:
            for rec in (await consumer.getmany(tp, timeout_ms=200)).get(tp, []):
                out += (rec.key or b"") + (rec.value or b"")
        return bytes(out)
    finally:
        await consumer.stop()


async def test_crud_versions_audit_and_config_document(control: Any) -> None:
    org = await control.new_org("cons")
    slug = org["slug"]
    c = await _consumer(control, slug, name="mobile-app")
    assert c["name"] == "mobile-app" and c["enabled"] is True and c["version"] == 1
    assert c["keys"] == [] and c["basic"] is None and c["oauth_clients"] == []
    doc = await _doc(control, c["id"], 1)
    assert doc == {"id": c["id"], "org": slug, "org_id": org["id"], "name": "mobile-app", "enabled": True,
                   "version": 1, "rate_limit": None, "keys": [], "basic": None, "oauth_clients": []}

    r = await control.call("GET", _url(slug, c["id"]), control.admin_token)
    assert r.status == 200 and r.body == c and r.headers["ETag"] == 'W/"1"'
    r = await control.call("PATCH", _url(slug, c["id"]), control.admin_token, {"enabled": False},
                           headers={"If-Match": 'W/"1"'})
    assert r.status == 200 and r.body["enabled"] is False and r.body["version"] == 2
    assert (await _doc(control, c["id"], 2))["enabled"] is False
    r = await control.call("PATCH", _url(slug, c["id"]), control.admin_token, {"name": "renamed"},
                           headers={"If-Match": 'W/"1"'})
    assert r.status == 412 and r.body["code"] == "precondition_failed"
    r = await control.call("PATCH", _url(slug, c["id"]), control.admin_token, {"enabled": False})
    assert r.status == 200 and r.body["version"] == 2  # nothing changed: no new version

    other = await _consumer(control, slug)
    r = await control.call("PATCH", _url(slug, other["id"]), control.admin_token, {"name": "mobile-app"})
    assert r.status == 409 and r.body["code"] == "name_taken" and r.body["fields"][0]["field"] == "name"
    r = await control.call("POST", _url(slug), control.admin_token, {"name": "mobile-app"})
    assert r.status == 409 and r.body["code"] == "name_taken"

    versions = (await control.call("GET", _url(slug, c["id"], "versions"), control.admin_token)).body["items"]
    assert [v["version"] for v in versions] == [1, 2]
    r = await control.call("GET", _url(slug, c["id"], "versions", "1", "diff", "2"), control.admin_token)
    assert r.body["changes"] == [{"field": "enabled", "before": True, "after": False}]
    audit = (await control.call("GET", f"/api/v1/audit?org={slug}&resource_id={c['id']}", control.admin_token)).body
    assert [e["action"] for e in audit["items"]] == ["update", "create"]
    assert all(e["resource_type"] == "consumer" for e in audit["items"])

    assert (await control.call("DELETE", _url(slug, c["id"]), control.admin_token)).status == 204
    assert (await control.call("GET", _url(slug, c["id"]), control.admin_token)).status == 404
    await control.watch.wait_for(lambda: control.watch.latest[f"consumer/{c['id']}"]["op"] == "delete")


async def test_list_is_paginated_and_per_organisation(control: Any) -> None:
    a, b = (await control.new_org("cpa"))["slug"], (await control.new_org("cpb"))["slug"]
    made = [(await _consumer(control, a, name=f"c-{i:03d}"))["id"] for i in range(25)]
    await _consumer(control, b)
    items, cursor = [], None
    while True:
        r = await control.call("GET", _url(a) + "?limit=10" + (f"&cursor={cursor}" if cursor else ""), control.admin_token)
        assert r.status == 200 and set(r.body) == {"items", "next_cursor"}
        items += [i["id"] for i in r.body["items"]]
        cursor = r.body["next_cursor"]
        if cursor is None:
            break
    assert items == made
    r = await control.call("GET", _url(a) + "?limit=0", control.admin_token)
    assert r.status == 422 and r.body["fields"][0]["field"] == "limit"


async def test_api_key_is_shown_once_and_never_again(control: Any) -> None:
    org = await control.new_org("ckey")
    slug = org["slug"]
    c = await _consumer(control, slug)
    expires = (datetime.now(timezone.utc) + timedelta(days=30)).replace(microsecond=0)
    r = await control.call("POST", _url(slug, c["id"], "keys"), control.admin_token,
                           {"expires_at": expires.isoformat().replace("+00:00", "Z")})
    assert r.status == 201, r.body
    key = r.body["key"]
    assert key.startswith("jk_") and len(key) == 3 + 43 and r.body["prefix"] == key[:11]
    assert datetime.fromisoformat(r.body["expires_at"]) == expires
    r2 = await control.call("POST", _url(slug, c["id"], "keys"), control.admin_token, {})
    assert r2.status == 201 and r2.body["expires_at"] is None and r2.body["key"] != key

    listed = (await control.call("GET", _url(slug, c["id"], "keys"), control.admin_token)).body["items"]
    assert [k["id"] for k in listed] == [r.body["id"], r2.body["id"]]
    assert set(listed[0]) == {"id", "prefix", "expires_at", "last_used_at", "created_at"}
    assert listed[0]["last_used_at"] is None

    doc = await _doc(control, c["id"], 3)
    assert doc["keys"] == [
        {"id": r.body["id"], "prefix": key[:11], "hash": hashlib.sha256(key.encode()).hexdigest(),
         "expires_at_ms": int(expires.timestamp() * 1000)},
        {"id": r2.body["id"], "prefix": r2.body["key"][:11],
         "hash": hashlib.sha256(r2.body["key"].encode()).hexdigest(), "expires_at_ms": None}]

    # Never again: not in reads, versions, diffs, audit, the database beyond its hash, or the topic.
    seen = [await control.call("GET", _url(slug, c["id"]), control.admin_token),
            await control.call("GET", _url(slug), control.admin_token),
            await control.call("GET", _url(slug, c["id"], "versions"), control.admin_token),
            await control.call("GET", _url(slug, c["id"], "versions", "1", "diff", "3"), control.admin_token),
            await control.call("GET", f"/api/v1/audit?org={slug}", control.admin_token)]
    for reply in seen:
        assert reply.status == 200
        text = json.dumps(reply.body)
        assert key not in text and key[11:] not in text
        assert hashlib.sha256(key.encode()).hexdigest() not in text
    stored = await control.pool.fetchval("SELECT string_agg(row_to_json(k)::text, '') FROM consumer_keys k")
    assert key not in stored and key[11:] not in stored
    raw = await _topic_bytes(control)
    assert hashlib.sha256(key.encode()).hexdigest().encode() in raw  # the hash travels ...
    assert key.encode() not in raw and key[11:].encode() not in raw  # ... the key never

    # Revoke: gone from the list and the document.
    assert (await control.call("DELETE", _url(slug, c["id"], "keys", r.body["id"]), control.admin_token)).status == 204
    assert (await control.call("DELETE", _url(slug, c["id"], "keys", r.body["id"]), control.admin_token)).status == 404
    doc = await _doc(control, c["id"], 4)
    assert [k["id"] for k in doc["keys"]] == [r2.body["id"]]


async def test_key_expiry_must_be_a_future_rfc3339_time(control: Any) -> None:
    slug = (await control.new_org("ckx"))["slug"]
    c = await _consumer(control, slug)
    past = (datetime.now(timezone.utc) - timedelta(seconds=1)).isoformat()
    for bad in ("tomorrow", "2030-01-01T00:00:00", past, 5, "2030-13-01T00:00:00Z"):
        r = await control.call("POST", _url(slug, c["id"], "keys"), control.admin_token, {"expires_at": bad})
        assert r.status == 422 and r.body["fields"][0]["field"] == "expires_at", (bad, r.body)
    assert (await control.call("GET", _url(slug, c["id"], "keys"), control.admin_token)).body["items"] == []


async def test_basic_credentials(control: Any) -> None:
    org = await control.new_org("cbas")
    slug = org["slug"]
    c, other = await _consumer(control, slug), await _consumer(control, slug)
    r = await control.call("POST", _url(slug, c["id"], "basic"), control.admin_token,
                           {"username": "partner-1", "password": "correct horse battery"})
    assert r.status == 200 and r.body["basic"] == {"username": "partner-1"} and r.body["version"] == 2
    doc = await _doc(control, c["id"], 2)
    assert doc["basic"]["username"] == "partner-1"
    assert bcrypt.checkpw(b"correct horse battery", doc["basic"]["password_hash"].encode())
    # Unique per organisation; free in another one.
    r = await control.call("POST", _url(slug, other["id"], "basic"), control.admin_token,
                           {"username": "partner-1", "password": "another password"})
    assert r.status == 409 and r.body["code"] == "username_taken" and r.body["fields"][0]["field"] == "username"
    slug2 = (await control.new_org("cbas"))["slug"]
    c2 = await _consumer(control, slug2)
    r = await control.call("POST", _url(slug2, c2["id"], "basic"), control.admin_token,
                           {"username": "partner-1", "password": "another password"})
    assert r.status == 200
    # Replace, then remove.
    r = await control.call("POST", _url(slug, c["id"], "basic"), control.admin_token,
                           {"username": "partner-2", "password": "new password 2"})
    assert r.status == 200 and r.body["basic"] == {"username": "partner-2"}
    audit = json.dumps((await control.call("GET", f"/api/v1/audit?org={slug}", control.admin_token)).body)
    assert "correct horse battery" not in audit and "$2b$" not in audit
    assert (await control.call("DELETE", _url(slug, c["id"], "basic"), control.admin_token)).status == 204
    assert (await control.call("DELETE", _url(slug, c["id"], "basic"), control.admin_token)).status == 404
    assert (await _doc(control, c["id"], 4))["basic"] is None
    for bad, field in (({"username": "a:b", "password": "password-1"}, "username"),
                       ({"username": "ok", "password": "short"}, "password"),
                       ({"username": "x" * 201, "password": "password-1"}, "username")):
        r = await control.call("POST", _url(slug, c["id"], "basic"), control.admin_token, bad)
        assert r.status == 422 and r.body["fields"][0]["field"] == field


async def test_oauth_clients(control: Any) -> None:
    slug = (await control.new_org("coa"))["slug"]
    c = await _consumer(control, slug)
    r = await control.call("POST", _url(slug, c["id"], "oauth-clients"), control.admin_token,
                           {"scopes": ["orders:read", "orders:write"]})
    assert r.status == 201 and r.body["scopes"] == ["orders:read", "orders:write"]
    secret, client_id = r.body["client_secret"], r.body["client_id"]
    listed = (await control.call("GET", _url(slug, c["id"], "oauth-clients"), control.admin_token)).body["items"]
    assert [x["client_id"] for x in listed] == [client_id] and "client_secret" not in listed[0]
    doc = await _doc(control, c["id"], 2)
    assert doc["oauth_clients"] == [{"client_id": client_id, "secret_hash": hashlib.sha256(secret.encode()).hexdigest(),
                                     "scopes": ["orders:read", "orders:write"]}]
    assert secret.encode() not in await _topic_bytes(control)
    r = await control.call("POST", _url(slug, c["id"], "oauth-clients"), control.admin_token, {"scopes": ["bad scope"]})
    assert r.status == 422 and r.body["fields"][0]["field"] == "scopes[0]"
    assert (await control.call("DELETE", _url(slug, c["id"], "oauth-clients", client_id), control.admin_token)).status == 204
    assert (await _doc(control, c["id"], 3))["oauth_clients"] == []


async def test_rbac_and_attacks(control: Any) -> None:
    a, b = await control.new_org("catk"), await control.new_org("catk")
    victim = await _consumer(control, b["slug"])
    key = (await control.call("POST", _url(b["slug"], victim["id"], "keys"), control.admin_token, {})).body
    _, admin_a = await control.new_user(a["slug"], "org_admin")
    _, viewer_b = await control.new_user(b["slug"], "org_viewer")
    _, admin_b = await control.new_user(b["slug"], "org_admin")
    # An org admin of A cannot see or touch B's consumers, by B's slug or through A's.
    for org_ref in (b["slug"], a["slug"]):
        for method, suffix, body in (("GET", "", None), ("PATCH", "", {"enabled": False}), ("DELETE", "", None),
                                     ("GET", "/keys", None), ("POST", "/keys", {}),
                                     ("DELETE", f"/keys/{key['id']}", None), ("GET", "/versions", None),
                                     ("POST", "/basic", {"username": "x", "password": "password-1"}),
                                     ("POST", "/oauth-clients", {})):
            r = await control.call(method, _url(org_ref, victim["id"]) + suffix, admin_a, body)
            assert r.status == 404, (org_ref, method, suffix, r.status, r.body)
    r = await control.call("GET", _url(b["slug"]), admin_a)
    assert r.status == 404
    # A viewer may not manage consumers, not even list them.
    for method, path, body in (("GET", _url(b["slug"]), None), ("POST", _url(b["slug"]), {"name": "v"}),
                               ("GET", _url(b["slug"], victim["id"], "keys"), None)):
        assert (await control.call(method, path, viewer_b, body)).status == 403
    # B's admin manages B's consumers, but not with another consumer's key id.
    mine = await _consumer(control, b["slug"], admin_b)
    r = await control.call("DELETE", _url(b["slug"], mine["id"], "keys", key["id"]), admin_b)
    assert r.status == 404
    for bad in ("not-a-uuid", str(uuid.uuid4())):
        assert (await control.call("DELETE", _url(b["slug"], mine["id"], "keys", bad), admin_b)).status == 404
    listed = (await control.call("GET", _url(b["slug"], victim["id"], "keys"), admin_b)).body["items"]
    assert [k["id"] for k in listed] == [key["id"]]  # still there
    # Oversized or malformed input is refused with its field.
    for body, field in (({"name": "x" * 101}, "name"), ({"name": "ok", "bogus": 1}, "bogus"),
                        ({"name": "bad\x00"}, "name"), ({"name": "ok", "enabled": "no"}, "enabled")):
        r = await control.call("POST", _url(b["slug"]), admin_b, body)
        assert r.status == 422 and r.body["fields"][0]["field"] == field, r.body
    r = await control.call("POST", _url(b["slug"], mine["id"], "oauth-clients"), admin_b, {"scopes": ["s"] * 2})
    assert r.status == 422


async def test_consumer_quota_holds_under_a_race(control: Any) -> None:
    org = await control.new_org("cq")
    slug = org["slug"]
    r = await control.call("PATCH", f"/api/v1/orgs/{slug}", control.admin_token, {"quotas": {"consumers": 3}})
    assert r.status == 200 and r.body["quotas"] == {"consumers": 3}
    results = await asyncio.gather(*[control.call("POST", _url(slug), control.admin_token, {"name": f"r{i}"})
                                     for i in range(8)])
    statuses = sorted(r.status for r in results)
    assert statuses == [201] * 3 + [403] * 5, statuses
    refused = next(r for r in results if r.status == 403)
    assert refused.body["code"] == "quota_exceeded" and refused.body["limit"] == 3
    assert refused.body["fields"][0]["field"] == "quotas.consumers"
    count = await control.pool.fetchval("SELECT count(*) FROM consumers WHERE org_id = $1", org["id"])
    assert count == 3
    # Only a global admin sets quotas.
    _, admin = await control.new_user(slug, "org_admin")
    r = await control.call("PATCH", f"/api/v1/orgs/{slug}", admin, {"quotas": {"consumers": 100}})
    assert r.status == 403
    r = await control.call("PATCH", f"/api/v1/orgs/{slug}", control.admin_token, {"quotas": {"consumers": None}})
    assert r.status == 200 and r.body["quotas"] == {}
    assert (await control.call("POST", _url(slug), control.admin_token, {"name": "r-after"})).status == 201


@PROPS
@given(names=st.lists(st.from_regex(r"[A-Za-z0-9][A-Za-z0-9._-]{0,20}", fullmatch=True), min_size=1, max_size=5,
                      unique=True),
       ops=st.lists(st.sampled_from(["key", "basic", "oauth", "disable", "revoke"]), max_size=6))
async def test_property_document_follows_every_change(control: Any, names: list[str], ops: list[str]) -> None:
    """Whatever the changes, the last config document of a consumer equals its
    current state, with one hash per live key and no secret in clear."""
    slug = (await control.new_org("cprop"))["slug"]
    c = await _consumer(control, slug, name=names[0])
    keys: list[dict[str, Any]] = []
    for op in ops:
        if op == "key":
            keys.append((await control.call("POST", _url(slug, c["id"], "keys"), control.admin_token, {})).body)
        elif op == "revoke" and keys:
            gone = keys.pop(0)
            assert (await control.call("DELETE", _url(slug, c["id"], "keys", gone["id"]), control.admin_token)).status == 204
        elif op == "basic":
            await control.call("POST", _url(slug, c["id"], "basic"), control.admin_token,
                               {"username": f"u{uuid.uuid4().hex[:6]}", "password": "password-123"})
        elif op == "oauth":
            await control.call("POST", _url(slug, c["id"], "oauth-clients"), control.admin_token, {})
        elif op == "disable":
            await control.call("PATCH", _url(slug, c["id"]), control.admin_token, {"enabled": False})
    current = (await control.call("GET", _url(slug, c["id"]), control.admin_token)).body
    doc = await _doc(control, c["id"], current["version"])
    assert doc["enabled"] == current["enabled"] and doc["name"] == current["name"]
    assert [k["id"] for k in doc["keys"]] == [k["id"] for k in keys] == [k["id"] for k in current["keys"]]
    assert [k["hash"] for k in doc["keys"]] == [hashlib.sha256(k["key"].encode()).hexdigest() for k in keys]
    assert (doc["basic"] or {}).get("username") == (current["basic"] or {}).get("username")
    assert [x["client_id"] for x in doc["oauth_clients"]] == [x["client_id"] for x in current["oauth_clients"]]
    text = json.dumps(control.watch.events)
    assert not any(k["key"] in text for k in keys)


async def test_sdk_and_cli(control: Any) -> None:
    import os
    import sys

    from junction.sdk import JunctionAPIError, JunctionClient

    slug = (await control.new_org("csdk"))["slug"]
    async with JunctionClient(control.base_url, control.admin_token) as jc:
        c = await jc.create_consumer(slug, "partner")
        key = await jc.create_key(slug, c["id"], expires_at="2999-01-01T00:00:00Z")
        assert [k["id"] for k in await jc.list_keys(slug, c["id"])] == [key["id"]]
        client = await jc.create_oauth_client(slug, c["id"], scopes=["a"])
        assert client["client_secret"] and (await jc.list_oauth_clients(slug, c["id"]))[0]["scopes"] == ["a"]
        assert (await jc.set_basic(slug, c["id"], "partner", "password-123"))["basic"] == {"username": "partner"}
        c = await jc.update_consumer(slug, c["id"], enabled=False)
        assert c["enabled"] is False and c["version"] == 5
        assert [v["version"] for v in await jc.versions(slug, "consumers", c["id"])] == [1, 2, 3, 4, 5]
        assert [x["id"] for x in await jc.list_consumers(slug, page_size=1)] == [c["id"]]
        await jc.revoke_key(slug, c["id"], key["id"])
        with pytest.raises(JunctionAPIError) as info:
            await jc.revoke_key(slug, c["id"], key["id"])
        assert info.value.status == 404

    async def cli(*argv: str) -> tuple[int, Any, str]:
        env = {**os.environ, **control.settings.to_env(), "JUNCTION_TOKEN": control.admin_token}
        proc = await asyncio.create_subprocess_exec(sys.executable, "-m", "junction", *argv, "--url", control.base_url,
                                                    env=env, stdout=asyncio.subprocess.PIPE,
                                                    stderr=asyncio.subprocess.PIPE)
        out, err = await proc.communicate()
        return proc.returncode or 0, json.loads(out) if out.strip() else None, err.decode()

    rc, made, err = await cli("consumers", "create", slug, "from-cli")
    assert rc == 0 and made["name"] == "from-cli", err
    rc, key, err = await cli("consumers", "keys", "create", slug, made["id"])
    assert rc == 0 and key["key"].startswith("jk_"), err
    rc, keys, err = await cli("consumers", "keys", "list", slug, made["id"])
    assert rc == 0 and [k["id"] for k in keys] == [key["id"]] and "key" not in keys[0], err
    # By name: replace sets enabled on the same consumer, and a new name makes a new one; keys stay.
    rc, replaced, err = await cli("consumers", "replace", slug, "from-cli", "--enabled", "false")
    assert rc == 0 and replaced["id"] == made["id"] and replaced["enabled"] is False, err
    rc, keys, err = await cli("consumers", "keys", "list", slug, "from-cli")
    assert rc == 0 and [k["id"] for k in keys] == [key["id"]], err
    rc, other, err = await cli("consumers", "replace", slug, "from-cli-2")
    assert rc == 0 and other["id"] != made["id"] and other["version"] == 1 and other["enabled"] is True, err
    rc, tagged, err = await cli("consumers", "create", slug, "tagged", "--tags", "partner,eu")
    assert rc == 0 and tagged["tags"] == ["eu", "partner"], err
    rc, listed, err = await cli("consumers", "list", slug, "--tags", "partner")
    assert rc == 0 and [x["name"] for x in listed] == ["tagged"], err
    rc, _, err = await cli("consumers", "delete", slug, "..")  # would be the organisation's own path
    assert rc == 2 and json.loads(err)["code"] == "invalid_input", err
    rc, _, err = await cli("consumers", "keys", "revoke", slug, made["id"], key["id"])
    assert rc == 0, err
    rc, listed, err = await cli("consumers", "list", slug)
    assert rc == 0 and "from-cli" in [x["name"] for x in listed], err
    rc, _, err = await cli("consumers", "delete", slug, made["id"])
    assert rc == 0, err
    rc, _, err = await cli("consumers", "delete", slug, made["id"])
    assert rc == 1 and json.loads(err)["status"] == 404
