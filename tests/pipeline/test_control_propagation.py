"""Configuration made through the management API is served by the pipeline (issue: control plane, propagation)."""
from __future__ import annotations

import asyncio
import time
import uuid
from typing import Any

import aiohttp
from hypothesis import HealthCheck, given, settings as hsettings, strategies as st

from core.settings import Settings
from tests.support import IngressInstance, wait_until

PROPAGATION_S = 2.0  # the promise: served (or gone) within 2 s, without restart


async def _status_within(url: str, want: int, method: str = "GET", limit_s: float = PROPAGATION_S) -> tuple[int, dict[str, Any]]:
    started = time.monotonic()
    async with aiohttp.ClientSession() as s:
        while True:
            async with s.request(method, url, data=b"p") as r:
                body = await r.json(content_type=None)
                if r.status == want:
                    return r.status, body
            assert time.monotonic() - started < limit_s, f"{url}: still {r.status} {body} after {limit_s}s, wanted {want}"
            await asyncio.sleep(0.05)


async def _connector(control: Any, org: str, url: str, **extra: Any) -> dict[str, Any]:
    return await control.new_connector(org, target={"protocol": "rest", "url": url}, **extra)


async def test_created_changed_and_deleted_apis_propagate_within_2_seconds(control: Any, ingress: IngressInstance, upstream: str) -> None:
    org = (await control.new_org("prop"))["slug"]
    conn = await _connector(control, org, upstream + "/echo")
    api = await control.new_api(org, conn["id"], path="/orders/{id}", methods=["GET", "POST"])
    _, body = await _status_within(f"{ingress.url}/{org}/orders/7", 200)
    assert body["method"] == "GET" and body["path"] == "/echo"

    # A change (new version) is served without restart.
    r = await control.call("PATCH", f"/api/v1/orgs/{org}/apis/{api['id']}", control.admin_token, {"path": "/v2/orders/{id}"})
    assert r.status == 200 and r.body["version"] == 2
    await _status_within(f"{ingress.url}/{org}/v2/orders/7", 200)
    await _status_within(f"{ingress.url}/{org}/orders/7", 404)

    # A deleted API answers 404.
    r = await control.call("DELETE", f"/api/v1/orgs/{org}/apis/{api['id']}", control.admin_token)
    assert r.status == 204
    _, body = await _status_within(f"{ingress.url}/{org}/v2/orders/7", 404)
    assert body["code"] == "route_not_found"


async def test_a_connector_rollback_restores_the_old_behaviour(control: Any, ingress: IngressInstance, upstream: str) -> None:
    org = (await control.new_org("roll"))["slug"]
    script_v1 = "def transform_request(request, ctx):\n    request.headers['X-Script'] = 'one'\n"
    script_v2 = "def transform_request(request, ctx):\n    request.headers['X-Script'] = 'two'\n"
    conn = await _connector(control, org, upstream + "/echo", script=script_v1)
    await control.new_api(org, conn["id"], path="/r", methods=["GET"])
    _, body = await _status_within(f"{ingress.url}/{org}/r", 200)
    assert body["headers"]["X-Script"] == "one"
    r = await control.call("PATCH", f"/api/v1/orgs/{org}/connectors/{conn['id']}", control.admin_token, {"script": script_v2})
    assert r.status == 200 and r.body["version"] == 2
    await wait_until(lambda: ingress.snapshot.version_of("connector", conn["id"]) == 2)
    async with aiohttp.ClientSession() as s:
        for _ in range(40):
            async with s.get(f"{ingress.url}/{org}/r") as resp:
                if (await resp.json())["headers"]["X-Script"] == "two":
                    break
            await asyncio.sleep(0.05)
        else:
            raise AssertionError("version 2 never served")
        r = await control.call("POST", f"/api/v1/orgs/{org}/connectors/{conn['id']}/rollback", control.admin_token, {"version": 1})
        assert r.status in (200, 201) and r.body["version"] == 3
        started = time.monotonic()
        while True:
            async with s.get(f"{ingress.url}/{org}/r") as resp:
                if (await resp.json())["headers"]["X-Script"] == "one":
                    break
            assert time.monotonic() - started < PROPAGATION_S
            await asyncio.sleep(0.05)


async def test_two_ingress_instances_converge_and_a_restarted_one_rebuilds(
    settings: Settings, control: Any, ingress: IngressInstance, upstream: str
) -> None:
    org = (await control.new_org("conv"))["slug"]
    conn = await _connector(control, org, upstream + "/echo")
    api = await control.new_api(org, conn["id"], path="/c", methods=["GET"])
    second = IngressInstance(settings)
    await second.start()
    try:
        for n in range(2, 5):
            r = await control.call("PATCH", f"/api/v1/orgs/{org}/apis/{api['id']}", control.admin_token, {"timeout_ms": 1000 + n})
            assert r.body["version"] == n
        await wait_until(lambda: ingress.snapshot.version_of("api", api["id"]) == 4 and second.snapshot.version_of("api", api["id"]) == 4,
                         timeout_s=PROPAGATION_S)
        assert ingress.snapshot.api(api["id"]) == second.snapshot.api(api["id"])
        assert second.snapshot.api(api["id"])["timeout_ms"] == 1004
    finally:
        await second.stop()
    # A restarted instance reads the config topic from the start and serves at once.
    restarted = IngressInstance(settings)
    await restarted.start()
    try:
        assert restarted.snapshot.version_of("api", api["id"]) == 4
        async with aiohttp.ClientSession() as s:
            async with s.get(f"{restarted.url}/{org}/c") as r:
                assert r.status == 200
    finally:
        await restarted.stop()


