"""Calls ingress refuses before they enter the pipeline are in the request log (ingress/refusal_log.py):
each refused answer names its row in ``X-Correlation-Id``, the row has the status and code the caller
got and the stage ``ingress``, and no credential; a flood of refusals is told at a bounded rate; paths of
organisations ingress does not know are never told."""
from __future__ import annotations

import asyncio
import time
from typing import Any

import aiohttp
import asyncpg
import pytest_asyncio
from hypothesis import HealthCheck, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from control.observe import ObserveService
from core.metrics import INGRESS_REFUSALS_UNLOGGED
from core.settings import Settings
from tests.callerauth_support import _clear as clear_blocks, secure_api
from tests.support import IngressInstance, Stage, wait_until

SECRET = "k3y-never-logged"
PROPS = hsettings(max_examples=5, deadline=None, database=None,
                  suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def apis(stage: Stage, ingress: IngressInstance, upstream: str, observe: ObserveService) -> dict[str, Any]:
    open_api = await stage.api(upstream + "/echo", path="/echo", methods=["POST"])
    secured = await secure_api(stage, upstream, {"mode": "api_key", "in": "header", "name": "X-API-Key"}, ingress,
                               staged=await stage.api(upstream + "/echo", org=open_api["org"], path="/secure"))
    limited = await secure_api(stage, upstream, {"mode": "none"}, ingress,
                               staged=await stage.api(upstream + "/echo", org=open_api["org"], path="/limited"),
                               rate_limit={"requests": 1, "per_seconds": 3600, "by": "api"})
    await wait_until(lambda: {open_api["api"]["id"], secured["api"]["id"], limited["api"]["id"]} <= set(ingress.snapshot.apis))
    return {"org": open_api["org"], "org_id": open_api["org_id"], "echo": open_api["api"]["id"],
            "secure": secured["api"]["id"], "limited": limited["api"]["id"]}


# What a caller may do wrong, and what the edge answers: (method, path, headers, status, code, API key).
REFUSALS = {
    "no_route": ("GET", "/nowhere", {}, 404, "route_not_found", None),
    "wrong_method": ("DELETE", "/echo", {}, 405, "method_not_allowed", None),  # several APIs may share a path
    "no_key": ("POST", "/secure", {}, 401, "credential_missing", "secure"),
    "bad_key": ("POST", "/secure", {"X-API-Key": SECRET}, 401, "invalid_credential", "secure"),
}


async def _rows(log_db: asyncpg.Pool, ids: list[str]) -> dict[str, asyncpg.Record]:
    deadline = time.monotonic() + 30
    rows: dict[str, asyncpg.Record] = {}
    while time.monotonic() < deadline:
        rows = {r["correlation_id"]: r for r in await log_db.fetch(
            "SELECT * FROM request_logs WHERE correlation_id = ANY($1) AND done", ids)}
        if len(rows) == len(ids):
            break
        await asyncio.sleep(0.2)
    return rows


async def _refuse(session: aiohttp.ClientSession, url: str, kind: str) -> tuple[str | None, int, dict[str, Any]]:
    method, path, headers, _, _, _ = REFUSALS[kind]
    async with session.request(method, f"{url}{path}?token={SECRET}", data=SECRET.encode(), headers=headers) as r:
        return r.headers.get("X-Correlation-Id"), r.status, await r.json()


@PROPS
@given(batch=st.lists(st.sampled_from(sorted(REFUSALS)), min_size=1, max_size=6))
async def test_property_every_refusal_is_logged_once_as_its_caller_saw_it(
        settings: Settings, log_db: asyncpg.Pool, ingress: IngressInstance, apis: dict[str, Any], batch: list[str]) -> None:
    await clear_blocks(settings)  # failed credentials from this address would block it after a few examples
    async with aiohttp.ClientSession() as s:
        answers = await asyncio.gather(*(_refuse(s, f"{ingress.url}/{apis['org']}", kind) for kind in batch))
    for kind, (cid, status, body) in zip(batch, answers):
        assert (status, body["code"]) == REFUSALS[kind][3:5], (kind, body)
        assert cid is not None, f"{kind}: a refused answer names its request-log row"
    ids = [cid for cid, _, _ in answers if cid is not None]
    assert len(set(ids)) == len(ids)
    rows = await _rows(log_db, ids)
    assert set(rows) == set(ids), f"not logged: {set(ids) - set(rows)}"
    for kind, (cid, status, body) in zip(batch, answers):
        method, path, _, _, code, api = REFUSALS[kind]
        row = rows[cid]
        assert (row["status"], row["error_code"], row["stage"]) == (status, code, "ingress"), dict(row)
        assert str(row["org_id"]) == apis["org_id"] and (row["api_id"] or None) == (apis[api] if api else None)
        assert (row["method"], row["path"]) == (method, path)
        assert row["latency_ms"] is not None and row["latency_ms"] >= 0
        assert SECRET not in repr(dict(row)), "a credential, query or body reached the request log"


async def test_a_rate_limited_call_is_logged_and_the_call_it_let_through_too(
        log_db: asyncpg.Pool, ingress: IngressInstance, apis: dict[str, Any]) -> None:
    async with aiohttp.ClientSession() as s:
        async with s.post(f"{ingress.url}/{apis['org']}/limited", data=b"first") as r:
            assert r.status == 200
            first = r.headers["X-Correlation-Id"]
        async with s.post(f"{ingress.url}/{apis['org']}/limited", data=b"second") as r:
            assert r.status == 429 and (await r.json())["code"] == "rate_limited"
            refused = r.headers["X-Correlation-Id"]
    rows = await _rows(log_db, [first, refused])
    assert rows[first]["status"] == 200 and rows[first]["stage"] == "egress"
    assert (rows[refused]["status"], rows[refused]["error_code"], rows[refused]["stage"]) == (429, "rate_limited", "ingress")
    assert rows[refused]["api_id"] == apis["limited"] and rows[refused]["bytes_in"] == len(b"second")


async def test_unknown_organisations_are_never_told(ingress: IngressInstance) -> None:
    async with aiohttp.ClientSession() as s, s.get(f"{ingress.url}/no-such-org-{time.time_ns()}/x") as r:
        assert r.status == 404
        assert "X-Correlation-Id" not in r.headers


async def test_a_callers_request_id_cannot_take_over_another_calls_row(
        log_db: asyncpg.Pool, ingress: IngressInstance, apis: dict[str, Any]) -> None:
    """The refusal's row id is always a new one: a caller's X-Request-Id naming another call's correlation id
    must not overwrite that call's row. Control characters and an over-long path are stored safely."""
    async with aiohttp.ClientSession() as s:
        async with s.post(f"{ingress.url}/{apis['org']}/echo", data=b"victim") as r:
            assert r.status == 200
            victim = r.headers["X-Correlation-Id"]
        async with s.get(f"{ingress.url}/{apis['org']}/nowhere", headers={"X-Request-Id": victim}) as r:
            assert r.status == 404
            refused = r.headers["X-Correlation-Id"]
        async with s.get(f"{ingress.url}/{apis['org']}/{'a' * 5000}") as r:
            assert r.status == 404
            long_path = r.headers["X-Correlation-Id"]
    assert refused != victim
    rows = await _rows(log_db, [victim, refused, long_path])
    assert rows[victim]["status"] == 200 and rows[victim]["stage"] == "egress"
    assert rows[refused]["status"] == 404
    assert rows[long_path]["path"] == "/" + "a" * 2047


async def test_a_flood_of_refusals_is_told_at_the_configured_rate_and_counted(
        settings: Settings, log_db: asyncpg.Pool, apis: dict[str, Any]) -> None:
    per_s = 3
    flood = IngressInstance(settings.with_overrides(ingress_refusal_log_per_s=per_s))
    await flood.start()
    try:
        await wait_until(lambda: apis["org"] in flood.snapshot.orgs)
        unlogged_before = INGRESS_REFUSALS_UNLOGGED.labels("rate")._value.get()
        started = time.monotonic()
        async with aiohttp.ClientSession() as s:
            answers = await asyncio.gather(*(_refuse(s, f"{flood.url}/{apis['org']}", "no_route") for _ in range(30)))
        elapsed = time.monotonic() - started
    finally:
        await flood.stop()
    assert all(status == 404 for _, status, _ in answers)
    told = [cid for cid, _, _ in answers if cid is not None]
    # A second's worth at once, then per_s a second: never more, whatever the machine's speed.
    assert per_s <= len(told) <= per_s + int(elapsed * per_s) + 1, (len(told), elapsed)
    assert INGRESS_REFUSALS_UNLOGGED.labels("rate")._value.get() - unlogged_before == 30 - len(told)
    rows = await _rows(log_db, told)
    assert set(rows) == set(told)
