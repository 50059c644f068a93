"""Connector scripts on the request path: REST-to-SOAP, failures, hot reload."""
from __future__ import annotations

import asyncio
import time
import uuid
from typing import Any

import aiohttp
import asyncpg
import pytest_asyncio
from aiokafka import TopicPartition

from control.migrate import apply_migrations
from control.observe import ObserveService
from core.db import make_pool
from core.kafka import make_consumer
from core.settings import Settings
from schemas import decode
from tests.support import IngressInstance, Stage, wait_until

REST_TO_SOAP = '''
def transform_request(request, ctx):
    request.set_json({"orderId": request.path_params["id"]})

def transform_response(response, ctx):
    result = response.json()
    response.set_json({"id": result["orderId"], "state": result["status"].upper(), "amount": float(result["total"]),
                       "via": ctx.api})
'''

FAILING = '''
def transform_request(request, ctx):
    ctx.log("about to divide")
    return 1 / 0
'''

LOOPING = '''
def transform_request(request, ctx):
    while True:
        pass
'''


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def db(settings: Settings) -> asyncpg.Pool:
    pool = await make_pool(settings)
    await apply_migrations(pool)
    yield pool
    await pool.close()


async def test_rest_to_soap_through_scripts(ingress: IngressInstance, stage: Stage, soap_upstream: str) -> None:
    staged = await stage.api("", path="/orders/{id}", methods=["GET"], script=REST_TO_SOAP,
                             target={"protocol": "soap", "url": soap_upstream, "operation": "GetOrderStatus"})
    await wait_until(lambda: staged["api"]["id"] in ingress.snapshot.apis)
    async with aiohttp.ClientSession() as s:
        async with s.get(f"{ingress.url}/{staged['org']}/orders/A-42") as r:
            assert r.status == 200, await r.text()
            got = await r.json()
    assert got["id"] == "A-42"
    assert got["state"] in ("SHIPPED", "PROCESSING")
    assert isinstance(got["amount"], float)
    assert got["via"] == "a"


async def test_a_failing_script_is_a_502_with_a_dead_letter_and_a_request_log_row(
    settings: Settings, db: asyncpg.Pool, ingress: IngressInstance, stage: Stage, upstream: str, observe: ObserveService
) -> None:
    staged = await stage.api(upstream + "/echo", script=FAILING)
    staged_ok = await stage.api(upstream + "/echo")
    await wait_until(lambda: staged["api"]["id"] in ingress.snapshot.apis and staged_ok["api"]["id"] in ingress.snapshot.apis)
    dlq = make_consumer(settings)
    await dlq.start()
    tps = [TopicPartition(settings.topics.dlq, p) for p in range(settings.partitions)]
    dlq.assign(tps)
    try:
        async with aiohttp.ClientSession() as s:
            async with s.post(f"{ingress.url}/{staged['org']}/echo", data="x") as r:
                assert r.status == 502
                body = await r.json()
            # The services keep serving.
            async with s.post(f"{ingress.url}/{staged_ok['org']}/echo", data="still fine") as r:
                assert r.status == 200 and (await r.json())["body"] == "still fine"
        assert body["code"] == "transform_failed"
        assert "ZeroDivisionError" in body["message"] or "division by zero" in body["message"]
        assert body["line"] == 4
        found: dict[str, Any] | None = None
        deadline = time.monotonic() + 10
        while found is None and time.monotonic() < deadline:
            batches = await dlq.getmany(timeout_ms=500)
            for records in batches.values():
                for rec in records:
                    _, letter = decode(rec.value, expected="DeadLetter")
                    if letter["correlation_id"] == body["correlation_id"]:
                        found = letter
        assert found is not None, "no dead letter for the failed call"
        assert found["stage"] == "processors" and found["error_code"] == "transform_failed"
        assert any("about to divide" in line for line in found["details"])
        _, original = decode(found["original"], expected="InboundCall")
        assert original["body"] == b"x"
        # Written by control's observe stage from the reply and the dead letter, a flush later.
        row = None
        for _ in range(150):
            row = await db.fetchrow("SELECT * FROM request_logs WHERE correlation_id = $1 AND done AND details IS NOT NULL",
                                    body["correlation_id"])
            if row is not None:
                break
            await asyncio.sleep(0.1)
        assert row is not None and str(row["org_id"]) == staged["org_id"]
        assert row["status"] == 502 and row["error_code"] == "transform_failed"
        assert "about to divide" in row["details"]
    finally:
        await dlq.stop()


