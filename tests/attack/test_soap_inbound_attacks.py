"""A SOAP API under hostile callers: entity bombs, external entities, DTDs, deep nesting, huge and
non-XML bodies, wrong media types, unknown operations, wrong argument types, a SOAPAction that names
another operation, and a forged Host in ``?wsdl``.

Each is a fault of the caller's SOAP version (Client / Sender) with a Junction code, answered at the
edge: the upstream is never called, nothing from a file or the network is read, and the same API keeps
answering good calls. The pipeline runs for this module only (as in test_routing_authority.py).
"""
from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import pytest
import pytest_asyncio
from aiohttp import web
from lxml import etree

from core.settings import Settings
from ingress.soap_edge import FAULT_NS
from tests.soap_servers import SOAP11, SOAP12
from tests.support import IngressInstance, running_pipeline, serving, wait_until

TEMPURI = "urn:example:calc"
J = f"{{{FAULT_NS}}}"
OPS = [{"name": "Add", "action": "urn:example:calc#Add",
        "input": [{"name": "intA", "type": "int"}, {"name": "intB", "type": "int"},
                  {"name": "note", "type": "string", "required": False}],
        "output": [{"name": "AddResult", "type": "int"}]},
       {"name": "Flag", "input": [{"name": "on", "type": "boolean"}], "output": [{"name": "on", "type": "boolean"}]}]
MAX_BODY = 200_000
PUBLIC = "https://api.example.com/gw"


@dataclass
class Target:
    url: str  # the API on the pipeline's ingress
    small: str  # the same API on an ingress with a body limit of MAX_BODY and a public base URL
    org: str
    hits: list[bytes] = field(default_factory=list)


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def target(settings: Settings, control: Any) -> AsyncIterator[Target]:
    hits: list[bytes] = []

    async def calc(request: web.Request) -> web.Response:
        body = await request.json()
        hits.append(await request.read())
        if request.headers.get("X-Soap-Operation") == "Flag":
            return web.json_response({"on": body["on"]})
        return web.json_response({"AddResult": body["intA"] + body["intB"]})

    app = web.Application()
    app.router.add_post("/calc", calc)
    async with serving(app) as upstream, running_pipeline(settings) as (_, ingress):
        small = IngressInstance(settings.with_overrides(max_body_bytes=MAX_BODY, public_base_url=PUBLIC))
        await small.start()
        try:
            org = (await control.new_org("soapatk"))["slug"]
            conn = await control.new_connector(org, target={"protocol": "rest", "url": upstream + "/calc", "method": "POST"})
            r = await control.call("POST", f"/api/v1/orgs/{org}/apis", control.admin_token,
                                   {"name": "calc", "protocol": "soap", "path": "/calc", "connector": conn["id"],
                                    "operations": OPS, "namespace": TEMPURI})
            assert r.status == 201, r.body
            for inst in (ingress, small):
                await wait_until(lambda i=inst: r.body["id"] in i.snapshot.apis)
            yield Target(f"{ingress.url}/{org}/calc", f"{small.url}/{org}/calc", org, hits)
        finally:
            await small.stop()


def env(inner: str, version: str = "1.1", head: str = "") -> str:
    ns = SOAP11 if version == "1.1" else SOAP12
    return f'{head}<s:Envelope xmlns:s="{ns}"><s:Body>{inner}</s:Body></s:Envelope>'


def add(a: Any = 2, b: Any = 3, extra: str = "") -> str:
    return f'<Add xmlns="{TEMPURI}"><intA>{a}</intA><intB>{b}</intB>{extra}</Add>'


async def send(url: str, body: bytes | str, content_type: str = "text/xml; charset=utf-8",
               headers: dict[str, str] | None = None) -> tuple[int, Any, bytes]:
    data = body.encode() if isinstance(body, str) else body
    async with aiohttp.ClientSession() as s, s.post(url, data=data, headers={"Content-Type": content_type,
                                                                             **(headers or {})}) as r:
        return r.status, r.headers, await r.read()


def fault(raw: bytes, version: str = "1.1") -> tuple[str, str, dict[str, str]]:
    """(fault code, Junction code, fields) of a fault envelope."""
    ns = SOAP11 if version == "1.1" else SOAP12
    root = etree.fromstring(raw)
    node = root.find(f"{{{ns}}}Body/{{{ns}}}Fault")
    assert node is not None, raw
    code = node.findtext("faultcode") if version == "1.1" else node.findtext(f"{{{ns}}}Code/{{{ns}}}Value")
    error = node.find(f".//{J}error")
    return code.split(":")[-1], error.findtext(f"{J}code"), {f.get("name"): f.text for f in error.findall(f"{J}field")}


