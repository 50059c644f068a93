"""SOAP in, REST out (issue 10, items 2 and 3): an API with protocol soap, configured through the
management API, called by zeep and by hand-written envelopes, through ingress → processors → egress
→ a REST upstream on loopback, with and without a connector script.

The upstream sees a JSON call (the operation's arguments, ``X-Soap-Operation``); the caller sees the
operation's response envelope, or a fault of its own SOAP version.
"""
from __future__ import annotations

import asyncio
import gzip
import json
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import aiohttp
import pytest
import pytest_asyncio
import requests
import zeep
import zeep.exceptions
from aiohttp import web
from lxml import etree

from ingress.soap_edge import FAULT_NS
from tests.soap_servers import SOAP11, SOAP12, WSDL_DIR
from tests.support import IngressInstance, serving, wait_until

CALCULATOR = WSDL_DIR / "calculator.wsdl"
needs_wsdls = pytest.mark.skipif(not WSDL_DIR.is_dir(), reason=f"the real-world WSDLs are not at {WSDL_DIR}")
TEMPURI = "http://tempuri.org/"
J = f"{{{FAULT_NS}}}"

# transform_request reshapes the SOAP arguments for a v2 REST API; transform_response the other way.
SCRIPT = '''
def transform_request(request, ctx):
    args = request.json()
    request.set_json({"op": request.headers["X-Soap-Operation"].lower(), "a": args["intA"], "b": args["intB"]})

def transform_response(response, ctx):
    answer = response.json()
    response.set_json({answer["op"].capitalize() + "Result": answer["result"]})
'''
ORDER_OPS = [
    {"name": "PlaceOrder",
     "input": [{"name": "customer", "type": "string"},
               {"name": "lines", "type": "object", "repeated": True,
                "fields": [{"name": "sku", "type": "string"}, {"name": "qty", "type": "int"},
                           {"name": "price", "type": "decimal"}]},
               {"name": "express", "type": "boolean", "required": False},
               {"name": "deliverOn", "type": "date", "required": False},
               {"name": "tags", "type": "string", "repeated": True, "required": False}],
     "output": [{"name": "orderId", "type": "long"}, {"name": "total", "type": "decimal"},
                {"name": "received", "type": "string"}, {"name": "notes", "type": "string", "repeated": True,
                                                         "required": False}]},
    {"name": "Ping", "input": [], "output": [{"name": "pong", "type": "boolean"}]},
]


