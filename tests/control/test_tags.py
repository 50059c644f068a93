"""Tags on connectors, APIs, consumers and alert rules, as Kong's entities have them: stored sorted, found with
``?tags=a,b`` (every one) or ``?tags=a/b`` (any one) page by page, never across organisations, and carried by
declarative configuration."""
from __future__ import annotations

import json
import uuid
from typing import Any

from hypothesis import HealthCheck, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from junction.declarative import DocumentError, apply_plan, export_document, load_document, make_plan
from junction.sdk import JunctionClient

TARGET = {"protocol": "rest", "url": "http://127.0.0.1:9/x", "method": "GET"}
RULE = {"metric": "error_rate", "comparison": ">", "threshold": 0.5}


async def _names(control: Any, org: str, kind: str, query: str = "") -> list[str]:
    names: list[str] = []
    url = f"/api/v1/orgs/{org}/{kind}?limit=2{query}"
    while True:
        r = await control.call("GET", url, control.admin_token)
        assert r.status == 200, r.body
        names += [item["name"] for item in r.body["items"]]
        if r.body["next_cursor"] is None:
            return names
        url = f"/api/v1/orgs/{org}/{kind}?limit=2{query}&cursor={r.body['next_cursor']}"


async def test_every_kind_keeps_its_tags_sorted_and_lists_filter_by_them(control: Any) -> None:
    org = (await control.new_org("tags"))["slug"]
    conn = await control.new_connector(org, name="billing", tags=["team-b", "pci"])
    api = await control.new_api(org, conn["id"], name="invoices", tags=["team-b"])
    consumer = await control.call("POST", f"/api/v1/orgs/{org}/consumers", control.admin_token,
                                  {"name": "shop", "tags": ["partner", "team-b"]})
    rule = await control.call("POST", f"/api/v1/orgs/{org}/alert-rules", control.admin_token,
                              {"name": "errors", **RULE, "tags": ["team-a"]})
    untagged = await control.new_connector(org, name="plain")
    assert conn["tags"] == ["pci", "team-b"] and api["tags"] == ["team-b"] and untagged["tags"] == []
    assert consumer.body["tags"] == ["partner", "team-b"] and rule.body["tags"] == ["team-a"], (consumer.body, rule.body)
    for kind, query, expected in (
            ("connectors", "&tags=team-b", ["billing"]), ("connectors", "&tags=pci,team-b", ["billing"]),
            ("connectors", "&tags=pci,team-a", []), ("connectors", "&tags=nope/pci", ["billing"]),
            ("apis", "&tags=team-b", ["invoices"]), ("consumers", "&tags=partner", ["shop"]),
            ("alert-rules", "&tags=team-a/team-b", ["errors"]), ("connectors", "", ["billing", "plain"])):
        assert await _names(control, org, kind, query) == expected, (kind, query)
    # The same tags in another order, or [] where there are none, are no change; [] removes them.
    base = f"/api/v1/orgs/{org}/connectors"
    r = await control.call("PATCH", f"{base}/billing", control.admin_token, {"tags": ["team-b", "pci"]})
    assert r.status == 200 and r.body["version"] == 1, r.body
    r = await control.call("PATCH", f"{base}/plain", control.admin_token, {"tags": []})
    assert r.status == 200 and r.body["version"] == 1, r.body
    r = await control.call("PATCH", f"{base}/billing", control.admin_token, {"tags": []})
    assert r.status == 200 and r.body["version"] == 2 and r.body["tags"] == [], r.body
    r = await control.call("GET", f"{base}/billing/versions/1/diff/2", control.admin_token)
    assert [c["field"] for c in r.body["changes"]] == ["tags"], r.body
    r = await control.call("PATCH", f"/api/v1/orgs/{org}/consumers/shop", control.admin_token, {"tags": ["x"]})
    assert r.status == 200 and r.body["tags"] == ["x"] and r.body["version"] == 2, r.body


