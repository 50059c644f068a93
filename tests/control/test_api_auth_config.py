"""An API's ``auth`` and ``rate_limit``, an organisation's default rate limit,
write-only secrets (a jwt secret, secret connector settings) and the quotas on
APIs, connectors, scripts and settings, through the live control server."""
from __future__ import annotations

import json
import uuid
from typing import Any

import pytest
from hypothesis import HealthCheck, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from core.connector_secrets import MASK, script_settings
from core.scripts import script_ctx
from core.sealing import Sealer, SealError, new_seal_key, sealer_for

SECRET = "jwt-shared-secret-" + "s" * 40
PROPS = hsettings(max_examples=10, deadline=None, suppress_health_check=list(HealthCheck))


def _fields(body: dict[str, Any]) -> list[str]:
    return [f["field"] for f in body.get("fields", [])]


async def _setup(control: Any) -> tuple[dict[str, Any], dict[str, Any]]:
    org = await control.new_org("aac")
    return org, await control.new_connector(org["slug"])


async def _post_api(control: Any, slug: str, connector: str, **fields: Any) -> Any:
    body = {"name": f"a-{uuid.uuid4().hex[:8]}", "methods": ["GET"], "path": f"/p{uuid.uuid4().hex[:8]}",
            "connector": connector, **fields}
    return await control.call("POST", f"/api/v1/orgs/{slug}/apis", control.admin_token, body)


@pytest.mark.parametrize("auth, rate_limit, field", [
    ({"mode": "digest"}, None, "auth.mode"),
    ({"mode": "none", "name": "X-Key"}, None, "auth.name"),
    ({"mode": "api_key", "in": "cookie"}, None, "auth.in"),
    ({"mode": "api_key", "name": "bad header"}, None, "auth.name"),
    ({"mode": "basic", "scopes": ["a"]}, None, "auth.scopes"),
    ({"mode": "jwt", "algorithms": ["RS256"]}, None, "auth.jwks_url"),
    ({"mode": "jwt", "jwks_url": "http://idp.example/jwks", "algorithms": ["RS256"]}, None, "auth.jwks_url"),
    ({"mode": "jwt", "jwks_url": "https://idp.example/jwks"}, None, "auth.algorithms"),
    ({"mode": "jwt", "jwks_url": "https://idp.example/jwks", "algorithms": ["none"]}, None, "auth.algorithms[0]"),
    ({"mode": "jwt", "jwks_url": "https://idp.example/jwks", "algorithms": ["HS256"]}, None, "auth.algorithms[0]"),
    ({"mode": "jwt", "secret": SECRET, "algorithms": ["HS256", "RS256"]}, None, "auth.algorithms[1]"),
    ({"mode": "jwt", "secret": SECRET, "jwks_url": "https://idp.example/jwks", "algorithms": ["HS256"]}, None,
     "auth.secret"),
    ({"mode": "jwt", "secret": "short", "algorithms": ["HS256"]}, None, "auth.secret"),
    ({"mode": "jwt", "secret_sealed": "AAAA", "algorithms": ["HS256"]}, None, "auth.secret_sealed"),
    ({"mode": "jwt", "jwks_url": "https://idp.example/jwks", "algorithms": ["RS256"], "leeway_s": -1}, None,
     "auth.leeway_s"),
    ({"mode": "oauth2", "scopes": ["has space"]}, None, "auth.scopes[0]"),
    ({"mode": "api_key", "consumers": ["not-an-id"]}, None, "auth.consumers[0]"),
    ({"mode": "api_key", "consumers": [str(uuid.uuid4())]}, None, "auth.consumers[0]"),
    ({"mode": "api_key", "consumer_header": "X Consumer"}, None, "auth.consumer_header"),
    ({"mode": "none"}, {"requests": 10, "per_seconds": 1, "by": "consumer"}, "rate_limit.by"),
    ({"mode": "api_key"}, {"requests": 0, "per_seconds": 1, "by": "api"}, "rate_limit.requests"),
    ({"mode": "api_key"}, {"requests": 5, "per_seconds": 0, "by": "api"}, "rate_limit.per_seconds"),
    ({"mode": "api_key"}, {"requests": 5, "per_seconds": 1, "by": "user"}, "rate_limit.by"),
    ({"mode": "api_key"}, {"requests": 5, "per_seconds": 1}, "rate_limit.by"),
])
async def test_auth_and_rate_limit_errors_name_their_field(control: Any, auth: dict[str, Any],
                                                           rate_limit: dict[str, Any] | None, field: str) -> None:
    org, connector = await _setup(control)
    extra = {"rate_limit": rate_limit} if rate_limit else {}
    r = await _post_api(control, org["slug"], connector["id"], auth=auth, **extra)
    assert r.status == 422, (auth, r.body)
    assert field in _fields(r.body), (auth, r.body)


