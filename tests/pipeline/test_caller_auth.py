"""Caller authentication on the request path (issue 9, items 1 and 2): every mode end to end through
ingress, processors and egress to a real upstream; the consumer reaches the upstream and the script,
the credential never does; changes take effect on every instance within 2 s."""
from __future__ import annotations

import asyncio
import base64
import logging
import secrets
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import aiohttp
import pytest

from core.sealing import sealer_for
from core.settings import Settings
from tests.callerauth_support import (  # noqa: F401 - clear_ingress_blocks is a fixture
    basic_doc, clear_ingress_blocks, client_secret_pair, consumer_doc, issuer, new_key, publish_consumer, secure_api,
)
from tests.upstream_support import all_topic_bytes
from tests.support import IngressInstance, ProcessorsProcess, Stage

pytestmark = pytest.mark.usefixtures("clear_ingress_blocks")

PROPAGATION_S = 2.0


@dataclass
class Case:
    """One mode, staged: an API, a consumer, how a good and a bad request authenticate."""

    mode: str
    scheme: str
    staged: dict[str, Any]
    consumer: dict[str, Any]
    good: dict[str, Any]  # aiohttp request kwargs (headers / params)
    bad: dict[str, Any]
    secrets: list[str]  # every secret this case used, for the leak check


async def _token(ingress: IngressInstance, org: str, client_id: str, secret: str, scope: str | None = None) -> str:
    form = {"grant_type": "client_credentials", **({"scope": scope} if scope else {})}
    auth = aiohttp.BasicAuth(client_id, secret)
    async with aiohttp.ClientSession() as s, s.post(f"{ingress.url}/{org}/oauth/token", data=form, auth=auth) as r:
        body = await r.json()
        assert r.status == 200, body
        assert r.headers["Cache-Control"] == "no-store" and body["token_type"] == "Bearer"
        return str(body["access_token"])


async def stage_case(mode: str, stage: Stage, ingress: IngressInstance, upstream: str, settings: Settings,
                     jwks_url: str | None = None, sign: Callable[[str], str] | None = None, **api_extra: Any) -> Case:
    staged = await stage.api(upstream + "/echo")
    if mode in ("api_key", "api_key_query"):
        key, entry = new_key()
        consumer = consumer_doc(staged, keys=[entry])
        where = "query" if mode == "api_key_query" else "header"
        auth = {"mode": "api_key", "in": where, "name": "X-API-Key"}
        put = (lambda v: {"params": {"X-API-Key": v}}) if where == "query" else (lambda v: {"headers": {"X-API-Key": v}})
        good, bad, scheme, used = put(key), put(new_key()[0]), "ApiKey", [key]
    elif mode == "basic":
        password = secrets.token_urlsafe(12)
        consumer = consumer_doc(staged, basic=basic_doc("alice-" + secrets.token_hex(3), password))
        user = consumer["basic"]["username"]
        auth = {"mode": "basic"}
        good = {"auth": aiohttp.BasicAuth(user, password)}
        bad = {"auth": aiohttp.BasicAuth(user, password + "x")}
        scheme, used = "Basic", [password, base64.b64encode(f"{user}:{password}".encode()).decode()]
    elif mode == "jwt_secret":
        secret = secrets.token_urlsafe(32)
        consumer = consumer_doc(staged)
        sealed = sealer_for(settings).seal_json(secret, f"api-jwt:{staged['api']['id']}")
        auth = {"mode": "jwt", "secret_sealed": sealed, "algorithms": ["HS256"], "issuer": "https://idp.test", "audience": "orders"}
        import jwt as pyjwt

        now = int(time.time())
        claims = {"sub": consumer["id"], "iss": "https://idp.test", "aud": "orders", "iat": now, "exp": now + 300}
        token = pyjwt.encode(claims, secret, algorithm="HS256")
        good, bad = {"headers": {"Authorization": f"Bearer {token}"}}, {"headers": {"Authorization": f"Bearer {token[:-3]}AAA"}}
        scheme, used = "Bearer", [secret, token]
    elif mode == "jwt_jwks":
        assert jwks_url is not None and sign is not None
        consumer = consumer_doc(staged)
        auth = {"mode": "jwt", "jwks_url": jwks_url, "algorithms": ["RS256"], "audience": "orders"}
        token = sign(consumer["id"])
        good, bad = {"headers": {"Authorization": f"Bearer {token}"}}, {"headers": {"Authorization": f"Bearer {token[:-3]}AAA"}}
        scheme, used = "Bearer", [token]
    elif mode == "oauth2":
        client_id, secret, client = client_secret_pair(["orders:read", "orders:write"])
        consumer = consumer_doc(staged, clients=[client])
        auth = {"mode": "oauth2", "scopes": ["orders:read"]}
        good, bad, scheme, used = {}, {"headers": {"Authorization": "Bearer not.a.token"}}, "Bearer", [secret]
    else:
        raise AssertionError(mode)
    await publish_consumer(stage, consumer, ingress)
    staged = await secure_api(stage, upstream, {**auth, **api_extra}, ingress, staged=staged)
    if mode == "oauth2":
        token = await _token(ingress, staged["org"], client_id, secret, scope="orders:read")
        good = {"headers": {"Authorization": f"Bearer {token}"}}
        used.append(token)
    return Case(mode, scheme, staged, consumer, good, bad, used)


