"""CORS, from the management API to a browser's view of the edge: an API's ``cors`` policy, saved through
control, makes ingress answer preflights itself (no credential, no rate limit, nothing upstream) and own the
``Access-Control-*`` headers of every answer, errors and async results included; an origin, method or header
the policy does not allow is refused with a code and the field at fault; and an API without a policy is
served as before."""
from __future__ import annotations

import uuid
from collections import Counter
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest_asyncio
from aiohttp import web
from multidict import CIMultiDictProxy

from tests.control_support import assert_api_field_refused
from tests.support import IngressInstance, serving, wait_until

APP = "https://app.example.com"


class Upstream:
    def __init__(self) -> None:
        self.url = ""
        self.methods: Counter[str] = Counter()


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def upstream_with_cors() -> AsyncIterator[Upstream]:
    """Answers every call with its own, wide, CORS headers: a policy must not be widened by them."""
    found = Upstream()

    async def handle(request: web.Request) -> web.Response:
        found.methods[request.method] += 1
        return web.json_response({"method": request.method}, headers={
            "Access-Control-Allow-Origin": "*", "Access-Control-Allow-Credentials": "true", "X-Trace": "t1"})

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handle)
    async with serving(app) as url:
        found.url = url
        yield found


async def _api(control: Any, ingress: IngressInstance, upstream: Upstream, **fields: Any) -> tuple[str, str, dict[str, Any]]:
    org = (await control.new_org("cors"))["slug"]
    conn = await control.new_connector(org, target={"protocol": "rest", "url": upstream.url + "/up", "method": "*"})
    api = await control.new_api(org, conn["id"], path="/items/{id}", **fields)
    await wait_until(lambda: (ingress.snapshot.version_of("api", api["id"]) or 0) >= api["version"])
    return org, f"{ingress.url}/{org}/items/7", api


async def _send(method: str, url: str, headers: dict[str, str]) -> tuple[int, CIMultiDictProxy[str], Any]:
    async with aiohttp.ClientSession() as s, s.request(method, url, headers=headers) as r:
        raw = await r.read()
        return r.status, r.headers, (await r.json(content_type=None)) if raw else None


def _vary(headers: CIMultiDictProxy[str]) -> set[str]:
    return {v.strip().lower() for value in headers.getall("Vary", []) for v in value.split(",")}


def _preflight(origin: str, method: str = "GET", headers: str | None = None) -> dict[str, str]:
    asked = {"Origin": origin, "Access-Control-Request-Method": method}
    if headers is not None:
        asked["Access-Control-Request-Headers"] = headers
    return asked


async def test_a_preflight_is_answered_by_ingress_from_the_policy_alone(control: Any, ingress: IngressInstance,
                                                                        upstream_with_cors: Upstream) -> None:
    cors = {"origins": [APP, "https://*.partner.example"], "methods": ["GET", "POST"], "headers": ["X-Api-Key"],
            "credentials": True, "max_age_s": 600, "exposed_headers": ["X-Correlation-Id", "X-Trace"]}
    # Callers authenticate: a preflight carries no key, and needs none.
    _, url, _ = await _api(control, ingress, upstream_with_cors, methods=["GET", "POST", "DELETE"], cors=cors,
                           auth={"mode": "api_key"})
    before = sum(upstream_with_cors.methods.values())
    for origin in (APP, "https://a.b.partner.example", APP):
        status, headers, body = await _send("OPTIONS", url, _preflight(origin, "POST", "x-api-key, content-type"))
        assert status == 204 and body is None, (status, body)
        assert headers["Access-Control-Allow-Origin"] == origin
        assert headers["Access-Control-Allow-Methods"] == "GET, POST"
        assert headers["Access-Control-Allow-Headers"] == "x-api-key, content-type"
        assert headers["Access-Control-Allow-Credentials"] == "true" and headers["Access-Control-Max-Age"] == "600"
        assert {"origin", "access-control-request-method"} <= _vary(headers)
    assert sum(upstream_with_cors.methods.values()) == before  # nothing went upstream
    # The call itself: refused for want of a key, and the page may read why.
    status, headers, body = await _send("GET", url, {"Origin": APP})
    assert status == 401 and body["code"] == "credential_missing", body
    assert headers["Access-Control-Allow-Origin"] == APP and headers["Access-Control-Allow-Credentials"] == "true"
    assert headers["Access-Control-Expose-Headers"] == "X-Correlation-Id, X-Trace"
    # One call a minute is the limit: preflights count for nothing, and the page may read a 429 too.
    _, url, _ = await _api(control, ingress, upstream_with_cors, methods=["GET", "POST"], cors=cors,
                           rate_limit={"requests": 1, "per_seconds": 60, "by": "api"})
    for _ in range(3):
        status, _, _ = await _send("OPTIONS", url, _preflight(APP))
        assert status == 204
    status, headers, _ = await _send("GET", url, {"Origin": APP})
    assert status == 200 and headers["Access-Control-Allow-Origin"] == APP
    status, headers, body = await _send("GET", url, {"Origin": APP})
    assert status == 429 and body["code"] == "rate_limited" and headers["Access-Control-Allow-Origin"] == APP, body


