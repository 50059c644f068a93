"""Lists of APIs and connectors come a page at a time: ``limit`` and an opaque
``cursor``; every item exactly once, in a stable order, and never another
organisation's."""
from __future__ import annotations

import uuid
from typing import Any

import pytest

from junction.sdk import JunctionAPIError, JunctionClient


async def _page_through(control: Any, url: str, token: str, limit: int | None) -> tuple[list[dict[str, Any]], list[int]]:
    items: list[dict[str, Any]] = []
    sizes: list[int] = []
    cursor = None
    for _ in range(100):
        query = "&".join(f"{k}={v}" for k, v in (("limit", limit), ("cursor", cursor)) if v is not None)
        r = await control.call("GET", url + (f"?{query}" if query else ""), token)
        assert r.status == 200, r.body
        assert set(r.body) == {"items", "next_cursor"}
        items += r.body["items"]
        sizes.append(len(r.body["items"]))
        cursor = r.body["next_cursor"]
        if cursor is None:
            return items, sizes
    raise AssertionError("the cursor never ran out")


async def _many_apis(control: Any, org: str, n: int) -> list[dict[str, Any]]:
    conn = await control.new_connector(org)
    apis = []
    for i in range(n):
        apis.append(await control.new_api(org, conn["id"], name=f"api-{i:04d}", path=f"/r{i}/{{id}}"))
    return apis


async def test_every_api_exactly_once_in_a_stable_order(control: Any) -> None:
    a, b = await control.new_org("pga"), await control.new_org("pgb")
    a_conn, b_conn = await control.new_connector(a["slug"]), await control.new_connector(b["slug"])
    a_ids, b_ids = [], []
    for i in range(250):
        a_ids.append((await control.new_api(a["slug"], a_conn["id"], name=f"api-{i:04d}", path=f"/r{i}/{{id}}"))["id"])
        if i % 40 == 0:  # the other organisation's, created in between
            b_ids.append((await control.new_api(b["slug"], b_conn["id"], name=f"b-{i}", path=f"/b{i}"))["id"])
    url = f"/api/v1/orgs/{a['slug']}/apis"

    items, sizes = await _page_through(control, url, control.admin_token, 100)
    assert sizes == [100, 100, 50]
    ids = [i["id"] for i in items]
    assert len(ids) == len(set(ids)) == 250 and set(ids) == set(a_ids)
    assert not set(ids) & set(b_ids) and all(i["org"] == a["slug"] for i in items)
    # Stable: oldest first (creation time, then id), the same on every pass and for every page size.
    assert [(i["created_at"], i["id"]) for i in items] == sorted((i["created_at"], i["id"]) for i in items)
    assert ids == a_ids  # created one after another, so in creation order
    for limit in (7, 250, 1000, None):
        again, _ = await _page_through(control, url, control.admin_token, limit)
        assert [i["id"] for i in again] == ids, limit

    # Without limit: 100; a page as big as the list ends it.
    r = await control.call("GET", url, control.admin_token)
    assert len(r.body["items"]) == 100 and r.body["next_cursor"]
    r = await control.call("GET", url + "?limit=250", control.admin_token)
    assert len(r.body["items"]) == 250 and r.body["next_cursor"] is None

    # The other organisation's lists hold its own only, even given A's cursor.
    b_items, _ = await _page_through(control, f"/api/v1/orgs/{b['slug']}/apis", control.admin_token, 2)
    assert [i["id"] for i in b_items] == b_ids
    r = await control.call("GET", url + "?limit=100", control.admin_token)
    r = await control.call("GET", f"/api/v1/orgs/{b['slug']}/apis?cursor={r.body['next_cursor']}", control.admin_token)
    assert r.status == 200 and set(i["id"] for i in r.body["items"]) <= set(b_ids)

    # A viewer of B pages through B, and cannot see A's list at all.
    _, viewer = await control.new_user(b["slug"], "org_viewer")
    viewed, _ = await _page_through(control, f"/api/v1/orgs/{b['slug']}/apis", viewer, 3)
    assert [i["id"] for i in viewed] == b_ids
    r = await control.call("GET", url + "?limit=10", viewer)
    assert r.status == 404


