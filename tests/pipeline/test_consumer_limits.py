"""A consumer's own rate limit (its tier), set through the management API and applied by ingress: it replaces
the numbers of a limit by consumer, in that limit's window; beside a shared limit (by api) it counts too, and
where no limit applies it counts the consumer's calls across the organisation; removing it restores the
API's terms. Another consumer keeps the API's terms throughout."""
from __future__ import annotations

from typing import Any

import aiohttp
import pytest

from tests.callerauth_support import clear_ingress_blocks  # noqa: F401
from tests.support import IngressInstance, wait_until

pytestmark = pytest.mark.usefixtures("clear_ingress_blocks")
WINDOW_S = 3600  # longer than the test: every admitted call counts


async def _consumer(control: Any, org: str, name: str, **fields: Any) -> tuple[dict[str, Any], str]:
    r = await control.call("POST", f"/api/v1/orgs/{org}/consumers", control.admin_token, {"name": name, **fields})
    assert r.status == 201, r.body
    k = await control.call("POST", f"/api/v1/orgs/{org}/consumers/{r.body['id']}/keys", control.admin_token, {})
    assert k.status == 201, k.body
    now = await control.call("GET", f"/api/v1/orgs/{org}/consumers/{r.body['id']}", control.admin_token)
    return now.body, k.body["key"]  # the version with its key


async def _calls(ingress: IngressInstance, org: str, path: str, key: str, n: int) -> list[tuple[int, str | None]]:
    out = []
    async with aiohttp.ClientSession() as s:
        for _ in range(n):
            async with s.get(f"{ingress.url}/{org}{path}", headers={"X-API-Key": key}) as r:
                await r.read()
                out.append((r.status, r.headers.get("RateLimit-Limit")))
    return out


async def test_a_consumers_own_limit_is_its_tier(control: Any, ingress: IngressInstance, upstream: str) -> None:
    org = (await control.new_org("tier"))["slug"]
    conn = await control.new_connector(org, target={"protocol": "rest", "url": upstream + "/echo", "method": "*"})
    auth = {"mode": "api_key"}
    apis = [await control.new_api(org, conn["id"], path="/per-consumer", auth=auth,
                                  rate_limit={"requests": 2, "per_seconds": WINDOW_S, "by": "consumer"}),
            await control.new_api(org, conn["id"], path="/shared", auth=auth,
                                  rate_limit={"requests": 100, "per_seconds": WINDOW_S, "by": "api"}),
            await control.new_api(org, conn["id"], path="/open", auth=auth)]
    gold, gold_key = await _consumer(control, org, "gold", rate_limit={"requests": 4, "per_seconds": WINDOW_S})
    plain, plain_key = await _consumer(control, org, "plain")
    assert gold["rate_limit"] == {"requests": 4, "per_seconds": WINDOW_S} and plain.get("rate_limit") is None
    await wait_until(lambda: all(ingress.snapshot.version_of("api", a["id"]) for a in apis)
                     and all(ingress.snapshot.version_of("consumer", c["id"]) == c["version"] for c in (gold, plain)))
    # A limit by consumer: the API's 2 for plain, gold's own 4 in its place.
    assert await _calls(ingress, org, "/per-consumer", plain_key, 3) == [(200, "2"), (200, "2"), (429, "2")]
    assert await _calls(ingress, org, "/per-consumer", gold_key, 5) == [(200, "4")] * 4 + [(429, "4")]
    # A shared limit protects the upstream for everyone: gold's own counts beside it (the tighter one shown),
    # across the organisation's APIs, in a window of its own.
    assert await _calls(ingress, org, "/shared", gold_key, 5) == [(200, "4")] * 4 + [(429, "4")]
    assert [s for s, _ in await _calls(ingress, org, "/shared", plain_key, 3)] == [200, 200, 200]
    # No limit on the API: gold's own still holds (its 4 are spent), plain is not limited at all.
    assert await _calls(ingress, org, "/open", gold_key, 1) == [(429, "4")]
    assert await _calls(ingress, org, "/open", plain_key, 3) == [(200, None)] * 3
    # Removed, the API's terms again.
    r = await control.call("PATCH", f"/api/v1/orgs/{org}/consumers/gold", control.admin_token, {"rate_limit": None})
    assert r.status == 200 and r.body["rate_limit"] is None and r.body["version"] == gold["version"] + 1, r.body
    await wait_until(lambda: ingress.snapshot.version_of("consumer", gold["id"]) == r.body["version"])
    assert await _calls(ingress, org, "/open", gold_key, 2) == [(200, None)] * 2
    assert await _calls(ingress, org, "/per-consumer", gold_key, 1) == [(429, "2")]  # 4 already in that window


async def test_control_refuses_a_consumer_limit_that_is_not_one(control: Any) -> None:
    org = (await control.new_org("tierv"))["slug"]
    base = f"/api/v1/orgs/{org}/consumers"
    for limit, field in (({"requests": 0, "per_seconds": 60}, "rate_limit.requests"),
                         ({"requests": 5}, "rate_limit.per_seconds"),
                         ({"requests": 5, "per_seconds": 60, "by": "ip"}, "rate_limit.by"),
                         ({"requests": 5, "per_seconds": 0}, "rate_limit.per_seconds")):
        r = await control.call("POST", base, control.admin_token, {"name": "c", "rate_limit": limit})
        assert r.status == 422 and field in [f["field"] for f in r.body["fields"]], (limit, r.body)
    r = await control.call("GET", base, control.admin_token)
    assert r.body["items"] == []
    # PUT replaces: a limit not given is removed; the same limit again is no new version.
    limit = {"requests": 10, "per_seconds": 60}
    r = await control.call("PUT", f"{base}/c", control.admin_token, {"name": "c", "rate_limit": limit})
    assert r.status == 201 and r.body["rate_limit"] == limit, r.body
    r = await control.call("PUT", f"{base}/c", control.admin_token, {"name": "c", "rate_limit": limit})
    assert r.status == 200 and r.body["version"] == 1, r.body
    r = await control.call("PUT", f"{base}/c", control.admin_token, {"name": "c"})
    assert r.status == 200 and r.body["version"] == 2 and r.body["rate_limit"] is None, r.body


async def test_a_call_refused_by_one_limit_spends_nothing_of_another(control: Any, ingress: IngressInstance,
                                                                      upstream: str) -> None:
    """A consumer hammering past its own limit must not use up the limit every caller of the API shares."""
    org = (await control.new_org("fair"))["slug"]
    conn = await control.new_connector(org, target={"protocol": "rest", "url": upstream + "/echo", "method": "*"})
    api = await control.new_api(org, conn["id"], path="/shared", auth={"mode": "api_key"},
                                rate_limit={"requests": 5, "per_seconds": WINDOW_S, "by": "api"})
    noisy, noisy_key = await _consumer(control, org, "noisy", rate_limit={"requests": 2, "per_seconds": WINDOW_S})
    quiet, quiet_key = await _consumer(control, org, "quiet")
    await wait_until(lambda: ingress.snapshot.version_of("api", api["id"])
                     and all(ingress.snapshot.version_of("consumer", c["id"]) == c["version"] for c in (noisy, quiet)))
    # Refused by its own 2, never by the shared 5: the four refusals were not counted there.
    assert await _calls(ingress, org, "/shared", noisy_key, 6) == [(200, "2")] * 2 + [(429, "2")] * 4
    # So the shared window holds 2 calls, and the quiet consumer gets the other 3.
    assert await _calls(ingress, org, "/shared", quiet_key, 4) == [(200, "5")] * 3 + [(429, "5")]
