"""The console's pages in a real browser (Debian's chromium through playwright-core) against this run's control
service, one case of ui/e2e/pages.e2e.mjs per test, each in a browser of its own: JWT and OAuth2 caller auth
in the API form, the session's expiry (a banner, a log-in dialog over the page, the unsaved edits kept), the
return page after another user logs in, a rename of what was opened by name, an organisation one cannot see,
the top bar's organisation switch, and Try it's response status.

Skipped, saying why, without node, ui/node_modules, a built console (ui/dist) or /usr/bin/chromium."""
from __future__ import annotations

from typing import Any

import pytest

from tests.console.test_console_e2e import CHROMIUM, UI, _need, _run
from tests.control_support import ADMIN_EMAIL, ADMIN_PASSWORD

pytestmark = pytest.mark.timeout(300)


@pytest.mark.parametrize("case", ["jwt-auth", "session-expiry", "other-user-return", "rename-by-name", "hidden-org",
                                  "org-switch", "try-status"])
async def test_console_page(control: Any, case: str) -> None:
    _need(UI / "node_modules" / "playwright-core", UI / "dist" / "index.html", CHROMIUM)
    code, out = await _run(["node", "e2e/pages.e2e.mjs"], UI, {
        "CASE": case, "CONSOLE_URL": control.base_url, "ADMIN_EMAIL": ADMIN_EMAIL, "ADMIN_PASSWORD": ADMIN_PASSWORD,
        "CHROMIUM": str(CHROMIUM)}, 240)
    print(out)
    assert code == 0 and f"ok {case}:" in out, out