async def test_bad_tags_and_filters_are_refused_naming_the_field(control: Any) -> None:
    org = (await control.new_org("badtags"))["slug"]
    base = f"/api/v1/orgs/{org}/connectors"
    for tags, field in ((["has space"], "tags[0]"), (["a,b"], "tags[0]"), (["a/b"], "tags[0]"), (["x" * 65], "tags[0]"),
                        (["a", "a"], "tags"), ([f"t{i}" for i in range(21)], "tags"), ("a", "tags"), ([1], "tags[0]")):
        r = await control.call("POST", base, control.admin_token, {"name": f"c-{uuid.uuid4().hex[:6]}",
                                                                   "target": TARGET, "tags": tags})
        assert r.status == 422 and field in [f["field"] for f in r.body["fields"]], (tags, r.body)
    for query in ("tags=a,b/c", "tags=", "tags=a,,b", "tags=has%20space", "tag=a"):
        r = await control.call("GET", f"{base}?{query}", control.admin_token)
        assert r.status == 422, (query, r.body)
        assert query.split("=")[0] in [f["field"] for f in r.body["fields"]], (query, r.body)
    assert await _names(control, org, "connectors") == []


async def test_a_tag_never_finds_another_organisations_resources(control: Any) -> None:
    mine, theirs = (await control.new_org("tmine"))["slug"], (await control.new_org("ttheirs"))["slug"]
    await control.new_connector(theirs, name="secret", tags=["shared"])
    _, token = await control.new_user(mine, "org_admin")
    r = await control.call("GET", f"/api/v1/orgs/{mine}/connectors?tags=shared", token)
    assert r.status == 200 and r.body["items"] == [], r.body
    r = await control.call("GET", f"/api/v1/orgs/{theirs}/connectors?tags=shared", token)
    assert r.status == 404, r.body


TAGS = ["a", "b", "c"]


