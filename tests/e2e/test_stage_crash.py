"""Calls survive a crashed stage: under `junction up`, processors and then egress are SIGKILLed while
2,000 calls run at concurrency 50, and `junction up` restarts them.

Every call must end answered: a 200, or a 504 at its deadline; nothing else, nothing lost. The test
reports the counts, how often the upstream ran each call, and how long each stage took to serve again
(measured, not asserted: the target is in docs/performance.md).
"""
from __future__ import annotations

import asyncio
import collections
import contextlib
import os
import shutil
import signal
import time
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web

from core.settings import Settings
from junction.sdk import JunctionClient
from tests.e2e.up_support import ADMIN_EMAIL, ADMIN_PASSWORD, UpEnv, service_pid, up_env
from tests.support import descendants, serving, wait_http_ok, wait_until

CALLS = 2000
CONCURRENCY = 50
TIMEOUT_MS = 10_000
KILLS = ((400, "processors"), (1200, "egress"))  # (calls answered before the kill, stage)


@pytest.mark.timeout(300)
async def test_calls_survive_processors_and_then_egress_killed(settings: Settings) -> None:
    executed: collections.Counter[str] = collections.Counter()

    async def count(request: web.Request) -> web.Response:
        executed[request.match_info["tag"]] += 1
        return web.json_response({"tag": request.match_info["tag"]})

    upstream_app = web.Application()
    upstream_app.router.add_post("/count/{tag}", count)
    up = up_env(settings)
    log = Path(up.data_dir) / "up.log"
    async with serving(upstream_app) as upstream:
        proc = up.start(log=log)
        try:
            await wait_http_ok(f"{up.ingress}/readyz", timeout_s=90, proc=proc)
            await wait_http_ok(f"{up.control}/readyz", timeout_s=30, proc=proc)
            async with JunctionClient(up.control) as c:
                await c.login(ADMIN_EMAIL, ADMIN_PASSWORD)
                await c.create_org("crash", "Crash")
                conn = await c.create_connector("crash", "counter", {"protocol": "rest", "url": f"{upstream}/count/{{tag}}",
                                                                     "method": "POST"})
                await c.create_api("crash", "count", ["POST"], "/count/{tag}", conn["id"], timeout_ms=TIMEOUT_MS)
            await _wait_served(f"{up.ingress}/crash/count/warm-up")
            statuses, downtime, restarted = await _load_with_kills(up, proc.pid)
        finally:
            proc.send_signal(signal.SIGINT)
            await asyncio.to_thread(proc.wait, 60)
    output = log.read_text(errors="replace")
    shutil.rmtree(up.data_dir, ignore_errors=True)

    by_status = collections.Counter(statuses.values())
    answered = [tag for tag, status in statuses.items() if status == 200]
    twice = sorted(tag for tag, n in executed.items() if n > 1)
    report = {"calls": CALLS, "by_status": dict(by_status), "executed_twice": len(twice),
              "never_executed_but_200": sum(1 for t in answered if executed[t] == 0),
              "ready_again_s": {stage: round(s, 2) for stage, s in restarted.items()},
              "serving_again_s": {stage: round(s, 2) for stage, s in downtime.items()}}
    print(f"\nstage crash ({settings.broker.name}): {report}")
    # Both stages were restarted by `junction up`.
    assert output.count("exited with -9; restarting") == 2, output[-3000:]
    # Every call ended answered: a 200 or a 504, never lost, never another error.
    assert len(statuses) == CALLS
    assert set(by_status) <= {200, 504}, report
    # A 200 is a call the upstream really ran; a 504 can only be a call in flight at a kill.
    assert report["never_executed_but_200"] == 0
    assert by_status[504] <= CONCURRENCY * len(KILLS), report
    # Only a call inside egress at its kill (upstream done, reply not yet produced) may run twice.
    assert len(twice) <= CONCURRENCY, report


async def _load_with_kills(up: UpEnv, root: int) -> tuple[dict[str, int], dict[str, float], dict[str, float]]:
    ingress = up.ingress
    statuses: dict[str, int] = {}
    odd: dict[str, bytes] = {}  # bodies of answers other than 200 and 504, for the failure message
    done_at: list[float] = []  # monotonic time of each answered call, to measure the gap a kill makes
    kills: dict[str, float] = {}
    restarted: dict[str, float] = {}  # seconds from the kill until the new process answered /readyz
    queue: asyncio.Queue[str] = asyncio.Queue()
    for i in range(CALLS):
        queue.put_nowait(f"c{i}")
    timeout = aiohttp.ClientTimeout(total=TIMEOUT_MS / 1000 + 30)

    async with aiohttp.ClientSession(timeout=timeout, connector=aiohttp.TCPConnector(limit=CONCURRENCY)) as session:
        async def worker() -> None:
            while not queue.empty():
                tag = queue.get_nowait()
                async with session.post(f"{ingress}/crash/count/{tag}", data=b"x") as r:
                    body = await r.read()
                    statuses[tag] = r.status
                    if r.status not in (200, 504):
                        odd[tag] = body[:300]
                done_at.append(time.monotonic())

        async def killer() -> None:
            for after, stage in KILLS:
                await wait_until(lambda: len(statuses) >= after, timeout_s=120)
                pid = service_pid(root, stage, descendants(root))
                kills[stage] = time.monotonic()
                os.kill(pid, signal.SIGKILL)
                await _wait_ready_again(session, f"http://127.0.0.1:{up.ports[stage.upper()]}/readyz", root, stage, pid)
                restarted[stage] = time.monotonic() - kills[stage]

        await asyncio.gather(killer(), *(worker() for _ in range(CONCURRENCY)))
    if odd:
        print("unexpected answers:", list(odd.items())[:5])
    # Serving again: the longest silence (no call answered) that began after the kill.
    downtime = {stage: _longest_gap([at, *(t for t in done_at if at < t < at + 60)]) for stage, at in kills.items()}
    return statuses, downtime, restarted


async def _wait_ready_again(session: aiohttp.ClientSession, url: str, root: int, stage: str, killed: int) -> None:
    while True:
        with contextlib.suppress(aiohttp.ClientError, LookupError):
            if service_pid(root, stage, descendants(root)) != killed:
                async with session.get(url) as r:
                    if r.status == 200:
                        return
        await asyncio.sleep(0.05)


def _longest_gap(times: list[float]) -> float:
    return max((b - a for a, b in zip(times, times[1:])), default=float("inf"))


async def _wait_served(url: str) -> None:
    """The API is served once its configuration reached ingress and processors."""
    async with aiohttp.ClientSession() as session:
        async def ok() -> bool:
            async with session.post(url, data=b"x") as r:
                return r.status == 200

        deadline = time.monotonic() + 30
        while not await ok():
            assert time.monotonic() < deadline, f"{url} not served within 30 s"
            await asyncio.sleep(0.1)
