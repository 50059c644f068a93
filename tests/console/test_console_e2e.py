"""The web console end to end: a real browser (Debian's chromium, driven by playwright-core from Node.js)
against this run's control service (PostgreSQL, Redis and the broker of tests/conftest.py), which also
serves the built console at /. The browser script is ui/e2e/console.e2e.mjs; the TypeScript SDK's own
tests against the same service are sdk/typescript/test/live.test.ts.

Skipped, saying why, without node, ui/node_modules (npm ci), a built console (ui/dist) or
/usr/bin/chromium: `make test-console` provides them all."""
from __future__ import annotations

import asyncio
import os
import shutil
from pathlib import Path
from typing import Any

import pytest

from tests.control_support import ADMIN_EMAIL, ADMIN_PASSWORD

ROOT = Path(__file__).resolve().parents[2]
UI = ROOT / "ui"
SDK = ROOT / "sdk" / "typescript"
CHROMIUM = Path(os.environ.get("JUNCTION_CHROMIUM", "/usr/bin/chromium"))
OUT = Path(os.environ.get("JUNCTION_CONSOLE_SCREENSHOTS", UI / "e2e" / "out"))

pytestmark = pytest.mark.timeout(300)


def _need(*paths: Path) -> None:
    if shutil.which("node") is None:
        pytest.skip("node is not installed: the console's browser tests need Node.js 20.19+ (make test-console)")
    for path in paths:
        if not path.exists():
            pytest.skip(f"{path.relative_to(ROOT) if path.is_relative_to(ROOT) else path} is missing: "
                        "run `make test-console` (npm ci, the console build, Debian's chromium)")


async def _run(cmd: list[str], cwd: Path, env: dict[str, str], timeout_s: float) -> tuple[int, str]:
    proc = await asyncio.create_subprocess_exec(*cmd, cwd=cwd, env={**os.environ, **env},
                                                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
    try:
        async with asyncio.timeout(timeout_s):
            out, _ = await proc.communicate()
    except TimeoutError:
        proc.kill()
        await proc.wait()
        raise
    return proc.returncode or 0, out.decode(errors="replace")


async def test_console_in_a_browser(control: Any) -> None:
    _need(UI / "node_modules" / "playwright-core", UI / "dist" / "index.html", CHROMIUM)
    r = await control.call("GET", "/")
    assert r.status == 200 and "Junction console" in r.body, r.body
    code, out = await _run(["node", "e2e/console.e2e.mjs"], UI, {
        "CONSOLE_URL": control.base_url, "ADMIN_EMAIL": ADMIN_EMAIL, "ADMIN_PASSWORD": ADMIN_PASSWORD,
        "CHROMIUM": str(CHROMIUM), "OUT_DIR": str(OUT)}, 240)
    print(out)
    assert code == 0, out
    for step in ("login with the keyboard", "line", "next to the Timeout field", "rollback makes version 3",
                 "no sideways overflow", "asks to log in again over the page, and keeps what was typed", "shown once", "own rate limit: the refused value's field error", "connector's origins: the refused origin's field error", "viewer sees no write buttons"):
        assert step in out, (step, out)


async def test_typescript_sdk_against_the_service(control: Any) -> None:
    _need(SDK / "node_modules" / ".bin" / "vitest")
    code, out = await _run(["node_modules/.bin/vitest", "run", "--reporter=verbose"], SDK, {
        "JUNCTION_CONTROL_URL": control.base_url, "JUNCTION_ADMIN_EMAIL": ADMIN_EMAIL,
        "JUNCTION_ADMIN_PASSWORD": ADMIN_PASSWORD, "CI": "1", "NO_COLOR": "1"}, 180)
    print(out)
    assert code == 0, out
    assert "walks an organisation through its resources" in out and "skipped" not in out.lower(), out


async def test_console_component_tests() -> None:
    """The console's Vitest component tests (ui/test/), so that `make test` runs them wherever node is."""
    _need(UI / "node_modules" / ".bin" / "vitest")
    code, out = await _run(["node_modules/.bin/vitest", "run", "--reporter=verbose"], UI, {"CI": "1", "NO_COLOR": "1"}, 180)
    print(out)
    assert code == 0, out
    assert " passed" in out and "failed" not in out.lower(), out
