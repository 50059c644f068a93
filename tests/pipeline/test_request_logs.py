"""Property 18 (comprehensive logging), through the real pipeline: every call that enters is logged
exactly once by control's observe stage, with the status its caller saw and a latency above 0,
and never with its body or credentials."""
from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import asyncpg
import pytest_asyncio
from aiohttp import web
from hypothesis import HealthCheck, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from control.observe import ObserveService
from core.settings import Settings
from tests.support import IngressInstance, Stage, serving, wait_until

PROPS = hsettings(max_examples=5, deadline=None, database=None,
                  suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
FAILING = '''
def transform_request(request, ctx):
    return 1 / 0
'''
SECRET = "s3cr3t-never-logged"


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def status_upstream() -> AsyncIterator[str]:
    async def status(request: web.Request) -> web.Response:
        return web.json_response({"status": int(request.match_info["code"])}, status=int(request.match_info["code"]))

    app = web.Application()
    app.add_routes([web.route("*", "/status/{code}", status)])
    async with serving(app) as url:
        yield url


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def apis(stage: Stage, ingress: IngressInstance, status_upstream: str, observe: ObserveService) -> dict[str, Any]:
    statuses = await stage.api(status_upstream + "/status/{code}", path="/s/{code}")
    failing = await stage.api(status_upstream + "/status/200", org=statuses["org"], path="/fails", script=FAILING)
    await wait_until(lambda: {statuses["api"]["id"], failing["api"]["id"]} <= set(ingress.snapshot.apis))
    return {"org": statuses["org"], "org_id": statuses["org_id"], "status": statuses["api"]["id"], "fails": failing["api"]["id"],
            "status_url": status_upstream}


calls = st.lists(st.one_of(st.tuples(st.just("status"), st.sampled_from([200, 201, 404, 500])),
                           st.tuples(st.just("fails"), st.just(502))), min_size=1, max_size=6)


async def _send(session: aiohttp.ClientSession, base: str, org: str, call: tuple[str, int]) -> tuple[str, int, str, str]:
    kind, code = call
    path = f"/s/{code}" if kind == "status" else "/fails"
    async with session.post(f"{base}/{org}{path}?token={SECRET}", data=SECRET.encode(),
                            headers={"Authorization": f"Bearer {SECRET}"}) as r:
        await r.read()
        return r.headers["X-Correlation-Id"], r.status, kind, path


@PROPS
@given(batch=calls)
async def test_property_comprehensive_logging(log_db: asyncpg.Pool, ingress: IngressInstance, apis: dict[str, Any],
                                              batch: list[tuple[str, int]]) -> None:
    async with aiohttp.ClientSession() as s:
        sent = await asyncio.gather(*(_send(s, ingress.url, apis["org"], c) for c in batch))
    assert [status for _, status, _, _ in sent] == [code for _, code in batch]
    ids = [cid for cid, _, _, _ in sent]
    deadline = time.monotonic() + 30
    rows: list[asyncpg.Record] = []
    while time.monotonic() < deadline:
        rows = await log_db.fetch("SELECT * FROM request_logs WHERE correlation_id = ANY($1) AND done", ids)
        if len(rows) == len(ids):
            break
        await asyncio.sleep(0.2)
    by_id: dict[str, list[asyncpg.Record]] = {}
    for r in await log_db.fetch("SELECT * FROM request_logs WHERE correlation_id = ANY($1)", ids):
        by_id.setdefault(r["correlation_id"], []).append(r)
    for cid, status, kind, path in sent:
        assert len(by_id.get(cid, [])) == 1, f"{cid} logged {len(by_id.get(cid, []))} times"
        row = by_id[cid][0]
        assert row["done"] and row["status"] == status, (dict(row), status)
        assert row["latency_ms"] is not None and row["latency_ms"] > 0
        assert str(row["org_id"]) == apis["org_id"] and row["api_id"] == apis[kind]
        assert row["method"] == "POST" and row["path"] == path
        assert row["bytes_in"] == len(SECRET)
        if kind == "fails":
            assert row["error_code"] == "transform_failed"
        else:
            assert row["upstream_ms"] is not None and row["upstream_ms"] <= row["latency_ms"]
        assert SECRET not in repr(dict(row)), "a body or credential reached the request log"


NUL_LOGGING = '''
def transform_request(request, ctx):
    print("a NUL\\x00 in a log line")
    return 1 / 0
'''


async def test_text_postgresql_cannot_store_costs_no_other_call_its_row(
        log_db: asyncpg.Pool, stage: Stage, ingress: IngressInstance, apis: dict[str, Any], settings: Settings) -> None:
    """A NUL in a producer's path or method, or in a failed script's log line, once made PostgreSQL refuse the
    whole flush: every call in it went unlogged. Such text is stored with U+FFFD in the NUL's place."""
    from tests.support import post_raw

    nul_script = await stage.api(apis_url(apis), org=apis["org"], path="/nul-log", script=NUL_LOGGING)
    await wait_until(lambda: nul_script["api"]["id"] in ingress.snapshot.apis)
    producer_cid = await post_raw(settings, {
        "correlation_id": f"nul{time.time_ns()}", "org": apis["org"], "api_id": "", "method": "GE\x00T",
        "path": "/s/200\x00", "deadline_ms": int(time.time() * 1000) + 20_000})
    async with aiohttp.ClientSession() as s:
        async with s.post(f"{ingress.url}/{apis['org']}/nul-log") as r:
            assert r.status == 502
            script_cid = r.headers["X-Correlation-Id"]
        normal_cid, status, _, _ = await _send(s, ingress.url, apis["org"], ("status", 200))
    assert status == 200
    ids = [producer_cid, script_cid, normal_cid]
    rows: dict[str, asyncpg.Record] = {}
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and len(rows) < 3:
        rows = {r["correlation_id"]: r for r in await log_db.fetch("SELECT * FROM request_logs WHERE correlation_id = ANY($1)", ids)}
        await asyncio.sleep(0.2)
    assert set(rows) == set(ids), f"unlogged: {set(ids) - set(rows)}"
    assert rows[normal_cid]["path"] == "/s/200"
    assert rows[producer_cid]["path"] == "/s/200\ufffd" and rows[producer_cid]["method"] == "GE\ufffdT"
    details = rows[script_cid]["details"]
    lines = json.loads(details) if isinstance(details, str) else details or []
    assert any("a NUL\ufffd in a log line" in line for line in lines), details


def apis_url(apis: dict[str, Any]) -> str:
    return apis["status_url"] + "/status/200"