async def test_changes_while_paging_do_not_repeat_or_skip(control: Any) -> None:
    org = (await control.new_org("pgc"))["slug"]
    apis = await _many_apis(control, org, 30)
    url = f"/api/v1/orgs/{org}/apis"
    r = await control.call("GET", url + "?limit=10", control.admin_token)
    first = [i["id"] for i in r.body["items"]]
    cursor = r.body["next_cursor"]
    # Renamed and changed (a new version): it keeps its place. Deleted: it is simply gone.
    changed, deleted = apis[15], apis[25]
    r2 = await control.call("PATCH", f"{url}/{changed['id']}", control.admin_token, {"name": "zzz-renamed", "path": "/moved"})
    assert r2.status == 200, r2.body
    assert (await control.call("DELETE", f"{url}/{deleted['id']}", control.admin_token)).status == 204
    new = await control.new_api(org, apis[0]["connector"], name="aaa-new", path="/new")
    rest: list[str] = []
    while cursor:
        r = await control.call("GET", f"{url}?limit=10&cursor={cursor}", control.admin_token)
        rest += [i["id"] for i in r.body["items"]]
        cursor = r.body["next_cursor"]
    expected = [a["id"] for a in apis if a["id"] != deleted["id"]] + [new["id"]]
    assert first + rest == expected


@pytest.mark.parametrize("query, field", [
    ("limit=0", "limit"), ("limit=1001", "limit"), ("limit=-1", "limit"), ("limit=ten", "limit"), ("limit=", "limit"),
    ("limit=1.5", "limit"), ("limit=%EF%BC%91", "limit"),  # a full-width digit one
    ("cursor=", "cursor"), ("cursor=abc", "cursor"), ("cursor=%00", "cursor"), ("cursor=" + "A" * 300, "cursor"),
    ("cursor=WyJ4IiwieSJd", "cursor"),  # base64 of ["x","y"]
    ("cursor=eyJhIjoxfQ", "cursor"),  # base64 of {"a":1}
])
async def test_bad_limit_or_cursor_is_422_naming_the_field(control: Any, query: str, field: str) -> None:
    org = (await control.new_org("pgv"))["slug"]
    for kind in ("apis", "connectors"):
        r = await control.call("GET", f"/api/v1/orgs/{org}/{kind}?{query}", control.admin_token)
        assert r.status == 422, (kind, query, r.status, r.body)
        assert r.body["code"] == "invalid_input" and [f["field"] for f in r.body["fields"]] == [field]


async def test_a_tampered_cursor_is_refused(control: Any) -> None:
    org = (await control.new_org("pgt"))["slug"]
    conn = await control.new_connector(org)
    for i in range(3):
        await control.new_api(org, conn["id"], path=f"/t{i}")
    r = await control.call("GET", f"/api/v1/orgs/{org}/apis?limit=1", control.admin_token)
    cursor = r.body["next_cursor"]
    assert cursor and "=" not in cursor  # URL-safe as it is
    for bad in (cursor[:-2], cursor + "A", cursor.swapcase()):
        r = await control.call("GET", f"/api/v1/orgs/{org}/apis?cursor={bad}", control.admin_token)
        assert r.status == 422 and r.body["fields"][0]["field"] == "cursor", bad
    r = await control.call("GET", f"/api/v1/orgs/{org}/apis?limit=5&cursor={cursor}", control.admin_token)
    assert r.status == 200 and len(r.body["items"]) == 2 and r.body["next_cursor"] is None


async def test_connectors_page_too(control: Any) -> None:
    org = (await control.new_org("pgk"))["slug"]
    made = [(await control.new_connector(org, name=f"c-{i:03d}"))["id"] for i in range(120)]
    other = await control.new_org("pgk")
    await control.new_connector(other["slug"])
    items, sizes = await _page_through(control, f"/api/v1/orgs/{org}/connectors", control.admin_token, 50)
    assert sizes == [50, 50, 20] and [i["id"] for i in items] == made