async def assert_refused(target: Target, body: bytes | str, code: str, *, version: str = "1.1",
                         content_type: str | None = None, headers: dict[str, str] | None = None,
                         fault_code: str | None = None) -> dict[str, str]:
    before = len(target.hits)
    default = "text/xml; charset=utf-8" if version == "1.1" else "application/soap+xml"
    ctype = content_type if content_type is not None else default
    status, got_headers, raw = await send(target.url, body, ctype, headers)
    assert got_headers["Content-Type"].startswith("text/xml" if version == "1.1" else "application/soap+xml")
    assert status == (500 if version == "1.1" else 400), raw
    got_code, junction_code, fields = fault(raw, version)
    assert (got_code, junction_code) == (fault_code or ("Client" if version == "1.1" else "Sender"), code), raw
    assert b"root:" not in raw and b"lol" not in raw
    assert len(target.hits) == before  # the upstream never heard of it
    return fields


async def test_a_good_call_works_before_and_after_the_attacks(target: Target) -> None:
    status, _, raw = await send(target.url, env(add(2, 3)))
    assert status == 200 and etree.fromstring(raw).findtext(f".//{{{TEMPURI}}}AddResult") == "5"


BILLION_LAUGHS = ('<?xml version="1.0"?><!DOCTYPE s:Envelope [<!ENTITY lol "lol">'
                  + "".join(f'<!ENTITY lol{i} "{("&lol" + str(i - 1) + ";") * 10 if i > 1 else "&lol;" * 10}">'
                            for i in range(1, 10))
                  + "]>")


@pytest.mark.parametrize("body", [
    env(add("&lol9;"), head=BILLION_LAUGHS),
    env(add("&xxe;"), head='<?xml version="1.0"?><!DOCTYPE e [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>'),
    env(add("&xxe;"), head='<?xml version="1.0"?><!DOCTYPE e [<!ENTITY xxe SYSTEM "http://127.0.0.1:9/x">]>'),
    env(add(), head='<?xml version="1.0"?><!DOCTYPE e SYSTEM "http://127.0.0.1:9/evil.dtd">'),
    env(add(), head='<!doctype e [<!ELEMENT e ANY>]>'),
], ids=["billion-laughs", "xxe-file", "xxe-http", "external-dtd", "lower-case-doctype"])
async def test_dtds_and_entities_are_refused_before_parsing(target: Target, body: str) -> None:
    await assert_refused(target, body, "soap_envelope_invalid")


async def test_a_dtd_in_utf16_is_refused_too(target: Target) -> None:
    body = ('<?xml version="1.0" encoding="UTF-16"?><!DOCTYPE e [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>'
            + env(add("&xxe;")))
    await assert_refused(target, body.encode("utf-16"), "soap_envelope_invalid")


@pytest.mark.parametrize("depth", [100, 5000])
async def test_deep_nesting_is_refused(target: Target, depth: int) -> None:
    await assert_refused(target, env(add(extra="<note>" + "<x>" * depth + "</x>" * depth + "</note>")),
                         "soap_envelope_invalid")


async def test_a_huge_envelope_is_refused_at_the_body_limit_and_a_large_one_is_served(target: Target) -> None:
    status, _, raw = await send(target.small, env(add(extra=f"<note>{'x' * MAX_BODY}</note>")))
    assert status == 413 and fault(raw)[1] == "body_too_large"
    # Over the inline size, under the limit: parsed off the event loop, and served.
    status, _, raw = await send(target.small, env(add(extra=f"<note>{'x' * (MAX_BODY // 2)}</note>")))
    assert status == 200, raw


@pytest.mark.parametrize("body, code", [
    ('{"intA": 2, "intB": 3}', "soap_envelope_invalid"),
    ("", "soap_envelope_invalid"),
    ("<Add><intA>2</intA></Add>", "soap_envelope_invalid"),
    (env(add(), head="") + "<trailing/>", "soap_envelope_invalid"),
    (env(add() + add()), "soap_envelope_invalid"),
    (env(""), "soap_envelope_invalid"),
], ids=["json", "empty", "no-envelope", "trailing", "two-bodies", "empty-body"])
async def test_what_is_not_one_envelope_is_a_client_fault(target: Target, body: str, code: str) -> None:
    await assert_refused(target, body, code)


async def test_an_envelope_of_no_soap_version_is_a_version_mismatch(target: Target) -> None:
    await assert_refused(target, env(add()).replace(SOAP11, "urn:not-soap"), "soap_version_mismatch",
                         fault_code="VersionMismatch")


