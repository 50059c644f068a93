"""An organisation's caller policies at the edge, set through control: its ``ip_restriction`` applies to every
API of it besides the API's own (a caller must be admitted by both, deny wins at either, and the 403 names the
level that refused), to the results of its APIs' async calls and to its token endpoint, and to no other
organisation; its ``cors`` is the policy of its APIs without one of their own (an API's own replaces it
whole), preflights included. Removing either (null) restores what was there before."""
from __future__ import annotations

import ipaddress
import uuid
from collections import Counter
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest_asyncio
from aiohttp import web
from hypothesis import HealthCheck, given, settings as hsettings, strategies as st
from multidict import CIMultiDictProxy

from core.settings import Settings
from tests.support import IngressInstance, serving_handler, wait_until

APP = "https://app.example.com"
OTHER = "https://other.example.com"


class Upstream:
    def __init__(self) -> None:
        self.url = ""
        self.reached: Counter[str] = Counter()  # ?t= -> calls that reached the upstream


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def recording() -> AsyncIterator[Upstream]:
    """Answers every call with its own wide CORS headers, and counts the calls by their ``t``."""
    found = Upstream()

    async def handle(request: web.Request) -> web.Response:
        found.reached[request.query.get("t", "")] += 1
        return web.json_response({"method": request.method}, headers={"Access-Control-Allow-Origin": "*"})

    async with serving_handler(handle) as url:
        found.url = url
        yield found


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def behind_proxy(settings: Settings, ingress: IngressInstance) -> AsyncIterator[IngressInstance]:
    """An ingress that believes 127.0.0.1's X-Forwarded-For: the property below calls from many addresses."""
    instance = IngressInstance(settings.with_overrides(ingress_trusted_proxies="127.0.0.1"))
    await instance.start()
    yield instance
    await instance.stop()


async def _org_with_apis(control: Any, upstream: Upstream, *apis: dict[str, Any],
                         instances: tuple[IngressInstance, ...]) -> tuple[str, list[dict[str, Any]]]:
    """A new organisation with one API at /a<i> for each of ``apis`` (its fields), seen by ``instances``."""
    org = (await control.new_org("opol"))["slug"]
    conn = await control.new_connector(org, target={"protocol": "rest", "url": upstream.url + "/up", "method": "*"})
    made = [await control.new_api(org, conn["id"], path=f"/a{i}", **fields) for i, fields in enumerate(apis)]
    await wait_until(lambda: all((i.snapshot.version_of("api", a["id"]) or 0) >= a["version"]
                                 for i in instances for a in made))
    return org, made


async def _set(control: Any, path: str, body: dict[str, Any], *instances: IngressInstance) -> dict[str, Any]:
    """PATCH an organisation (``/orgs/x``) or an API, and wait until ``instances`` hold the new version."""
    r = await control.call("PATCH", f"/api/v1{path}", control.admin_token, body)
    assert r.status == 200, r.body
    for key, value in body.items():
        assert r.body[key] == value, r.body
    if "/apis/" in path:
        await wait_until(lambda: all((i.snapshot.version_of("api", r.body["id"]) or 0) >= r.body["version"] for i in instances))
    else:
        await wait_until(lambda: all(int(i.snapshot.orgs.get(r.body["slug"], {}).get("version", 0)) >= r.body["version"]
                                     for i in instances))
    return r.body


async def _send(method: str, url: str, headers: dict[str, str] | None = None,
                **kw: Any) -> tuple[int, CIMultiDictProxy[str], Any]:
    async with aiohttp.ClientSession() as s, s.request(method, url, headers=headers or {}, **kw) as r:
        raw = await r.read()
        return r.status, r.headers, (await r.json(content_type=None)) if raw else None


def _preflight(origin: str, method: str = "GET") -> dict[str, str]:
    return {"Origin": origin, "Access-Control-Request-Method": method}


def _refused_by(body: Any, whose: str) -> bool:
    return (body["code"] == "ip_not_allowed" and [f["field"] for f in body["fields"]] == ["(address)"]
            and f"{whose} ip_restriction" in body["fields"][0]["message"])