async def test_a_runaway_script_times_out_and_the_next_call_is_served(ingress: IngressInstance, stage: Stage, upstream: str) -> None:
    looping = await stage.api(upstream + "/echo", script=LOOPING)
    await wait_until(lambda: looping["api"]["id"] in ingress.snapshot.apis)
    async with aiohttp.ClientSession() as s:
        async with s.post(f"{ingress.url}/{looping['org']}/echo", data="x") as r:
            assert r.status == 502
            assert (await r.json())["code"] == "transform_timeout"
        async with s.post(f"{ingress.url}/{looping['org']}/echo", data="x") as r:
            assert r.status == 502  # the script is still an infinite loop; the pool replaced its worker
            assert (await r.json())["code"] == "transform_timeout"


async def test_a_saved_version_takes_effect_on_the_next_call_within_2_seconds(
    ingress: IngressInstance, stage: Stage, upstream: str
) -> None:
    def script(tag: str) -> str:
        return f"def transform_request(request, ctx):\n    request.headers['X-Version'] = '{tag}'\n"

    org = f"o{uuid.uuid4().hex[:8]}"
    v1 = await stage.api(upstream + "/echo", org=org, script=script("one"))
    await wait_until(lambda: v1["api"]["id"] in ingress.snapshot.apis)
    async with aiohttp.ClientSession() as s:
        async with s.get(f"{ingress.url}/{org}/echo") as r:
            assert (await r.json())["headers"]["X-Version"] == "one"
        # Version 2 of the same connector.
        connector = {**v1["connector"], "version": 2, "script": script("two")}
        await stage.publish("connector", connector, org)
        saved = time.monotonic()
        while True:
            async with s.get(f"{ingress.url}/{org}/echo") as r:
                if (await r.json())["headers"]["X-Version"] == "two":
                    break
            assert time.monotonic() - saved < 2.0, "version 2 not live within 2 s"
            await asyncio.sleep(0.05)


RESPONSE_ONLY = '''
def transform_request(request, ctx):
    pass

def transform_response(response, ctx):
    response.headers["X-Seen-By"] = "script"
    response.set_json({"upstream_status": response.status, "echoed": response.json()["body"]})
'''


async def test_a_rest_connector_with_transform_response_gets_the_upstream_headers(
    ingress: IngressInstance, stage: Stage, upstream: str
) -> None:
    """The upstream's headers reach the script as plain names (aiohttp's istr once broke every such call)."""
    staged = await stage.api(upstream + "/echo", script=RESPONSE_ONLY)
    await wait_until(lambda: staged["api"]["id"] in ingress.snapshot.apis)
    async with aiohttp.ClientSession() as s:
        async with s.post(f"{ingress.url}/{staged['org']}/echo", data=b"shaped") as r:
            assert r.status == 200, await r.text()
            assert r.headers["X-Seen-By"] == "script"
            got = await r.json()
    assert got == {"upstream_status": 200, "echoed": "shaped"}


SECRET_TO_HEADERS = '''
def transform_request(request, ctx):
    request.headers["x-upstream-token"] = ctx.settings["api_token"]
    request.headers["x-region"] = ctx.settings["region"]

def transform_response(response, ctx):
    response.headers["x-token-seen-by-response"] = str(ctx.settings.get("api_token") == "tok-s3cr3t-" + ctx.settings["region"])
'''


