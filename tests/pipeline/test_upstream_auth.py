"""Upstream auth per connector (issue 10 item 4), through the real pipeline: connectors made through the
management API, calls through ingress, processors and egress to aiohttp upstreams on loopback that check
the credential they are given. Secrets must never show: not in the management API, not on a topic in
clear, not in a log, not to a connector script."""
from __future__ import annotations

import asyncio
import base64
import logging
import secrets
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import pytest
import pytest_asyncio
from aiohttp import web

from core.settings import Settings
from core.upstream_secrets import MASK
from tests.support import IngressInstance, ProcessorsProcess, serving
from tests.upstream_support import TestCA, all_topic_bytes, serving_tls

USED: list[str] = []  # every upstream secret this module configures: none may show anywhere


def _secret(prefix: str) -> str:
    value = f"{prefix}-{secrets.token_urlsafe(18)}"
    USED.append(value)
    return value


@dataclass
class Upstream:
    """An upstream that accepts only the credentials it is told, and an OAuth2 token endpoint."""

    base: str = ""
    expect: dict[str, Any] = field(default_factory=dict)  # path -> check(request) -> bool
    seen: list[dict[str, Any]] = field(default_factory=list)
    clients: dict[str, str] = field(default_factory=dict)  # client_id -> client_secret
    valid_tokens: set[str] = field(default_factory=set)
    token_requests: list[dict[str, Any]] = field(default_factory=list)
    expires_in: int | None = 3600
    answer: dict[str, int] = field(default_factory=dict)  # path -> a status to answer whatever is sent
    redirect: dict[str, str] = field(default_factory=dict)  # path -> where a 307 sends the caller

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/token", self._token)
        app.router.add_route("*", "/{path:.*}", self._call)
        return app

    async def _call(self, request: web.Request) -> web.Response:
        path = request.match_info["path"]
        self.seen.append({"path": path, "headers": dict(request.headers), "query": list(request.query.items())})
        if path in self.redirect:
            raise web.HTTPTemporaryRedirect(self.redirect[path])
        if path in self.answer:
            return web.json_response({"ok": False}, status=self.answer[path])
        check = self.expect.get(path)
        ok = check is not None and check(request)
        return web.json_response({"ok": ok}, status=200 if ok else 401)

    async def _token(self, request: web.Request) -> web.Response:
        form = await request.post()
        header = request.headers.get("Authorization", "")
        if header.startswith("Basic "):
            client_id, _, secret = base64.b64decode(header[6:]).decode().partition(":")
        else:
            client_id, secret = str(form.get("client_id", "")), str(form.get("client_secret", ""))
        self.token_requests.append({"client_id": client_id, "form": dict(form), "basic": bool(header)})
        if form.get("grant_type") != "client_credentials" or self.clients.get(client_id) != secret:
            return web.json_response({"error": "invalid_client"}, status=401)
        token = f"at-{uuid.uuid4().hex}"
        self.valid_tokens.add(token)
        answer: dict[str, Any] = {"access_token": token, "token_type": "Bearer"}
        if self.expires_in is not None:
            answer["expires_in"] = self.expires_in
        return web.json_response(answer)

    def seen_on(self, path: str) -> list[dict[str, Any]]:
        return [s for s in self.seen if s["path"] == path]


@pytest_asyncio.fixture(loop_scope="session")
async def checker() -> AsyncIterator[Upstream]:
    upstream = Upstream()
    async with serving(upstream.app()) as url:
        upstream.base = url
        yield upstream


async def _call(ingress: IngressInstance, org: str, path: str, *, headers: dict[str, str] | None = None,
                query: str = "") -> tuple[int, Any]:
    """A call through the pipeline, once the API is served (it was made a moment ago)."""
    until = time.monotonic() + 15
    async with aiohttp.ClientSession() as s:
        while True:
            async with s.get(f"{ingress.url}/{org}{path}{query}", headers=headers or {}) as r:
                body = await r.json(content_type=None)
            if not (r.status == 404 and isinstance(body, dict) and body.get("code") in ("route_not_found", "org_not_found")):
                return r.status, body
            assert time.monotonic() < until, f"{path} was never served"
            await asyncio.sleep(0.05)


