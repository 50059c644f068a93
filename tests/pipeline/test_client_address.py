"""The caller's address, end to end: an API's ``ip_restriction`` (deny wins, allow admits only its own), the
X-Forwarded-* headers an upstream gets (a caller's own claims replaced, a trusted proxy's chain extended, none
at all when turned off), and, behind a trusted proxy, limits and rules by the address the proxy saw, while a
hop the deployment does not trust cannot pass for one."""
from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
import pytest_asyncio
from aiohttp import web

from core.settings import InvalidConfiguration, Settings
from ingress.app import create_app
from tests.control_support import assert_api_field_refused
from tests.support import IngressInstance, serving_handler, wait_until


class Recording:
    def __init__(self) -> None:
        self.url = ""
        self.seen: dict[str, list[tuple[str, str]]] = {}  # ?t= -> the headers of its call


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def recording() -> AsyncIterator[Recording]:
    found = Recording()

    async def handle(request: web.Request) -> web.Response:
        found.seen[request.query.get("t", "")] = list(request.headers.items())
        return web.json_response({"ok": True})

    async with serving_handler(handle) as url:
        found.url = url
        yield found


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def behind_proxy(settings: Settings) -> AsyncIterator[IngressInstance]:
    """An ingress whose load balancer is this host: 127.0.0.1's X-Forwarded-For is believed."""
    instance = IngressInstance(settings.with_overrides(ingress_trusted_proxies="127.0.0.1, 10.0.0.0/8"))
    await instance.start()
    yield instance
    await instance.stop()


async def _api(control: Any, upstream: Recording, *instances: IngressInstance, **fields: Any) -> tuple[str, dict[str, Any]]:
    org = (await control.new_org("addr"))["slug"]
    conn = await control.new_connector(org, target={"protocol": "rest", "url": upstream.url + "/up", "method": "*"})
    api = await control.new_api(org, conn["id"], path="/a", **fields)
    await wait_until(lambda: all((i.snapshot.version_of("api", api["id"]) or 0) >= api["version"] for i in instances))
    return org, api


async def _get(base: str, org: str, tag: str, headers: dict[str, str] | None = None) -> tuple[int, Any]:
    async with aiohttp.ClientSession() as s, s.get(f"{base}/{org}/a", params={"t": tag}, headers=headers or {}) as r:
        return r.status, await r.json(content_type=None)


def _values(headers: list[tuple[str, str]], name: str) -> list[str]:
    return [v for k, v in headers if k.lower() == name.lower()]


async def test_an_ip_restriction_admits_only_its_addresses_and_deny_wins(control: Any, ingress: IngressInstance,
                                                                          recording: Recording) -> None:
    org, api = await _api(control, recording, ingress, ip_restriction={"allow": ["10.0.0.0/8", "2001:db8::/32"]})
    tag = uuid.uuid4().hex
    status, body = await _get(ingress.url, org, tag)
    assert status == 403 and body["code"] == "ip_not_allowed" and "127.0.0.1" in body["message"], body
    assert [f["field"] for f in body["fields"]] == ["(address)"]
    assert tag not in recording.seen  # nothing went upstream
    # A caller's own X-Forwarded-For is no way in: this ingress trusts no proxy.
    status, body = await _get(ingress.url, org, tag, {"X-Forwarded-For": "10.1.2.3"})
    assert status == 403 and tag not in recording.seen, body
    path = f"/api/v1/orgs/{org}/apis/{api['id']}"
    for rule, expected in (({"allow": ["127.0.0.0/8"], "deny": ["127.0.0.1"]}, 403),
                           ({"deny": ["127.0.0.2/32", "::1"]}, 200),
                           ({"allow": ["127.0.0.0/8"]}, 200),
                           (None, 200)):
        r = await control.call("PATCH", path, control.admin_token, {"ip_restriction": rule})
        assert r.status == 200 and r.body["ip_restriction"] == rule, r.body
        await wait_until(lambda: (ingress.snapshot.version_of("api", api["id"]) or 0) >= r.body["version"])
        status, body = await _get(ingress.url, org, uuid.uuid4().hex)
        assert status == expected, (rule, body)


