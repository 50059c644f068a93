"""Waiting for a change instead of sleeping: ``GET /api/v1/config/applied`` answers whether every running
ingress, processors and egress instance has applied every change made so far, and can wait for it
(control/config_applied.py, core/instances.py); ``junction wait`` and ``JunctionClient.wait_applied``
wrap it."""
from __future__ import annotations

import asyncio
import json
import os
import uuid
from typing import Any

import aiohttp
import pytest

from control.config_applied import MAX_WAITERS, ConfigApplied
from control.handlers.instances import CONFIG_APPLIED
from control.state import STATE
from core.errors import ServiceUnavailable
from core.instances import InstanceReporter, _alive_key, _hash_key
from core.redis import make_redis
from core.settings import Settings
from junction.broker import free_port
from junction.sdk import JunctionClient
from tests.control_support import run_cli
from tests.support import IngressInstance, wait_until


async def _listed(jc: JunctionClient, name: str, timeout_s: float) -> list[dict[str, Any]]:
    """The instances named ``name`` once one is listed (a reporter's first report is a moment after its start)."""
    loop = asyncio.get_running_loop()
    until = loop.time() + timeout_s
    while True:
        found = [i for i in (await jc.list_instances())["items"] if i["instance"] == name]
        if found or loop.time() > until:
            return found
        await asyncio.sleep(0.05)


async def _applied(control: Any, token: str | None, query: str = "") -> Any:
    return await control.call("GET", f"/api/v1/config/applied{query}", token)


async def test_after_waiting_for_a_new_api_its_first_call_is_served(control: Any, ingress: IngressInstance, upstream: str) -> None:
    """Each round creates an API and, with no other pause, waits and calls it once: a wait that answered
    before every stage had the API would show as a 404 (ingress) or a 5xx (processors, egress)."""
    org = (await control.new_org("applied"))["slug"]
    async with JunctionClient(control.base_url, control.admin_token) as jc, aiohttp.ClientSession() as s:
        for n in range(5):
            conn = await control.new_connector(org, target={"protocol": "rest", "url": f"{upstream}/echo/{n}",
                                                            "method": "GET"})
            api = await control.new_api(org, conn["id"], path=f"/fresh{n}/{{id}}", methods=["GET"])
            answer = await jc.wait_applied(timeout_s=10)
            assert answer["applied"] and answer["missing"] == []
            for name in ("ingress", "processors", "egress"):
                assert answer["services"][name]["instances"] >= 1
                assert answer["services"][name]["applied"] == answer["services"][name]["instances"]
            assert ingress.snapshot.version_of("api", api["id"]) == 1
            async with s.get(f"{ingress.url}/{org}/fresh{n}/7") as r:
                assert r.status == 200, await r.text()
                assert (await r.json())["path"] == f"/echo/{n}"


async def test_an_instance_behind_keeps_the_answer_false_until_it_is_gone(
        settings: Settings, control: Any, ingress: IngressInstance) -> None:
    """An instance that reports an old position (as one stuck behind would) holds the answer at false,
    and the wait names it; once it stops, the answer is true again."""
    stuck = InstanceReporter(settings, "egress", lambda: (0, True), lambda t: asyncio.sleep(t), instance="stuck-egress")
    await stuck.start()
    try:
        await control.new_org("behind")  # at least one change, so the topic's end is past 0
        async with JunctionClient(control.base_url, control.admin_token) as jc:
            answer = await jc.config_applied(wait_s=0.5)
            assert answer["applied"] is False and answer["relayed"] is True
            assert answer["services"]["egress"]["instances"] - answer["services"]["egress"]["applied"] == 1
            with pytest.raises(TimeoutError, match="1 of [0-9]+ egress instances behind"):
                await jc.wait_applied(timeout_s=0.5)
            listed = await jc.list_instances()
            mine = [i for i in listed["items"] if i["instance"] == "stuck-egress"]
            assert len(mine) == 1 and mine[0]["applied"] is False and mine[0]["config_offset"] == 0
            assert {i["service"] for i in listed["items"]} >= {"ingress", "processors", "egress"}
    finally:
        await stuck.stop()
    async with JunctionClient(control.base_url, control.admin_token) as jc:
        assert (await jc.config_applied(wait_s=5))["applied"] is True
        assert not [i for i in (await jc.list_instances())["items"] if i["instance"] == "stuck-egress"]


