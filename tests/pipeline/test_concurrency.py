"""Correlation under load, across instances and restarts."""
from __future__ import annotations

import asyncio
import uuid
from typing import Any

import aiohttp

from core.settings import Settings
from egress.worker import EgressWorker
from tests.support import IngressInstance, Stage, wait_until


async def test_500_concurrent_calls_each_get_their_own_payload(ingress: IngressInstance, stage: Stage, upstream: str) -> None:
    # What is checked is correlation, not speed: a deadline a loaded 2-core machine can meet.
    staged = await stage.api(upstream + "/echo", timeout_ms=60_000)
    await wait_until(lambda: staged["api"]["id"] in ingress.snapshot.apis)
    org = staged["org"]
    conn = aiohttp.TCPConnector(limit=500)
    async with aiohttp.ClientSession(connector=conn) as s:

        async def one(i: int) -> tuple[str, int, dict[str, Any]]:
            payload = f"payload-{i}-{uuid.uuid4().hex}"
            async with s.post(f"{ingress.url}/{org}/echo?i={i}", data=payload, timeout=aiohttp.ClientTimeout(total=90)) as r:
                return payload, r.status, await r.json()

        results = await asyncio.gather(*(one(i) for i in range(500)))
    assert all(status == 200 for _, status, _ in results), {status for _, status, _ in results}
    for i, (payload, _, got) in enumerate(results):
        assert got["body"] == payload
        assert got["query"] == {"i": str(i)}


async def test_slow_upstream_gives_504_and_its_late_reply_reaches_nobody(
    ingress: IngressInstance, stage: Stage, upstream: str
) -> None:
    slow = await stage.api(upstream + "/slow", timeout_ms=400, path="/slow")
    fast = await stage.api(upstream + "/echo", path="/echo")
    await wait_until(lambda: fast["api"]["id"] in ingress.snapshot.apis and slow["api"]["id"] in ingress.snapshot.apis)
    async with aiohttp.ClientSession() as s:
        async with s.get(f"{ingress.url}/{slow['org']}/slow?ms=900&tag=late") as r:
            assert r.status == 504
            body = await r.json()
            assert body["code"] == "deadline_exceeded"
        # While the late reply is on its way, other callers keep getting their own answers.
        for i in range(20):
            async with s.post(f"{ingress.url}/{fast['org']}/echo", data=f"mine-{i}") as r:
                got = await r.json()
                assert r.status == 200
                assert got["body"] == f"mine-{i}"
                assert "slow" not in got
            await asyncio.sleep(0.05)


async def test_two_ingress_instances_each_get_only_their_own_replies(
    settings: Settings, ingress: IngressInstance, echo_api: dict[str, Any]
) -> None:
    second = IngressInstance(settings)
    await second.start()
    try:
        await wait_until(lambda: echo_api["api"]["id"] in second.snapshot.apis)
        assert second.app is not None and ingress.app is not None
        from ingress.app import READER

        assert second.app[READER].tp.partition != ingress.app[READER].tp.partition
        org = echo_api["org"]
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=200)) as s:

            async def one(base: str, i: int) -> bool:
                tag = f"{base}-{i}"
                async with s.post(f"{base}/{org}/echo", data=tag) as r:
                    return r.status == 200 and (await r.json())["body"] == tag

            results = await asyncio.gather(*(one(inst.url, i) for i in range(100) for inst in (ingress, second)))
        assert all(results)
    finally:
        await second.stop()


async def test_unreachable_upstream_is_502(ingress: IngressInstance, stage: Stage) -> None:
    from junction.broker import free_port

    dead = await stage.api(f"http://127.0.0.1:{free_port()}/nothing", target_method="POST")
    await wait_until(lambda: dead["api"]["id"] in ingress.snapshot.apis)
    async with aiohttp.ClientSession() as s:
        async with s.post(f"{ingress.url}/{dead['org']}/echo", data="x") as r:
            assert r.status == 502
            body = await r.json()
    assert body["code"] == "upstream_unreachable"
    assert body["correlation_id"]


async def test_restarting_egress_mid_run_loses_no_accepted_request(
    settings: Settings, ingress: IngressInstance, egress: dict[str, Any], stage: Stage, upstream: str
) -> None:
    # A deadline longer than a group rebalance, so redelivered calls can still be answered.
    staged = await stage.api(upstream + "/echo", timeout_ms=20_000)
    await wait_until(lambda: staged["api"]["id"] in ingress.snapshot.apis)
    org = staged["org"]
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=300)) as s:

        async def one(i: int) -> tuple[int, str | None, str]:
            tag = f"r-{i}"
            async with s.post(f"{ingress.url}/{org}/echo", data=tag, timeout=aiohttp.ClientTimeout(total=40)) as r:
                body = await r.json()
                return r.status, body.get("body") if r.status == 200 else body.get("code"), tag

        calls = [asyncio.create_task(one(i)) for i in range(300)]
        await asyncio.sleep(0.2)
        # A crash: no graceful finish, no commit. Then a fresh worker.
        await egress["worker"].kill()
        egress["worker"] = EgressWorker(settings)
        await egress["worker"].start()
        results = await asyncio.wait_for(asyncio.gather(*calls), timeout=60)
    statuses = [status for status, _, _ in results]
    assert set(statuses) <= {200, 504}, [got for status, got, _ in results if status != 200]
    for status, got, tag in results:
        if status == 200:
            assert got == tag
    # Those in flight at the crash are redelivered and answered well within the deadline.
    assert statuses.count(200) == len(statuses), statuses.count(504)
    # The crashed member never left the group: once its session expires the group rebalances
    # again. Let that settle, and show calls flow afterwards, before the next test runs.
    await asyncio.sleep(settings.broker.session_timeout_ms / 1000 + 1)
    async with aiohttp.ClientSession() as s:
        for i in range(40):
            async with s.post(f"{ingress.url}/{org}/echo", data=f"after-{i}", timeout=aiohttp.ClientTimeout(total=30)) as r:
                if r.status == 200 and (await r.json())["body"] == f"after-{i}":
                    break
            await asyncio.sleep(0.25)
        else:
            raise AssertionError("egress did not settle after the restart")
