"""GET /api/v1/orgs/{org}/dead-letters[/{id}] and the letters of no organisation: roles, tenancy, filters, pagination and bad filter values."""
from __future__ import annotations

import uuid
from typing import Any

from junction.sdk import JunctionClient
from schemas import decode
from tests.control_support import run_cli
from tests.dead_letter_support import inbound_call, index_letters, letter_bytes

BASE_MS = 1_700_000_000_000


async def _world(control: Any) -> dict[str, Any]:
    org, other = await control.new_org("dl"), await control.new_org("dlx")
    api = (await control.new_api(org["slug"], (await control.new_connector(org["slug"]))["id"]))["id"]  # its own API
    secret_call = inbound_call(org["slug"], headers=[{"name": "Authorization", "value": "Bearer tok-abcdefgh-123"},
                                                     {"name": "Accept", "value": "application/json"}])
    values = [
        letter_bytes(org["slug"], failed_at_ms=BASE_MS + 1000, api_id=api, call=secret_call,
                     details=["Traceback: header was Bearer tok-abcdefgh-123"]),
        letter_bytes(org["slug"], failed_at_ms=BASE_MS + 2000, stage="egress", code="upstream_unreachable"),
        letter_bytes(org["slug"], failed_at_ms=BASE_MS + 3000, stage="egress", code="upstream_unreachable", api_id=api),
        letter_bytes(org["slug"], failed_at_ms=BASE_MS + 4000),
        letter_bytes(org["slug"], failed_at_ms=BASE_MS + 5000, code="undecodable"),
        letter_bytes(other["slug"], failed_at_ms=BASE_MS + 6000),
    ]
    ids = await index_letters(control.pool, values)
    return {"org": org["slug"], "other": other["slug"], "api": api, "ids": ids, "cid": decode(values[0])[1]["correlation_id"]}


async def _list(control: Any, slug: str, token: str, query: str = "") -> Any:
    return await control.call("GET", f"/api/v1/orgs/{slug}/dead-letters{query}", token)


async def test_the_list_is_newest_first_without_bodies_and_filters(control: Any) -> None:
    w = await _world(control)
    ids = w["ids"]
    r = await _list(control, w["org"], control.admin_token)
    assert r.status == 200, r.body
    assert [i["id"] for i in r.body["items"]] == ids[4::-1] and r.body["next_cursor"] is None
    assert not {"original", "details"} & set(r.body["items"][0])
    assert r.body["items"][0]["failed_at"].startswith("2023-11-14T22:13:25")
    for query, expected in ((f"?api={w['api']}", [ids[2], ids[0]]), ("?stage=egress", [ids[2], ids[1]]),
                            ("?code=undecodable", [ids[4]]), (f"?correlation_id={w['cid']}", [ids[0]]),
                            ("?from=2023-11-14T22:13:22Z&to=2023-11-14T22:13:24Z", [ids[2], ids[1]]),
                            (f"?stage=egress&api={w['api'].upper()}", [ids[2]])):
        r = await _list(control, w["org"], control.admin_token, query)
        assert r.status == 200 and [i["id"] for i in r.body["items"]] == expected, (query, r.body)


async def test_pages_cover_every_letter_once(control: Any) -> None:
    w = await _world(control)
    seen: list[str] = []
    cursor = None
    for _ in range(10):
        r = await _list(control, w["org"], control.admin_token, "?limit=2" + (f"&cursor={cursor}" if cursor else ""))
        assert r.status == 200, r.body
        seen += [i["id"] for i in r.body["items"]]
        cursor = r.body["next_cursor"]
        if cursor is None:
            break
    assert seen == w["ids"][4::-1]


async def test_an_admin_reads_the_redacted_original_a_viewer_only_the_metadata(control: Any) -> None:
    w = await _world(control)
    _, admin_token = await control.new_user(w["org"], "org_admin")
    _, viewer_token = await control.new_user(w["org"], "org_viewer")
    url = f"/api/v1/orgs/{w['org']}/dead-letters/{w['ids'][0]}"
    for token in (control.admin_token, admin_token):
        r = await control.call("GET", url, token)
        assert r.status == 200, r.body
        assert r.body["original_hidden"] is False and r.body["original"]["type"] == "InboundCall"
        record = r.body["original"]["record"]
        assert record["body"] == {"encoding": "text", "value": '{"order": 7}'}
        assert [h["name"] for h in record["headers"]] == ["Accept"] and record["sealed_credentials"] is None
        assert "tok-abcdefgh-123" not in str(r.body)
        assert r.body["details"][0] == "Traceback: header was [removed]"
    # A viewer lists them and reads the metadata, not the body.
    assert (await _list(control, w["org"], viewer_token)).status == 200
    r = await control.call("GET", url, viewer_token)
    assert r.status == 200, r.body
    assert r.body["original"] is None and r.body["original_hidden"] is True
    assert r.body["details"] is None and r.body["details_hidden"] is True
    assert r.body["error_code"] == "transform_failed" and r.body["correlation_id"] == w["cid"]


