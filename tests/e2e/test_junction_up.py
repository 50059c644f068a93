"""`make run` end to end: `junction up --demo` starts everything, serves the demo, and Ctrl-C stops it all."""
from __future__ import annotations

import asyncio
import shutil
import signal
import subprocess

import aiohttp
import pytest

from core.settings import Settings
from tests.e2e.up_support import ADMIN_EMAIL, ADMIN_PASSWORD, up_env
from tests.support import alive, descendants, wait_http_ok


async def _serves_the_demo(ingress: str, control: str) -> None:
    echo: dict = {}
    async with aiohttp.ClientSession() as s:
        loop = asyncio.get_running_loop()
        until = loop.time() + 60
        while loop.time() < until:  # the demo is created through the management API just after readiness
            async with s.post(f"{ingress}/demo/echo?x=1", data=b"hello") as r:
                if r.status == 200:
                    echo = await r.json()
                    break
            await asyncio.sleep(0.1)
        assert echo["method"] == "POST" and echo["query"] == {"x": "1"} and echo["body"] == "hello"
        # After a restart on the memory-only broker, control re-publishes the configuration from PostgreSQL:
        # the second API may arrive a moment after the first.
        until = loop.time() + 30
        while True:
            async with s.get(f"{ingress}/demo/orders/A-42") as r:
                if r.status == 200 or loop.time() > until:
                    assert r.status == 200, await r.text()
                    order = await r.json()
                    break
            await asyncio.sleep(0.1)
        assert order["id"] == "A-42" and order["currency"] == "EUR"
        async with s.post(f"{control}/api/v1/auth/login",
                          json={"email": ADMIN_EMAIL, "password": ADMIN_PASSWORD}) as r:
            assert r.status == 200 and (await r.json())["token_type"] == "bearer"


async def _interrupt(proc: subprocess.Popen[bytes], started: list[int]) -> bytes:
    proc.send_signal(signal.SIGINT)
    output, _ = await asyncio.to_thread(proc.communicate, timeout=60)
    assert proc.returncode == 0, output.decode(errors="replace")[-2000:]
    for _ in range(50):
        if not any(alive(pid) for pid in started):
            break
        await asyncio.sleep(0.1)
    assert not [pid for pid in started if alive(pid)], "processes left running after Ctrl-C"
    return output


@pytest.mark.timeout(240)
async def test_junction_up_with_nothing_preinstalled_serves_the_demo_and_keeps_it_across_a_restart(settings: Settings) -> None:
    """No database or Redis URL: `junction up` starts embedded PostgreSQL and Redis, serves the demo, stops them
    on Ctrl-C, and a second start on the same data finds the configuration and the admin again."""
    up = up_env(settings)
    ingress, control = up.ingress, up.control
    proc = up.start("--demo")
    try:
        await wait_http_ok(f"{ingress}/readyz", timeout_s=90, proc=proc)
        await _serves_the_demo(ingress, control)
        started = descendants(proc.pid)
        # broker, PostgreSQL, Redis, control, egress, processors, ingress, demo upstream (+ sandbox workers)
        assert len(started) >= 8
        output = await _interrupt(proc, started)
        assert b"curl -s" in output  # it printed what to curl
        assert f"127.0.0.1:{up.ports['EMBEDDED_POSTGRES']}".encode() in output

        # Second start: the configuration made through the management API is still in PostgreSQL.
        proc = up.start("--demo")
        await wait_http_ok(f"{ingress}/readyz", timeout_s=90, proc=proc)
        await _serves_the_demo(ingress, control)
        output = await _interrupt(proc, descendants(proc.pid))
        assert b"password as set before" in output
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        if proc.stdout is not None:
            proc.stdout.close()  # a failed run must not leave its pipe for a later test to find unclosed
        shutil.rmtree(up.data_dir, ignore_errors=True)