async def test_sdk_follows_the_cursor(control: Any) -> None:
    org = (await control.new_org("pgs"))["slug"]
    apis = await _many_apis(control, org, 23)
    async with JunctionClient(control.base_url, control.admin_token) as jc:
        assert [a["id"] for a in await jc.list_apis(org, page_size=5)] == [a["id"] for a in apis]
        assert [a["id"] for a in await jc.list_apis(org)] == [a["id"] for a in apis]
        page = await jc.list_apis_page(org, limit=20)
        assert len(page["items"]) == 20 and page["next_cursor"]
        page = await jc.list_apis_page(org, limit=20, cursor=page["next_cursor"])
        assert len(page["items"]) == 3 and page["next_cursor"] is None
        assert [a["id"] async for a in jc.iter_apis(org, page_size=4)] == [a["id"] for a in apis]
        connectors = [c["id"] async for c in jc.iter_connectors(org, page_size=1)]
        assert connectors == [c["id"] for c in await jc.list_connectors(org)] and len(connectors) == 1
        cpage = await jc.list_connectors_page(org)
        assert [c["id"] for c in cpage["items"]] == connectors and cpage["next_cursor"] is None
        with pytest.raises(JunctionAPIError) as info:
            await jc.list_apis_page(org, cursor=f"not-a-cursor-{uuid.uuid4().hex}")
        assert info.value.status == 422 and info.value.fields[0].field == "cursor"


async def test_organisations_and_users_page_too(control: Any) -> None:
    """The lists a global admin walks at scale (100 organisations of 1,000 APIs) come a page at a time as well."""
    made = [await control.new_org("pgo") for _ in range(7)]
    # One policy, to check the list shows what GET shows.
    policy = {"rate_limit": {"requests": 50, "per_seconds": 60, "by": "ip"}}
    r = await control.call("PATCH", f"/api/v1/orgs/{made[3]['slug']}", control.admin_token, policy)
    assert r.status == 200, r.body
    # Pages of 50: the run's other tests have made hundreds of organisations by now.
    items, sizes = await _page_through(control, "/api/v1/orgs", control.admin_token, 50)
    assert all(size == 50 for size in sizes[:-1]) and 1 <= sizes[-1] <= 50
    ids = [o["id"] for o in items]
    assert len(ids) == len(set(ids)), "an organisation came twice"
    assert [(o["created_at"], o["id"]) for o in items] == sorted((o["created_at"], o["id"]) for o in items)
    mine = [o for o in items if o["id"] in {m["id"] for m in made}]
    assert [o["id"] for o in mine] == [m["id"] for m in made]  # each once, in the order they were made
    got = await control.call("GET", f"/api/v1/orgs/{made[3]['slug']}", control.admin_token)
    assert mine[3] == got.body and mine[3]["rate_limit"] == policy["rate_limit"]
    assert (await control.call("GET", "/api/v1/orgs?limit=2", control.admin_token)).body["next_cursor"]

    # An organisation's own user lists its organisation only, whatever the cursor.
    org = made[0]["slug"]
    _, admin = await control.new_user(org, "org_admin")
    own, _ = await _page_through(control, "/api/v1/orgs", admin, 1)
    assert [o["id"] for o in own] == [made[0]["id"]]
    everyones = (await control.call("GET", "/api/v1/orgs?limit=1", control.admin_token)).body["next_cursor"]
    r = await control.call("GET", f"/api/v1/orgs?cursor={everyones}", admin)
    assert r.status == 200 and {o["id"] for o in r.body["items"]} <= {made[0]["id"]}

    users = [(await control.new_user(org, "org_viewer"))[0]["id"] for _ in range(4)]
    listed, sizes = await _page_through(control, f"/api/v1/orgs/{org}/users", control.admin_token, 2)
    assert sizes == [2, 2, 1] and [u["id"] for u in listed][1:] == users  # the org admin made above comes first
    async with JunctionClient(control.base_url, control.admin_token) as jc:
        assert [u["id"] for u in await jc.list_users(org)] == [u["id"] for u in listed]
        assert [o["id"] for o in await jc.list_orgs()] == ids

    for url in ("/api/v1/orgs", f"/api/v1/orgs/{org}/users"):
        for query, field in (("limit=0", "limit"), ("limit=ten", "limit"), ("cursor=abc", "cursor")):
            r = await control.call("GET", f"{url}?{query}", control.admin_token)
            assert r.status == 422 and [f["field"] for f in r.body["fields"]] == [field], (url, query, r.body)