async def call(ingress: IngressInstance, case: Case, **kw: Any) -> tuple[int, dict[str, Any], Any]:
    async with aiohttp.ClientSession() as s:
        async with s.get(f"{ingress.url}/{case.staged['org']}/echo", **kw) as r:
            return r.status, dict(r.headers), await r.json(content_type=None)


MODES = ["api_key", "api_key_query", "basic", "jwt_secret", "jwt_jwks", "oauth2"]


async def _case(mode: str, stage: Stage, ingress: IngressInstance, upstream: str, settings: Settings, jwks: Any, **kw: Any) -> Case:
    sign = (lambda sub: jwks.token({"sub": sub, "aud": "orders"})) if jwks else None
    return await stage_case(mode, stage, ingress, upstream, settings, jwks.url if jwks else None, sign, **kw)


@pytest.mark.parametrize("mode", MODES)
async def test_each_mode_lets_in_exactly_the_valid_credential(mode: str, stage: Stage, ingress: IngressInstance,
                                                              upstream: str, settings: Settings) -> None:
    async with issuer() as jwks:
        case = await _case(mode, stage, ingress, upstream, settings, jwks)
        status, headers, body = await call(ingress, case, **case.good)
        assert status == 200, body
        # The upstream learns the consumer, in the configured header, and never sees the credential.
        assert body["headers"]["X-Consumer-Id"] == case.consumer["id"]
        assert "Authorization" not in body["headers"] and "X-API-Key" not in body["headers"]
        assert "X-API-Key" not in body["query"]

        status, headers, body = await call(ingress, case)
        assert status == 401 and body["code"] == "credential_missing"
        assert headers["WWW-Authenticate"].startswith(f"{case.scheme} realm=\"{case.staged['org']}\"")

        status, headers, body = await call(ingress, case, **case.bad)
        assert status == 401 and body["code"] == "invalid_credential", body
        assert headers["WWW-Authenticate"].startswith(case.scheme)


async def test_allow_list_disabled_consumer_and_scopes_give_403(stage: Stage, ingress: IngressInstance, upstream: str,
                                                                settings: Settings) -> None:
    case = await stage_case("api_key", stage, ingress, upstream, settings, consumers=["someone-else"])
    status, _, body = await call(ingress, case, **case.good)
    assert status == 403 and body["code"] == "consumer_not_allowed"

    case = await stage_case("api_key", stage, ingress, upstream, settings)
    await publish_consumer(stage, {**case.consumer, "enabled": False, "version": 2}, ingress)
    status, _, body = await call(ingress, case, **case.good)
    assert status == 403 and body["code"] == "consumer_disabled"

    # A valid token that lacks the scope the API now requires.
    case = await stage_case("oauth2", stage, ingress, upstream, settings)
    case.staged = await secure_api(stage, upstream, {"mode": "oauth2", "scopes": ["orders:admin"]}, ingress, staged=case.staged)
    status, headers, body = await call(ingress, case, **case.good)
    assert status == 403 and body["code"] == "insufficient_scope"
    assert 'error="insufficient_scope"' in headers["WWW-Authenticate"] and "orders:admin" in headers["WWW-Authenticate"]


async def test_the_script_sees_ctx_consumer_and_a_spoofed_consumer_header_is_replaced(
        stage: Stage, ingress: IngressInstance, upstream: str, settings: Settings) -> None:
    script = ("def transform_request(request, ctx):\n"
              "    request.headers['X-Ctx-Consumer'] = str(ctx.consumer)\n")
    staged = await stage.api(upstream + "/echo", script=script)
    key, entry = new_key()
    consumer = consumer_doc(staged, keys=[entry])
    await publish_consumer(stage, consumer, ingress)
    await secure_api(stage, upstream, {"mode": "api_key", "consumer_header": "X-Caller"}, ingress, staged=staged)
    async with aiohttp.ClientSession() as s:
        async with s.get(f"{ingress.url}/{staged['org']}/echo", headers={"X-API-Key": key, "X-Caller": "admin"}) as r:
            body = await r.json()
            assert r.status == 200, body
    assert body["headers"]["X-Ctx-Consumer"] == consumer["id"]
    assert body["headers"]["X-Caller"] == consumer["id"]


async def _until(probe: Callable[[], Awaitable[int]], want: int) -> float:
    """Seconds until ``probe`` answers ``want``; fails once the issue's 2 s have clearly passed."""
    started = time.monotonic()
    while True:
        got = await probe()
        if got == want:
            return time.monotonic() - started
        assert time.monotonic() - started < PROPAGATION_S, f"still {got} after {PROPAGATION_S}s, wanted {want}"
        await asyncio.sleep(0.02)