async def test_a_second_ingress_is_listed_while_it_runs_and_gone_when_it_stops(
        settings: Settings, control: Any, ingress: IngressInstance) -> None:
    name = f"second-ingress-{uuid.uuid4().hex[:8]}"
    second = IngressInstance(settings, instance_id=name)
    await second.start()
    try:
        async with JunctionClient(control.base_url, control.admin_token) as jc:
            assert (await jc.wait_applied(timeout_s=10))["services"]["ingress"]["instances"] >= 2
        r = await control.call("GET", "/api/v1/instances", control.admin_token)
        assert r.status == 200
        mine = [i for i in r.body["items"] if i["instance"] == name]
        assert len(mine) == 1 and mine[0]["service"] == "ingress" and mine[0]["synced"] is True
        assert mine[0]["applied"] is True and mine[0]["config_offset"] == r.body["config_offset"]
        assert mine[0]["pid"] == os.getpid()
    finally:
        await second.stop()
    r = await control.call("GET", "/api/v1/instances", control.admin_token)
    assert not [i for i in r.body["items"] if i["instance"] == name]  # a clean stop leaves the list at once


async def test_who_may_ask_and_bad_waits(control: Any, ingress: IngressInstance) -> None:
    org = (await control.new_org("who"))["slug"]
    _, org_admin = await control.new_user(org, "org_admin")
    # Any signed-in user may ask whether changes are applied; only global admins see hosts and processes.
    r = await _applied(control, org_admin)
    assert r.status == 200 and set(r.body) == {"applied", "relayed", "config_offset", "services", "missing", "waited_ms"}
    r = await control.call("GET", "/api/v1/instances", org_admin)
    assert r.status == 403 and r.body["code"] == "forbidden"
    for path in ("/api/v1/config/applied", "/api/v1/instances"):
        r = await control.call("GET", path)
        assert r.status == 401 and r.body["code"] == "unauthorized"
    for bad in ("-1", "61", "nan", "abc", "1e400", "9" * 20):
        r = await _applied(control, org_admin, f"?wait={bad}")
        assert r.status == 422, (bad, r.body)
        assert r.body["code"] == "invalid_input" and r.body["fields"][0]["field"] == "wait"


async def test_long_polls_are_bounded_and_the_api_answers_meanwhile(
        settings: Settings, control: Any, ingress: IngressInstance) -> None:
    """An attacker (or a busy pipeline) opening many waits at once: past MAX_WAITERS a question is answered at
    once, and the rest of the API answers while every waiter waits."""
    checker = control.app[STATE].extras[CONFIG_APPLIED]
    stuck = InstanceReporter(settings, "egress", lambda: (0, True), lambda t: asyncio.sleep(t), instance="stuck-again")
    await stuck.start()
    try:
        await control.new_org("polls")
        waits = [asyncio.create_task(_applied(control, control.admin_token, "?wait=3")) for _ in range(MAX_WAITERS)]
        await wait_until(checker._waiters.locked, timeout_s=10)
        extra = await _applied(control, control.admin_token, "?wait=3")
        assert extra.status == 200 and extra.body["applied"] is False
        # Answered at once: while every waiter (asked first, for as long) still waits.
        assert not any(w.done() for w in waits), "the question past MAX_WAITERS waited with the others"
        for _ in range(20):  # more requests than the pool has connections, while every waiter waits
            r = await control.call("GET", "/api/v1/orgs?limit=1", control.admin_token)
            assert r.status == 200
        held = await asyncio.gather(*waits)
        assert all(r.status == 200 and r.body["applied"] is False and r.body["waited_ms"] >= 2900 for r in held)
    finally:
        await stuck.stop()


