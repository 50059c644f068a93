"""Replay jobs through the management API: who may start and read them, what a bad request answers, the
audit row, dry runs and the SDK. The pipeline side is in tests/pipeline/test_replay_jobs.py."""
from __future__ import annotations

import uuid
from typing import Any

from junction.sdk import JunctionAPIError, JunctionClient
from tests.dead_letter_support import index_letters, letter_bytes


async def _org_with_letters(control: Any, n: int = 2, **kwargs: Any) -> tuple[str, list[str]]:
    slug = (await control.new_org("rp"))["slug"]
    return slug, await index_letters(control.pool, [letter_bytes(slug, **kwargs) for _ in range(n)])


async def test_admins_replay_viewers_only_read_and_other_organisations_answer_404(control: Any) -> None:
    slug, ids = await _org_with_letters(control)
    _, admin = await control.new_user(slug, "org_admin")
    _, viewer = await control.new_user(slug, "org_viewer")
    other, _ = await _org_with_letters(control, 0)
    _, stranger = await control.new_user(other, "org_admin")
    path = f"/api/v1/orgs/{slug}/replays"

    r = await control.call("POST", path, viewer, {"ids": ids[:1]})
    assert r.status == 403, r.body
    r = await control.call("POST", path, stranger, {"ids": ids[:1]})
    assert r.status == 404, r.body
    mine = await control.call("POST", path, admin, {"ids": ids[:1], "rate_per_second": 5})
    assert mine.status == 201, mine.body
    assert (mine.body["ids"], mine.body["config"], mine.body["rate_per_second"], mine.body["force"]) == (ids[:1], "current", 5, False)
    theirs = await control.call("POST", path, control.admin_token, {"filter": {"stage": "processors"}})  # a global admin: any org
    assert theirs.status == 201 and theirs.body["progress"]["total"] == 2, theirs.body
    assert theirs.body["filter"] == {"stage": "processors"}

    listed = await control.call("GET", path, viewer)
    assert listed.status == 200 and {j["id"] for j in listed.body["items"]} == {mine.body["id"], theirs.body["id"]}
    one = await control.call("GET", f"{path}/{mine.body['id']}", viewer)
    assert one.status == 200 and [i["dead_letter_id"] for i in one.body["items"]] == ids[:1]
    for token in (stranger,):
        assert (await control.call("GET", path, token)).status == 404
        assert (await control.call("GET", f"{path}/{mine.body['id']}", token)).status == 404
    # A job of one organisation is not found under another's path, even by a global admin.
    assert (await control.call("GET", f"/api/v1/orgs/{other}/replays/{mine.body['id']}", control.admin_token)).status == 404
    assert (await control.call("GET", f"{path}/{uuid.uuid4()}", admin)).status == 404
    assert (await control.call("GET", f"{path}/not-an-id", admin)).status == 404

    audit = await control.call("GET", f"/api/v1/audit?org={slug}&resource_type=replay", control.admin_token)
    assert audit.status == 200, audit.body
    rows = {e["resource_id"]: e for e in audit.body["items"]}
    assert set(rows) == {mine.body["id"], theirs.body["id"]}
    assert rows[mine.body["id"]]["action"] == "create" and rows[mine.body["id"]]["after"]["ids"] == ids[:1]


async def test_bad_requests_are_422_naming_the_fields(control: Any) -> None:
    slug, ids = await _org_with_letters(control, 1)
    _, other_ids = await _org_with_letters(control, 1)
    path = f"/api/v1/orgs/{slug}/replays"
    cases: list[tuple[Any, set[str]]] = [
        ({"ids": ids, "filter": {}}, {"filter", "ids"}),
        ({"dry_run": True}, {"filter", "ids"}),
        ({"ids": [str(uuid.uuid4())]}, {"ids"}),
        ({"ids": other_ids}, {"ids"}),  # another organisation's letter is unknown here
        ({"ids": ["nope"]}, {"ids[0]"}),
        ({"ids": []}, {"ids"}),
        ({"ids": [str(uuid.uuid4()) for _ in range(1001)]}, {"ids"}),
        ({"filter": {"from": "2030-01-02T00:00:00Z", "to": "2030-01-01T00:00:00Z"}}, {"filter.to"}),
        ({"filter": {"from": "yesterday"}}, {"filter.from"}),
        ({"filter": {"stage": "ingress", "code": "Bad Code"}}, {"filter.stage", "filter.code"}),
        ({"filter": {"api": "x"}}, {"filter.api"}),
        ({"filter": {"unknown": 1}}, {"filter.unknown"}),
        ({"ids": ids, "rate_per_second": 0}, {"rate_per_second"}),
        ({"ids": ids, "rate_per_second": 1001}, {"rate_per_second"}),
        ({"ids": ids, "config": "newest"}, {"config"}),
        ({"ids": ids, "force": "yes"}, {"force"}),
    ]
    for body, fields in cases:
        r = await control.call("POST", path, control.admin_token, body)
        assert r.status == 422, (body, r.body)
        assert {f["field"] for f in r.body["fields"]} == fields, (body, r.body)
    r = await control.call("GET", path + "?limit=0", control.admin_token)
    assert r.status == 422 and r.body["fields"][0]["field"] == "limit"
    r = await control.call("GET", path + "?cursor=nope", control.admin_token)
    assert r.status == 422 and r.body["fields"][0]["field"] == "cursor"
    listed = await control.call("GET", path, control.admin_token)
    assert listed.body == {"items": [], "next_cursor": None}  # nothing refused made a job


async def test_a_dry_run_lists_and_a_filter_matching_nothing_is_done_at_once(control: Any) -> None:
    slug, ids = await _org_with_letters(control, 3)
    path = f"/api/v1/orgs/{slug}/replays"
    r = await control.call("POST", path, control.admin_token, {"filter": {}, "dry_run": True})
    assert r.status == 200 and r.body["count"] == 3 and sorted(r.body["ids"]) == sorted(ids) and r.body["already_done"] == []
    r = await control.call("POST", path, control.admin_token, {"filter": {"code": "upstream_unreachable"}, "dry_run": True})
    assert r.body["count"] == 0
    assert (await control.call("GET", path, control.admin_token)).body["items"] == []
    r = await control.call("POST", path, control.admin_token, {"filter": {"code": "upstream_unreachable"}})
    assert r.status == 201 and r.body["status"] == "done" and r.body["progress"]["total"] == 0 and r.body["finished_at"]


async def test_the_sdk_creates_lists_and_waits_for_replays(control: Any) -> None:
    slug, ids = await _org_with_letters(control, 1)
    async with JunctionClient(control.base_url, control.admin_token) as jc:
        dry = await jc.create_replay(slug, filter={"stage": "processors"}, dry_run=True)
        assert dry["ids"] == ids
        done = await jc.create_replay(slug, filter={"stage": "egress"})
        assert (await jc.wait_replay(slug, done["id"], timeout_s=10))["status"] == "done"
        job = await jc.create_replay(slug, ids=ids, rate_per_second=10)
        assert (await jc.get_replay(slug, job["id"]))["items"][0]["dead_letter_id"] == ids[0]
        page = await jc.list_replays(slug, limit=1)
        assert [j["id"] for j in page["items"]] == [job["id"]] and page["next_cursor"]
        try:
            await jc.create_replay(slug, ids=[str(uuid.uuid4())])
        except JunctionAPIError as err:
            assert err.status == 422 and err.fields[0].field == "ids"
        else:
            raise AssertionError("an unknown id was accepted")
