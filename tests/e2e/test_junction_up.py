"""`make run` end to end: `junction up --demo` starts everything, serves the demo, and Ctrl-C stops it all;
a crash-looping demo upstream is left down, and a dead embedded store stops everything with exit status 1."""
from __future__ import annotations

import asyncio
import os
import shutil
import signal
import subprocess
from pathlib import Path

import aiohttp
import pytest

from core.settings import Settings
from tests.e2e.up_support import ADMIN_EMAIL, ADMIN_PASSWORD, service_pid, up_env
from tests.support import alive, descendants, wait_until


async def _serves_the_demo(proc: subprocess.Popen[bytes], log: Path, ingress: str, control: str) -> None:
    """Once `junction up` prints its banner, the demo calls it suggests answer at once, with no retry (the
    demo is made through the management API just after readiness, and applied everywhere before the banner;
    after a restart on the memory-only broker, control's re-published configuration too)."""
    await wait_until(lambda: b"Junction is up." in log.read_bytes() or proc.poll() is not None, timeout_s=120,
                     interval=0.1)
    assert proc.poll() is None, log.read_text(errors="replace")[-3000:]
    async with aiohttp.ClientSession() as s:
        async with s.post(f"{ingress}/demo/echo?x=1", data=b"hello") as r:
            assert r.status == 200, await r.text()
            echo = await r.json()
        assert echo["method"] == "POST" and echo["query"] == {"x": "1"} and echo["body"] == "hello"
        async with s.get(f"{ingress}/demo/orders/A-42") as r:
            assert r.status == 200, await r.text()
            order = await r.json()
        assert order["id"] == "A-42" and order["status"] == "processing" and order["currency"] == "EUR"
        async with s.post(f"{control}/api/v1/auth/login",
                          json={"email": ADMIN_EMAIL, "password": ADMIN_PASSWORD}) as r:
            assert r.status == 200 and (await r.json())["token_type"] == "bearer"


async def _interrupt(proc: subprocess.Popen[bytes], started: list[int]) -> bytes:
    proc.send_signal(signal.SIGINT)
    output, _ = await asyncio.to_thread(proc.communicate, timeout=60)
    output = output or b""  # None when it wrote to a log file
    assert proc.returncode == 0, output.decode(errors="replace")[-2000:]
    for _ in range(50):
        if not any(alive(pid) for pid in started):
            break
        await asyncio.sleep(0.1)
    assert not [pid for pid in started if alive(pid)], "processes left running after Ctrl-C"
    return output


async def _a_crash_looping_demo_is_left_down(proc: subprocess.Popen[bytes], log: Path, ingress: str) -> None:
    """The demo upstream is no part of the gateway: when it keeps dying, the services keep serving."""
    for _ in range(8):
        pid = service_pid(proc.pid, "demo-upstream", descendants(proc.pid))
        os.kill(pid, signal.SIGKILL)
        await wait_until(lambda: b"it is left down" in log.read_bytes() or _restarted(proc.pid, pid), timeout_s=30)
        if b"it is left down" in log.read_bytes():
            break
    assert b"demo-upstream died 5 times in a minute" in log.read_bytes(), log.read_text(errors="replace")[-3000:]
    assert proc.poll() is None
    async with aiohttp.ClientSession() as s:
        async with s.get(f"{ingress}/readyz") as r:
            assert r.status == 200
        async with s.get(f"{ingress}/demo/orders/A-42") as r:
            assert r.status == 502  # its upstream is down, and the gateway says so


def _restarted(root: int, killed: int) -> bool:
    try:
        return service_pid(root, "demo-upstream", descendants(root)) != killed
    except LookupError:
        return False


async def _a_dead_store_stops_everything(proc: subprocess.Popen[bytes], log: Path) -> None:
    """Redis gone for good (killed, crashed): `junction up` exits non-zero, naming it, and stops the rest, so
    that whatever runs it (systemd, a container runtime) starts it again; serving 503s for ever would not."""
    started = descendants(proc.pid)
    redis = next(pid for pid in started if b"redis-server" in Path(f"/proc/{pid}/cmdline").read_bytes())
    os.kill(redis, signal.SIGKILL)
    await asyncio.to_thread(proc.wait, 60)
    output = log.read_text(errors="replace")
    assert proc.returncode == 1, output[-3000:]
    assert "the embedded Redis exited with -9; Junction cannot serve without it" in output
    await wait_until(lambda: not [pid for pid in started if alive(pid)], timeout_s=30)


@pytest.mark.timeout(300)
async def test_junction_up_with_nothing_preinstalled_serves_the_demo_and_keeps_it_across_a_restart(settings: Settings) -> None:
    """No database or Redis URL: `junction up` starts embedded PostgreSQL and Redis, serves the demo, stops them
    on Ctrl-C, and a second start on the same data finds the configuration and the admin again."""
    up = up_env(settings)
    # As a user types it, without `make run`'s JUNCTION_ALLOW_PRIVATE_TARGETS: the demo upstream on loopback
    # must still be served (the SSRF guard would refuse it, and every demo call answer 502).
    del up.env["JUNCTION_ALLOW_PRIVATE_TARGETS"]
    ingress, control = up.ingress, up.control
    log = Path(up.data_dir) / "first-run.log"
    proc = up.start("--demo", log=log)
    try:
        await _serves_the_demo(proc, log, ingress, control)
        started = descendants(proc.pid)
        # broker, PostgreSQL, Redis, control, egress, processors, ingress, demo upstream (+ sandbox workers)
        assert len(started) >= 8
        await _interrupt(proc, started)
        output = log.read_bytes()
        assert b"curl -s" in output and b"loopback targets are allowed" in output  # what to curl, and why it works
        assert f"127.0.0.1:{up.ports['EMBEDDED_POSTGRES']}".encode() in output

        # Second start: the configuration made through the management API is still in PostgreSQL, and is
        # re-published to the memory-only broker before the banner.
        log = Path(up.data_dir) / "second-run.log"
        proc = up.start("--demo", log=log)
        await _serves_the_demo(proc, log, ingress, control)
        assert b"password as set before" in log.read_bytes()
        await _a_crash_looping_demo_is_left_down(proc, log, ingress)
        await _a_dead_store_stops_everything(proc, log)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        if proc.stdout is not None:
            proc.stdout.close()  # a failed run must not leave its pipe for a later test to find unclosed
        shutil.rmtree(up.data_dir, ignore_errors=True)