async def _connector_api(control: Any, org: str, target: dict[str, Any], *, script: str | None = None) -> tuple[dict[str, Any], str]:
    """A connector (no retries: failures answer at once) and a GET API on it; the connector as created, and the API's path."""
    conn = await control.new_connector(org, target=target, script=script, retry={"attempts": 1})
    path = f"/u{uuid.uuid4().hex[:8]}"
    await control.new_api(org, conn["id"], path=path, methods=["GET"])
    return conn, path


def _basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


async def test_api_key_in_a_header_or_the_query_reaches_the_upstream_instead_of_the_callers_credential(
    control: Any, ingress: IngressInstance, checker: Upstream
) -> None:
    org = (await control.new_org("upk"))["slug"]
    key = _secret("key")
    checker.expect["hkey"] = lambda r: r.headers.get("X-Api-Key") == key
    checker.expect["qkey"] = lambda r: r.query.getall("api_key", []) == [key]
    _, in_header = await _connector_api(control, org, {
        "protocol": "rest", "url": checker.base + "/hkey", "headers": {"X-Tenant": "acme"},
        "auth": {"type": "api_key", "in": "header", "name": "X-Api-Key", "value": key}})
    _, in_query = await _connector_api(control, org, {
        "protocol": "rest", "url": checker.base + "/qkey", "auth": {"type": "api_key", "in": "query", "name": "api_key", "value": key}})

    status, body = await _call(ingress, org, in_header, headers={"Authorization": "Bearer caller-own", "X-Api-Key": "forged"})
    assert (status, body) == (200, {"ok": True})
    [seen] = checker.seen_on("hkey")
    assert seen["headers"]["X-Tenant"] == "acme"  # target.headers are sent
    assert "Authorization" not in seen["headers"]  # the caller's own credential is not passed on

    status, body = await _call(ingress, org, in_query, query="?api_key=forged&page=2", headers={"Authorization": "Basic eDp5"})
    assert (status, body) == (200, {"ok": True})
    [seen] = checker.seen_on("qkey")
    assert ("page", "2") in seen["query"] and "Authorization" not in seen["headers"]


async def test_basic_and_bearer_reach_the_upstream(control: Any, ingress: IngressInstance, checker: Upstream) -> None:
    org = (await control.new_org("upb"))["slug"]
    password, token = _secret("pw"), _secret("bearer")
    checker.expect["basic"] = lambda r: r.headers.get("Authorization") == _basic("svc-user", password)
    checker.expect["bearer"] = lambda r: r.headers.get("Authorization") == f"Bearer {token}"
    _, basic = await _connector_api(control, org, {"protocol": "rest", "url": checker.base + "/basic",
                                                   "auth": {"type": "basic", "username": "svc-user", "password": password}})
    _, bearer = await _connector_api(control, org, {"protocol": "rest", "url": checker.base + "/bearer",
                                                    "auth": {"type": "bearer", "token": token}})
    assert await _call(ingress, org, basic, headers={"Authorization": "Bearer caller-own"}) == (200, {"ok": True})
    assert await _call(ingress, org, bearer) == (200, {"ok": True})
    assert [s["headers"]["Authorization"] for s in checker.seen_on("bearer")] == [f"Bearer {token}"]