async def test_valid_auth_and_rate_limit_reach_the_config_document(control: Any) -> None:
    org, connector = await _setup(control)
    slug = org["slug"]
    consumer = (await control.call("POST", f"/api/v1/orgs/{slug}/consumers", control.admin_token, {"name": "app"})).body
    auth = {"mode": "api_key", "in": "query", "name": "apikey", "consumers": [consumer["id"]],
            "consumer_header": "X-Caller"}
    rate_limit = {"requests": 100, "per_seconds": 0.5, "by": "consumer"}
    r = await _post_api(control, slug, connector["id"], auth=auth, rate_limit=rate_limit)
    assert r.status == 201, r.body
    api = r.body
    await control.watch.wait_for(lambda: control.watch.document("api", api["id"]) is not None)
    doc = control.watch.document("api", api["id"])
    assert doc["auth"] == auth and doc["rate_limit"] == rate_limit
    # A consumer that an API allows cannot be deleted from under it.
    r = await control.call("DELETE", f"/api/v1/orgs/{slug}/consumers/{consumer['id']}", control.admin_token)
    assert r.status == 409 and r.body["code"] == "consumer_in_use" and r.body["apis"] == [api["id"]]
    # Another organisation's consumer is not a consumer here.
    other = await control.new_org("aac")
    theirs = (await control.call("POST", f"/api/v1/orgs/{other['slug']}/consumers", control.admin_token,
                                 {"name": "x"})).body
    r = await control.call("PATCH", f"/api/v1/orgs/{slug}/apis/{api['id']}", control.admin_token,
                           {"auth": {"mode": "basic", "consumers": [theirs["id"]]}})
    assert r.status == 422 and _fields(r.body) == ["auth.consumers[0]"]
    r = await control.call("PATCH", f"/api/v1/orgs/{slug}/apis/{api['id']}", control.admin_token, {"rate_limit": None})
    assert r.status == 200 and r.body["rate_limit"] is None


async def test_org_default_rate_limit(control: Any) -> None:
    org = await control.new_org("aorg")
    limit = {"requests": 1000, "per_seconds": 60, "by": "ip"}
    _, admin = await control.new_user(org["slug"], "org_admin")
    r = await control.call("PATCH", f"/api/v1/orgs/{org['slug']}", admin, {"rate_limit": limit})
    assert r.status == 200 and r.body["rate_limit"] == limit and r.body["version"] == 2
    await control.watch.wait_for(lambda: (control.watch.document("org", org["id"]) or {}).get("rate_limit") == limit)
    r = await control.call("PATCH", f"/api/v1/orgs/{org['slug']}", admin, {"rate_limit": {"requests": 1}})
    assert r.status == 422 and "rate_limit.per_seconds" in _fields(r.body)
    r = await control.call("PATCH", f"/api/v1/orgs/{org['slug']}", admin, {"quotas": {"apis": 5}})
    assert r.status == 403
    assert (await control.call("GET", f"/api/v1/orgs/{org['slug']}", admin)).body["rate_limit"] == limit


async def test_jwt_secret_is_write_only_and_masked(control: Any) -> None:
    org, connector = await _setup(control)
    slug = org["slug"]
    auth = {"mode": "jwt", "secret": SECRET, "algorithms": ["HS256"], "issuer": "https://idp.example",
            "audience": "orders", "scopes": ["orders:read"]}
    r = await _post_api(control, slug, connector["id"], auth=auth)
    assert r.status == 201, r.body
    api = r.body
    url = f"/api/v1/orgs/{slug}/apis/{api['id']}"
    assert api["auth"]["secret_set"] is True and "secret" not in api["auth"] and "secret_sealed" not in api["auth"]
    # A PATCH leaving auth alone keeps it; so does sending back what a read showed.
    r = await control.call("PATCH", url, control.admin_token, {"timeout_ms": 1234})
    assert r.status == 200 and r.body["auth"]["secret_set"] is True
    shown = (await control.call("GET", url, control.admin_token)).body["auth"]
    r = await control.call("PATCH", url, control.admin_token, {"auth": shown})
    assert r.status == 200 and r.body["version"] == 2  # nothing changed
    r = await control.call("PATCH", url, control.admin_token, {"auth": {**shown, "secret": SECRET + "2"}})
    assert r.status == 200 and r.body["version"] == 3
    await control.watch.wait_for(lambda: (control.watch.document("api", api["id"]) or {}).get("version") == 3)
    doc = control.watch.document("api", api["id"])
    sealer = sealer_for(control.settings)
    assert sealer.open_json(doc["auth"]["secret_sealed"], f"api-jwt:{api['id']}") == SECRET + "2"
    with pytest.raises(SealError):  # bound to this API
        sealer.open_json(doc["auth"]["secret_sealed"], f"api-jwt:{uuid.uuid4()}")
    diff = (await control.call("GET", f"{url}/versions/2/diff/3", control.admin_token)).body["changes"]
    assert diff == [{"field": "auth.secret_sealed", "before": MASK, "after": MASK}]
    seen = [await control.call("GET", url, control.admin_token),
            await control.call("GET", f"{url}/versions", control.admin_token),
            await control.call("GET", f"/api/v1/orgs/{slug}/apis", control.admin_token),
            await control.call("GET", f"/api/v1/audit?org={slug}", control.admin_token)]
    for reply in seen:
        text = json.dumps(reply.body)
        assert SECRET not in text and doc["auth"]["secret_sealed"] not in text and "secret_sealed" not in text
    assert SECRET.encode() not in json.dumps(control.watch.events).encode()
    # Switching to a JWKS drops the secret.
    r = await control.call("PATCH", url, control.admin_token,
                           {"auth": {"mode": "jwt", "jwks_url": "https://idp.example/jwks", "algorithms": ["RS256"]}})
    assert r.status == 200 and "secret_set" not in r.body["auth"]


