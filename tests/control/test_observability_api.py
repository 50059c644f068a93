"""The metrics and request-log API (docs/observability.md): property 16 (role-based data filtering),
query validation, pagination and the live stream. Rows are written with the observe stage's own
store functions, as processors would."""
from __future__ import annotations

import asyncio
import json
import time
import uuid
from typing import Any

import pytest_asyncio
from hypothesis import HealthCheck, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from control.state import STATE
from core.settings import Settings
from core.snapshot import ConfigSnapshot
from control.observe import events
from control.observe.store import record

PROPS = hsettings(max_examples=30, deadline=None, database=None,
                  suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
CALLERS = ["global_admin", "home_admin", "home_viewer", "other_admin", "anonymous"]
CALLS_PER_ORG = 5


async def _seed(control: Any, orgs: list[dict[str, Any]], *, at_ms: int, n: int = CALLS_PER_ORG) -> None:
    snapshot = ConfigSnapshot()
    partials = []
    for org in orgs:
        snapshot.orgs[org["slug"]] = {"id": org["id"], "slug": org["slug"]}
        for i in range(n):
            cid = f"{org['slug']}-{i}-{uuid.uuid4().hex[:6]}"
            status = 200 if i % 2 == 0 else 502
            partials.append(events.from_request({
                "correlation_id": cid, "org": org["slug"], "method": "GET", "path": f"/p/{i}", "body": b"abc",
                "received_at_ms": at_ms + i, "deadline_ms": at_ms + 30_000, "reply_topic": control.settings.topics.replies,
                "reply_partition": 0}, at_ms + i, control.settings, snapshot))
            partials.append(events.from_reply({
                "correlation_id": cid, "org": org["slug"], "status": status, "body": b"hello",
                "error_code": None if status == 200 else "upstream_error", "produced_at_ms": at_ms + i + 25},
                at_ms + i + 25, snapshot))
    async with control.pool.acquire() as conn:
        assert len(await record(conn, partials, now_ms=at_ms)) == n * len(orgs)


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def world(control: Any) -> dict[str, Any]:
    home, other = await control.new_org("obs"), await control.new_org("obs")
    await _seed(control, [home, other], at_ms=int(time.time() * 1000) - 120_000)
    tokens = {"global_admin": control.admin_token, "anonymous": None,
              "home_admin": (await control.new_user(home["slug"], "org_admin"))[1],
              "home_viewer": (await control.new_user(home["slug"], "org_viewer"))[1],
              "other_admin": (await control.new_user(other["slug"], "org_admin"))[1]}
    return {"home": home, "other": other, "tokens": tokens}


def _sees(caller: str, target: str) -> bool:
    return caller == "global_admin" or caller.startswith(target)


@PROPS
@given(caller=st.sampled_from(CALLERS), target=st.sampled_from(["home", "other"]),
       what=st.sampled_from(["metrics", "logs", "global"]))
async def test_property_16_role_based_data_filtering(control: Any, world: dict[str, Any], caller: str, target: str,
                                                    what: str) -> None:
    """Each caller sees exactly its own organisation's data; a global admin every organisation's; another
    organisation's answers 404 (its existence is not told), the cross-organisation view 403."""
    org, token = world[target], world["tokens"][caller]
    since = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() - 86400))
    path = {"metrics": f"/api/v1/orgs/{org['slug']}/metrics?step=1h&from={since}",
            "logs": f"/api/v1/orgs/{org['slug']}/logs?limit=1000",
            "global": f"/api/v1/metrics?step=1h&from={since}"}[what]
    r = await control.call("GET", path, token)
    if caller == "anonymous":
        assert r.status == 401
        return
    if what == "global":
        assert r.status == (200 if caller == "global_admin" else 403), r.body
        if r.status == 200:
            ids = {s["org_id"] for s in r.body["series"]}
            assert {world["home"]["id"], world["other"]["id"]} <= ids
        return
    if not _sees(caller, target):
        assert r.status == 404, r.body
        return
    assert r.status == 200, r.body
    if what == "logs":
        assert len(r.body["items"]) == CALLS_PER_ORG
        assert {row["org_id"] for row in r.body["items"]} == {org["id"]}
        assert all(row["latency_ms"] == 25 and "body" not in row for row in r.body["items"])
    else:
        assert r.body["org_id"] == org["id"]
        assert sum(p["calls"] for p in r.body["points"]) == CALLS_PER_ORG


async def test_metrics_series_values_and_automatic_step(control: Any, world: dict[str, Any]) -> None:
    org = world["home"]
    r = await control.call("GET", f"/api/v1/orgs/{org['slug']}/metrics", control.admin_token)
    assert r.status == 200 and r.body["step"] == "10s", r.body
    [point] = [p for p in r.body["points"]]
    assert point["calls"] == CALLS_PER_ORG and point["status"]["2xx"] == 3 and point["status"]["5xx"] == 2
    assert point["error_codes"] == {"upstream_error": 2} and point["errors"] == 2
    assert abs(point["latency_ms"]["p50"] - 25) <= 25 * 0.045 and point["bytes_in"] == 15 and point["bytes_out"] == 25
    r = await control.call("GET", f"/api/v1/orgs/{org['slug']}/metrics?from=2024-01-01T00:00:00Z&to=2024-06-01T00:00:00Z", control.admin_token)
    assert r.status == 200 and r.body["step"] == "1h"