async def test_secret_connector_settings_reach_both_scripts_and_travel_sealed(
    settings: Settings, ingress: IngressInstance, stage: Stage, upstream: str
) -> None:
    """A secret setting is on the config topic only sealed; processors and egress open it for the scripts."""
    from core.connector_secrets import SEALED_KEY
    from core.sealing import sealer_for

    secret = "tok-s3cr3t-eu"
    staged = await stage.api(upstream + "/echo", script=SECRET_TO_HEADERS)
    conn_id = staged["connector"]["id"]
    sealed = sealer_for(settings).seal_json({"api_token": secret}, f"connector-secrets:{conn_id}")
    connector = {**staged["connector"], "version": 2, "settings": {"region": "eu"}, "secret_fields": ["api_token"],
                 SEALED_KEY: sealed}
    await stage.publish("connector", connector, staged["org"])
    await wait_until(lambda: ingress.snapshot.version_of("connector", conn_id) == 2)
    async with aiohttp.ClientSession() as s:
        for _ in range(100):
            async with s.get(f"{ingress.url}/{staged['org']}/echo") as r:
                got = await r.json()
                if r.status == 200 and "x-upstream-token" in {k.lower() for k in got.get("headers", {})}:
                    break
            await asyncio.sleep(0.05)
    headers = {k.lower(): v for k, v in got["headers"].items()}
    assert headers["x-upstream-token"] == secret and headers["x-region"] == "eu"
    assert r.headers["x-token-seen-by-response"] == "True"
    # On the config topic the secret is never in clear.
    consumer = make_consumer(settings)
    await consumer.start()
    try:
        tp = TopicPartition(settings.topics.config, 0)
        consumer.assign([tp])
        await consumer.seek_to_beginning(tp)
        raw = b""
        while True:
            batch = (await consumer.getmany(tp, timeout_ms=500)).get(tp, [])
            if not batch:
                break
            raw += b"".join(rec.value for rec in batch)
    finally:
        await consumer.stop()
    assert sealed.encode() in raw and secret.encode() not in raw


LEAKING_SCRIPTS = {
    # A script's exception text goes to the caller: one that names a secret setting must not carry it out.
    "raises": '''
def transform_request(request, ctx):
    print("tok=" + ctx.settings["pin"], ctx.settings["num"])
    raise ValueError("invalid literal for int(): " + repr(ctx.settings["pin"]) + " " + str(ctx.settings["num"]))
''',
    "rejects": '''
def transform_request(request, ctx):
    reject(403, "denied with " + ctx.settings["pin"], code="denied")
''',
    "response": '''
def transform_request(request, ctx):
    return None

def transform_response(response, ctx):
    print("seen", ctx.settings["pin"])
    raise RuntimeError("upstream said " + ctx.settings["pin"])
''',
}


async def test_secret_settings_never_leave_in_a_scripts_error_its_logs_or_dead_letter(
    settings: Settings, ingress: IngressInstance, stage: Stage, upstream: str
) -> None:
    """The value of a secret setting (masked to people as ********) reaches the script only: an exception's
    message, a reject() message or a printed line that holds it reaches the caller, the dead letter and the
    request log (which takes its lines from the dead letter) as [removed]."""
    from core.connector_secrets import SEALED_KEY
    from core.sealing import sealer_for
    from tests.dead_letter_support import wait_for_dead_letter

    pin, num = "PIN-SECRET-4711", 98765432
    for name, script in LEAKING_SCRIPTS.items():
        staged = await stage.api(upstream + "/echo", script=script)
        conn_id = staged["connector"]["id"]
        sealed = sealer_for(settings).seal_json({"pin": pin, "num": num}, f"connector-secrets:{conn_id}")
        connector = {**staged["connector"], "version": 2, "settings": {}, "secret_fields": ["pin", "num"], SEALED_KEY: sealed}
        await stage.publish("connector", connector, staged["org"])
        await wait_until(lambda: ingress.snapshot.version_of("connector", conn_id) == 2)
        # Ingress having version 2 says nothing of processors (another process) or egress: until they have
        # it, the script runs without its secret settings and fails on the missing key.
        loop = asyncio.get_running_loop()
        until = loop.time() + 20
        while True:
            async with aiohttp.ClientSession() as s:
                async with s.get(f"{ingress.url}/{staged['org']}/echo") as r:
                    status, body, cid = r.status, await r.text(), r.headers["X-Correlation-Id"]
            if "KeyError" not in body or loop.time() > until:
                break
            await asyncio.sleep(0.1)
        assert status in (403, 502), (name, status, body)
        assert pin not in body and str(num) not in body and "[removed]" in body, (name, body)
        if name == "rejects":
            continue  # a rejection is the script's answer, not a failure: no dead letter
        letter = await wait_for_dead_letter(settings, cid)
        text = letter["error_message"] + "\n".join(letter["details"])
        assert pin not in text and str(num) not in text, (name, text)
        assert "[removed]" in letter["error_message"], (name, letter)
