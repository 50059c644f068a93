"""Every list and report of the management API refuses a query parameter it does not take with 422, naming
the parameter and the ones it takes (a user who writes ``since`` where the list takes ``from`` sees the fix
in the error), and refuses NUL characters in the ones it takes."""
from __future__ import annotations

from typing import Any

import pytest

# (path, a parameter it takes): {org} is filled in.
ENDPOINTS = [
    ("/api/v1/orgs/{org}/dead-letters", "from"),
    ("/api/v1/orgs/{org}/logs", "from"),
    ("/api/v1/orgs/{org}/metrics", "from"),
    ("/api/v1/orgs/{org}/alerts", "state"),
    ("/api/v1/orgs/{org}/replays", "cursor"),
    ("/api/v1/orgs/{org}/usage", "day"),
    ("/api/v1/audit", "since"),
    ("/api/v1/security-events", "kind"),
    ("/api/v1/alerts", "state"),
]


@pytest.mark.parametrize(("path", "takes"), ENDPOINTS, ids=[p for p, _ in ENDPOINTS])
async def test_an_unknown_parameter_is_named_with_the_ones_the_endpoint_takes(control: Any, path: str, takes: str) -> None:
    org = (await control.new_org("qp"))["slug"]
    url = path.format(org=org)
    r = await control.call("GET", f"{url}?bogus=1", control.admin_token)
    assert r.status == 422 and r.body["code"] == "invalid_input", r.body
    field = next(f for f in r.body["fields"] if f["field"] == "bogus")
    assert "unknown query parameter" in field["message"] and takes in field["message"], field
    # The one it takes, with a NUL character: refused too, naming it.
    r = await control.call("GET", f"{url}?{takes}=a%00b", control.admin_token)
    assert r.status == 422 and takes in [f["field"] for f in r.body["fields"]], r.body