async def test_an_organisations_deny_blocks_every_api_of_it_and_no_other_organisations(
        control: Any, ingress: IngressInstance, recording: Upstream) -> None:
    # One API open, one whose own rule admits the caller: neither may let in what the organisation denies.
    org, apis = await _org_with_apis(control, recording, {}, {"ip_restriction": {"allow": ["127.0.0.0/8"]}},
                                     {"auth": {"mode": "api_key"}}, instances=(ingress,))
    other, _ = await _org_with_apis(control, recording, {}, instances=(ingress,))
    for i in range(3):
        status, _, body = await _send("GET", f"{ingress.url}/{org}/a{i}", params={"t": "before"})
        assert status == (401 if i == 2 else 200), body
    await _set(control, f"/orgs/{org}", {"ip_restriction": {"deny": ["127.0.0.0/24"]}}, ingress)
    before = recording.reached.copy()
    for i in range(3):
        tag = uuid.uuid4().hex
        status, _, body = await _send("GET", f"{ingress.url}/{org}/a{i}", {"X-API-Key": "jk_whatever"}, params={"t": tag})
        assert status == 403 and _refused_by(body, "the organisation's"), (i, body)
        assert "127.0.0.1" in body["message"] and tag not in recording.reached
    # Its token endpoint too (before any credential is read), and not another organisation's APIs.
    status, _, body = await _send("POST", f"{ingress.url}/{org}/oauth/token", data={"grant_type": "client_credentials"})
    assert status == 403 and _refused_by(body, "the organisation's"), body
    status, _, body = await _send("POST", f"{ingress.url}/{other}/oauth/token", data={"grant_type": "client_credentials"})
    assert status == 401 and body["code"] == "invalid_client", body
    status, _, body = await _send("GET", f"{ingress.url}/{other}/a0", params={"t": "other"})
    assert status == 200 and recording.reached["other"] == before["other"] + 1, body
    # Removed: each API is back to its own rule.
    await _set(control, f"/orgs/{org}", {"ip_restriction": None}, ingress)
    for i in range(2):
        status, _, body = await _send("GET", f"{ingress.url}/{org}/a{i}")
        assert status == 200, body


async def test_the_api_that_refuses_is_named_and_an_org_allow_does_not_widen_an_api(
        control: Any, ingress: IngressInstance, recording: Upstream) -> None:
    org, (api,) = await _org_with_apis(control, recording, {"ip_restriction": {"deny": ["127.0.0.1"]}},
                                       instances=(ingress,))
    await _set(control, f"/orgs/{org}", {"ip_restriction": {"allow": ["127.0.0.1"]}}, ingress)
    status, _, body = await _send("GET", f"{ingress.url}/{org}/a0")
    assert status == 403 and _refused_by(body, "the API's") and "this API" in body["message"], body
    await _set(control, f"/orgs/{org}/apis/{api['id']}", {"ip_restriction": None}, ingress)
    status, _, body = await _send("GET", f"{ingress.url}/{org}/a0")
    assert status == 200, body
    # An organisation's allow list that leaves the caller out refuses it, whatever the API says.
    await _set(control, f"/orgs/{org}", {"ip_restriction": {"allow": ["10.0.0.0/8"]}}, ingress)
    status, _, body = await _send("GET", f"{ingress.url}/{org}/a0")
    assert status == 403 and _refused_by(body, "the organisation's"), body


async def test_an_async_calls_result_is_refused_where_the_organisation_refuses_its_caller(
        control: Any, ingress: IngressInstance, recording: Upstream) -> None:
    org, (api,) = await _org_with_apis(control, recording, {}, instances=(ingress,))
    status, headers, body = await _send("GET", f"{ingress.url}/{org}/a0", {"Prefer": "respond-async"})
    assert status == 202, body
    location = ingress.url + headers["Location"]
    status, _, body = await _send("GET", location, {"Prefer": "wait=10"})
    assert status == 200 and body == {"method": "GET"}, body
    await _set(control, f"/orgs/{org}", {"ip_restriction": {"deny": ["127.0.0.1"]}}, ingress)
    status, _, body = await _send("GET", location)
    assert status == 403 and _refused_by(body, "the organisation's"), body
    await _set(control, f"/orgs/{org}", {"ip_restriction": None}, ingress)
    status, _, body = await _send("GET", location)
    assert status == 200 and body == {"method": "GET"}, body
    # The API's own rule too, though the API takes no credential.
    await _set(control, f"/orgs/{org}/apis/{api['id']}", {"ip_restriction": {"deny": ["127.0.0.1"]}}, ingress)
    status, _, body = await _send("GET", location)
    assert status == 403 and _refused_by(body, "the API's"), body