@dataclass
class Upstream:
    url: str
    seen: list[dict[str, Any]] = field(default_factory=list)


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def rest_upstream() -> AsyncIterator[Upstream]:
    up = Upstream("")

    async def remember(request: web.Request) -> Any:
        raw = await request.read()
        body = json.loads(raw) if raw else None
        up.seen.append({"path": request.path, "headers": dict(request.headers), "body": body, "raw": raw})
        return body

    async def calc(request: web.Request) -> web.Response:
        """A REST calculator that takes the SOAP arguments as they come: the operation from the header."""
        body = await remember(request)
        op = request.headers.get("X-Soap-Operation", "")
        a, b = body["intA"], body["intB"]
        if a == 666:
            return web.json_response({"error": "stack trace at /srv/calc/internal.py line 3"}, status=500)
        if a == 777:
            await asyncio.sleep(1.5)
        if a == 888:
            return web.json_response({"AddResult": "not a number"})
        if op == "Divide" and b == 0:
            return web.json_response({"error": "division by zero"}, status=400)
        result = {"Add": a + b, "Subtract": a - b, "Multiply": a * b, "Divide": a // b if b else 0}[op]
        return web.json_response(5 if a == 555 else {f"{op}Result": result})  # 555: a bare value

    async def calc_v2(request: web.Request) -> web.Response:
        body = await remember(request)
        ops = {"add": body["a"] + body["b"], "subtract": body["a"] - body["b"], "multiply": body["a"] * body["b"],
               "divide": body["a"] // body["b"] if body["b"] else 0}
        return web.json_response({"op": body["op"], "result": ops[body["op"]]})

    async def orders(request: web.Request) -> web.Response:
        body = await remember(request)
        if request.headers.get("X-Soap-Operation") == "Ping":
            return web.json_response({"pong": True})
        total = sum(Decimal(str(line["price"])) * line["qty"] for line in body["lines"])
        return web.Response(text=json.dumps({"orderId": 9_000_000_000, "total": str(total), "received": json.dumps(body),
                                             "notes": ["one", "two"], "extra": {"ignored": True}}),
                            content_type="application/json")

    async def gz_calc(request: web.Request) -> web.Response:
        """As nginx with gzip on: a compressed answer to whoever accepts one."""
        answer = await calc(request)
        if "gzip" not in request.headers.get("Accept-Encoding", ""):
            return answer
        return web.Response(body=gzip.compress(answer.body), headers={"Content-Encoding": "gzip"},
                            content_type="application/json")

    app = web.Application()
    app.add_routes([web.post("/calc", calc), web.post("/v2/calc", calc_v2), web.post("/orders", orders),
                    web.post("/gzcalc", gz_calc)])
    async with serving(app) as url:
        up.url = url
        yield up


async def soap_api(control: Any, ingress: IngressInstance, target_url: str, *, script: str | None = None,
                   **fields: Any) -> tuple[str, dict[str, Any]]:
    """A fresh organisation with a SOAP API at /calc whose connector POSTs to ``target_url``; its URL."""
    org = (await control.new_org("soapin"))["slug"]
    connector = await control.new_connector(org, target={"protocol": "rest", "url": target_url, "method": "POST"},
                                            **({"script": script} if script else {}))
    r = await control.call("POST", f"/api/v1/orgs/{org}/apis", control.admin_token,
                           {"name": "calc", "protocol": "soap", "path": "/calc", "connector": connector["id"], **fields})
    assert r.status == 201, r.body
    await wait_until(lambda: (ingress.snapshot.version_of("api", r.body["id"]) or 0) >= r.body["version"])
    return f"{ingress.url}/{org}/calc", r.body


def with_zeep(wsdl_url: str, work: Callable[[zeep.Client], Any], headers: dict[str, str] | None = None) -> Any:
    """Run ``work`` with a zeep client of ``wsdl_url`` (blocking: call it in a thread)."""
    session = requests.Session()
    session.headers.update(headers or {})
    try:
        return work(zeep.Client(wsdl_url, transport=zeep.Transport(session=session)))
    finally:
        session.close()


async def post(url: str, body: bytes | str, *, version: str = "1.1", action: str | None = None,
               headers: dict[str, str] | None = None) -> tuple[int, aiohttp.typedefs.LooseHeaders, Any]:
    h = dict(headers or {})
    if version == "1.1":
        h.setdefault("Content-Type", "text/xml; charset=utf-8")
        if action is not None:
            h["SOAPAction"] = f'"{action}"'
    else:
        h.setdefault("Content-Type", "application/soap+xml; charset=utf-8" + (f'; action="{action}"' if action else ""))
    async with aiohttp.ClientSession() as s, s.post(url, data=body.encode() if isinstance(body, str) else body,
                                                     headers=h) as r:
        raw = await r.read()
        return r.status, r.headers, etree.fromstring(raw) if raw else None


def envelope(inner: str, version: str = "1.1") -> str:
    ns = SOAP11 if version == "1.1" else SOAP12
    return f'<s:Envelope xmlns:s="{ns}"><s:Body>{inner}</s:Body></s:Envelope>'


def add(a: Any, b: Any, op: str = "Add") -> str:
    return f'<{op} xmlns="{TEMPURI}"><intA>{a}</intA><intB>{b}</intB></{op}>'


def fault_of(root: Any, version: str = "1.1") -> dict[str, Any]:
    ns = SOAP11 if version == "1.1" else SOAP12
    fault = root.find(f"{{{ns}}}Body/{{{ns}}}Fault")
    assert fault is not None, etree.tostring(root)
    if version == "1.1":
        code, reason, detail = fault.findtext("faultcode"), fault.findtext("faultstring"), fault.find("detail")
    else:
        code = fault.findtext(f"{{{ns}}}Code/{{{ns}}}Value")
        reason, detail = fault.findtext(f"{{{ns}}}Reason/{{{ns}}}Text"), fault.find(f"{{{ns}}}Detail")
    error = detail.find(f"{J}error")
    return {"code": code.split(":")[-1], "reason": reason, "error": error.findtext(f"{J}code"),
            "status": int(error.findtext(f"{J}status")), "correlation_id": error.findtext(f"{J}correlationId"),
            "fields": {f.get("name"): f.text for f in error.findall(f"{J}field")}}


# -- contract first: the calculator -----------------------------------------------------------------------
@needs_wsdls
async def test_zeep_calls_every_calculator_operation_over_soap_11_and_12(
        control: Any, ingress: IngressInstance, rest_upstream: Upstream) -> None:
    url, _ = await soap_api(control, ingress, rest_upstream.url + "/calc", wsdl=CALCULATOR.read_text())

    def work(client: zeep.Client) -> dict[str, list[int]]:
        out = {}
        for port in ("CalculatorSoap", "CalculatorSoap12"):
            service = client.bind("Calculator", port)
            out[port] = [service.Add(2, 3), service.Subtract(2, 3), service.Multiply(4, 5), service.Divide(9, 2)]
        return out

    got = await asyncio.to_thread(with_zeep, url + "?wsdl", work)
    assert got == {"CalculatorSoap": [5, -1, 20, 4], "CalculatorSoap12": [5, -1, 20, 4]}
    seen = rest_upstream.seen[-1]
    assert seen["path"] == "/calc" and seen["body"] == {"intA": 9, "intB": 2}
    assert seen["headers"]["Content-Type"] == "application/json" and seen["headers"]["X-Soap-Operation"] == "Divide"
    assert "SOAPAction" not in seen["headers"]


@needs_wsdls
async def test_the_wsdl_points_every_port_at_the_gateway(
        control: Any, ingress: IngressInstance, rest_upstream: Upstream) -> None:
    url, _ = await soap_api(control, ingress, rest_upstream.url + "/calc", wsdl=CALCULATOR.read_text())
    async with aiohttp.ClientSession() as s, s.get(url + "?WSDL") as r:
        assert r.status == 200 and r.content_type == "text/xml"
        root = etree.fromstring(await r.read())
    locations = [a.get("location") for a in root.iter("{*}address")]
    assert locations == [url, url]
    async with aiohttp.ClientSession() as s, s.get(url) as r:
        assert r.status == 405 and r.headers["Allow"] == "GET, POST"


@needs_wsdls
async def test_hand_written_envelopes_get_envelopes_of_their_own_version(
        control: Any, ingress: IngressInstance, rest_upstream: Upstream) -> None:
    url, _ = await soap_api(control, ingress, rest_upstream.url + "/calc", wsdl=CALCULATOR.read_text())
    status, headers, root = await post(url, envelope(add(2, 3)), action=TEMPURI + "Add")
    assert status == 200 and headers["Content-Type"] == "text/xml; charset=utf-8" and headers["X-Correlation-Id"]
    assert root.findtext(f"{{{SOAP11}}}Body/{{{TEMPURI}}}AddResponse/{{{TEMPURI}}}AddResult") == "5"
    status, headers, root = await post(url, envelope(add(7, 3, "Subtract"), "1.2"), version="1.2")
    assert status == 200 and headers["Content-Type"] == "application/soap+xml; charset=utf-8"
    assert root.findtext(f"{{{SOAP12}}}Body/{{{TEMPURI}}}SubtractResponse/{{{TEMPURI}}}SubtractResult") == "4"
    # No SOAPAction: the body's element names the operation; a bare JSON value fills a one-field output.
    status, _, root = await post(url, envelope(add(555, 1)))
    assert status == 200 and root.findtext(f".//{{{TEMPURI}}}AddResult") == "5"


@needs_wsdls
async def test_a_connector_script_bridges_to_a_differently_shaped_rest_api(
        control: Any, ingress: IngressInstance, rest_upstream: Upstream) -> None:
    url, _ = await soap_api(control, ingress, rest_upstream.url + "/v2/calc", wsdl=CALCULATOR.read_text(), script=SCRIPT)
    got = await asyncio.to_thread(with_zeep, url + "?wsdl", lambda c: [c.service.Multiply(6, 7), c.service.Add(1, 1)])
    assert got == [42, 2]
    assert rest_upstream.seen[-1]["body"] == {"op": "add", "a": 1, "b": 1}


@needs_wsdls
@pytest.mark.parametrize("version", ["1.1", "1.2"])
async def test_faults_say_who_is_at_fault_with_status_and_code(
        control: Any, ingress: IngressInstance, rest_upstream: Upstream, version: str) -> None:
    url, _ = await soap_api(control, ingress, rest_upstream.url + "/calc", wsdl=CALCULATOR.read_text(), timeout_ms=600)
    sender, receiver = ("Client", "Server") if version == "1.1" else ("Sender", "Receiver")
    client_status = 500 if version == "1.1" else 400
    before = len(rest_upstream.seen)

    status, _, root = await post(url, envelope(add("two", 3), version), version=version)
    fault = fault_of(root, version)
    assert (status, fault["code"], fault["error"], fault["status"]) == (client_status, sender, "soap_invalid_arguments", 422)
    assert fault["fields"] == {"intA": "is not an int"}
    status, _, root = await post(url, envelope(f'<Power xmlns="{TEMPURI}"/>', version), version=version)
    assert (status, fault_of(root, version)["error"]) == (client_status, "soap_unknown_operation")
    assert len(rest_upstream.seen) == before  # the caller's mistakes never reach the upstream

    # The upstream's 4xx is the caller's to fix, its 5xx is not; neither shows the upstream's own words.
    status, headers, root = await post(url, envelope(add(1, 0, "Divide"), version), version=version)
    fault = fault_of(root, version)
    assert (status, fault["code"], fault["error"], fault["status"]) == (client_status, sender, "upstream_error", 400)
    assert fault["correlation_id"] == headers["X-Correlation-Id"]
    status, _, root = await post(url, envelope(add(666, 0), version), version=version)
    fault = fault_of(root, version)
    assert (status, fault["code"], fault["status"]) == (500, receiver, 500)
    assert "/srv/calc" not in etree.tostring(root).decode()
    status, _, root = await post(url, envelope(add(888, 0), version), version=version)
    assert (status, fault_of(root, version)["error"]) == (500, "soap_bad_upstream_answer")
    status, _, root = await post(url, envelope(add(777, 0), version), version=version)
    fault = fault_of(root, version)
    assert (status, fault["code"], fault["error"], fault["status"]) == (500, receiver, "deadline_exceeded", 504)


@needs_wsdls
async def test_zeep_raises_the_fault_and_reads_its_detail(
        control: Any, ingress: IngressInstance, rest_upstream: Upstream) -> None:
    url, _ = await soap_api(control, ingress, rest_upstream.url + "/calc", wsdl=CALCULATOR.read_text())

    def work(client: zeep.Client) -> zeep.exceptions.Fault:
        with pytest.raises(zeep.exceptions.Fault) as raised:
            client.service.Divide(1, 0)
        return raised.value

    fault = await asyncio.to_thread(with_zeep, url + "?wsdl", work)
    assert fault.code.endswith("Client") and fault.detail.find(f"{J}error").findtext(f"{J}status") == "400"


@needs_wsdls
async def test_caller_auth_and_rate_limits_work_for_a_soap_api(
        control: Any, ingress: IngressInstance, rest_upstream: Upstream) -> None:
    url, api = await soap_api(control, ingress, rest_upstream.url + "/calc", wsdl=CALCULATOR.read_text(),
                              auth={"mode": "api_key"}, rate_limit={"requests": 2, "per_seconds": 60, "by": "api"})
    org = api["org"]
    consumer = await control.call("POST", f"/api/v1/orgs/{org}/consumers", control.admin_token, {"name": "shop"})
    key = await control.call("POST", f"/api/v1/orgs/{org}/consumers/{consumer.body['id']}/keys", control.admin_token, {})
    assert key.status == 201, key.body
    await wait_until(lambda: ingress.snapshot.consumer(consumer.body["id"]) is not None
                     and ingress.snapshot.consumer(consumer.body["id"]).get("keys"))

    status, headers, root = await post(url, envelope(add(1, 2), "1.2"), version="1.2")
    fault = fault_of(root, "1.2")
    assert (status, fault["code"], fault["status"]) == (401, "Sender", 401) and "WWW-Authenticate" in headers
    got = await asyncio.to_thread(with_zeep, url + "?wsdl", lambda c: c.service.Add(1, 2), {"X-API-Key": key.body["key"]})
    assert got == 3
    assert "X-API-Key" not in rest_upstream.seen[-1]["headers"]  # the credential stays at the edge
    status, headers, root = await post(url, envelope(add(1, 2)), headers={"X-API-Key": key.body["key"]})
    assert status == 429 and "Retry-After" in headers  # the WSDL read and the call counted
    assert fault_of(root)["error"] == "rate_limited"


# -- code first -------------------------------------------------------------------------------------------
@needs_wsdls
async def test_an_idempotency_key_makes_a_soap_call_once(control: Any, ingress: IngressInstance,
                                                         rest_upstream: Upstream) -> None:
    """As for a REST API: the same key and the same operation and arguments are answered from the first call
    (however the envelope is worded); other arguments under the same key are a fault (422), not a second call."""
    url, _ = await soap_api(control, ingress, rest_upstream.url + "/calc", wsdl=CALCULATOR.read_text())
    key = uuid.uuid4().hex
    before = len(rest_upstream.seen)
    statuses, headers = [], []
    for body, version in ((envelope(add(20, 22)), "1.1"), (envelope(add(20, 22)), "1.1"),
                          (envelope(add(20, 22), "1.2"), "1.2")):
        status, got, root = await post(url, body, version=version, action=TEMPURI + "Add", headers={"Idempotency-Key": key})
        assert status == 200 and root.findtext(f".//{{{TEMPURI}}}AddResult") == "42", (version, status)
        statuses.append(status)
        headers.append(got)
    assert len(rest_upstream.seen) == before + 1  # one call upstream
    assert "Idempotent-Replayed" not in headers[0] and headers[1]["Idempotent-Replayed"] == "true"
    assert headers[0]["X-Correlation-Id"] == headers[1]["X-Correlation-Id"] == headers[2]["X-Correlation-Id"]
    status, _, root = await post(url, envelope(add(20, 23)), action=TEMPURI + "Add", headers={"Idempotency-Key": key})
    fault = fault_of(root)
    assert (status, fault["code"], fault["error"], fault["status"]) == (500, "Client", "idempotency_key_reused", 422), fault
    assert fault["fields"] == {"Idempotency-Key": "was used for a different request"}, fault
    assert len(rest_upstream.seen) == before + 1


@needs_wsdls
async def test_a_rest_upstream_that_compresses_is_asked_for_an_unencoded_answer(
        control: Any, ingress: IngressInstance, rest_upstream: Upstream) -> None:
    """The SOAP caller's Accept-Encoding is about the envelope it gets, not the JSON read to build it."""
    url, _ = await soap_api(control, ingress, rest_upstream.url + "/gzcalc", wsdl=CALCULATOR.read_text())
    status, _, root = await post(url, envelope(add(2, 3)), action=TEMPURI + "Add", headers={"Accept-Encoding": "gzip"})
    assert status == 200 and root.findtext(f".//{{{TEMPURI}}}AddResult") == "5"
    assert rest_upstream.seen[-1]["headers"].get("Accept-Encoding") == "identity"


async def test_code_first_operations_round_trip_through_zeep_as_json(
        control: Any, ingress: IngressInstance, rest_upstream: Upstream) -> None:
    url, _ = await soap_api(control, ingress, rest_upstream.url + "/orders", operations=ORDER_OPS,
                              namespace="urn:example:orders")

    def work(client: zeep.Client) -> tuple[Any, Any, Any]:
        placed = client.service.PlaceOrder(customer="ACME", lines=[
            {"sku": "A-1", "qty": 2, "price": Decimal("1.25")}, {"sku": "B-2", "qty": 1, "price": Decimal("10.10")}],
            express=True, tags=["x", "y"])
        soap12 = client.bind("calc", "calcSoap12")
        return placed, soap12.Ping(), client.service.Ping()

    placed, pong12, pong11 = await asyncio.to_thread(with_zeep, url + "?wsdl", work)
    sent = json.loads(rest_upstream.seen[-3]["raw"])
    assert sent == {"customer": "ACME", "lines": [{"sku": "A-1", "qty": 2, "price": 1.25}, {"sku": "B-2", "qty": 1,
                                                                                          "price": 10.10}],
                    "express": True, "tags": ["x", "y"]}
    assert b'"price":10.10' in rest_upstream.seen[-3]["raw"]  # decimals keep their digits
    assert placed.orderId == 9_000_000_000 and placed.total == Decimal("12.6000") and placed.notes == ["one", "two"]
    assert json.loads(placed.received) == sent
    assert pong12 is True and pong11 is True
    assert rest_upstream.seen[-1]["headers"]["X-Soap-Operation"] == "Ping"