async def test_secret_connector_settings(control: Any) -> None:
    org = await control.new_org("asec")
    slug = org["slug"]
    c = await control.new_connector(slug, settings={"api_token": "tok-123456", "region": "eu"},
                                    secret_fields=["api_token"])
    url = f"/api/v1/orgs/{slug}/connectors/{c['id']}"
    assert c["settings"] == {"api_token": MASK, "region": "eu"} and c["secret_fields"] == ["api_token"]
    await control.watch.wait_for(lambda: control.watch.document("connector", c["id"]) is not None)
    doc = control.watch.document("connector", c["id"])
    assert doc["settings"] == {"region": "eu"} and doc["secret_settings_sealed"]
    sealer = sealer_for(control.settings)
    assert script_settings(doc, sealer) == {"api_token": "tok-123456", "region": "eu"}
    assert script_settings(doc, None) == {"region": "eu"}
    assert script_ctx(slug, None, doc, sealer)["settings"]["api_token"] == "tok-123456"
    with pytest.raises(SealError):  # another deployment's key does not open it
        script_settings(doc, Sealer(__import__("base64").b64decode(new_seal_key())))
    # Sending the mask back keeps the value and writes no version; a new value re-seals.
    r = await control.call("PATCH", url, control.admin_token, {"settings": c["settings"]})
    assert r.status == 200 and r.body["version"] == 1
    r = await control.call("PATCH", url, control.admin_token, {"settings": {"api_token": MASK, "region": "us"}})
    assert r.status == 200 and r.body["version"] == 2
    r = await control.call("PATCH", url, control.admin_token, {"settings": {"api_token": "tok-new", "region": "us"}})
    assert r.status == 200 and r.body["version"] == 3 and r.body["settings"]["api_token"] == MASK
    await control.watch.wait_for(lambda: control.watch.document("connector", c["id"])["version"] == 3)
    assert script_settings(control.watch.document("connector", c["id"]), sealer)["api_token"] == "tok-new"
    diff = (await control.call("GET", f"{url}/versions/2/diff/3", control.admin_token)).body["changes"]
    assert diff == [{"field": "secret_settings_sealed", "before": MASK, "after": MASK}]
    for reply in [await control.call("GET", f"{url}/versions", control.admin_token),
                  await control.call("GET", f"/api/v1/orgs/{slug}/connectors", control.admin_token),
                  await control.call("GET", f"/api/v1/audit?org={slug}", control.admin_token)]:
        text = json.dumps(reply.body)
        assert "tok-123456" not in text and "tok-new" not in text and "secret_settings_sealed\": \"" not in text
    assert "tok-123456" not in json.dumps(control.watch.events) and "tok-new" not in json.dumps(control.watch.events)
    # A rollback restores the sealed value of that version.
    r = await control.call("POST", f"{url}/rollback", control.admin_token, {"version": 1})
    assert r.status == 200 and r.body["version"] == 4
    await control.watch.wait_for(lambda: control.watch.document("connector", c["id"])["version"] == 4)
    assert script_settings(control.watch.document("connector", c["id"]), sealer) == \
        {"api_token": "tok-123456", "region": "eu"}
    # A secret field with no value to keep, or a forged blob, is refused.
    r = await control.call("PATCH", url, control.admin_token, {"secret_fields": ["api_token", "password"]})
    assert r.status == 422 and _fields(r.body) == ["secret_fields[1]"]
    r = await control.call("PATCH", url, control.admin_token, {"secret_settings_sealed": "AAAA"})
    assert r.status == 422 and _fields(r.body) == ["secret_settings_sealed"]
    r = await control.call("POST", f"/api/v1/orgs/{slug}/connectors", control.admin_token,
                           {"name": "x", "target": c["target"], "settings": {"k": MASK}, "secret_fields": ["k"]})
    assert r.status == 422 and _fields(r.body) == ["settings.k"]

    # A setting that stops being secret is never lost, nor replaced by its mask: its value is asked for.
    r = await control.call("PATCH", url, control.admin_token, {"secret_fields": []})
    assert r.status == 422 and _fields(r.body) == ["secret_fields"] and "api_token" in r.body["message"], r.body
    r = await control.call("PATCH", url, control.admin_token,
                           {"settings": {"api_token": MASK, "region": "us"}, "secret_fields": []})
    assert r.status == 422 and _fields(r.body) == ["settings.api_token"], r.body
    r = await control.call("PUT", url, control.admin_token, {"name": c["name"], "target": c["target"],
                                                             "settings": {"api_token": MASK}})
    assert r.status == 422 and _fields(r.body) == ["settings.api_token"], r.body
    r = await control.call("GET", url, control.admin_token)
    assert r.body["version"] == 4 and r.body["secret_fields"] == ["api_token"]
    # Given in clear, it is kept as a plain setting; left out of the settings sent, it is removed.
    r = await control.call("PATCH", url, control.admin_token,
                           {"settings": {"api_token": "tok-plain", "region": "eu"}, "secret_fields": []})
    assert r.status == 200 and r.body["settings"] == {"api_token": "tok-plain", "region": "eu"}, r.body
    r = await control.call("PATCH", url, control.admin_token, {"settings": {"k2": "v"}, "secret_fields": ["k2"]})
    assert r.status == 200, r.body
    r = await control.call("PATCH", url, control.admin_token, {"settings": {"region": "eu"}, "secret_fields": []})
    assert r.status == 200 and r.body["settings"] == {"region": "eu"} and not r.body.get("secret_fields"), r.body