async def test_oauth2_tokens_are_cached_fetched_again_after_expiry_and_refreshed_once_on_a_401(
    control: Any, ingress: IngressInstance, checker: Upstream
) -> None:
    org = (await control.new_org("upo"))["slug"]
    client_secret = _secret("cs")
    checker.clients["svc-client"] = client_secret
    checker.expect["oauth"] = lambda r: r.headers.get("Authorization", "").removeprefix("Bearer ") in checker.valid_tokens
    _, path = await _connector_api(control, org, {
        "protocol": "rest", "url": checker.base + "/oauth",
        "auth": {"type": "oauth2_client_credentials", "token_url": checker.base + "/token", "client_id": "svc-client",
                 "client_secret": client_secret, "scopes": ["orders:read", "orders:write"], "audience": "https://api.example"}})
    checker.expires_in = 2
    for _ in range(3):
        assert await _call(ingress, org, path) == (200, {"ok": True})
    assert len(checker.token_requests) == 1, "a token is reused until it expires"
    first = checker.token_requests[0]
    assert first["basic"] and first["form"] == {"grant_type": "client_credentials", "scope": "orders:read orders:write",
                                                "audience": "https://api.example"}  # client_secret_basic: no secret in the form

    await asyncio.sleep(2.1)  # expires_in 2 s: cached 1.8 s (10 % margin)
    assert await _call(ingress, org, path) == (200, {"ok": True})
    assert len(checker.token_requests) == 2, "an expired token is fetched again"

    # The upstream revokes the token: the 401 makes egress fetch a new one and call once more.
    checker.valid_tokens.clear()
    before = len(checker.seen_on("oauth"))
    assert await _call(ingress, org, path) == (200, {"ok": True})
    assert len(checker.token_requests) == 3 and len(checker.seen_on("oauth")) == before + 2

    # A new token refused too: the caller gets the 401, after exactly one refresh (no loop).
    checker.expect["oauth"] = lambda r: False
    before = len(checker.seen_on("oauth"))
    assert await _call(ingress, org, path) == (401, {"ok": False})
    assert len(checker.token_requests) == 4 and len(checker.seen_on("oauth")) == before + 2


async def test_oauth2_client_secret_post_and_a_refusing_token_endpoint(
    control: Any, ingress: IngressInstance, checker: Upstream
) -> None:
    org = (await control.new_org("upp"))["slug"]
    client_secret = _secret("cs-post")
    checker.clients["post-client"] = client_secret
    checker.expect["oauth-post"] = lambda r: r.headers.get("Authorization", "").removeprefix("Bearer ") in checker.valid_tokens
    auth = {"type": "oauth2_client_credentials", "token_url": checker.base + "/token", "client_id": "post-client",
            "client_secret": client_secret, "client_auth": "post"}
    _, path = await _connector_api(control, org, {"protocol": "rest", "url": checker.base + "/oauth-post", "auth": auth})
    assert await _call(ingress, org, path) == (200, {"ok": True})
    assert checker.token_requests[-1]["form"]["client_secret"] == client_secret and not checker.token_requests[-1]["basic"]
    wrong = _secret("cs-wrong")
    _, refused = await _connector_api(control, org, {"protocol": "rest", "url": checker.base + "/oauth-post",
                                                     "auth": {**auth, "client_secret": wrong}})
    status, body = await _call(ingress, org, refused)
    assert status == 502 and body["code"] == "upstream_token_failed"
    assert "invalid_client" in body["message"] and wrong not in body["message"]