async def test_the_policy_owns_the_answers_headers_and_the_upstreams_are_removed(control: Any, ingress: IngressInstance,
                                                                                 upstream_with_cors: Upstream) -> None:
    _, url, _ = await _api(control, ingress, upstream_with_cors, cors={"origins": [APP], "exposed_headers": ["X-Trace"]})
    status, headers, body = await _send("GET", url, {"Origin": APP})
    assert status == 200 and body == {"method": "GET"}
    assert headers.getall("Access-Control-Allow-Origin") == [APP]
    assert "Access-Control-Allow-Credentials" not in headers  # the upstream's, removed: the policy has none
    assert headers["Access-Control-Expose-Headers"] == "X-Trace" and headers["X-Trace"] == "t1"
    assert "origin" in _vary(headers)
    # Another origin's page gets the answer without any Access-Control-* header: its browser keeps it from the page.
    for origin in ("https://evil.example", "https://app.example.com.evil.example", "null", "http://app.example.com"):
        status, headers, _ = await _send("GET", url, {"Origin": origin})
        assert status == 200 and not [h for h in headers if h.lower().startswith("access-control-")], (origin, headers)
        assert "origin" in _vary(headers)  # a shared cache must not hand APP's answer to this origin
    # No Origin at all (a server-side caller): served, with no CORS header.
    status, headers, _ = await _send("GET", url, {})
    assert status == 200 and "Access-Control-Allow-Origin" not in headers


async def test_what_the_policy_does_not_allow_is_refused_naming_the_field(control: Any, ingress: IngressInstance,
                                                                          upstream_with_cors: Upstream) -> None:
    cors = {"origins": [APP, "https://*.example.org"], "methods": ["GET"], "headers": ["X-Api-Key"]}
    _, url, _ = await _api(control, ingress, upstream_with_cors, methods=["GET", "POST"], cors=cors)
    before = sum(upstream_with_cors.methods.values())
    refused = [
        (_preflight("https://evil.example"), "cors_origin_not_allowed", "Origin"),
        (_preflight("https://example.org"), "cors_origin_not_allowed", "Origin"),  # *. takes subdomains, not the name
        (_preflight("https://x.example.org:8443"), "cors_origin_not_allowed", "Origin"),  # nor another port
        (_preflight("null"), "cors_origin_not_allowed", "Origin"),
        (_preflight(APP, "POST"), "cors_method_not_allowed", "Access-Control-Request-Method"),
        (_preflight(APP, "GET", "X-Api-Key, X-Admin"), "cors_headers_not_allowed", "Access-Control-Request-Headers"),
        (_preflight(APP, "GET", "bad header, x"), "cors_headers_not_allowed", "Access-Control-Request-Headers"),
    ]
    for asked, code, field in refused:
        status, headers, body = await _send("OPTIONS", url, asked)
        assert status == 403 and body["code"] == code, (asked, status, body)
        assert [f["field"] for f in body["fields"]] == [field], body
    # Safelisted headers need no listing; a subdomain at any depth is one.
    status, headers, _ = await _send("OPTIONS", url, _preflight("https://a.b.example.org", "GET", "Content-Type, x-api-key"))
    assert status == 204 and headers["Access-Control-Allow-Origin"] == "https://a.b.example.org"
    # A method the API does not take at all: the route's own 405.
    status, _, body = await _send("OPTIONS", url, _preflight(APP, "PUT"))
    assert status == 405 and body["code"] == "method_not_allowed", body
    assert sum(upstream_with_cors.methods.values()) == before


async def test_an_api_without_a_policy_is_served_as_before(control: Any, ingress: IngressInstance,
                                                           upstream_with_cors: Upstream) -> None:
    _, url, _ = await _api(control, ingress, upstream_with_cors, methods=["GET"])
    status, _, body = await _send("OPTIONS", url, _preflight(APP))
    assert status == 405 and body["code"] == "method_not_allowed", body
    status, headers, _ = await _send("GET", url, {"Origin": APP})
    assert status == 200 and headers["Access-Control-Allow-Origin"] == "*"  # the upstream's, untouched
    # An API that takes OPTIONS itself, without a policy, gets its preflights like any other call.
    _, url, _ = await _api(control, ingress, upstream_with_cors, methods=["OPTIONS", "GET"])
    before = upstream_with_cors.methods["OPTIONS"]
    status, _, body = await _send("OPTIONS", url, _preflight(APP))
    assert status == 200 and body == {"method": "OPTIONS"} and upstream_with_cors.methods["OPTIONS"] == before + 1