@PROPS
@given(values=st.dictionaries(st.from_regex(r"[a-z]{1,8}", fullmatch=True),
                              st.one_of(st.text(max_size=20), st.integers(), st.booleans()), min_size=1, max_size=4),
       secret_share=st.integers(0, 4))
def test_property_script_settings_round_trip(values: dict[str, Any], secret_share: int) -> None:
    """Whatever the settings and whichever are secret, the script sees exactly
    the settings given, and the stored form holds none of the secret ones."""
    from core.connector_secrets import masked, seal_secret_settings

    sealer = Sealer(__import__("base64").b64decode(new_seal_key()))
    secret = sorted(values)[:secret_share]
    cid = str(uuid.uuid4())
    stored = seal_secret_settings({"settings": dict(values), "secret_fields": secret}, cid, None, sealer)
    assert set(stored["settings"]) == set(values) - set(secret)
    assert script_settings({"id": cid, **stored}, sealer) == values
    assert masked(stored)["settings"] == {k: (MASK if k in secret else v) for k, v in values.items()}


async def test_quotas_on_apis_connectors_scripts_and_settings(control: Any) -> None:
    org, connector = await _setup(control)
    slug = org["slug"]
    r = await control.call("PATCH", f"/api/v1/orgs/{slug}", control.admin_token,
                           {"quotas": {"apis": 1, "connectors": 1, "script_bytes": 40, "settings_bytes": 20}})
    assert r.status == 200, r.body
    assert (await _post_api(control, slug, connector["id"])).status == 201
    r = await _post_api(control, slug, connector["id"])
    assert r.status == 403 and r.body["code"] == "quota_exceeded" and r.body["limit"] == 1
    assert _fields(r.body) == ["quotas.apis"]
    r = await control.call("POST", f"/api/v1/orgs/{slug}/connectors", control.admin_token,
                           {"name": "two", "target": connector["target"]})
    assert r.status == 403 and _fields(r.body) == ["quotas.connectors"]
    url = f"/api/v1/orgs/{slug}/connectors/{connector['id']}"
    r = await control.call("PATCH", url, control.admin_token, {"script": "def transform_request(r, c):\n    return r\n"})
    assert r.status == 403 and _fields(r.body) == ["script"] and r.body["limit"] == 40
    r = await control.call("PATCH", url, control.admin_token, {"settings": {"k": "v" * 30}})
    assert r.status == 403 and _fields(r.body) == ["settings"] and r.body["quota"] == "settings_bytes"
    r = await control.call("PATCH", url, control.admin_token, {"settings": {"k": "v"}})
    assert r.status == 200