async def test_bad_query_values_are_422_naming_the_parameter(control: Any, world: dict[str, Any]) -> None:
    slug, admin = world["home"]["slug"], control.admin_token
    cases = {
        f"/api/v1/orgs/{slug}/metrics?from=2024-01-02T00:00:00Z&to=2024-01-01T00:00:00Z": "from",
        f"/api/v1/orgs/{slug}/metrics?step=5m": "step",
        f"/api/v1/orgs/{slug}/metrics?step=10s&from=2000-01-01T00:00:00Z": "step",
        f"/api/v1/orgs/{slug}/metrics?from=yesterday": "from",
        f"/api/v1/orgs/{slug}/metrics?api=nope": "api",
        f"/api/v1/orgs/{slug}/metrics?colour=red": "colour",
        "/api/v1/metrics?step=1d": "step",
        f"/api/v1/orgs/{slug}/logs?limit=0": "limit",
        f"/api/v1/orgs/{slug}/logs?limit=1001": "limit",
        f"/api/v1/orgs/{slug}/logs?cursor=garbage": "cursor",
        f"/api/v1/orgs/{slug}/logs?status=6xx": "status",
        f"/api/v1/orgs/{slug}/logs?from=2024-01-02T00:00:00Z&to=2024-01-01T00:00:00Z": "to",
        f"/api/v1/orgs/{slug}/metrics/stream?api=nope": "api",
    }
    for path, field in cases.items():
        r = await control.call("GET", path, admin)
        assert r.status == 422, (path, r.status, r.body)
        assert field in [f["field"] for f in r.body["fields"]], (path, r.body)


async def test_logs_pages_follow_the_cursor_and_filter(control: Any, world: dict[str, Any]) -> None:
    slug, admin = world["home"]["slug"], control.admin_token
    seen: list[str] = []
    cursor = None
    while True:
        r = await control.call("GET", f"/api/v1/orgs/{slug}/logs?limit=2" + (f"&cursor={cursor}" if cursor else ""), admin)
        assert r.status == 200, r.body
        seen += [row["correlation_id"] for row in r.body["items"]]
        cursor = r.body["next_cursor"]
        if cursor is None:
            break
    assert len(seen) == len(set(seen)) == CALLS_PER_ORG
    r = await control.call("GET", f"/api/v1/orgs/{slug}/logs?status=5xx&code=upstream_error", admin)
    assert [row["status"] for row in r.body["items"]] == [502, 502]
    r = await control.call("GET", f"/api/v1/orgs/{slug}/logs?correlation_id={seen[0]}", admin)
    assert [row["correlation_id"] for row in r.body["items"]] == [seen[0]]


async def test_live_stream_sends_settled_windows_and_is_bounded(control: Any, world: dict[str, Any],
                                                                 control_settings: Settings) -> None:
    slug = world["home"]["slug"]
    url = f"{control.base_url}/api/v1/orgs/{slug}/metrics/stream"
    headers = {"Authorization": f"Bearer {control.admin_token}"}
    async with control.session.get(url, headers=headers) as resp:
        assert resp.status == 200 and resp.headers["Content-Type"].startswith("text/event-stream")
        got = None
        async with asyncio.timeout(10):
            async for raw in resp.content:
                if raw.startswith(b"data: "):
                    got = json.loads(raw[len(b"data: "):])
                    break
        assert got is not None and got["calls"] == CALLS_PER_ORG
    # The client went away: the server notices at its next write and frees the slot.
    streams = control.app[STATE].extras["metric_streams"]
    async with asyncio.timeout(10):
        while streams.open:
            await asyncio.sleep(0.1)
    limit, streams.limit = streams.limit, 0
    try:
        r = await control.call("GET", f"/api/v1/orgs/{slug}/metrics/stream", control.admin_token)
        assert r.status == 503 and r.body["code"] == "too_many_streams"
    finally:
        streams.limit = limit
    r = await control.call("GET", f"/api/v1/orgs/{world['other']['slug']}/metrics/stream", world["tokens"]["home_admin"])
    assert r.status == 404


async def test_a_scripts_log_lines_are_for_admins_as_in_a_dead_letter(control: Any, world: dict[str, Any]) -> None:
    """A failed script's traceback and log lines may hold a logged body: an org viewer gets the row without them."""
    slug, org_id = world["home"]["slug"], world["home"]["id"]
    cid = await control.pool.fetchval("SELECT correlation_id FROM request_logs WHERE org_id = $1 LIMIT 1", org_id)
    lines = ["line 3, in transform_request", "INFO card=5500000000000004"]
    await control.pool.execute("UPDATE request_logs SET details = $2::jsonb WHERE correlation_id = $1", cid,
                               json.dumps(lines))
    for caller, details, hidden in (("home_admin", lines, False), ("global_admin", lines, False),
                                    ("home_viewer", None, True)):
        r = await control.call("GET", f"/api/v1/orgs/{slug}/logs?correlation_id={cid}", world["tokens"][caller])
        assert r.status == 200, r.body
        (row,) = r.body["items"]
        assert (row["details"], row["details_hidden"]) == (details, hidden), (caller, row)
        assert "5500000000000004" not in json.dumps(r.body) or not hidden
