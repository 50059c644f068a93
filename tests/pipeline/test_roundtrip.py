"""A REST call through ingress → Kafka → processors → egress and back."""
from __future__ import annotations

import base64
import io
from typing import Any

import aiohttp

from tests.support import IngressInstance


async def test_method_path_query_headers_body_round_trip(ingress: IngressInstance, echo_api: dict[str, Any]) -> None:
    org = echo_api["org"]
    async with aiohttp.ClientSession() as s:
        async with s.post(f"{ingress.url}/{org}/echo?x=1&y=two", data=b"hello", headers={"X-Custom": "abc", "Connection": "keep-alive"}) as r:
            assert r.status == 200
            got = await r.json()
            assert "X-Correlation-Id" in r.headers
    assert got["method"] == "POST"
    assert got["path"] == "/echo"
    assert got["query"] == {"x": "1", "y": "two"}
    assert got["headers"]["X-Custom"] == "abc"
    assert got["body"] == "hello"


async def test_the_upstream_gets_the_calls_correlation_id_not_the_callers(ingress: IngressInstance,
                                                                          echo_api: dict[str, Any]) -> None:
    """The id an upstream logs is the one its caller got back (and dead letters carry); a caller's own is
    replaced, so none can pass for another call."""
    org = echo_api["org"]
    async with aiohttp.ClientSession() as s:
        async with s.get(f"{ingress.url}/{org}/echo", headers={"X-Correlation-Id": "forged"}) as r:
            assert r.status == 200
            got = await r.json()
    sent = [v for k, v in got["headers"].items() if k.lower() == "x-correlation-id"]
    assert sent == [r.headers["X-Correlation-Id"]] and sent[0] != "forged" and len(sent[0]) == 32


async def test_binary_and_one_megabyte_bodies(ingress: IngressInstance, echo_api: dict[str, Any]) -> None:
    org = echo_api["org"]
    payload = bytes(range(256)) * 4096  # 1 MiB, every byte value
    async with aiohttp.ClientSession() as s:
        async with s.put(f"{ingress.url}/{org}/echo", data=io.BytesIO(payload), headers={"Content-Type": "application/octet-stream"}) as r:
            assert r.status == 200
            got = await r.json()
    assert got["method"] == "PUT"
    assert got["body_base64"] is True
    assert base64.b64decode(got["body"]) == payload


async def test_unknown_org_and_route_are_404(ingress: IngressInstance, echo_api: dict[str, Any]) -> None:
    async with aiohttp.ClientSession() as s:
        async with s.get(f"{ingress.url}/no-such-org-xyz/echo") as r:
            assert r.status == 404
            body = await r.json()
            assert body["code"] == "org_not_found"
        async with s.get(f"{ingress.url}/{echo_api['org']}/nope") as r:
            assert r.status == 404
            assert (await r.json())["code"] == "route_not_found"


async def test_body_over_limit_is_413(ingress: IngressInstance, echo_api: dict[str, Any]) -> None:
    limit = ingress.settings.max_body_bytes
    async with aiohttp.ClientSession() as s:
        async with s.post(f"{ingress.url}/{echo_api['org']}/echo", data=io.BytesIO(b"x" * (limit + 1))) as r:
            assert r.status == 413
            body = await r.json()
    assert body["code"] == "body_too_large"
    assert body["limit"] == limit


async def test_percent_escapes_that_are_not_utf8_are_refused_naming_where(ingress: IngressInstance,
                                                                           echo_api: dict[str, Any]) -> None:
    """Attack and fidelity: %E9 (Latin-1) or %FF would be passed on changed (U+FFFD, or an escaped %), so two
    different requests became one (one cache entry): refused, naming the path or the parameter."""
    org = echo_api["org"]
    async with aiohttp.ClientSession() as s:
        for target, code, field in ((f"/{org}/echo/caf%E9", "invalid_path", "(path)"),
                                    (f"/{org}/echo?name=Caf%E9", "invalid_query", "query.name"),
                                    (f"/{org}/echo?sig=%00%FF", "invalid_query", "query.sig"),
                                    (f"/{org}/echo?%FF=x", "invalid_query", "query.\ufffd")):
            async with s.get(f"{ingress.url}{target}", skip_auto_headers=()) as r:
                body = await r.json()
                assert r.status == 400 and body["code"] == code, (target, body)
                assert [f["field"] for f in body["fields"]] == [field], (target, body)
        # UTF-8 escapes are text: served, and the upstream gets the text.
        async with s.get(f"{ingress.url}/{org}/echo?name=Caf%C3%A9&x=a%20b") as r:
            assert r.status == 200
            assert (await r.json())["query"] == {"name": "Café", "x": "a b"}