async def test_mutual_tls_with_the_connectors_ca_bundle(control: Any, ingress: IngressInstance) -> None:
    ca, other = TestCA(), TestCA("Another CA")
    client = ca.issue("junction-egress", server=False)
    USED.append(client.key_pem.splitlines()[1])  # a line of the key: enough to find it anywhere

    async def hello(request: web.Request) -> web.Response:
        peer = request.transport.get_extra_info("peercert") if request.transport else None
        subject = dict(x[0] for x in (peer or {}).get("subject", ()))
        return web.json_response({"client": subject.get("commonName")})

    app = web.Application()
    app.router.add_get("/mtls", hello)
    async with serving_tls(app, ca.server_context(ca.issue("localhost", server=True))) as url:
        org = (await control.new_org("upt"))["slug"]
        full = {"client_cert": client.cert_pem, "client_key": client.key_pem, "ca_bundle": ca.pem, "verify": True}
        _, ok = await _connector_api(control, org, {"protocol": "rest", "url": url + "/mtls", "tls": full})
        assert await _call(ingress, org, ok) == (200, {"client": "junction-egress"})

        # No client certificate: the upstream refuses the connection.
        _, no_cert = await _connector_api(control, org, {"protocol": "rest", "url": url + "/mtls", "tls": {"ca_bundle": ca.pem}})
        status, body = await _call(ingress, org, no_cert)
        assert status == 502 and body["code"] in ("upstream_unreachable", "upstream_tls_error"), body
        # The upstream's certificate is not of the connector's CA: refused before anything is sent.
        _, wrong_ca = await _connector_api(control, org, {"protocol": "rest", "url": url + "/mtls",
                                                          "tls": {**full, "ca_bundle": other.pem}})
        status, body = await _call(ingress, org, wrong_ca)
        assert (status, body["code"]) == (502, "upstream_tls_error"), body
        # Without a ca_bundle the system's CAs apply, which do not know the test CA either.
        _, system = await _connector_api(control, org, {"protocol": "rest", "url": url + "/mtls",
                                                        "tls": {"client_cert": client.cert_pem, "client_key": client.key_pem}})
        status, body = await _call(ingress, org, system)
        assert (status, body["code"]) == (502, "upstream_tls_error"), body


async def test_validation_names_the_field_at_fault(control: Any) -> None:
    org = (await control.new_org("upv"))["slug"]
    ca = TestCA()
    mine, theirs = ca.issue("a", server=False), ca.issue("b", server=False)
    base = {"protocol": "rest", "url": "https://api.example/v1"}
    cases = [
        ({"auth": {"type": "bearer", "token": "t", "username": "u"}}, "target.auth.username"),
        ({"auth": {"type": "basic", "username": "u"}}, "target.auth.password"),
        ({"auth": {"type": "basic", "username": "a:b", "password": "p"}}, "target.auth.username"),
        ({"auth": {"type": "api_key", "name": "X-Key"}}, "target.auth.value"),
        ({"auth": {"type": "bearer", "token": "a\r\nX-Injected: 1"}}, "target.auth.token"),
        ({"auth": {"type": "oauth2_client_credentials", "token_url": "ftp://idp/token", "client_id": "c",
                   "client_secret": "s"}}, "target.auth.token_url"),
        ({"auth": {"type": "bearer", "token": MASK}}, "target.auth.token"),  # a mask with nothing stored to keep
        ({"auth": {"type": "bearer", "token": "t"}, "headers": {"authorization": "x"}}, "target.headers.authorization"),
        ({"tls": {"ca_bundle": ca.pem, "verify": False}}, "target.tls.verify"),
        ({"tls": {"ca_bundle": "not a pem"}}, "target.tls.ca_bundle"),
        ({"tls": {"client_cert": mine.cert_pem}}, "target.tls.client_key"),
        ({"tls": {"client_cert": mine.cert_pem, "client_key": theirs.key_pem}}, "target.tls.client_key"),
        ({"tls": {"client_cert": "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
                  "client_key": mine.key_pem}}, "target.tls.client_cert"),
        ({"url": "http://api.example/v1", "tls": {"ca_bundle": ca.pem}}, "target.tls"),
        ({"protocol": "soap", "operation": "Op", "auth": {"type": "bearer", "token": "t"}}, "target.auth"),
    ]
    for extra, field_name in cases:
        r = await control.call("POST", f"/api/v1/orgs/{org}/connectors", control.admin_token,
                               {"name": f"v-{uuid.uuid4().hex[:8]}", "target": {**base, **extra}})
        assert r.status == 422, (extra, r.body)
        assert field_name in [f["field"] for f in r.body["fields"]], (extra, r.body)


