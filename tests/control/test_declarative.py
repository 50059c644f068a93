"""Declarative configuration (junction/declarative.py, ``junction config export|apply``): an organisation's
connectors, consumers, APIs and alert rules as one document, applied to match, against the real control
service."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from junction.declarative import ApplyFailed, DocumentError, apply_plan, dump, export_document, load_document, make_plan
from junction.sdk import JunctionClient
from tests.control_support import run_cli
from tests.soap_servers import WSDL_DIR

SCRIPT = "def transform_request(request, ctx):\n    request.headers['X-Region'] = ctx.settings['region']\n    return request\n"
CALCULATOR = WSDL_DIR / "calculator.wsdl"


async def _seed(control: Any, org: str) -> dict[str, Any]:
    """Two connectors (one with a secret setting and upstream credentials), two consumers (one with a key, one
    disabled) and three APIs, one of them SOAP, one allowing only the consumer "mobile"."""
    t = control.admin_token
    async with JunctionClient(control.base_url, t) as jc:
        mobile = await jc.create_consumer(org, "mobile")
        await jc.create_key(org, mobile["id"])
        await jc.create_consumer(org, "partner", enabled=False)
    plain = await control.new_connector(org, name="plain", target={"protocol": "rest", "url": "http://127.0.0.1:9/p",
                                                                   "method": "GET"})
    secret = await control.call("POST", f"/api/v1/orgs/{org}/connectors", t, {
        "name": "secret", "script": SCRIPT, "settings": {"region": "eu", "api_token": "tok-123-secret"},
        "secret_fields": ["api_token"],
        "target": {"protocol": "rest", "url": "http://127.0.0.1:9/s", "method": "POST",
                   "auth": {"type": "basic", "username": "svc", "password": "pw-456-secret"}}})
    assert secret.status == 201, secret.body
    await control.new_api(org, plain["id"], name="orders", path="/orders/{id}", timeout_ms=7000,
                          auth={"mode": "api_key", "consumers": [mobile["id"]]})
    await control.new_api(org, secret.body["id"],
                          name="stock", path="/stock/{sku}", methods=["GET", "POST"])
    if CALCULATOR.is_file():
        r = await control.call("POST", f"/api/v1/orgs/{org}/apis", t, {
            "name": "calc", "protocol": "soap", "path": "/calc", "connector": plain["id"], "wsdl": CALCULATOR.read_text()})
        assert r.status == 201, r.body
    return {"plain": plain, "secret": secret.body, "mobile": mobile}


async def control_consumers(control: Any, org: str) -> list[dict[str, Any]]:
    async with JunctionClient(control.base_url, control.admin_token) as jc:
        return list(await jc.list_consumers(org))


def _secrets_env() -> dict[str, str]:
    return {"JUNCTION_SECRET_TOKEN": "tok-123-secret", "JUNCTION_SECRET_PASSWORD": "pw-456-secret"}


def _with_secret_refs(doc: dict[str, Any]) -> dict[str, Any]:
    """An export made fit for a new organisation: its masked secrets as ${JUNCTION_SECRET_*}."""
    out = json.loads(json.dumps(doc))
    for c in out["connectors"]:
        if c["name"] == "secret":
            c["settings"]["api_token"] = "${JUNCTION_SECRET_TOKEN}"
            c["target"]["auth"]["password"] = "${JUNCTION_SECRET_PASSWORD}"
    return out


def _without_org(doc: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in doc.items() if k != "org"}


async def _versions(jc: JunctionClient, org: str) -> dict[str, int]:
    return {**{f"c:{c['name']}": c["version"] for c in await jc.list_connectors(org)},
            **{f"u:{c['name']}": c["version"] for c in await jc.list_consumers(org)},
            **{f"a:{a['name']}": a["version"] for a in await jc.list_apis(org)}}


async def test_an_export_applied_to_a_new_organisation_makes_the_same_one_and_applying_again_changes_nothing(
        control: Any) -> None:
    source = (await control.new_org("decl-src"))["slug"]
    copy_ = (await control.new_org("decl-dst"))["slug"]
    seeded = await _seed(control, source)
    async with JunctionClient(control.base_url, control.admin_token) as jc:
        exported = await export_document(jc, source)
        text = json.dumps(exported)
        # Secrets are never exported in clear.
        assert "tok-123-secret" not in text and "pw-456-secret" not in text and "********" in text
        assert [c["name"] for c in exported["connectors"]] == ["plain", "secret"]
        assert {a["name"]: a["connector"] for a in exported["apis"]}["stock"] == "secret"
        # Consumers by name, without their credentials; an API names the consumers it allows.
        assert exported["consumers"] == [{"name": "mobile", "enabled": True}, {"name": "partner", "enabled": False}]
        assert next(a for a in exported["apis"] if a["name"] == "orders")["auth"]["consumers"] == ["mobile"]
        assert "jk_" not in text

        # As exported, the masked secrets cannot make a new connector: refused before anything changes.
        with pytest.raises(DocumentError) as err:
            await make_plan(jc, copy_, load_document(text, {}), prune=False)
        assert dict(err.value.fields).keys() == {"connectors[1].settings.api_token",
                                                 "connectors[1].target.auth.password"}, err.value.fields
        assert await jc.list_connectors(copy_) == []

        doc = load_document(json.dumps(_with_secret_refs(exported)), _secrets_env())
        plan = await make_plan(jc, copy_, doc, prune=False)
        assert {(c.action, c.kind, c.name) for c in plan.changes} >= {("create", "connector", "secret"),
                                                                      ("create", "api", "orders")}
        await apply_plan(jc, plan)
        assert _without_org(await export_document(jc, copy_)) == _without_org(exported)
        secret = next(c for c in await jc.list_connectors(copy_) if c["name"] == "secret")
        tried = await jc.test_connector(copy_, secret["id"], method="GET", path="/x")
        assert dict(map(tuple, tried["request"]["headers"])).get("X-Region") == "eu", tried
        # The copy's "orders" allows the copy's own "mobile" (an id of the source would be refused, or worse,
        # another organisation's consumer); credentials are not copied.
        mobile = next(c for c in await jc.list_consumers(copy_) if c["name"] == "mobile")
        orders = next(a for a in await jc.list_apis(copy_) if a["name"] == "orders")
        assert orders["auth"]["consumers"] == [mobile["id"]] and mobile["id"] != seeded["mobile"]["id"]
        assert mobile["keys"] == [] and mobile["enabled"] is True

        before = await _versions(jc, copy_)
        again = await make_plan(jc, copy_, load_document(json.dumps(await export_document(jc, copy_)), {}), prune=True)
        assert again.changes == [] and again.kept == []
        # Secrets given in clear cannot be compared, so they are sent; the server keeps the version.
        resent = await make_plan(jc, copy_, doc, prune=False)
        assert [(c.action, c.name) for c in resent.changes] == [("update", "secret")]
        await apply_plan(jc, resent)
        assert await _versions(jc, copy_) == before


async def test_a_jwt_secret_an_export_leaves_out_is_named_before_anything_changes(control: Any) -> None:
    source = (await control.new_org("decl-jwt"))["slug"]
    copy_ = (await control.new_org("decl-jwt-cp"))["slug"]
    plain = await control.new_connector(source, name="plain")
    await control.new_api(source, plain["id"], name="tokens", path="/tokens/{id}",
                          auth={"mode": "jwt", "secret": "s" * 32, "algorithms": ["HS256"]})
    async with JunctionClient(control.base_url, control.admin_token) as jc:
        exported = await export_document(jc, source)
        assert exported["apis"][0]["auth"]["secret_set"] is True and "s" * 32 not in json.dumps(exported)
        # Applied to its own organisation, the stored secret is kept: nothing to change.
        assert (await make_plan(jc, source, load_document(json.dumps(exported), {}), prune=False)).changes == []
        with pytest.raises(DocumentError) as err:
            await make_plan(jc, copy_, load_document(json.dumps(exported), {}), prune=False)
        assert dict(err.value.fields).keys() == {"apis[0].auth.secret"}, err.value.fields
        assert await jc.list_connectors(copy_) == []
        exported["apis"][0]["auth"]["secret"] = "${JUNCTION_SECRET_JWT}"
        doc = load_document(json.dumps(exported), {"JUNCTION_SECRET_JWT": "s" * 32})
        await apply_plan(jc, await make_plan(jc, copy_, doc, prune=False))
        assert _without_org(await export_document(jc, copy_)) == _without_org(
            {**exported, "apis": [{**exported["apis"][0], "auth": {k: v for k, v in exported["apis"][0]["auth"].items()
                                                                   if k != "secret"}}]})


async def test_a_changed_field_is_one_update_and_nothing_else_moves(control: Any) -> None:
    org = (await control.new_org("decl-upd"))["slug"]
    await _seed(control, org)
    async with JunctionClient(control.base_url, control.admin_token) as jc:
        doc = await export_document(jc, org)
        before = await _versions(jc, org)
        next(a for a in doc["apis"] if a["name"] == "orders")["timeout_ms"] = 9000
        plan = await make_plan(jc, org, load_document(json.dumps(doc), {}), prune=False)
        assert [c.to_dict() for c in plan.changes] == [{"action": "update", "kind": "api", "name": "orders",
                                                       "fields": ["timeout_ms"]}]
        await apply_plan(jc, plan)
        after = await _versions(jc, org)
        assert after == {**before, "a:orders": before["a:orders"] + 1}
        assert next(a for a in await jc.list_apis(org) if a["name"] == "orders")["timeout_ms"] == 9000
        # A field left out is left as it is: a minimal entry changes nothing, and one naming only the field
        # it changes updates just that.
        minimal = {"format": "junction/v1", "apis": [{"name": "orders"}]}
        assert (await make_plan(jc, org, load_document(json.dumps(minimal), {}), prune=False)).changes == []
        minimal["apis"][0]["timeout_ms"] = 4000
        plan = await make_plan(jc, org, load_document(json.dumps(minimal), {}), prune=False)
        assert [c.to_dict() for c in plan.changes] == [{"action": "update", "kind": "api", "name": "orders",
                                                       "fields": ["timeout_ms"]}]
        await apply_plan(jc, plan)
        orders = next(a for a in await jc.list_apis(org) if a["name"] == "orders")
        assert (orders["timeout_ms"], orders["path"], orders["methods"]) == (4000, "/orders/{id}", ["GET"])


async def test_prune_deletes_what_the_document_does_not_name_and_a_rename_keeps_the_path(control: Any) -> None:
    org = (await control.new_org("decl-prune"))["slug"]
    await _seed(control, org)
    async with JunctionClient(control.base_url, control.admin_token) as jc:
        doc = await export_document(jc, org)
        doc["apis"] = [a for a in doc["apis"] if a["name"] != "stock"]
        doc["connectors"] = [c for c in doc["connectors"] if c["name"] != "secret"]
        next(a for a in doc["apis"] if a["name"] == "orders")["name"] = "orders-v2"  # same path, new name
        loaded = load_document(json.dumps(doc), {})
        kept = await make_plan(jc, org, loaded, prune=False)
        assert {(k["kind"], k["name"]) for k in kept.kept} == {("api", "stock"), ("connector", "secret"),
                                                               ("api", "orders")}
        # Without --prune the old "orders" still holds the path: the new one is refused, and said so.
        with pytest.raises(ApplyFailed) as failed:
            await apply_plan(jc, kept)
        assert failed.value.error.status == 409 and failed.value.change.name == "orders-v2"
        pruned = await make_plan(jc, org, loaded, prune=True)
        assert [(c.action, c.kind, c.name) for c in pruned.changes] == [
            ("delete", "api", "orders"), ("delete", "api", "stock"), ("create", "api", "orders-v2"),
            ("delete", "connector", "secret")]
        await apply_plan(jc, pruned)
        names = sorted(a["name"] for a in await jc.list_apis(org))
        assert "stock" not in names and "orders" not in names and "orders-v2" in names
        assert [c["name"] for c in await jc.list_connectors(org)] == ["plain"]


async def test_consumers_are_managed_by_name_and_a_document_without_them_leaves_them_alone(control: Any) -> None:
    org = (await control.new_org("decl-cons"))["slug"]
    seeded = await _seed(control, org)
    async with JunctionClient(control.base_url, control.admin_token) as jc:
        doc = await export_document(jc, org)
        before = await _versions(jc, org)
        # Enabling a consumer is one update of it; its key stays.
        doc["consumers"] = [{"name": "mobile"}, {"name": "partner", "enabled": True}]
        plan = await make_plan(jc, org, load_document(json.dumps(doc), {}), prune=False)
        assert [c.to_dict() for c in plan.changes] == [{"action": "update", "kind": "consumer", "name": "partner",
                                                       "fields": ["enabled"]}]
        await apply_plan(jc, plan)
        assert await _versions(jc, org) == {**before, "u:partner": before["u:partner"] + 1}
        consumers = {c["name"]: c for c in await jc.list_consumers(org)}
        assert consumers["partner"]["enabled"] is True and len(consumers["mobile"]["keys"]) == 1

        # A document written before consumers were in it (no consumers key, ids in auth.consumers) still
        # applies as nothing to do, and --prune does not delete consumers it does not manage.
        old = {k: v for k, v in doc.items() if k != "consumers"}
        next(a for a in old["apis"] if a["name"] == "orders")["auth"]["consumers"] = [seeded["mobile"]["id"]]
        plan = await make_plan(jc, org, load_document(json.dumps(old), {}), prune=True)
        assert plan.changes == [] and {"kind": "consumer", "name": "mobile"} in plan.kept

        # With --prune, a consumer an API still allows cannot go: refused before anything changes.
        doc["consumers"] = [{"name": "partner"}]
        with pytest.raises(DocumentError) as err:
            await make_plan(jc, org, load_document(json.dumps(doc), {}), prune=True)
        orders_at = next(i for i, a in enumerate(doc["apis"]) if a["name"] == "orders")
        assert dict(err.value.fields).keys() == {f"apis[{orders_at}].auth.consumers[0]"}, err.value.fields
        assert "prune" in dict(err.value.fields)[f"apis[{orders_at}].auth.consumers[0]"]
        # Moving the API to another, new consumer: it is made first, the API updated, the old one deleted last.
        doc["consumers"] = [{"name": "partner"}, {"name": "kiosk"}]
        doc["apis"][orders_at]["auth"]["consumers"] = ["kiosk", "partner"]
        plan = await make_plan(jc, org, load_document(json.dumps(doc), {}), prune=True)
        assert [(c.action, c.kind, c.name) for c in plan.changes] == [
            ("create", "consumer", "kiosk"), ("update", "api", "orders"), ("delete", "consumer", "mobile")]
        await apply_plan(jc, plan)
        consumers = {c["name"]: c for c in await jc.list_consumers(org)}
        assert set(consumers) == {"kiosk", "partner"}
        orders = next(a for a in await jc.list_apis(org) if a["name"] == "orders")
        assert orders["auth"]["consumers"] == [consumers["kiosk"]["id"], consumers["partner"]["id"]]
        # A consumer that exists nowhere, or another organisation's (by its id), is named as the fault.
        other = (await control.new_org("decl-cons-x"))["slug"]
        stranger = await jc.create_consumer(other, "kiosk")
        for ref in ("nobody", stranger["id"]):
            doc["apis"][orders_at]["auth"]["consumers"] = [ref]
            with pytest.raises(DocumentError) as err:
                await make_plan(jc, org, load_document(json.dumps(doc), {}), prune=False)
            assert dict(err.value.fields).keys() == {f"apis[{orders_at}].auth.consumers[0]"}, err.value.fields
        # Credentials are not part of a consumer's entry.
        doc["apis"][orders_at]["auth"]["consumers"] = ["kiosk"]
        doc["consumers"] = [{"name": "kiosk", "keys": [{"prefix": "jk_x"}]}]
        with pytest.raises(DocumentError) as err:
            await make_plan(jc, org, load_document(json.dumps(doc), {}), prune=False)
        assert any(f.startswith("consumers[0]") for f in dict(err.value.fields)), err.value.fields


async def test_alert_rules_name_their_api_carry_no_secret_and_follow_a_renamed_api(control: Any) -> None:
    source = (await control.new_org("decl-rules"))["slug"]
    copy_ = (await control.new_org("decl-rules-cp"))["slug"]
    await _seed(control, source)
    async with JunctionClient(control.base_url, control.admin_token) as jc:
        orders = next(a for a in await jc.list_apis(source) if a["name"] == "orders")
        await jc.create_alert_rule(source, "orders-errors", "error_rate", ">", 0.2, api=orders["id"], window="1m",
                                   channels={"webhooks": ["http://127.0.0.1:9/hook"]},
                                   webhook_secret="rule-secret-0123456789")
        await jc.create_alert_rule(source, "slow", "p99_latency_ms", ">", 900)
        exported = await export_document(jc, source)
        assert "rule-secret" not in json.dumps(exported)
        rules = {r["name"]: r for r in exported["alert_rules"]}
        assert rules["orders-errors"]["api"] == "orders" and rules["orders-errors"]["webhook_secret_set"] is True
        assert rules["slow"]["api"] is None

        # Copied to a new organisation: the rule's secret is not in the export, refused before anything changes.
        doc = _with_secret_refs(exported)
        with pytest.raises(DocumentError) as err:
            await make_plan(jc, copy_, load_document(json.dumps(doc), _secrets_env()), prune=False)
        at = next(i for i, r in enumerate(doc["alert_rules"]) if r["name"] == "orders-errors")
        assert dict(err.value.fields).keys() == {f"alert_rules[{at}].webhook_secret"}, err.value.fields
        assert await jc.list_apis(copy_) == []
        doc["alert_rules"][at]["webhook_secret"] = "${JUNCTION_SECRET_HOOK}"
        env = {**_secrets_env(), "JUNCTION_SECRET_HOOK": "rule-secret-0123456789"}
        await apply_plan(jc, await make_plan(jc, copy_, load_document(json.dumps(doc), env), prune=False))
        assert _without_org(await export_document(jc, copy_)) == _without_org(exported)
        copied = {r["name"]: r for r in (await jc.list_alert_rules(copy_))["items"]}
        copy_orders = next(a for a in await jc.list_apis(copy_) if a["name"] == "orders")
        assert copied["orders-errors"]["api"] == copy_orders["id"] != orders["id"]
        assert (await make_plan(jc, copy_, load_document(json.dumps(await export_document(jc, copy_)), {}),
                                prune=True)).changes == []

        # The API renamed (same path) and the rule moved to it: released from the old one before it is
        # deleted, pointed at the new one once it is made; its secret stays. (Else: 409 api_in_use.)
        doc = await export_document(jc, copy_)
        next(a for a in doc["apis"] if a["name"] == "orders")["name"] = "orders-v2"
        next(r for r in doc["alert_rules"] if r["name"] == "orders-errors")["api"] = "orders-v2"
        plan = await make_plan(jc, copy_, load_document(json.dumps(doc), {}), prune=True)
        assert [(c.action, c.kind, c.name) for c in plan.changes] == [
            ("release", "alert_rule", "orders-errors"), ("delete", "api", "orders"), ("create", "api", "orders-v2"),
            ("update", "alert_rule", "orders-errors")]
        await apply_plan(jc, plan)
        rule = next(r for r in (await jc.list_alert_rules(copy_))["items"] if r["name"] == "orders-errors")
        v2 = next(a for a in await jc.list_apis(copy_) if a["name"] == "orders-v2")
        assert (rule["api"], rule["enabled"], rule["webhook_secret_set"]) == (v2["id"], True, True)
        assert rule["version"] == copied["orders-errors"]["version"] + 2
        assert (await make_plan(jc, copy_, load_document(json.dumps(doc), {}), prune=True)).changes == []

        # A rule the document does not name, watching an API --prune would delete: refused, nothing changed.
        without_rules = {k: v for k, v in doc.items() if k != "alert_rules"}
        without_rules["apis"] = [a for a in doc["apis"] if a["name"] != "orders-v2"]
        with pytest.raises(DocumentError) as err:
            await make_plan(jc, copy_, load_document(json.dumps(without_rules), {}), prune=True)
        assert "orders-errors" in dict(err.value.fields)["alert_rules"]
        # A rule naming an API that does not exist, or another organisation's API by its id, is named as the fault.
        slow_at = [r["name"] for r in doc["alert_rules"]].index("slow")
        for ref in ("nowhere", orders["id"]):
            doc["alert_rules"][slow_at]["api"] = ref
            with pytest.raises(DocumentError) as err:
                await make_plan(jc, copy_, load_document(json.dumps(doc), {}), prune=False)
            assert [f for f, _ in err.value.fields] == [f"alert_rules[{slow_at}].api"], err.value.fields


async def test_the_organisations_default_rate_limit_is_in_the_document(control: Any) -> None:
    org = (await control.new_org("decl-rl"))["slug"]
    copy_ = (await control.new_org("decl-rl-cp"))["slug"]
    await _seed(control, org)
    limit = {"requests": 100, "per_seconds": 60, "by": "consumer"}
    async with JunctionClient(control.base_url, control.admin_token) as jc:
        doc = await export_document(jc, org)
        assert doc["rate_limit"] is None
        # One field of the organisation, changed first; the rest of the organisation untouched.
        plan = await make_plan(jc, org, load_document(json.dumps({"format": "junction/v1", "rate_limit": limit}), {}),
                               prune=True)
        assert [c.to_dict() for c in plan.changes] == [{"action": "update", "kind": "org", "name": org,
                                                       "fields": ["rate_limit"]}]
        before = await jc.get_org(org)
        await apply_plan(jc, plan)
        after = await jc.get_org(org)
        assert after["rate_limit"] == limit and after["version"] == before["version"] + 1
        doc = await export_document(jc, org)
        assert doc["rate_limit"] == limit
        assert (await make_plan(jc, org, load_document(json.dumps(doc), {}), prune=True)).changes == []
        # Copied with the rest; then removed with null.
        await apply_plan(jc, await make_plan(jc, copy_, load_document(json.dumps(_with_secret_refs(doc)),
                                                                      _secrets_env()), prune=False))
        assert (await jc.get_org(copy_))["rate_limit"] == limit
        await apply_plan(jc, await make_plan(jc, copy_, load_document('{"format": "junction/v1", "rate_limit": null}',
                                                                      {}), prune=False))
        assert (await jc.get_org(copy_))["rate_limit"] is None
        # A bad one is named before anything changes.
        with pytest.raises(DocumentError) as err:
            await make_plan(jc, org, load_document(json.dumps({"format": "junction/v1", "rate_limit": {
                "requests": 0, "per_seconds": 60, "by": "moon"}}), {}), prune=False)
        assert {f for f, _ in err.value.fields} == {"rate_limit.requests", "rate_limit.by"}, err.value.fields
        assert (await jc.get_org(org))["version"] == after["version"]
    # An org viewer may plan it, not apply it.
    _, viewer = await control.new_user(org, "org_viewer")
    async with JunctionClient(control.base_url, viewer) as jv:
        plan = await make_plan(jv, org, load_document(json.dumps({"format": "junction/v1", "rate_limit": None}), {}),
                               prune=False)
        with pytest.raises(ApplyFailed) as failed:
            await apply_plan(jv, plan)
        assert failed.value.error.status == 403 and failed.value.change.kind == "org"


async def test_a_resource_changed_after_the_plan_stops_the_apply_with_412(control: Any) -> None:
    org = (await control.new_org("decl-race"))["slug"]
    await _seed(control, org)
    async with JunctionClient(control.base_url, control.admin_token) as jc:
        doc = await export_document(jc, org)
        next(a for a in doc["apis"] if a["name"] == "orders")["timeout_ms"] = 8000
        plan = await make_plan(jc, org, load_document(json.dumps(doc), {}), prune=False)
        orders = next(a for a in await jc.list_apis(org) if a["name"] == "orders")
        await jc.update_api(org, orders["id"], timeout_ms=6000)  # someone else, meanwhile
        with pytest.raises(ApplyFailed) as failed:
            await apply_plan(jc, plan)
        assert failed.value.error.status == 412
        assert next(a for a in await jc.list_apis(org) if a["name"] == "orders")["timeout_ms"] == 6000
        # A deletion too: --prune deletes what the plan read, not what someone changed since.
        doc = await export_document(jc, org)
        doc["apis"] = [a for a in doc["apis"] if a["name"] != "stock"]
        plan = await make_plan(jc, org, load_document(json.dumps(doc), {}), prune=True)
        assert [(c.action, c.name) for c in plan.changes] == [("delete", "stock")]
        stock = next(a for a in await jc.list_apis(org) if a["name"] == "stock")
        await jc.update_api(org, stock["id"], timeout_ms=4321)  # handed over meanwhile
        with pytest.raises(ApplyFailed) as failed:
            await apply_plan(jc, plan)
        assert failed.value.error.status == 412
        assert any(a["name"] == "stock" for a in await jc.list_apis(org))


BAD_DOCUMENTS = [
    ("{not json", "(document)"),
    ("[1, 2]", "(document)"),
    ('{"format": "kong/v3"}', "format"),
    ('{"format": "junction/v1", "routes": []}', "routes"),
    ('{"format": "junction/v1", "apis": {"name": "x"}}', "apis"),
    ('{"format": "junction/v1", "apis": [{"path": "/x"}]}', "apis[0].name"),
    ('{"format": "junction/v1", "connectors": [{"name": "a", "target": {}}, {"name": "a", "target": {}}]}',
     "connectors[1].name"),
    ('{"format": "junction/v1", "apis": [{"name": "x", "id": "5", "path": "/x", "connector": "c"}]}', "apis[0].id"),
    ('{"format": "junction/v1", "connectors": [{"name": "c", "target": {}, "settings": {"k": "${JUNCTION_SECRET_UNSET_X}"},'
     ' "secret_fields": ["k"]}]}', "connectors[0].settings.k"),
    # A YAML alias bomb: refused before it is expanded.
    ("a: &a [x, x, x, x, x, x, x, x, x]\nb: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a]\nc: &c [*b, *b, *b, *b, *b, *b, *b, *b]\n"
     "d: [*c, *c, *c, *c, *c, *c, *c, *c, *c]\n", "(document)"),
    ("!!python/object/apply:os.system ['true']", "(document)"),
    ("[" * 100_000, "(document)"),  # a JSON parser's recursion: refused at once
    ("a: " + "[" * 100_000, "(document)"),  # YAML's scanner would take minutes: refused before it runs
    ("a:\n" + "".join(" " * n + f"k{n}:\n" for n in range(0, 2000, 2)), "(document)"),
]


@pytest.mark.parametrize(("text", "field"), BAD_DOCUMENTS, ids=[f"bad{i}" for i in range(len(BAD_DOCUMENTS))])
def test_a_document_that_cannot_be_applied_is_refused_naming_the_field(text: str, field: str) -> None:
    with pytest.raises(DocumentError) as err:
        load_document(text, {})
    assert field in [f for f, _ in err.value.fields], err.value.fields


def test_a_name_that_is_not_text_is_named_as_such() -> None:
    for name, message in ((123, "must be a string"), (None, "is required"), ("", "is required")):
        with pytest.raises(DocumentError) as err:
            load_document(json.dumps({"format": "junction/v1", "connectors": [{"name": name, "target": {}}]}), {})
        assert [m for f, m in err.value.fields if f == "connectors[0].name"][0].startswith(message), err.value.fields


def test_only_junction_secret_variables_are_read_from_the_environment() -> None:
    env = {"HOME": "/root", "JUNCTION_SECRET_A": "s3cr3t"}
    doc = load_document(json.dumps({"format": "junction/v1", "connectors": [
        {"name": "c", "settings": {"a": "${JUNCTION_SECRET_A}", "home": "${HOME}", "mixed": "x-${JUNCTION_SECRET_A}"},
         "secret_fields": ["a", "home", "mixed"]}]}), env)
    assert doc["connectors"][0]["settings"] == {"a": "s3cr3t", "home": "${HOME}", "mixed": "x-s3cr3t"}


def test_a_secret_is_filled_in_only_where_a_secret_is_taken() -> None:
    """Elsewhere (a plain setting, a header, a URL, a script) the text stays as written, set or not: a secret
    must not land in clear where every reader of the resource sees it, and an export applies back as it is."""
    env = {f"JUNCTION_SECRET_{n}": f"value-{n}" for n in ("S", "P", "K", "J", "W", "X")}
    ref = "see ${JUNCTION_SECRET_X} docs"
    doc = load_document(json.dumps({"format": "junction/v1", "connectors": [
        {"name": "c", "script": f"# {ref}\n", "settings": {"s": "${JUNCTION_SECRET_S}", "plain": ref},
         "secret_fields": ["s"],
         "target": {"protocol": "rest", "url": "http://x/${JUNCTION_SECRET_X}", "headers": {"X-Doc": ref},
                    "auth": {"type": "basic", "username": ref, "password": "${JUNCTION_SECRET_P}"},
                    "tls": {"client_key": "${JUNCTION_SECRET_K}"}}}],
        "apis": [{"name": "a", "description": ref, "auth": {"mode": "jwt", "secret": "${JUNCTION_SECRET_J}"}}],
        "alert_rules": [{"name": "r", "description": ref, "webhook_secret": "${JUNCTION_SECRET_W}"}]}), env)
    c, a, r = doc["connectors"][0], doc["apis"][0], doc["alert_rules"][0]
    assert c["settings"] == {"s": "value-S", "plain": ref} and c["script"] == f"# {ref}\n"
    assert c["target"]["url"] == "http://x/${JUNCTION_SECRET_X}" and c["target"]["headers"] == {"X-Doc": ref}
    assert c["target"]["auth"] == {"type": "basic", "username": ref, "password": "value-P"}
    assert c["target"]["tls"] == {"client_key": "value-K"}
    assert a["auth"]["secret"] == "value-J" and a["description"] == ref
    assert r["webhook_secret"] == "value-W" and r["description"] == ref
    assert "value-X" not in json.dumps(doc)
    # Where nothing is set, a reference outside a secret place is no fault either.
    assert load_document(json.dumps({"format": "junction/v1", "connectors": [{"name": "c", "script": f"# {ref}\n"}]}),
                         {})["connectors"][0]["script"] == f"# {ref}\n"


async def test_the_server_schemas_and_connector_names_are_checked_before_anything_changes(control: Any) -> None:
    org = (await control.new_org("decl-bad"))["slug"]
    await _seed(control, org)
    async with JunctionClient(control.base_url, control.admin_token) as jc:
        before = await _versions(jc, org)
        doc = {"format": "junction/v1", "connectors": [{"name": "new-one", "target": {"protocol": "rest", "url": "http://127.0.0.1:9/n"}}],
               "apis": [{"name": "orders", "path": "/orders/{id}", "connector": "plain", "timeout_ms": "soon"},
                        {"name": "ghost", "path": "/g", "connector": "nowhere"}]}
        with pytest.raises(DocumentError) as err:
            await make_plan(jc, org, load_document(json.dumps(doc), {}), prune=False)
        fields = dict(err.value.fields)
        assert "apis[0].timeout_ms" in fields and "apis[1].connector" in fields, fields
        # With --prune, a connector the document does not name is going away: an API cannot keep it.
        keep = {"format": "junction/v1", "connectors": [],
                "apis": [{"name": "orders", "path": "/orders/{id}", "connector": "plain"}]}
        with pytest.raises(DocumentError, match="prune") as err:
            await make_plan(jc, org, load_document(json.dumps(keep), {}), prune=True)
        assert dict(err.value.fields).keys() == {"apis[0].connector"}, err.value.fields
        assert await _versions(jc, org) == before


async def test_the_cli_exports_plans_applies_and_reports_in_the_error_model(control: Any, tmp_path: Path) -> None:
    org = (await control.new_org("decl-cli"))["slug"]
    await _seed(control, org)
    url = ("--url", control.base_url)
    rc, exported, err = await run_cli(control, "config", "export", "--org", org, *url)
    assert rc == 0, err
    path = tmp_path / "org.json"
    next(a for a in exported["apis"] if a["name"] == "orders")["timeout_ms"] = 5000
    path.write_text(json.dumps(exported))
    rc, out, err = await run_cli(control, "config", "apply", str(path), "--dry-run", *url)
    assert rc == 0, err
    assert out["dry_run"] is True and out["applied"] == 0 and out["org"] == org
    assert out["changes"] == [{"action": "update", "kind": "api", "name": "orders", "fields": ["timeout_ms"]}]
    rc, out, err = await run_cli(control, "config", "apply", str(path), *url)
    assert rc == 0 and out["applied"] == 1, err
    rc, out, err = await run_cli(control, "config", "apply", str(path), *url)
    assert rc == 0 and out["applied"] == 0 and out["changes"] == [], err
    # As YAML: the same document, the connector's script a literal block; applied, it changes nothing.
    rc, text, err = await run_cli(control, "config", "export", "--org", org, "--format", "yaml", *url)
    assert rc == 0 and isinstance(text, str), err
    assert "script: |" in text and load_document(text, {}) == load_document(path.read_text(), {})
    yaml_path = tmp_path / "org.yaml"
    yaml_path.write_text(text)
    rc, out, err = await run_cli(control, "config", "apply", str(yaml_path), *url)
    assert rc == 0 and out["applied"] == 0 and out["changes"] == [], err
    # A bad document: exit 2, the API's error shape, the field named.
    path.write_text('{"format": "junction/v1", "apis": [{"name": "x", "path": "/x", "connector": "c", "timeout_ms": -5}]}')
    rc, out, err = await run_cli(control, "config", "apply", str(path), "--org", org, *url)
    shown = json.loads(err)
    assert rc == 2 and shown["code"] == "invalid_input" and "apis[0].timeout_ms" in [f["field"] for f in shown["fields"]]
    # An org viewer may export and plan, without consumers (they are the admins'), but not apply: the first
    # change is refused, exit 1, nothing done.
    _, viewer = await control.new_user(org, "org_viewer")
    rc, seen, err = await run_cli(control, "config", "export", "--org", org, *url, token=viewer)
    assert rc == 0 and "consumers" not in seen, err
    orders = next(a for a in seen["apis"] if a["name"] == "orders")
    assert orders["auth"]["consumers"] == [next(c for c in await control_consumers(control, org)
                                                if c["name"] == "mobile")["id"]]
    path.write_text(json.dumps({**seen, "apis": [{**a, "timeout_ms": 4000} if a["name"] == "orders" else a
                                                 for a in seen["apis"]]}))
    rc, out, err = await run_cli(control, "config", "apply", str(path), "--dry-run", *url, token=viewer)
    assert rc == 0 and [c["name"] for c in out["changes"]] == ["orders"], err
    rc, out, err = await run_cli(control, "config", "apply", str(path), *url, token=viewer)
    shown = json.loads(err)
    assert rc == 1 and shown["status"] == 403 and shown["done"] == [] and shown["failed"]["name"] == "orders", err
    # A document with consumers cannot even be planned by a viewer.
    path.write_text(json.dumps(exported))
    rc, out, err = await run_cli(control, "config", "apply", str(path), "--dry-run", *url, token=viewer)
    assert rc == 1 and json.loads(err)["status"] == 403, err
    # Another organisation's document cannot reach this one: its admin gets 404 on the plan.
    other = (await control.new_org("decl-oth"))["slug"]
    _, stranger = await control.new_user(other, "org_admin")
    rc, out, err = await run_cli(control, "config", "export", "--org", org, *url, token=stranger)
    assert rc == 1 and json.loads(err)["status"] == 404


NAMES = st.text(alphabet="abcdefghij", min_size=1, max_size=6)


@hsettings(max_examples=5, deadline=None, database=None,
           suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(apis=st.dictionaries(NAMES, st.tuples(st.sampled_from(["GET", "POST", "PUT"]), st.integers(100, 60000),
                                             st.booleans()), min_size=1, max_size=6))
async def test_property_any_document_applied_exports_as_itself_and_reapplies_to_nothing(
        control: Any, apis: dict[str, tuple[str, int, bool]]) -> None:
    org = (await control.new_org("decl-prop"))["slug"]
    doc = {"format": "junction/v1", "org": org,
           "connectors": [{"name": "only", "target": {"protocol": "rest", "url": "http://127.0.0.1:9/x", "method": "GET"}}],
           "apis": [{"name": name, "path": f"/{name}/{{id}}", "methods": [method], "timeout_ms": timeout,
                     "enabled": enabled, "connector": "only"} for name, (method, timeout, enabled) in apis.items()]}
    async with JunctionClient(control.base_url, control.admin_token) as jc:
        await apply_plan(jc, await make_plan(jc, None, load_document(json.dumps(doc), {}), prune=True))
        exported = await export_document(jc, org)
        by_name = {a["name"]: a for a in exported["apis"]}
        assert set(by_name) == set(apis)
        for entry in doc["apis"]:
            assert {k: by_name[entry["name"]][k] for k in entry} == entry
        assert (await make_plan(jc, None, load_document(json.dumps(doc), {}), prune=True)).changes == []
        assert (await make_plan(jc, None, load_document(json.dumps(exported), {}), prune=True)).changes == []


JSONISH = st.recursive(st.none() | st.booleans() | st.integers(-5, 5) | st.text("ab{}$", max_size=4),
                       lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.sampled_from(
                           ["mode", "consumers", "api", "name", "x"]), inner, max_size=3), max_leaves=6)
FIELDS = ["name", "connector", "auth", "api", "enabled", "path", "methods", "metric", "target", "webhook_secret_set",
          "threshold", "id"]


@hsettings(max_examples=60, deadline=None, database=None,
           suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(doc=st.dictionaries(st.sampled_from(["connectors", "consumers", "apis", "alert_rules"]),
                           st.lists(st.dictionaries(st.sampled_from(FIELDS), JSONISH, max_size=5), max_size=3)
                           | JSONISH, max_size=4),
       prune=st.booleans())
async def test_property_any_document_is_planned_or_refused_naming_fields_never_crashes(
        control: Any, declarative_org: str, doc: dict[str, Any], prune: bool) -> None:
    text = json.dumps({"format": "junction/v1", **doc})
    async with JunctionClient(control.base_url, control.admin_token) as jc:
        try:
            plan = await make_plan(jc, declarative_org, load_document(text, {}), prune=prune)
        except DocumentError as err:
            assert err.fields and all(isinstance(f, str) and isinstance(m, str) for f, m in err.fields)
        else:
            assert all(c.kind in ("connector", "consumer", "api", "alert_rule") for c in plan.changes)


@pytest.fixture
async def declarative_org(control: Any) -> str:
    org = (await control.new_org("decl-fuzz"))["slug"]
    await _seed(control, org)
    return org


@hsettings(max_examples=200, deadline=None, database=None)
@given(texts=st.lists(st.text(max_size=60).filter(lambda t: "${JUNCTION_SECRET_" not in t), min_size=1, max_size=4),
       number=st.one_of(st.integers(), st.floats(allow_nan=False)), flag=st.booleans())
def test_property_a_document_dumped_as_yaml_or_json_loads_as_itself(texts: list[str], number: Any, flag: bool) -> None:
    # Any text (line breaks, tabs, trailing spaces, quotes, "yes", "null", "#", unicode) survives YAML's literal
    # blocks and quoting; within the nesting bound (60 characters cannot open 64 brackets).
    doc = {"format": "junction/v1", "org": "acme",
           "connectors": [{"name": f"c{i}", "script": t, "settings": {t: number, "on": flag, "list": [t, None]}}
                          for i, t in enumerate(texts)]}
    for fmt in ("yaml", "json"):
        assert load_document(dump(doc, fmt), {}) == doc


async def test_a_global_rule_on_an_api_that_prune_deletes_stops_a_global_admins_plan(control: Any) -> None:
    org = (await control.new_org("globrule"))["slug"]
    conn = await control.new_connector(org, name="c")
    legacy = await control.new_api(org, conn["id"], name="legacy")
    name = f"g-{legacy['id'][:8]}"
    r = await control.call("POST", "/api/v1/alert-rules", control.admin_token,
                           {"name": name, "metric": "error_rate", "comparison": ">", "threshold": 0.5, "api": legacy["id"]})
    assert r.status == 201, r.body
    doc = {"format": "junction/v1", "org": org, "apis": []}
    try:
        async with JunctionClient(control.base_url, control.admin_token) as jc:
            with pytest.raises(DocumentError) as err:
                await make_plan(jc, None, doc, prune=True)
            assert [f for f, _ in err.value.fields] == ["apis"] and name in err.value.fields[0][1], err.value.fields
        # An org admin cannot read global rules: the plan goes through, and the server refuses the deletion.
        _, token = await control.new_user(org, "org_admin")
        async with JunctionClient(control.base_url, token) as jc:
            plan = await make_plan(jc, None, doc, prune=True)
            with pytest.raises(ApplyFailed) as failed:
                await apply_plan(jc, plan)
            assert failed.value.error.status == 409 and failed.value.error.code == "api_in_use"
    finally:
        assert (await control.call("DELETE", f"/api/v1/alert-rules/{name}", control.admin_token)).status == 204
