"""Every service of a real `junction up` exports its resources, event-loop lag and consumer lag; `junction
status` reports them; and every metric the Grafana dashboard queries is in their /metrics. One start serves
the module (each costs about 20 s)."""
from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
import pytest_asyncio

from core.settings import Settings
from junction.status import render
from tests.e2e.up_support import ADMIN_EMAIL, ADMIN_PASSWORD, UpEnv, service_pid, up_env
from tests.monitoring_support import (
    dashboard_queries,
    exposed_names,
    load_dashboard,
    metric_names,
)
from tests.support import descendants, wait_http_ok

SERVICES = ("ingress", "processors", "egress", "control")
# The consumers each service runs, by the group label of their lag (group prefix removed).
GROUPS = {
    "ingress": {"ingress-replies", "config"},
    "processors": {"processors", "config"},
    "egress": {"egress", "config"},
    # The observe stage runs in control, with a config snapshot of its own.
    "control": {"dead-letter-index", "replay-answers", "control.observe", "config"},
}


@pytest_asyncio.fixture(scope="module")
async def up(settings: Settings) -> AsyncIterator[UpEnv]:
    env = up_env(settings, JUNCTION_LOOP_LAG_INTERVAL_MS="100")
    proc = env.start("--demo", log=None)
    try:
        await wait_http_ok(f"{env.ingress}/readyz", timeout_s=90, proc=proc)
        async with aiohttp.ClientSession() as s:
            until = asyncio.get_running_loop().time() + 60
            while True:  # the demo API is created just after readiness
                async with s.post(f"{env.ingress}/demo/echo?x=1", data=b"hello") as r:
                    if r.status == 200:
                        break
                assert asyncio.get_running_loop().time() < until, await r.text()
                await asyncio.sleep(0.2)
        yield env
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            await asyncio.to_thread(proc.communicate, timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
            await asyncio.to_thread(proc.communicate)
        shutil.rmtree(env.data_dir, ignore_errors=True)


async def _metrics(up: UpEnv, service: str) -> str:
    async with aiohttp.ClientSession() as s, s.get(f"http://127.0.0.1:{up.ports[f'{service.upper()}_METRICS']}/metrics") as r:
        assert r.status == 200
        return await r.text()


def _samples(text: str, name: str) -> list[tuple[dict[str, str], float]]:
    from prometheus_client.parser import text_string_to_metric_families

    return [(s.labels, s.value) for f in text_string_to_metric_families(text) for s in f.samples if s.name == name]


async def _status(up: UpEnv, *args: str) -> tuple[int, str]:
    proc = await asyncio.create_subprocess_exec(sys.executable, "-m", "junction", "status", *args, env=up.env,
                                                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(proc.communicate(), 30)
    assert proc.returncode is not None
    return proc.returncode, out.decode() + err.decode()


@pytest.mark.timeout(180)
@pytest.mark.parametrize("service", SERVICES)
async def test_every_service_exports_process_loop_lag_and_consumer_lag(up: UpEnv, service: str) -> None:
    prefix = up.env["JUNCTION_GROUP_PREFIX"] + "."
    text = await _metrics(up, service)
    for name in ("process_cpu_seconds_total", "process_resident_memory_bytes", "process_open_fds"):
        assert _samples(text, name) and _samples(text, name)[0][1] > 0, name
    assert _samples(text, "junction_event_loop_lag_seconds_count")[0][1] > 0  # sampled every 100 ms here
    groups: set[str] = set()
    for _ in range(100):  # a partition has a lag once its consumer has fetched it
        lag = _samples(await _metrics(up, service), "junction_consumer_lag")
        groups = {labels["group"].removeprefix(prefix) for labels, _ in lag}
        if GROUPS[service] <= groups:
            break
        await asyncio.sleep(0.2)
    assert GROUPS[service] <= groups, groups
    assert all(value >= 0 and labels["topic"].startswith(up.env["JUNCTION_TOPIC_PREFIX"]) for labels, value in lag)


@pytest.mark.timeout(180)
async def test_health_endpoints_keep_their_meaning(up: UpEnv) -> None:
    ports = {"ingress": "INGRESS", "processors": "PROCESSORS", "egress": "EGRESS", "control": "CONTROL"}
    async with aiohttp.ClientSession() as s:
        for service, port in ports.items():
            for path in ("/healthz", "/readyz"):
                async with s.get(f"http://127.0.0.1:{up.ports[port]}{path}") as r:
                    assert r.status == 200 and (await r.json())["status"] == "ok", (service, path)


@pytest.mark.timeout(180)
async def test_every_metric_the_dashboard_queries_is_exported(up: UpEnv) -> None:
    exposed = set().union(*[exposed_names(await _metrics(up, service)) for service in SERVICES])
    for expr in dashboard_queries(load_dashboard()):
        missing = metric_names(expr) - exposed
        assert not missing, f"{sorted(missing)} in {expr}"
    # The demo call is counted per organisation and API.
    ingress = await _metrics(up, "ingress")
    assert any(labels["org"] == "demo" and labels["api"] != "_none" and value >= 1
               for labels, value in _samples(ingress, "junction_ingress_requests_total"))
    assert any(labels["org"] == "demo" for labels, _ in _samples(await _metrics(up, "egress"), "junction_upstream_latency_seconds_count"))


@pytest.mark.timeout(180)
async def test_junction_status_prints_readiness_lag_and_calls(up: UpEnv) -> None:
    code, out = await _status(up)
    assert code == 0, out
    for service in SERVICES:
        assert any(line.split()[:2] == [service, "yes"] for line in out.splitlines()), out
    assert "ingress-replies" in out and "since it started" in out and "\ndemo " in out

    code, out = await _status(up, "--json")
    report: dict[str, Any] = json.loads(out)
    assert code == 0 and set(report["services"]) == set(SERVICES)
    assert all(s["ready"] and s["consumer_lag"] for s in report["services"].values())
    assert {row["org"]: row["calls"] for row in report["traffic"]["orgs"]}["demo"] >= 1

    # With a global admin's token: the last minute, from the management API (the observe stage flushes every 2 s).
    async with aiohttp.ClientSession() as s, s.post(f"{up.control}/api/v1/auth/login",
                                                    json={"email": ADMIN_EMAIL, "password": ADMIN_PASSWORD}) as r:
        token = (await r.json())["access_token"]
    calls = 0
    for _ in range(30):
        code, out = await _status(up, "--json", "--token", token)
        report = json.loads(out)
        assert report["traffic"]["source"] == "control, last minute" and "error" not in report["traffic"], out
        calls = sum(row["calls"] for row in report["traffic"]["orgs"] if row["org"] == "demo")
        if calls:
            break
        await asyncio.sleep(1)
    assert calls >= 1
    # With a token it also says whether every instance has applied the configuration; without one, nothing.
    assert report["config"]["applied"] is True and report["config"]["missing"] == [], report["config"]
    code, out = await _status(up, "--token", token)
    assert code == 0 and "Configuration: applied on every instance" in out, out
    code, out = await _status(up, "--json")
    assert "config" not in json.loads(out)


@pytest.mark.timeout(180)
async def test_junction_status_shows_what_waits_for_a_stage_that_cannot_answer(up: UpEnv) -> None:
    """A hung egress answers neither /readyz nor /metrics: its own lag is unknown. The broker still holds what
    its group has not committed, and status shows it."""
    egress = service_pid(up.pid, "egress", descendants(up.pid))
    os.kill(egress, signal.SIGSTOP)
    try:
        async with aiohttp.ClientSession() as s:
            async def call(i: int) -> None:
                with contextlib.suppress(asyncio.TimeoutError, aiohttp.ClientError):
                    async with s.post(f"{up.ingress}/demo/echo?n={i}", data=b"x", timeout=aiohttp.ClientTimeout(total=2)):
                        pass
            await asyncio.gather(*(call(i) for i in range(6)))
        code, out = await _status(up, "--json")
        report = json.loads(out)
        waiting = report["services"]["egress"]
        assert code == 1 and not waiting["ready"], out
        assert sum(row["lag"] for row in waiting["group_lag"]) >= 6, waiting
        assert all(row["committed"] is None or row["committed"] <= row["end"] for row in waiting["group_lag"])
        # The table from the same report (one more run would wait out the stopped egress again).
        table = render(report)
        line = next(line for line in table.splitlines() if line.split()[:2] == ["egress", "NO"])
        assert int(line.split()[2]) >= 6, table  # the LAG column, from the broker's view
    finally:
        # Not resumed: an egress woken past its session spends 15 s leaving its group at the module's stop.
        # Killed, `junction up` starts a fresh one, which stops at once.
        os.kill(egress, signal.SIGKILL)