async def test_the_management_api_shows_masks_only(control: Any) -> None:
    org = (await control.new_org("upm"))["slug"]
    token, key, new_token = _secret("m-token"), TestCA().issue("c", server=False), _secret("m-token2")
    USED.append(key.key_pem.splitlines()[1])
    target = {"protocol": "rest", "url": "https://api.example/v1", "auth": {"type": "bearer", "token": token},
              "tls": {"client_cert": key.cert_pem, "client_key": key.key_pem}}
    conn = await control.new_connector(org, target=target)
    cid = conn["id"]
    assert conn["target"]["auth"] == {"type": "bearer", "token": MASK}
    assert conn["target"]["tls"]["client_key"] == MASK and conn["target"]["tls"]["client_cert"] == key.cert_pem
    assert "secrets_sealed" not in conn["target"]
    base = f"/api/v1/orgs/{org}/connectors/{cid}"

    # Saving what a read showed keeps the secrets, and writes no version.
    r = await control.call("PUT", base, control.admin_token, {k: conn[k] for k in ("name", "target", "script", "settings")})
    assert r.status == 200 and r.body["version"] == 1
    # A new secret is a new version; its diff shows only that a secret changed.
    r = await control.call("PATCH", base, control.admin_token, {"target": {"auth": {"type": "bearer", "token": new_token}}})
    assert r.status == 200 and r.body["version"] == 2, r.body
    r = await control.call("GET", base + "/versions/1/diff/2", control.admin_token)
    assert r.status == 200
    assert [c["field"] for c in r.body["changes"]] == ["target.secrets_sealed"]
    assert r.body["changes"][0]["before"] == MASK and r.body["changes"][0]["after"] == MASK
    # Sending the mask back for a token with nothing else changed: still version 2.
    r = await control.call("PATCH", base, control.admin_token, {"target": {"auth": {"type": "bearer", "token": MASK}}})
    assert r.status == 200 and r.body["version"] == 2

    # A rollback brings the old secret back (its version's sealed blob), still masked.
    r = await control.call("POST", base + "/rollback", control.admin_token, {"version": 1})
    assert r.status == 200 and r.body["version"] == 3 and r.body["target"]["auth"]["token"] == MASK
    r = await control.call("GET", base + "/versions/2/diff/3", control.admin_token)
    assert [c["field"] for c in r.body["changes"]] == ["target.secrets_sealed"]

    viewer = (await control.new_user(org, "org_viewer"))[1]
    reads = [await control.call("GET", path, token_) for token_ in (control.admin_token, viewer) for path in (
        base, f"/api/v1/orgs/{org}/connectors", base + "/versions", base + "/versions/1", base + "/versions/2",
        base + "/versions/3", base + "/diff?from=1&to=2", f"/api/v1/audit?org={org}&resource_type=connector")]
    r = await control.call("POST", base + "/test", control.admin_token,
                           {"script": "def transform_request(request, ctx):\n    request.headers['x'] = repr(ctx.settings)\n"})
    reads.append(r)
    await control.watch.wait_for(lambda: (control.watch.document("connector", cid) or {}).get("version") == 3)
    blob = control.watch.document("connector", cid)["target"]["secrets_sealed"]  # the config document carries them sealed
    for read in reads:
        assert read.status == 200, read.body
        text = str(read.body)
        for secret in (token, new_token, key.key_pem.splitlines()[1], blob):
            assert secret not in text
    assert str(reads[0].body).count(MASK) >= 2
    # The wrong role cannot change them, nor another organisation's admin.
    r = await control.call("PATCH", base, viewer, {"target": {"auth": {"type": "bearer", "token": "x" * 20}}})
    assert r.status == 403
    other = (await control.new_org("upm2"))["slug"]
    other_admin = (await control.new_user(other, "org_admin"))[1]
    for method, body in (("GET", None), ("PATCH", {"target": {"auth": None}})):
        r = await control.call(method, base, other_admin, body)
        assert r.status in (403, 404), r.body
    assert control.watch.document("connector", cid)["target"]["auth"]["token"] == MASK


ATTACK = '''
def transform_request(request, ctx):
    request.headers["X-Dump"] = repr(dict(ctx.settings)) + repr(list(request.headers.items()))
    if request.query.get("away"):
        request.url = ctx.settings["elsewhere"]
'''