segment = st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789", min_size=1, max_size=8)
methods = st.lists(st.sampled_from(["GET", "POST", "PUT", "PATCH", "DELETE"]), min_size=1, max_size=3, unique=True)


@hsettings(max_examples=8, deadline=None, suppress_health_check=list(HealthCheck))
@given(st.lists(st.tuples(st.booleans(), segment), min_size=1, max_size=4), methods, st.integers(min_value=500, max_value=30_000))
async def test_property_api_driven_configuration(
    control: Any, ingress: IngressInstance, upstream: str, parts: list[tuple[bool, str]], api_methods: list[str], timeout_ms: int
) -> None:
    """Any valid API created through the management API is served as configured:
    its methods answer through the connector, other methods get 405, and the path parameters reach the upstream."""
    org = (await control.new_org("pbt"))["slug"]
    template, concrete = [], []
    for i, (is_param, value) in enumerate(parts):
        template.append(f"{{p{i}}}" if is_param else value)
        concrete.append(value)
    conn = await _connector(control, org, upstream + "/echo" + "".join(f"/{{p{i}}}" for i, (p, _) in enumerate(parts) if p))
    api = await control.new_api(org, conn["id"], path="/" + "/".join(template), methods=api_methods, timeout_ms=timeout_ms)
    url = f"{ingress.url}/{org}/" + "/".join(concrete)
    expected_path = "/echo" + "".join(f"/{v}" for p, v in parts if p)
    for method in api_methods:
        _, body = await _status_within(url, 200, method=method)
        assert body["method"] == method and body["path"] == expected_path
    other = next(m for m in ["GET", "POST", "PUT", "PATCH", "DELETE"] if m not in api_methods)
    async with aiohttp.ClientSession() as s:
        async with s.request(other, url) as r:
            assert r.status == 405
            assert set(r.headers["Allow"].split(",")) == set(api_methods)
    assert ingress.snapshot.api(api["id"])["timeout_ms"] == timeout_ms


async def test_a_broker_that_lost_the_configuration_is_reseeded_from_postgresql(settings: Settings, control: Any, upstream: str) -> None:
    """PostgreSQL is the truth and the topic a copy: the embedded broker forgets everything on restart,
    so a relay that (re)connects re-publishes the current configuration."""
    from control.outbox import OutboxRelay
    from core.db import make_pool
    from core.kafka import ensure_topics

    org = (await control.new_org("seed"))["slug"]
    conn = await _connector(control, org, upstream + "/echo")
    api = await control.new_api(org, conn["id"], path="/s", methods=["GET"])
    r = await control.call("PATCH", f"/api/v1/orgs/{org}/apis/{api['id']}", control.admin_token, {"timeout_ms": 1234})
    assert r.body["version"] == 2
    # A fresh, empty set of topics stands for a broker that lost its data.
    fresh = settings.with_overrides(topic_prefix=f"{settings.topic_prefix}-fresh{uuid.uuid4().hex[:6]}")
    await ensure_topics(fresh)
    pool = await make_pool(fresh, max_size=2)
    relay = OutboxRelay(fresh, pool)
    reader = IngressInstance(fresh)
    try:
        await relay.start()
        await reader.start()
        await wait_until(lambda: reader.snapshot.version_of("api", api["id"]) == 2, timeout_s=10)
        assert reader.snapshot.api(api["id"])["timeout_ms"] == 1234
        assert reader.snapshot.connector(conn["id"]) is not None
        assert org in reader.snapshot.orgs
    finally:
        await reader.stop()
        await relay.stop()
        await pool.close()


async def test_a_relay_is_ready_only_once_it_has_re_published_the_configuration(settings: Settings) -> None:
    """Connected is not enough: until the re-publication on a new connection is done, the broker may hold
    less than PostgreSQL, and control's /readyz said `kafka: ok` meanwhile. The re-publication waits for
    the relays' lock; holding it here holds the relay in that window."""
    from control.outbox import RELAY_LOCK, OutboxRelay
    from core.db import make_pool

    pool = await make_pool(settings, max_size=3)
    relay = OutboxRelay(settings, pool)

    async def readiness() -> str:
        try:
            await relay.ready()
        except RuntimeError as exc:
            return str(exc)
        return "ready"

    try:
        async with pool.acquire() as holder:
            await holder.execute(f"SELECT pg_advisory_lock({RELAY_LOCK})")
            try:
                await relay.start()
                await wait_until(lambda: relay._producer is not None, timeout_s=20)
                assert "re-publishing" in await readiness()
            finally:
                await holder.execute(f"SELECT pg_advisory_unlock({RELAY_LOCK})")
        deadline = time.monotonic() + 20
        while (state := await readiness()) != "ready" and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        assert state == "ready" and relay.resynced
    finally:
        await relay.stop()
        await pool.close()
