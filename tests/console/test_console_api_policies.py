"""An API's own caller policies in the console's API form, in a real browser (Debian's chromium through
playwright-core) against this run's control service: tests/console/api_policies.e2e.mjs. The form edits the
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

SCRIPT = Path(__file__).with_name("api_policies.e2e.mjs")

STEPS = (
    "the API form has an IP restriction and a CORS policy, each saying how it goes with the organisation's",
    "a 422 for 10.0.0.0/33 shows beside Denied addresses and nothing is created",
    "a CORS method the API does not take shows its 422 beside the CORS methods and nothing is created",
    "ip_restriction and cors saved: GET /api/v1/orgs/{org}/apis/{id} returns exactly them",
    "editing: a refused network saves nothing, and a save over someone's newer version answers 412",
    "clearing both sends null",
    "the session expires while editing",
    "a viewer sees the API's policies read-only",
)


async def test_api_policies_in_a_browser(control: Any) -> None:
    _need(UI / "node_modules" / "playwright-core", UI / "dist" / "index.html", CHROMIUM)
    code, out = await _run(["node", str(SCRIPT)], UI, {
        "CONSOLE_URL": control.base_url, "ADMIN_EMAIL": ADMIN_EMAIL, "ADMIN_PASSWORD": ADMIN_PASSWORD,
        "CHROMIUM": str(CHROMIUM), "OUT_DIR": str(OUT)}, 240)
    print(out)
    assert code == 0, out
    for step in STEPS:
        assert f"ok {step}" in out, (step, out)