async def test_another_organisations_dead_letters_answer_404(control: Any) -> None:
    w = await _world(control)
    _, outsider = await control.new_user(w["other"], "org_admin")
    assert (await _list(control, w["org"], outsider)).status == 404
    r = await control.call("GET", f"/api/v1/orgs/{w['org']}/dead-letters/{w['ids'][0]}", outsider)
    assert r.status == 404
    # Asked under its own organisation, another's letter does not exist either.
    r = await control.call("GET", f"/api/v1/orgs/{w['other']}/dead-letters/{w['ids'][0]}", outsider)
    assert r.status == 404
    r = await _list(control, w["other"], outsider)
    assert [i["id"] for i in r.body["items"]] == [w["ids"][5]]


async def test_bad_filter_values_are_422_naming_the_field(control: Any) -> None:
    w = await _world(control)
    for query, field in (("?stage=ingress", "stage"), ("?code=Not-A-Code", "code"), ("?api=orders", "api"),
                         ("?from=yesterday", "from"), ("?to=2024-13-01", "to"), ("?limit=0", "limit"),
                         ("?cursor=abc", "cursor"), ("?colour=red", "colour"), ("?correlation_id=a%20b", "correlation_id"),
                         ("?from=2024-02-01T00:00:00Z&to=2024-01-01T00:00:00Z", "to")):
        r = await _list(control, w["org"], control.admin_token, query)
        assert r.status == 422, (query, r.body)
        assert field in [f["field"] for f in r.body["fields"]], (query, r.body)


async def test_the_sdk_lists_and_reads_dead_letters(control: Any) -> None:
    w = await _world(control)
    async with JunctionClient(control.base_url, control.admin_token) as jc:
        page = await jc.list_dead_letters(w["org"], stage="egress", limit=1)
        assert [i["id"] for i in page["items"]] == [w["ids"][2]] and page["next_cursor"]
        letter = await jc.get_dead_letter(w["org"], w["ids"][2])
        assert letter["error_code"] == "upstream_unreachable" and letter["original"] is not None


async def test_letters_of_no_organisation_are_listed_to_global_admins_alone(control: Any) -> None:
    """Bytes under a slug nobody has (deleted, or never there) and a producer's call naming another
    organisation's API belong to no organisation: no org's list shows them, a global admin finds them."""
    w = await _world(control)
    values = [letter_bytes(f"gone-{uuid.uuid4().hex[:6]}", failed_at_ms=BASE_MS + 7000, code="undecodable"),
              letter_bytes(w["other"], failed_at_ms=BASE_MS + 8000, api_id=w["api"], code="api_not_in_org")]
    ids = await index_letters(control.pool, values)
    cids = [decode(v)[1]["correlation_id"] for v in values]
    for cid, id_ in zip(cids, ids):
        r = await control.call("GET", f"/api/v1/dead-letters?correlation_id={cid}", control.admin_token)
        assert r.status == 200 and [i["id"] for i in r.body["items"]] == [id_], r.body
        r = await control.call("GET", f"/api/v1/dead-letters/{id_}", control.admin_token)
        assert r.status == 200 and r.body["original_hidden"] is False and r.body["original"]["type"] == "InboundCall"
    for slug in (w["org"], w["other"]):
        r = await _list(control, slug, control.admin_token, "?limit=1000")
        assert r.status == 200 and not set(ids) & {i["id"] for i in r.body["items"]}
    # An organisation's letter is not one of them.
    assert (await control.call("GET", f"/api/v1/dead-letters/{w['ids'][0]}", control.admin_token)).status == 404
    r = await control.call("GET", f"/api/v1/dead-letters?correlation_id={w['cid']}", control.admin_token)
    assert r.status == 200 and r.body["items"] == []
    _, org_admin = await control.new_user(w["org"], "org_admin")
    for url in ("/api/v1/dead-letters", f"/api/v1/dead-letters/{ids[0]}"):
        r = await control.call("GET", url, org_admin)
        assert r.status == 403 and r.body["code"] == "forbidden", (url, r.body)
    r = await control.call("GET", "/api/v1/dead-letters?stage=ingress", control.admin_token)
    assert r.status == 422 and [f["field"] for f in r.body["fields"]] == ["stage"]
    async with JunctionClient(control.base_url, control.admin_token) as jc:
        page = await jc.list_unattributed_dead_letters(correlation_id=cids[1])
        assert [i["id"] for i in page["items"]] == [ids[1]] and page["items"][0]["error_code"] == "api_not_in_org"
        assert (await jc.get_unattributed_dead_letter(ids[0]))["error_code"] == "undecodable"
    code, out, err = await run_cli(control, "dlq", "list", "--url", control.base_url, "--no-org", "--code", "undecodable",
                                   "--correlation-id", cids[0])
    assert code == 0 and [i["id"] for i in out] == [ids[0]], err
    code, out, err = await run_cli(control, "dlq", "show", "--url", control.base_url, "--no-org", ids[1])
    assert code == 0 and out["correlation_id"] == cids[1], err