async def test_a_policy_saved_any_origin_and_changed_or_removed_takes_effect(control: Any, ingress: IngressInstance,
                                                                              upstream_with_cors: Upstream) -> None:
    org, url, api = await _api(control, ingress, upstream_with_cors, cors={"origins": ["*"]})
    status, headers, _ = await _send("OPTIONS", url, _preflight("https://anyone.example"))
    assert status == 204 and headers["Access-Control-Allow-Origin"] == "*" and "Access-Control-Allow-Credentials" not in headers
    status, headers, _ = await _send("GET", url, {"Origin": "https://anyone.example"})
    assert status == 200 and headers["Access-Control-Allow-Origin"] == "*"
    r = await control.call("PATCH", f"/api/v1/orgs/{org}/apis/{api['id']}", control.admin_token, {"cors": {"origins": [APP]}})
    assert r.status == 200 and r.body["cors"] == {"origins": [APP]}, r.body
    await wait_until(lambda: (ingress.snapshot.version_of("api", api["id"]) or 0) >= r.body["version"])
    status, body_headers, body = await _send("OPTIONS", url, _preflight("https://anyone.example"))
    assert status == 403 and body["code"] == "cors_origin_not_allowed"
    r = await control.call("PATCH", f"/api/v1/orgs/{org}/apis/{api['id']}", control.admin_token, {"cors": None})
    assert r.status == 200, r.body
    await wait_until(lambda: (ingress.snapshot.version_of("api", api["id"]) or 0) >= r.body["version"])
    status, _, body = await _send("OPTIONS", url, _preflight(APP))
    assert status == 405, body


async def test_an_async_calls_location_answers_the_page_that_made_it(control: Any, ingress: IngressInstance,
                                                                     upstream_with_cors: Upstream) -> None:
    _, url, _ = await _api(control, ingress, upstream_with_cors,
                           cors={"origins": [APP], "exposed_headers": ["Location", "X-Correlation-Id"]})
    status, headers, body = await _send("GET", url, {"Origin": APP, "Prefer": "respond-async"})
    assert status == 202 and headers["Access-Control-Allow-Origin"] == APP, (status, body)
    location = ingress.url + headers["Location"]
    status, headers, _ = await _send("OPTIONS", location, _preflight(APP, "GET", "Prefer"))
    assert status == 204 and headers["Access-Control-Allow-Origin"] == APP
    assert headers["Access-Control-Allow-Headers"] == "Prefer"
    status, headers, body = await _send("GET", location, {"Origin": APP, "Prefer": "wait=10"})
    assert status == 200 and body == {"method": "GET"} and headers["Access-Control-Allow-Origin"] == APP
    status, _, body = await _send("OPTIONS", location, _preflight("https://evil.example"))
    assert status == 403 and body["code"] == "cors_origin_not_allowed"
    status, _, body = await _send("OPTIONS", f"{ingress.url}/_async/{uuid.uuid4().hex}", _preflight(APP))
    assert status == 404 and body["code"] == "result_not_found"


async def test_control_refuses_a_policy_a_browser_would_not_honour_or_that_trusts_too_much(control: Any) -> None:
    org = (await control.new_org("corsv"))["slug"]
    await assert_api_field_refused(control, org, "cors", [
        ({"origins": ["null"]}, "cors.origins[0]", "null"),
        ({"origins": ["https://app.example.com/"]}, "cors.origins[0]", "no path"),
        ({"origins": ["https://App.example.com"]}, "cors.origins[0]", "lowercase"),
        ({"origins": ["https://app.example.com:443"]}, "cors.origins[0]", "default port"),
        ({"origins": ["app.example.com"]}, "cors.origins[0]", "scheme://host"),
        ({"origins": [APP, "https://*.[::1]"]}, "cors.origins[1]", "not of an address"),
        ({"origins": ["https://a.example:70000"]}, "cors.origins[0]", "1 to 65535"),
        ({"origins": ["*"], "credentials": True}, "cors.credentials", "list the origins"),
        ({"origins": [APP], "methods": ["DELETE"]}, "cors.methods[0]", "not a method of this API"),
        ({"origins": [APP], "headers": ["bad header"]}, "cors.headers[0]", "must match"),
        ({"origins": []}, "cors.origins", "at least 1"),
        ({"methods": ["GET"]}, "cors.origins", "required"),
        ({"origins": [APP], "max_age_s": 86_401}, "cors.max_age_s", "at most"),
        ({"origins": [APP], "allow": True}, "cors.allow", "unknown field"),
    ])
    conn = await control.new_connector(org)
    ok = {"origins": ["https://*.example.com", "http://localhost:5173", "capacitor://localhost", "http://[::1]:8080"],
          "methods": ["GET"], "headers": ["Authorization"], "exposed_headers": ["X-Correlation-Id"], "max_age_s": 0}
    r = await control.call("POST", f"/api/v1/orgs/{org}/apis", control.admin_token,
                           {"name": "a", "methods": ["GET"], "path": "/x", "connector": conn["id"], "cors": ok})
    assert r.status == 201 and r.body["cors"] == ok, r.body