async def test_an_upstream_gets_what_ingress_saw_not_what_the_caller_claims(control: Any, ingress: IngressInstance,
                                                                           recording: Recording) -> None:
    org, _ = await _api(control, recording, ingress)
    tag = uuid.uuid4().hex
    status, _ = await _get(ingress.url, org, tag, {"X-Forwarded-For": "6.6.6.6", "X-Real-IP": "6.6.6.6",
                                                   "Forwarded": "for=6.6.6.6", "X-Forwarded-Host": "evil.example",
                                                   "X-Forwarded-Proto": "https", "X-Forwarded-Port": "443"})
    assert status == 200
    seen = recording.seen[tag]
    assert _values(seen, "X-Forwarded-For") == ["127.0.0.1"]
    assert _values(seen, "X-Forwarded-Proto") == ["http"]
    assert _values(seen, "X-Forwarded-Host") == [f"127.0.0.1:{ingress.port}"]
    assert not _values(seen, "X-Real-IP") and not _values(seen, "Forwarded") and not _values(seen, "X-Forwarded-Port")
    # HTTP/1.0 with no Host: no X-Forwarded-Host (and no look-up of this machine's name on the event loop).
    tag = uuid.uuid4().hex
    reader, writer = await asyncio.open_connection("127.0.0.1", ingress.port)
    writer.write(f"GET /{org}/a?t={tag} HTTP/1.0\r\n\r\n".encode())
    status_line = (await asyncio.wait_for(reader.readline(), 30)).decode()
    writer.close()
    await writer.wait_closed()
    assert " 200 " in status_line, status_line
    assert _values(recording.seen[tag], "X-Forwarded-For") == ["127.0.0.1"]
    assert not _values(recording.seen[tag], "X-Forwarded-Host")


async def test_behind_a_trusted_proxy_the_address_it_saw_is_the_callers(control: Any, ingress: IngressInstance,
                                                                        behind_proxy: IngressInstance,
                                                                        recording: Recording) -> None:
    org, _ = await _api(control, recording, ingress, behind_proxy, ip_restriction={"allow": ["203.0.113.0/24"]},
                        rate_limit={"requests": 1, "per_seconds": 60, "by": "ip"})
    tag = uuid.uuid4().hex
    client = {"X-Forwarded-For": "203.0.113.9", "X-Forwarded-Proto": "https", "X-Forwarded-Host": "api.example.com"}
    status, body = await _get(behind_proxy.url, org, tag, client)
    assert status == 200, body
    seen = recording.seen[tag]
    assert _values(seen, "X-Forwarded-For") == ["203.0.113.9, 127.0.0.1"]  # the chain, extended by this hop
    assert _values(seen, "X-Forwarded-Proto") == ["https"] and _values(seen, "X-Forwarded-Host") == ["api.example.com"]
    # The same claim to the ingress that trusts no proxy is refused: there the caller is 127.0.0.1.
    status, body = await _get(ingress.url, org, uuid.uuid4().hex, client)
    assert status == 403 and body["code"] == "ip_not_allowed", body
    # The limit is per address the proxy saw: this caller's one call is spent, another caller's is not.
    status, body = await _get(behind_proxy.url, org, uuid.uuid4().hex, client)
    assert status == 429 and body["code"] == "rate_limited", body
    status, body = await _get(behind_proxy.url, org, uuid.uuid4().hex, {"X-Forwarded-For": "203.0.113.10"})
    assert status == 200, body
    # Hops are read from the right past trusted ones: a caller's made-up hop before an untrusted one is not
    # believed, so 198.51.100.7 (outside the allow list) is the caller here, not 203.0.113.50.
    status, body = await _get(behind_proxy.url, org, uuid.uuid4().hex,
                              {"X-Forwarded-For": "203.0.113.50, 198.51.100.7, 10.2.3.4"})
    assert status == 403 and "198.51.100.7" in body["message"], body