async def test_the_api_filter_takes_the_api_name_within_its_organisation_only(control: Any) -> None:
    """``?api=`` names an API by id or by name, as a path does; a name is looked up in the path's organisation,
    so another organisation's API of that name, and a name on a global list, find nothing (422)."""
    w = await _world(control)
    ids = w["ids"]
    name = (await control.call("GET", f"/api/v1/orgs/{w['org']}/apis/{w['api']}", control.admin_token)).body["name"]
    r = await _list(control, w["org"], control.admin_token, f"?api={name}")
    assert r.status == 200 and [i["id"] for i in r.body["items"]] == [ids[2], ids[0]], r.body
    # The other organisation has an API of the same name: its filter finds its own, not ours.
    theirs = await control.new_api(w["other"], (await control.new_connector(w["other"]))["id"], name=name)
    r = await _list(control, w["other"], control.admin_token, f"?api={name}")
    assert r.status == 200 and r.body["items"] == [], r.body
    assert theirs["id"] != w["api"]
    for slug, query, words in ((w["org"], "?api=no-such-api", "no API of this organisation is named"),
                               (w["org"], "?api=a/b", "must be an API id or name"),
                               (w["org"], f"?api={'x' * 101}", "must be an API id or name")):
        r = await _list(control, slug, control.admin_token, query)
        assert r.status == 422 and r.body["fields"][0]["field"] == "api" and words in r.body["fields"][0]["message"], r.body
    r = await control.call("GET", f"/api/v1/dead-letters?api={name}", control.admin_token)
    assert r.status == 422 and "unique only within an organisation" in r.body["fields"][0]["message"], r.body
    # The metrics, the request log and a replay's filter take it the same way.
    r = await control.call("GET", f"/api/v1/orgs/{w['org']}/metrics?api={name}", control.admin_token)
    assert r.status == 200 and r.body["api"] == w["api"], r.body
    r = await control.call("GET", f"/api/v1/orgs/{w['other']}/metrics?api={name}", control.admin_token)
    assert r.status == 200 and r.body["api"] == theirs["id"], r.body
    r = await control.call("GET", f"/api/v1/metrics?api={name}", control.admin_token)
    assert r.status == 422 and r.body["fields"][0]["field"] == "api", r.body
    r = await control.call("GET", f"/api/v1/orgs/{w['org']}/logs?api=no-such-api", control.admin_token)
    assert r.status == 422 and r.body["fields"][0]["field"] == "api", r.body
    assert (await control.call("GET", f"/api/v1/orgs/{w['org']}/logs?api={name}", control.admin_token)).status == 200
    r = await control.call("POST", f"/api/v1/orgs/{w['org']}/replays", control.admin_token,
                           {"filter": {"api": name}, "dry_run": True})
    assert r.status == 200 and sorted(r.body["ids"]) == sorted([ids[2], ids[0]]), r.body
    r = await control.call("POST", f"/api/v1/orgs/{w['org']}/replays", control.admin_token, {"filter": {"api": "nope"}})
    assert r.status == 422 and r.body["fields"][0]["field"] == "filter.api", r.body
    code, out, err = await run_cli(control, "dlq", "list", "--url", control.base_url, "--org", w["org"], "--api", name)
    assert code == 0 and [i["id"] for i in out] == [ids[2], ids[0]], err
