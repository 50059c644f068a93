"""Hostile input to the dead-letter list and read: refused with 422 or 404, never a 5xx or another
organisation's rows."""
from __future__ import annotations

import base64
import json
from typing import Any
from urllib.parse import quote

from tests.dead_letter_support import index_letters, letter_bytes


async def test_hostile_list_parameters_are_refused_or_harmless(control: Any) -> None:
    org, other = (await control.new_org("dla"))["slug"], (await control.new_org("dlb"))["slug"]
    await index_letters(control.pool, [letter_bytes(org), letter_bytes(other)])
    forged = base64.urlsafe_b64encode(json.dumps(["2030-01-01T00:00:00+00:00", "x' OR '1'='1"]).encode()).decode().rstrip("=")
    refused = {
        "limit=100000": "limit", "limit=-1": "limit", "limit=1e3": "limit", "limit=" + "9" * 400: "limit",
        "cursor=" + "A" * 5000: "cursor", "cursor=" + forged: "cursor", "cursor=%00": "cursor",
        "stage=" + quote("egress' OR '1'='1"): "stage", "code=" + quote("x; DROP TABLE dead_letters; --"): "code",
        "api=" + quote("' OR 1=1 --"): "api", "correlation_id=" + quote("' OR 1=1 --"): "correlation_id",
        "correlation_id=" + "a" * 201: "correlation_id", "from=" + "2" * 100_0: "from",
        "from=0001-01-01T00:00:00%2B23:59": "from", "to=9999-12-31T23:59:59-23:59": "to",
        "from=2024-06-01T00:00:00Z&to=2024-01-01T00:00:00Z": "to", "org=" + other: "org",
    }
    for query, field in refused.items():
        r = await control.call("GET", f"/api/v1/orgs/{org}/dead-letters?{query}", control.admin_token)
        assert r.status == 422, (query, r.status, r.body)
        assert field in [f["field"] for f in r.body["fields"]], (query, r.body)
    # Quoting games in a well-formed value find nothing: values are parameters, never SQL.
    for query in ("correlation_id=" + quote("'OR'1'='1"), "code=x_or_1_1", "api=00000000-0000-0000-0000-000000000000"):
        r = await control.call("GET", f"/api/v1/orgs/{org}/dead-letters?{query}", control.admin_token)
        assert r.status == 200 and r.body["items"] == [], (query, r.body)
    r = await control.call("GET", f"/api/v1/orgs/{org}/dead-letters?limit=1000", control.admin_token)
    assert r.status == 200 and [i["org"] for i in r.body["items"]] == [org]


async def test_hostile_ids_are_404(control: Any) -> None:
    org = (await control.new_org("dlc"))["slug"]
    for ref in ("' OR 1=1 --", "..%2F..%2Fusers", "%00", "x" * 3000, "urn:uuid:00000000-0000-0000-0000-000000000000"):
        r = await control.call("GET", f"/api/v1/orgs/{org}/dead-letters/{quote(ref, safe='%')}", control.admin_token)
        assert r.status == 404, (ref, r.status, r.body)
    r = await control.call("GET", f"/api/v1/orgs/{quote(chr(39) + ' OR 1=1 --')}/dead-letters", control.admin_token)
    assert r.status == 404