async def test_a_script_cannot_see_or_send_away_the_upstream_secrets(
    control: Any, ingress: IngressInstance, checker: Upstream
) -> None:
    token = _secret("atk")
    checker.expect["attacked"] = lambda r: r.headers.get("Authorization") == f"Bearer {token}"
    thief = Upstream()
    async with serving(thief.app()) as thief_url:
        org = (await control.new_org("upa"))["slug"]
        conn = await control.new_connector(org, target={"protocol": "rest", "url": checker.base + "/attacked",
                                                        "auth": {"type": "bearer", "token": token}},
                                           script=ATTACK, settings={"elsewhere": thief_url + "/steal"}, retry={"attempts": 1})
        path = f"/a{uuid.uuid4().hex[:8]}"
        await control.new_api(org, conn["id"], path=path, methods=["GET"])
        # The script ran and dumped all it could see: the upstream got its credential from egress, not from it.
        assert await _call(ingress, org, path) == (200, {"ok": True})
        [seen] = checker.seen_on("attacked")
        assert token not in seen["headers"]["X-Dump"] and "Bearer" not in seen["headers"]["X-Dump"]
        # Sending the call (and so the credential) to another origin is refused: the thief sees nothing.
        status, body = await _call(ingress, org, path, query="?away=1")
        assert (status, body["code"]) == (502, "upstream_auth_origin_mismatch")
        assert thief.seen == []

        # An upstream redirecting elsewhere (followed, as the connector allows) does not take the key along.
        key = _secret("hop")
        checker.redirect["hop"] = thief_url + "/landed"
        _, hop = await _connector_api(control, org, {"protocol": "rest", "url": checker.base + "/hop", "follow_redirects": True,
                                                     "auth": {"type": "api_key", "name": "X-Api-Key", "value": key}})
        status, _ = await _call(ingress, org, hop)
        [landed] = thief.seen_on("landed")
        assert checker.seen_on("hop")[0]["headers"]["X-Api-Key"] == key
        assert "X-Api-Key" not in landed["headers"] and "Authorization" not in landed["headers"]


async def test_no_upstream_secret_in_clear_on_a_topic_or_in_a_log(
    control: Any, ingress: IngressInstance, checker: Upstream, settings: Settings,
    processors: ProcessorsProcess, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)  # every record of this process (ingress, egress), whatever its level
    org = (await control.new_org("ups"))["slug"]
    password, key, client_secret = _secret("s-pw"), _secret("s-key"), _secret("s-cs")
    checker.clients["scan-client"] = client_secret
    checker.answer["down"] = 503  # retries exhausted: a dead letter
    oauth = {"type": "oauth2_client_credentials", "token_url": checker.base + "/token", "client_id": "scan-client",
             "client_secret": client_secret}
    failing = [
        {"url": checker.base + "/down", "auth": {"type": "basic", "username": "scan", "password": password}},
        {"url": checker.base + "/down", "auth": {"type": "api_key", "name": "X-Key", "value": key}},
        {"url": checker.base + "/down", "auth": oauth},
        {"url": checker.base + "/down", "auth": {**oauth, "client_secret": _secret("s-wrong")}},  # the token is refused
    ]
    for target in failing:
        _, path = await _connector_api(control, org, {"protocol": "rest", **target})
        status, body = await _call(ingress, org, path)
        assert status in (502, 503), body
    t = settings.topics
    everything = await all_topic_bytes(settings, [t.requests, t.calls, t.replies, t.dlq, t.config])
    dead_letters = await all_topic_bytes(settings, [t.dlq])
    assert b"upstream_token_failed" in dead_letters and b"upstream_unavailable" in dead_letters
    assert b"secrets_sealed" in everything  # the config topic carries them, sealed
    logs = caplog.text.encode() + processors.log_file.read_bytes()
    for secret in USED:
        assert secret.encode() not in everything, f"an upstream secret of {len(secret)} chars is on a topic in clear"
        assert secret.encode() not in logs, f"an upstream secret of {len(secret)} chars is in a log"
