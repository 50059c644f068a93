"""The walking pipeline on real components: broker, processors (faust, a
child process), egress and ingress (in this process, so tests can restart
them), and upstream servers on loopback."""
from __future__ import annotations

import asyncio
import time
import warnings
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import pytest_asyncio
from aiohttp import web

from control.migrate import apply_migrations
from control.observe import ObserveService
from core.db import make_pool
from core.settings import Settings
from core.ssrf import TargetPolicy
from egress.assemble import build_parts
from egress.worker import EgressWorker
from junction.demo import echo_app
from junction.demo_soap import soap_app
from tests.support import IngressInstance, ProcessorsProcess, Stage, serving, wait_until


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def upstream() -> AsyncIterator[str]:
    """The echo upstream; also serves /slow?ms=N."""

    async def slow(request: web.Request) -> web.Response:
        await asyncio.sleep(int(request.query.get("ms", "3000")) / 1000)
        return web.json_response({"slow": True, "tag": request.query.get("tag")})

    async with serving(echo_app([web.get("/slow", slow)])) as url:
        yield url


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def processors(settings: Settings) -> AsyncIterator[ProcessorsProcess]:
    proc = ProcessorsProcess(settings)
    await proc.start()
    yield proc
    proc.stop()


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def observe(settings: Settings) -> AsyncIterator[ObserveService]:
    """Control's metrics stage (control/observe/), for the tests that read request logs."""
    pool = await make_pool(settings, max_size=1)
    try:
        await apply_migrations(pool)  # the tables it writes, as control would have made them
    finally:
        await pool.close()
    service = ObserveService(settings)
    await service.start()
    yield service
    await service.stop()


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def egress(settings: Settings) -> AsyncIterator[dict[str, Any]]:
    holder: dict[str, Any] = {"worker": EgressWorker(settings)}
    await holder["worker"].start()
    await holder["worker"].wait_assigned()  # calls made before the group settles would wait out a rebalance
    yield holder
    await holder["worker"].stop()


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def stage(settings: Settings) -> AsyncIterator[Stage]:
    s = Stage(settings)
    await s.start()
    yield s
    await s.stop()


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def ingress(settings: Settings, processors: ProcessorsProcess, egress: dict[str, Any]) -> AsyncIterator[IngressInstance]:
    inst = IngressInstance(settings)
    await inst.start()
    yield inst
    await inst.stop()


@pytest_asyncio.fixture(loop_scope="session")
async def echo_api(stage: Stage, ingress: IngressInstance, upstream: str) -> dict[str, Any]:
    """A fresh organisation with an echo API at /echo, visible to ingress."""
    staged = await stage.api(upstream + "/echo")
    await wait_until(lambda: staged["api"]["id"] in ingress.snapshot.apis)
    return staged


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def soap_upstream() -> AsyncIterator[str]:
    async with serving(soap_app()) as url:
        yield url + "/orders?wsdl"


@pytest_asyncio.fixture(loop_scope="session")
async def guarded_egress(settings: Settings, egress: dict[str, Any]) -> AsyncIterator[None]:
    """Egress with the SSRF guard on, trusting only 127.0.0.1 (where the test servers are); the usual
    egress again afterwards, whatever failed meanwhile (the tests after this one share it)."""
    policy = TargetPolicy(allow_private=False, allow_networks=["127.0.0.1/32"])
    try:
        await _replace_egress(egress, EgressWorker(settings, build_parts(settings, targets=policy)))
        yield
    finally:
        await _replace_egress(egress, EgressWorker(settings))


async def _replace_egress(egress: dict[str, Any], worker: EgressWorker) -> None:
    """The session's egress worker stopped, and ``worker`` serving in its place (same consumer group).

    Bounded well inside pytest's timeout: that one interrupts the event loop and abandons whatever task
    was running, so a slow swap would leave a half-started worker serving the tests after this one."""
    old, egress["worker"] = egress["worker"], worker
    started = time.monotonic()
    await asyncio.wait_for(old.stop(), 30)
    stopped = time.monotonic()
    await worker.start()
    await worker.wait_assigned(timeout_s=45)
    took = f"egress replaced: stopped in {stopped - started:.1f} s, serving {time.monotonic() - stopped:.1f} s later"
    print(took)
    if time.monotonic() - started > 10:  # in the run's warnings summary even when the test passes: a swap costs 2-3 s
        warnings.warn(f"slow {took}", stacklevel=1)


@dataclass
class Victim:
    url: str
    reached: list[str]  # path and query of every request that reached it


@pytest_asyncio.fixture(loop_scope="session")
async def untrusted_victim() -> AsyncIterator[Victim]:
    """A server on 127.0.0.2: loopback, but not the address ``guarded_egress`` trusts. A call the guard
    refuses must leave ``reached`` empty."""
    reached: list[str] = []

    async def victim(request: web.Request) -> web.Response:
        reached.append(request.path_qs)
        return web.Response(text="secret")

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", victim)
    async with serving(app, "127.0.0.2") as url:
        yield Victim(url, reached)
