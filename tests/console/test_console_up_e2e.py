"""The web console on a whole running Junction: `junction up --demo` (ingress, processors, egress, control
serving the built console, the demo upstream, embedded PostgreSQL and Redis), driven in Debian's chromium by
ui/e2e/up.e2e.mjs. Each role logs in through the page (global admin, org admin, viewer); the instances page lists
the three stages, each applied; an API and a connector with a script are made through the forms, the API page
says when the API is live on every instance, and its first call is served by it; calls through ingress appear
on the dashboard and in the request logs; a version is rolled back; a dead letter (the script raises) is fixed through the editor and
replayed from the page; an alert rule is made, edited and rolled back, and its alert acknowledged.

Screenshots of the main pages at 1280x800 and 390x844 go to .junction/artifacts/console/ (gitignored; set
JUNCTION_CONSOLE_ARTIFACTS to move them); their paths are printed. One `junction up` for the module (about
20 s to start). Skipped, saying why, without node, ui/node_modules, a built console or /usr/bin/chromium."""
from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio

from core.settings import Settings
from tests.console.test_console_e2e import CHROMIUM, ROOT, UI, _need, _run
from tests.e2e.up_support import ADMIN_EMAIL, ADMIN_PASSWORD, UpEnv, up_env
from tests.support import descendants, wait_http_ok

ARTIFACTS = Path(os.environ.get("JUNCTION_CONSOLE_ARTIFACTS", ROOT / ".junction" / "artifacts" / "console"))

pytestmark = pytest.mark.timeout(420)


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def junction_up(settings: Settings) -> AsyncIterator[UpEnv]:
    _need(UI / "node_modules" / "playwright-core", UI / "dist" / "index.html", CHROMIUM)
    # Alerts evaluated every second, so the page sees one fire within the test.
    up = up_env(settings, JUNCTION_ALERT_INTERVAL_S="1")
    log = Path(tempfile.mkdtemp(prefix="junction-up-console-")) / "junction-up.log"
    proc = up.start("--demo", log=log)
    try:
        await wait_http_ok(f"{up.ingress}/readyz", timeout_s=120, proc=proc)
        await wait_http_ok(f"{up.control}/readyz", timeout_s=60, proc=proc)
        yield up
    finally:
        started = descendants(proc.pid)
        proc.send_signal(signal.SIGINT)
        try:
            await asyncio.to_thread(proc.wait, 60)
        except subprocess.TimeoutExpired:
            for pid in [proc.pid, *started]:
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            proc.wait()
        if proc.returncode not in (0, -signal.SIGKILL):
            print(log.read_text(errors="replace")[-4000:])


async def test_console_on_junction_up(junction_up: UpEnv) -> None:
    up = junction_up
    code, out = await _run(["node", "e2e/up.e2e.mjs"], UI, {
        "CONSOLE_URL": up.control, "INGRESS_URL": up.ingress,
        "UPSTREAM_URL": f"http://127.0.0.1:{up.ports['DEMO_UPSTREAM']}",
        "ADMIN_EMAIL": ADMIN_EMAIL, "ADMIN_PASSWORD": ADMIN_PASSWORD,
        "CHROMIUM": str(CHROMIUM), "OUT_DIR": str(ARTIFACTS)}, 360)
    print(out)
    assert code == 0, out
    for step in ("global admin: an organisation", "the instances page lists ingress, processors and egress",
                 "live on every instance", "a call through ingress fails in the script",
                 "the script fixed in the editor", "the calls are in the request logs", "the calls are on the dashboard",
                 "a rollback makes version 3", "outcome succeeded", "alert rule: the API's field error",
                 "acknowledged from the page", "no sideways overflow", "viewer: reads dead letters"):
        assert step in out, (step, out)
    shots = [line.split(" ", 1)[1] for line in out.splitlines() if line.startswith("screenshot ")]
    assert len(shots) >= 15 and all(Path(s).stat().st_size > 0 for s in shots), shots