@pytest.mark.parametrize("content_type, version", [
    ("application/json", "1.1"), ("text/plain", "1.1"), ("", "1.1"),
    ("application/soap+xml", "1.2"),  # a SOAP 1.1 envelope sent as SOAP 1.2
])
async def test_a_wrong_content_type_is_refused(target: Target, content_type: str, version: str) -> None:
    await assert_refused(target, env(add()), "soap_content_type", version=version, content_type=content_type)


async def test_an_unknown_operation_is_refused(target: Target) -> None:
    await assert_refused(target, env(f'<Drop xmlns="{TEMPURI}"><table>users</table></Drop>'), "soap_unknown_operation")
    await assert_refused(target, env(add().replace(TEMPURI, "urn:other")), "soap_unknown_operation")


@pytest.mark.parametrize("body, fields", [
    (env(add(2 ** 31, 1)), {"intA": "is out of range for int"}),
    (env(add("1e3", 1)), {"intA": "is not an int"}),
    (env(add(" ", 1)), {"intA": "is not an int"}),
    (env(f'<Add xmlns="{TEMPURI}"><intA>1</intA></Add>'), {"intB": "is required"}),
    (env(add(extra="<intB>4</intB>")), {"intB": "must appear once at most"}),
    (env(add(extra="<admin>true</admin>")), {"admin": "is not an argument of this operation"}),
    (env(add(extra="<note><b>x</b></note>")), {"note": "must be a string value, not elements"}),
    (env(add(extra='<note xmlns:i="http://www.w3.org/2001/XMLSchema-instance" i:nil="true"/>')), {"note": "must not be nil"}),
    (env(f'<Flag xmlns="{TEMPURI}"><on>yes</on></Flag>'), {"on": "is not a boolean (true, false, 1 or 0)"}),
], ids=["overflow", "exponent", "blank", "missing", "twice", "unknown", "elements", "nil", "boolean"])
async def test_wrong_arguments_are_refused_with_the_field(target: Target, body: str, fields: dict[str, str]) -> None:
    assert await assert_refused(target, body, "soap_invalid_arguments") == fields


async def test_a_soap_action_naming_another_operation_is_refused(target: Target) -> None:
    await assert_refused(target, env(add()), "soap_action_mismatch", headers={"SOAPAction": '"urn:example:calc/Flag"'})
    await assert_refused(target, env(add(), "1.2"), "soap_action_mismatch", version="1.2",
                         content_type='application/soap+xml; action="urn:example:calc/Flag"')
    status, _, _ = await send(target.url, env(add()), headers={"SOAPAction": '"urn:example:calc#Add"'})
    assert status == 200


async def test_a_header_that_must_be_understood_is_refused(target: Target) -> None:
    body = (f'<s:Envelope xmlns:s="{SOAP12}"><s:Header><t:Tx xmlns:t="urn:tx" s:mustUnderstand="true">1</t:Tx>'
            f"</s:Header><s:Body>{add()}</s:Body></s:Envelope>")
    status, _, raw = await send(target.url, body, "application/soap+xml")
    assert status == 400 and fault(raw, "1.2")[:2] == ("MustUnderstand", "soap_must_understand")


@pytest.mark.parametrize("host", ['evil.example"><x', "evil.example/<a>", "a b", "evil.example:99999999"])
async def test_a_forged_host_never_reaches_the_wsdl(target: Target, host: str) -> None:
    async with aiohttp.ClientSession() as s, s.get(target.url + "?wsdl", headers={"Host": host}) as r:
        assert r.status == 400 and (await r.json())["code"] == "invalid_host"


async def test_a_configured_public_url_wins_over_the_host_header(target: Target) -> None:
    async with aiohttp.ClientSession() as s, s.get(target.small + "?wsdl", headers={"Host": "evil.example"}) as r:
        assert r.status == 200
        root = etree.fromstring(await r.read())
    assert {a.get("location") for a in root.iter("{*}address")} == {f"{PUBLIC}/{target.org}/calc"}
    # Without one, the Host names the address (escaped): it can only be a host and a port.
    async with aiohttp.ClientSession() as s, s.get(target.url + "?wsdl", headers={"Host": "gw.example:8443"}) as r:
        root = etree.fromstring(await r.read())
    assert {a.get("location") for a in root.iter("{*}address")} == {f"http://gw.example:8443/{target.org}/calc"}


async def test_many_hostile_envelopes_at_once_leave_the_edge_serving(target: Target) -> None:
    bomb = env(add("&lol9;"), head=BILLION_LAUGHS)
    results = await asyncio.gather(*(send(target.url, bomb) for _ in range(20)), send(target.url, env(add(4, 5))))
    assert all(status == 500 for status, _, _ in results[:-1])
    assert results[-1][0] == 200