def test_a_bad_trusted_proxy_entry_fails_at_start_up(settings: Settings) -> None:
    with pytest.raises(InvalidConfiguration, match="JUNCTION_INGRESS_TRUSTED_PROXIES: .*lb.internal"):
        create_app(settings.with_overrides(ingress_trusted_proxies="10.0.0.0/8, lb.internal"))


async def test_forwarding_headers_can_be_turned_off(settings: Settings, control: Any, recording: Recording) -> None:
    quiet = IngressInstance(settings.with_overrides(forwarded_headers=False))
    await quiet.start()
    try:
        org, _ = await _api(control, recording, quiet)
        tag = uuid.uuid4().hex
        status, _ = await _get(quiet.url, org, tag, {"X-Forwarded-For": "6.6.6.6", "X-Real-IP": "6.6.6.6"})
        assert status == 200
        assert not [k for k, _ in recording.seen[tag] if k.lower() in ("x-forwarded-for", "x-real-ip", "x-forwarded-host")]
    finally:
        await quiet.stop()


async def test_control_refuses_entries_that_are_not_networks(control: Any) -> None:
    org = (await control.new_org("addrv"))["slug"]
    await assert_api_field_refused(control, org, "ip_restriction", [
        ({"allow": ["10.0.0.1/8"]}, "ip_restriction.allow[0]", "host bits set: 10.0.0.0/8"),
        ({"deny": ["127.0.0.1", "localhost"]}, "ip_restriction.deny[1]", "not an address or network"),
        ({"allow": ["10.0.0.0/33"]}, "ip_restriction.allow[0]", "not an address or network"),
        ({}, "ip_restriction", "needs allow or deny"),
        ({"allow": [], "deny": []}, "ip_restriction", "needs allow or deny"),
        ({"allow": ["10.0.0.0/8"], "block": ["1.2.3.4"]}, "ip_restriction.block", "unknown field"),
    ])


@pytest.mark.usefixtures("processors", "egress")
async def test_a_blocked_credential_is_refused_only_where_it_failed(control: Any, behind_proxy: IngressInstance,
                                                                   recording: Recording) -> None:
    """Whoever knows a consumer's key prefix (or username) cannot lock the consumer out by failing on purpose
    from many addresses: the block holds against the addresses that failed, and a new one gets one try."""
    org, api = await _api(control, recording, behind_proxy, auth={"mode": "api_key"})
    r = await control.call("POST", f"/api/v1/orgs/{org}/consumers", control.admin_token, {"name": "partner"})
    k = await control.call("POST", f"/api/v1/orgs/{org}/consumers/{r.body['id']}/keys", control.admin_token, {})
    key = k.body["key"]
    now = await control.call("GET", f"/api/v1/orgs/{org}/consumers/{r.body['id']}", control.admin_token)
    await wait_until(lambda: behind_proxy.snapshot.version_of("consumer", r.body["id"]) == now.body["version"])
    net = f"198.18.{uuid.uuid4().int % 250}"  # addresses of this test alone (counts are per address too)
    wrong = key[:10] + "x" * (len(key) - 10)  # the same credential (its first 10 characters), a wrong secret
    for i in range(10):
        status, body = await _get(behind_proxy.url, org, uuid.uuid4().hex, {"X-API-Key": wrong, "X-Forwarded-For": f"{net}.{i}"})
        assert status == 401, body
    # The credential is blocked: against an address that failed for it, even with the right key.
    status, body = await _get(behind_proxy.url, org, uuid.uuid4().hex, {"X-API-Key": key, "X-Forwarded-For": f"{net}.3"})
    assert status == 429 and body["code"] == "source_blocked", body
    # Its owner, from its own address, is served.
    status, body = await _get(behind_proxy.url, org, uuid.uuid4().hex, {"X-API-Key": key, "X-Forwarded-For": f"{net}.200"})
    assert status == 200, body
    # A guesser at a new address: one try, then refused there too.
    for expected in (401, 429):
        status, body = await _get(behind_proxy.url, org, uuid.uuid4().hex, {"X-API-Key": wrong, "X-Forwarded-For": f"{net}.201"})
        assert status == expected, body
