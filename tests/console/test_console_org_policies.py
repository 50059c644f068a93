"""An organisation's caller policies in the console, in a real browser (Debian's chromium through playwright-core)
against this run's control service: tests/console/org_policies.e2e.mjs. An org admin sets the organisation's
ip_restriction and cors in the form, and GET /api/v1/orgs/{org} then returns them; a bad network (10.0.0.0/33)
is a 422 whose message shows beside its field; a global admin's change meanwhile makes the org admin's save a 412,
offering a reload; Remove sends null for each; a viewer sees the fields read-only; an edit outlives the
session's expiry (the log-in dialog over the page) and is saved after. The API form's rate limit, the same
shared fieldset (ui/src/components/Policies.tsx), still shows its 422 and saves.

Skipped, saying why, without node, ui/node_modules, a built console (ui/dist) or /usr/bin/chromium."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.console.test_console_e2e import CHROMIUM, OUT, UI, _need, _run
from tests.control_support import ADMIN_EMAIL, ADMIN_PASSWORD

pytestmark = pytest.mark.timeout(300)

SCRIPT = Path(__file__).with_name("org_policies.e2e.mjs")

STEPS = (
    "an org admin opens the caller policies from the navigation",
    "a 422 for 10.0.0.0/33 shows beside Allowed addresses",
    "ip_restriction and cors saved: GET /api/v1/orgs/{org} returns them",
    "a global admin edits the same policies",
    "a stale save answers 412",
    "Remove sends null",
    "the API form's rate limit (the shared fieldset)",
    "a viewer sees the policies read-only",
    "the session expires while editing",
)


async def test_org_policies_in_a_browser(control: Any) -> None:
    _need(UI / "node_modules" / "playwright-core", UI / "dist" / "index.html", CHROMIUM)
    code, out = await _run(["node", str(SCRIPT)], UI, {
        "CONSOLE_URL": control.base_url, "ADMIN_EMAIL": ADMIN_EMAIL, "ADMIN_PASSWORD": ADMIN_PASSWORD,
        "CHROMIUM": str(CHROMIUM), "OUT_DIR": str(OUT)}, 240)
    print(out)
    assert code == 0, out
    for step in STEPS:
        assert f"ok {step}" in out, (step, out)