@hsettings(max_examples=15, deadline=None, database=None,
           suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(tagged=st.lists(st.sets(st.sampled_from(TAGS)), min_size=1, max_size=6),
       wanted=st.sets(st.sampled_from(TAGS), min_size=1), every=st.booleans())
async def test_property_the_filter_finds_exactly_the_matching_resources_page_by_page(
        control: Any, tagged: list[set[str]], wanted: set[str], every: bool) -> None:
    org = (await control.new_org("tagprop"))["slug"]
    for i, tags in enumerate(tagged):
        await control.new_connector(org, name=f"c{i}", tags=sorted(tags))
    query = ("," if every else "/").join(sorted(wanted))
    expected = [f"c{i}" for i, tags in enumerate(tagged) if (wanted <= tags if every else wanted & tags)]
    assert await _names(control, org, "connectors", f"&tags={query}") == expected


async def test_declarative_configuration_carries_tags(control: Any) -> None:
    org = (await control.new_org("tagdoc"))["slug"]
    await control.new_connector(org, name="billing", tags=["team-b"])
    await control.new_connector(org, name="plain")
    async with JunctionClient(control.base_url, control.admin_token) as jc:
        assert [c["name"] for c in await jc.list_connectors(org, tags="team-b", page_size=1)] == ["billing"]
        doc = await export_document(jc, org)
        by_name = {c["name"]: c for c in doc["connectors"]}
        assert by_name["billing"]["tags"] == ["team-b"] and "tags" not in by_name["plain"], doc
        # Tags in another order are no change; [] clears them; new ones are set.
        by_name["billing"]["tags"] = ["team-b"]
        assert (await make_plan(jc, org, load_document(json.dumps(doc), {}), prune=False)).changes == []
        by_name["billing"]["tags"] = []
        by_name["plain"]["tags"] = ["z", "team-a"]
        plan = await make_plan(jc, org, load_document(json.dumps(doc), {}), prune=False)
        assert sorted((c.name, c.fields) for c in plan.changes) == [("billing", ["tags"]), ("plain", ["tags"])]
        await apply_plan(jc, plan)
        assert (await jc.get_connector(org, "billing"))["tags"] == []
        assert (await jc.get_connector(org, "plain"))["tags"] == ["team-a", "z"]
        again = await make_plan(jc, org, load_document(json.dumps(doc), {}), prune=False)
        assert again.changes == []


async def test_a_tagged_document_is_one_teams_part_of_the_organisation(control: Any) -> None:
    org = (await control.new_org("teams"))["slug"]
    shared = await control.new_connector(org, name="shared")
    a_conn = await control.new_connector(org, name="a-conn", tags=["team-a"])
    await control.new_api(org, a_conn["id"], name="a-api", tags=["team-a"])
    b_conn = await control.new_connector(org, name="b-conn", tags=["pci", "team-b"])
    await control.new_api(org, b_conn["id"], name="b-api", tags=["team-b"])
    async with JunctionClient(control.base_url, control.admin_token) as jc:
        await jc.update_org(org, rate_limit={"requests": 100, "per_seconds": 60, "by": "ip"})
        before = {c["name"]: c["version"] for c in await jc.list_connectors(org)}
        doc = await export_document(jc, org, "team-b")
        assert doc["tag"] == "team-b" and "rate_limit" not in doc, doc
        assert [c["name"] for c in doc["connectors"]] == ["b-conn"] and [a["name"] for a in doc["apis"]] == ["b-api"]
        # Team b: b-api goes, b-api2 (on the shared, untagged connector) comes; b-conn keeps its other tag.
        mine = {"format": "junction/v1", "org": org, "tag": "team-b",
                "connectors": [{"name": "b-conn", "target": TARGET}],
                "apis": [{"name": "b-api2", "methods": ["GET"], "path": "/b2", "connector": "shared"}]}
        plan = await make_plan(jc, None, load_document(json.dumps(mine), {}), prune=True)
        assert sorted((c.action, c.name) for c in plan.changes) == [("create", "b-api2"), ("delete", "b-api")]
        assert plan.kept == []  # the other teams' and the shared resources are not this document's to list
        await apply_plan(jc, plan)
        apis = {a["name"]: a for a in await jc.list_apis(org)}
        assert sorted(apis) == ["a-api", "b-api2"] and apis["b-api2"]["tags"] == ["team-b"]
        assert apis["b-api2"]["connector"] == shared["id"]
        connectors = {c["name"]: c for c in await jc.list_connectors(org)}
        assert connectors["b-conn"]["tags"] == ["pci", "team-b"]
        assert {n: c["version"] for n, c in connectors.items()} == before  # no other connector touched
        assert (await jc.get_org(org))["rate_limit"]["requests"] == 100
        assert (await make_plan(jc, None, load_document(json.dumps(mine), {}), prune=True)).changes == []
        # Another team's resource, by name; the organisation's settings; a tag that differs: refused, nothing changed.
        theirs = {**mine, "connectors": [{"name": "a-conn", "target": TARGET}], "rate_limit": None}
        try:
            await make_plan(jc, None, load_document(json.dumps(theirs), {}), prune=False)
        except DocumentError as err:
            fields = [f for f, _ in err.fields]
            assert "connectors[0].name" in fields and "rate_limit" in fields, err.fields
        else:
            raise AssertionError("a tagged document changed another team's connector")
        try:
            await make_plan(jc, None, load_document(json.dumps(mine), {}), prune=False, tag="team-a")
        except DocumentError as err:
            assert [f for f, _ in err.fields] == ["tag"], err.fields
        else:
            raise AssertionError("--tag team-a applied a document tagged team-b")
        # Team a's API uses team b's connector: team b may not prune that connector.
        await jc.update_api(org, "a-api", connector="b-conn")
        try:
            await make_plan(jc, None, load_document(json.dumps({**mine, "connectors": []}), {}), prune=True)
        except DocumentError as err:
            assert [f for f, _ in err.fields] == ["connectors"] and "a-api" in err.fields[0][1], err.fields
        else:
            raise AssertionError("--prune planned to delete a connector another team's API uses")