async def test_junction_wait_exits_1_naming_what_is_behind_and_0_once_applied(
        settings: Settings, control: Any, ingress: IngressInstance) -> None:
    url = ("--url", control.base_url)
    stuck = InstanceReporter(settings, "processors", lambda: (0, True), lambda t: asyncio.sleep(t), instance="stuck-cli")
    await stuck.start()
    try:
        await control.new_org("cliwait")
        rc, out, err = await run_cli(control, "wait", "--timeout", "1", *url)
        assert rc == 1 and out is None, (out, err)
        failure = json.loads(err)
        assert failure["code"] == "not_applied" and "processors instances behind" in failure["message"], failure
        rc, out, err = await run_cli(control, "instances", *url)
        assert rc == 0 and [i["applied"] for i in out["items"] if i["instance"] == "stuck-cli"] == [False], err
    finally:
        await stuck.stop()
    rc, out, err = await run_cli(control, "wait", "--timeout", "10", *url)
    assert rc == 0 and out["applied"] is True, err


async def test_a_killed_instance_drops_out_when_its_heartbeat_key_expires(
        settings: Settings, control: Any, ingress: IngressInstance) -> None:
    """A killed instance never removes its report: the key beside it expires (LIVE_S after its last
    heartbeat), and then the instance is neither listed nor waited for, and its report is pruned."""
    stuck = InstanceReporter(settings, "ingress", lambda: (0, True), lambda t: asyncio.sleep(t), instance="killed")
    await stuck.start()
    redis = make_redis(settings)
    try:
        await control.new_org("killed")
        async with JunctionClient(control.base_url, control.admin_token) as jc:
            assert await _listed(jc, "killed", timeout_s=5)
            # The new organisation published first: until then an answer says only "not relayed yet", and the
            # Kafka run met that (the relay's acknowledgement took longer than the steps below).
            async with asyncio.timeout(10):
                while not (await jc.config_applied())["relayed"]:
                    await asyncio.sleep(0.05)
            assert stuck._loop is not None
            await stuck._loop.stop()  # as a SIGKILL leaves it: no more heartbeats, nothing removed
            # 2.5 s after its last report (its key's TTL shortened as time would): still listed and waited
            # for, but shown as silent, and the wait's failure says so.
            await redis.pexpire(_alive_key(settings, stuck._field), 2500)
            mine = [i for i in (await jc.list_instances())["items"] if i["instance"] == "killed"]
            assert len(mine) == 1 and 2500 <= mine[0]["last_seen_ms_ago"] <= 5000
            answer = await jc.config_applied()
            assert answer["applied"] is False and answer["services"]["ingress"]["silent"] == 1
            with pytest.raises(TimeoutError, match="1 of them silent for over 2 s"):
                await jc.wait_applied(timeout_s=0.3)
            await redis.delete(_alive_key(settings, stuck._field))  # as if it had expired
            assert (await jc.config_applied(wait_s=5))["applied"] is True
            assert not [i for i in (await jc.list_instances())["items"] if i["instance"] == "killed"]
        assert not await redis.hexists(_hash_key(settings), stuck._field)
    finally:
        await stuck.stop()
        await redis.aclose()


async def test_not_applied_until_the_relay_has_republished_after_a_start(
        settings: Settings, control: Any, ingress: IngressInstance) -> None:
    """After a start or a lost broker, the topic may hold none of the configuration until the relay has
    re-published it: until then the answer is not applied, and says the change is not relayed."""
    st = control.app[STATE]
    resynced = False
    checker = ConfigApplied(settings, st.db, st.redis, lambda: resynced)
    await checker.start()
    try:
        answer = await checker.status(0.3)
        assert answer["applied"] is False and answer["relayed"] is False and answer["config_offset"] is None
        assert answer["waited_ms"] >= 300
        resynced = True
        answer = await checker.status(5)
        assert answer["applied"] is True and answer["relayed"] is True
    finally:
        await checker.stop()


async def test_a_redis_that_cannot_be_reached_is_a_503_naming_it(settings: Settings, control: Any) -> None:
    st = control.app[STATE]
    dead = settings.with_overrides(redis_url=f"redis://127.0.0.1:{free_port()}/0")  # nothing listens there
    redis = make_redis(dead)
    checker = ConfigApplied(settings, st.db, redis, lambda: True)
    await checker.start()
    try:
        with pytest.raises(ServiceUnavailable, match="Redis"):
            await checker.status(0)
        with pytest.raises(ServiceUnavailable, match="Redis"):
            await checker.instances()
    finally:
        await checker.stop()
        await redis.aclose()
