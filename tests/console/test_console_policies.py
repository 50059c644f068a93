"""Caller policies in the console, in a real browser (Debian's chromium through playwright-core) against this
run's control service, one script each.

tests/console/org_policies.e2e.mjs: An org admin sets the organisation's
ip_restriction and cors in the form, and GET /api/v1/orgs/{org} then returns them; a bad network (10.0.0.0/33)
is a 422 whose message shows beside its field; a global admin's change meanwhile makes the org admin's save a 412,
offering a reload; Remove sends null for each; a viewer sees the fields read-only; an edit outlives the
session's expiry (the log-in dialog over the page) and is saved after. The API form's rate limit, the same
shared fieldset (ui/src/components/Policies.tsx), still shows its 422 and saves.

tests/console/api_policies.e2e.mjs: The form edits the
API's ip_restriction and its whole cors with the fieldsets of the organisation's Caller policies page
(ui/src/components/Policies.tsx), each with a line saying how it goes with the organisation's (the IP restriction
applies besides it, the CORS policy replaces it whole) and a link to that page. An org admin creates an API
with a deny list and a CORS policy (origins, methods, credentials, max age), and GET
/api/v1/orgs/{org}/apis/{id} returns exactly them; a bad network (10.0.0.0/33) and a CORS method the API does
not take each show their 422 message beside their input and save nothing; a save over a newer version is a
412; clearing both sends null; an edit outlives the session's expiry and is saved after; a viewer reads them.

Skipped, saying why, without node, ui/node_modules, a built console (ui/dist) or /usr/bin/chromium."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.console.test_console_e2e import CHROMIUM, OUT, UI, _need, _run
from tests.control_support import ADMIN_EMAIL, ADMIN_PASSWORD

pytestmark = pytest.mark.timeout(300)

ORG_STEPS = (
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
API_STEPS = (
    "the API form has an IP restriction and a CORS policy, each saying how it goes with the organisation's",
    "a 422 for 10.0.0.0/33 shows beside Denied addresses and nothing is created",
    "a CORS method the API does not take shows its 422 beside the CORS methods and nothing is created",
    "ip_restriction and cors saved: GET /api/v1/orgs/{org}/apis/{id} returns exactly them",
    "editing: a refused network saves nothing, and a save over someone's newer version answers 412",
    "clearing both sends null",
    "the session expires while editing",
    "a viewer sees the API's policies read-only",
)


async def _assert_script_passes(control: Any, script: str, steps: tuple[str, ...]) -> None:
    """Run ``script`` (beside this module) against ``control``; it must exit 0 having printed every step."""
    _need(UI / "node_modules" / "playwright-core", UI / "dist" / "index.html", CHROMIUM)
    code, out = await _run(["node", str(Path(__file__).with_name(script))], UI, {
        "CONSOLE_URL": control.base_url, "ADMIN_EMAIL": ADMIN_EMAIL, "ADMIN_PASSWORD": ADMIN_PASSWORD,
        "CHROMIUM": str(CHROMIUM), "OUT_DIR": str(OUT)}, 240)
    print(out)
    assert code == 0, out
    for step in steps:
        assert f"ok {step}" in out, (step, out)


async def test_org_policies_in_a_browser(control: Any) -> None:
    await _assert_script_passes(control, "org_policies.e2e.mjs", ORG_STEPS)


async def test_api_policies_in_a_browser(control: Any) -> None:
    await _assert_script_passes(control, "api_policies.e2e.mjs", API_STEPS)