async def test_an_organisations_cors_is_the_policy_of_its_apis_without_their_own(
        control: Any, ingress: IngressInstance, recording: Upstream) -> None:
    org, (bare, own) = await _org_with_apis(
        control, recording, {"methods": ["GET"]}, {"methods": ["GET", "POST"], "cors": {"origins": [OTHER]}},
        instances=(ingress,))
    other, _ = await _org_with_apis(control, recording, {"methods": ["GET"]}, instances=(ingress,))
    status, _, body = await _send("OPTIONS", f"{ingress.url}/{org}/a0", _preflight(APP))
    assert status == 405, body  # no policy anywhere yet: an OPTIONS call like any other
    await _set(control, f"/orgs/{org}", {"cors": {"origins": [APP], "methods": ["GET", "POST", "DELETE"],
                                                 "exposed_headers": ["Location"], "max_age_s": 60}}, ingress)
    before = sum(recording.reached.values())
    status, headers, body = await _send("OPTIONS", f"{ingress.url}/{org}/a0", _preflight(APP))
    assert status == 204 and headers["Access-Control-Allow-Origin"] == APP, body
    assert headers["Access-Control-Allow-Methods"] == "GET"  # only what this API takes, of the policy's
    assert headers["Access-Control-Max-Age"] == "60"
    status, _, body = await _send("OPTIONS", f"{ingress.url}/{org}/a0", _preflight(OTHER))
    assert status == 403 and body["code"] == "cors_origin_not_allowed", body
    # The API with its own policy follows it alone: nothing of the organisation's is merged in.
    status, headers, body = await _send("OPTIONS", f"{ingress.url}/{org}/a1", _preflight(APP))
    assert status == 403 and body["code"] == "cors_origin_not_allowed", body
    status, headers, body = await _send("OPTIONS", f"{ingress.url}/{org}/a1", _preflight(OTHER, "POST"))
    assert status == 204 and headers["Access-Control-Allow-Origin"] == OTHER and "Access-Control-Max-Age" not in headers
    assert sum(recording.reached.values()) == before  # preflights never go upstream
    # A call carries the organisation's headers, the upstream's own removed; another organisation's does not.
    status, headers, _ = await _send("GET", f"{ingress.url}/{org}/a0", {"Origin": APP})
    assert status == 200 and headers["Access-Control-Allow-Origin"] == APP
    assert headers["Access-Control-Expose-Headers"] == "Location"
    status, headers, _ = await _send("GET", f"{ingress.url}/{org}/a1", {"Origin": APP})
    assert status == 200 and "Access-Control-Allow-Origin" not in headers
    status, headers, _ = await _send("GET", f"{ingress.url}/{other}/a0", {"Origin": APP})
    assert status == 200 and headers["Access-Control-Allow-Origin"] == "*"  # the upstream's, untouched
    status, _, body = await _send("OPTIONS", f"{ingress.url}/{other}/a0", _preflight(APP))
    assert status == 405, body
    # An async call's location answers the page under the policy its API follows.
    status, headers, _ = await _send("GET", f"{ingress.url}/{org}/a0", {"Origin": APP, "Prefer": "respond-async"})
    assert status == 202 and headers["Access-Control-Allow-Origin"] == APP
    location = ingress.url + headers["Location"]
    status, headers, _ = await _send("OPTIONS", location, _preflight(APP))
    assert status == 204 and headers["Access-Control-Allow-Origin"] == APP
    status, headers, _ = await _send("GET", location, {"Origin": APP, "Prefer": "wait=10"})
    assert status == 200 and headers["Access-Control-Allow-Origin"] == APP
    # Removed: the API without a policy of its own is served as before; the other keeps its own.
    await _set(control, f"/orgs/{org}", {"cors": None}, ingress)
    status, _, body = await _send("OPTIONS", f"{ingress.url}/{org}/a0", _preflight(APP))
    assert status == 405, body
    status, headers, _ = await _send("GET", f"{ingress.url}/{org}/a0", {"Origin": APP})
    assert status == 200 and headers["Access-Control-Allow-Origin"] == "*"
    status, headers, _ = await _send("OPTIONS", f"{ingress.url}/{org}/a1", _preflight(OTHER))
    assert status == 204 and headers["Access-Control-Allow-Origin"] == OTHER


# A small universe of networks, so that generated rules and addresses meet often.
NETWORKS = ["203.0.113.0/24", "203.0.113.0/28", "203.0.113.16/28", "203.0.113.7/32", "198.51.100.0/24",
            "198.51.100.128/25", "192.0.2.0/24", "0.0.0.0/0"]
ADDRESSES = ["203.0.113.7", "203.0.113.9", "203.0.113.20", "203.0.113.200", "198.51.100.1", "198.51.100.200",
             "192.0.2.55", "100.64.0.1"]
networks = st.lists(st.sampled_from(NETWORKS), max_size=3, unique=True)
rule = st.one_of(st.none(), st.fixed_dictionaries({}, optional={"allow": networks, "deny": networks})
                 .filter(lambda r: bool(r.get("allow") or r.get("deny"))))


def _admits(rule: dict[str, Any] | None, address: str) -> bool:
    """The rule, read from the docs: deny wins, and with an allow list only those on it are admitted."""
    if rule is None:
        return True
    ip = ipaddress.ip_address(address)
    if any(ip in ipaddress.ip_network(n) for n in rule.get("deny") or []):
        return False
    allow = rule.get("allow") or []
    return not allow or any(ip in ipaddress.ip_network(n) for n in allow)


@hsettings(max_examples=15, deadline=None, database=None,
           suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(org_rule=rule, api_rule=rule)
async def test_property_a_caller_is_admitted_iff_both_levels_admit_it(
        control: Any, behind_proxy: IngressInstance, recording: Upstream,
        org_rule: dict[str, Any] | None, api_rule: dict[str, Any] | None) -> None:
    org, (api,) = await _org_with_apis(control, recording, {"ip_restriction": api_rule}, instances=(behind_proxy,))
    await _set(control, f"/orgs/{org}", {"ip_restriction": org_rule}, behind_proxy)
    for address in ADDRESSES:
        status, _, body = await _send("GET", f"{behind_proxy.url}/{org}/a0", {"X-Forwarded-For": address})
        by_org, by_api = _admits(org_rule, address), _admits(api_rule, address)
        if by_org and by_api:
            assert status == 200, (address, org_rule, api_rule, body)
        else:
            assert status == 403, (address, org_rule, api_rule, body)
            # Checked in order: the organisation's first.
            assert _refused_by(body, "the organisation's" if not by_org else "the API's"), (address, body)