async def test_revoking_disabling_and_changing_auth_take_effect_on_every_instance(
        stage: Stage, ingress: IngressInstance, upstream: str, settings: Settings) -> None:
    second = IngressInstance(settings)
    await second.start()
    try:
        case = await stage_case("api_key", stage, ingress, upstream, settings)
        key_entry = case.consumer["keys"][0]
        other_key, other_entry = new_key()
        consumer = {**case.consumer, "keys": [key_entry, other_entry], "version": 2}
        await publish_consumer(stage, consumer, ingress, second)

        async def status_on(inst: IngressInstance, **kw: Any) -> int:
            return (await call(inst, case, **kw))[0]

        for inst in (ingress, second):
            assert await status_on(inst, **case.good) == 200
        # Revoke the first key.
        await stage.publish("consumer", {**consumer, "keys": [other_entry], "version": 3}, case.staged["org"])
        for inst in (ingress, second):
            await _until(lambda: status_on(inst, **case.good), 401)
            assert await status_on(inst, headers={"X-API-Key": other_key}) == 200
        # Disable the consumer.
        await stage.publish("consumer", {**consumer, "keys": [other_entry], "enabled": False, "version": 4}, case.staged["org"])
        for inst in (ingress, second):
            await _until(lambda: status_on(inst, headers={"X-API-Key": other_key}), 403)
        # Change the API's auth to none: open at once, everywhere.
        api = {**case.staged["api"], "auth": {"mode": "none"}, "version": int(case.staged["api"]["version"]) + 1}
        await stage.publish("api", api, case.staged["org"])
        for inst in (ingress, second):
            await _until(lambda: status_on(inst), 200)
    finally:
        await second.stop()


async def _all_topic_bytes(settings: Settings) -> bytes:
    """Every record of every topic of this run, keys, values and headers, raw."""
    t = settings.topics
    return await all_topic_bytes(settings, [t.requests, t.calls, t.replies, t.dlq, t.config])


async def test_no_credential_in_clear_on_any_topic_or_in_the_logs(stage: Stage, ingress: IngressInstance, upstream: str,
                                                                  settings: Settings, caplog: pytest.LogCaptureFixture,
                                                                  processors: ProcessorsProcess) -> None:
    caplog.set_level(logging.DEBUG)  # every record of this process (ingress, egress), whatever its level
    used: list[str] = []
    async with issuer() as jwks:
        for mode in MODES:
            case = await _case(mode, stage, ingress, upstream, settings, jwks)
            used += case.secrets
            for kw in (case.good, case.bad):
                await call(ingress, case, **kw)
        # A failing script dead-letters the call: the dead letter must not carry the credential either.
        staged = await stage.api(upstream + "/echo", script="def transform_request(request, ctx):\n    raise ValueError('no')\n")
        key, entry = new_key()
        await publish_consumer(stage, consumer_doc(staged, keys=[entry]), ingress)
        await secure_api(stage, upstream, {"mode": "api_key"}, ingress, staged=staged)
        async with aiohttp.ClientSession() as s, s.get(f"{ingress.url}/{staged['org']}/echo", headers={"X-API-Key": key}) as r:
            assert r.status == 502
        used.append(key)
    everything = await _all_topic_bytes(settings)
    logs = caplog.text.encode() + processors.log_file.read_bytes()  # this process's and the processors'
    assert everything, "nothing was read from the topics"
    for secret in used:
        assert secret.encode() not in everything, f"a credential of {len(secret)} chars is on a topic in clear"
        assert secret.encode() not in logs


async def test_a_token_request_whose_fields_are_not_strings_is_refused(stage: Stage, ingress: IngressInstance,
                                                                       upstream: str) -> None:
    """A scope sent as a JSON list was dropped, and asking for no scope is asking for all the client's: 400."""
    staged = await stage.api(upstream + "/echo")
    client_id, secret, client = client_secret_pair(["orders:read", "orders:write"])
    await publish_consumer(stage, consumer_doc(staged, clients=[client]), ingress)
    url = f"{ingress.url}/{staged['org']}/oauth/token"
    async with aiohttp.ClientSession() as s:
        for body, field in (({"scope": ["orders:read"]}, "scope"), ({"scope": 7}, "scope"),
                            ({"scope": "orders:read", "extra": {"a": 1}}, "extra")):
            payload = {"grant_type": "client_credentials", "client_id": client_id, "client_secret": secret, **body}
            async with s.post(url, json=payload) as r:
                answer = await r.json()
                assert r.status == 400 and answer["error"] == "invalid_request", answer
                assert [f["field"] for f in answer["fields"]] == [field], answer
        payload = {"grant_type": "client_credentials", "client_id": client_id, "client_secret": secret, "scope": "orders:read"}
        async with s.post(url, json=payload) as r:
            answer = await r.json()
            assert r.status == 200 and answer["scope"] == "orders:read", answer
