"""REST in, SOAP out, against real-world WSDLs served by loopback services that behave like
their original stacks (tests/soap_servers.py): ASMX, WCF, Metro (SOAP 1.2), CXF rpc/literal.

Every call goes the whole way: ingress → processors → egress → the SOAP service, and back.
A failure must come back as a reply with a code and leave a dead letter.
"""
from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
import pytest_asyncio

from control.replay import read_dead_letters
from core.settings import Settings
from junction.broker import free_port
from tests.soap_servers import SOAP11, WSDL_DIR, SoapServers, serving_soap
from tests.support import IngressInstance, Stage, wait_until

if not WSDL_DIR.is_dir():
    pytest.skip(f"the real-world WSDLs are not at {WSDL_DIR}", allow_module_level=True)


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def soap_servers() -> AsyncIterator[SoapServers]:
    async with serving_soap() as servers:
        yield servers


async def soap_api(stage: Stage, ingress: IngressInstance, wsdl_url: str, operation: str, **target: Any) -> dict[str, Any]:
    staged = await stage.api("", path="/soap", methods=["POST"], target={"protocol": "soap", "url": wsdl_url, "operation": operation, **target})
    await wait_until(lambda: staged["api"]["id"] in ingress.snapshot.apis)
    return staged


async def call(ingress: IngressInstance, staged: dict[str, Any], payload: Any) -> tuple[int, dict[str, Any]]:
    data = payload if isinstance(payload, bytes) else None
    async with aiohttp.ClientSession() as s:
        async with s.post(f"{ingress.url}/{staged['org']}/soap", data=data, json=None if data is not None else payload,
                          timeout=aiohttp.ClientTimeout(total=30)) as r:
            return r.status, await r.json()


async def dead_letter(settings: Settings, staged: dict[str, Any], correlation_id: str) -> dict[str, Any]:
    """The call's egress dead letter (it is produced with the reply, so it is there or nearly)."""
    for _ in range(20):
        found = [v.letter for v in await read_dead_letters(settings, org=staged["org"], limit=0, correlation_ids={correlation_id})
                 if v.letter["stage"] == "egress"]
        if found:
            return found[0]
    raise AssertionError(f"no dead letter for {correlation_id}")


async def failed(settings: Settings, ingress: IngressInstance, staged: dict[str, Any], payload: Any,
                 status: int, code: str) -> dict[str, Any]:
    """Call, expect the error ``code`` with ``status``, and its dead letter with the same code."""
    got, body = await call(ingress, staged, payload)
    assert (got, body.get("code")) == (status, code), body
    letter = await dead_letter(settings, staged, body["correlation_id"])
    assert letter["error_code"] == code
    return body


# -- the services behave like their stacks -------------------------------------------------

async def test_the_loopback_services_refuse_what_their_stacks_refuse(soap_servers: SoapServers) -> None:
    s = soap_servers
    envelope = (f'<soap:Envelope xmlns:soap="{SOAP11}"><soap:Body><Multiply xmlns="http://tempuri.org/"><intA>1</intA>'
                "<intB>2</intB></Multiply></soap:Body></soap:Envelope>")
    async with aiohttp.ClientSession() as session:
        async with session.post(f"{s.base}/calculator.asmx", data=envelope,
                                headers={"Content-Type": "text/xml", "SOAPAction": '"http://tempuri.org/Power"'}) as r:
            assert r.status == 500 and "did not recognize the value of HTTP Header SOAPAction" in await r.text()
        async with session.post(f"{s.base}/Service1.svc", data=envelope,
                                headers={"Content-Type": "text/xml", "SOAPAction": '"http://tempuri.org/IService1/Other"'}) as r:
            text = await r.text()
            assert r.status == 500 and "ActionNotSupported" in text and "ContractFilter mismatch" in text
        async with session.post(f"{s.base}/AddNumbers", data=envelope, headers={"Content-Type": "text/xml; charset=utf-8"}) as r:
            assert r.status == 415
            assert await r.text() == "Unsupported Content-Type: text/xml; charset=utf-8 Supported ones are: [application/soap+xml]"


# -- each real WSDL, through the pipeline ---------------------------------------------------

async def test_a_wcf_wsdl_whose_types_are_imported_schemas_in_a_cycle_loads_and_answers(
    stage: Stage, ingress: IngressInstance, soap_servers: SoapServers
) -> None:
    before = [s.query for s in soap_servers.seen if s.path == "/Service1.svc" and s.method == "GET"]
    staged = await soap_api(stage, ingress, soap_servers.wcf_wsdl, "GetData")
    status, body = await call(ingress, staged, {})
    assert status == 200, body
    assert body == {"GetDataResult": {
        "Reportsrc": {"KeyValueOfintReportrecR8Et_PRyU": [{"Key": 1, "Value": {"id": 1, "message": "first"}},
                                                          {"Key": 2, "Value": {"id": 2, "message": "second"}}]},
        "Reportsrc2": {"Reportrec": [{"id": 3, "message": "third"}]}}}
    fetched = [s.query for s in soap_servers.seen if s.path == "/Service1.svc" and s.method == "GET"][len(before):]
    # The WSDL, then each schema once: the xsd0 → xsd2 → xsd3 → xsd2 cycle is not followed round.
    assert sorted(fetched) == ["wsdl", "xsd=xsd0", "xsd=xsd1", "xsd=xsd2", "xsd=xsd3"]
    post = soap_servers.posts("/Service1.svc")[-1]
    assert post.soap_action == '"http://tempuri.org/IService1/GetData"' and post.content_type.startswith("text/xml")


@pytest.mark.parametrize("target, soap12", [
    ({}, False),  # default: the SOAP 1.1 port
    ({"binding": "CalculatorSoap12"}, True),
    ({"binding": "{http://tempuri.org/}CalculatorSoap"}, False),
    ({"port": "CalculatorSoap12"}, True),
])
async def test_asmx_multiply_through_the_binding_the_connector_chooses(
    stage: Stage, ingress: IngressInstance, soap_servers: SoapServers, target: dict[str, str], soap12: bool
) -> None:
    staged = await soap_api(stage, ingress, soap_servers.calculator_wsdl, "Multiply", **target)
    seen = len(soap_servers.posts("/calculator.asmx"))
    status, body = await call(ingress, staged, {"intA": 6, "intB": 7})
    assert (status, body) == (200, {"MultiplyResult": 42})  # the element name is kept
    post = soap_servers.posts("/calculator.asmx")[seen]
    if soap12:
        assert post.content_type == 'application/soap+xml; charset=utf-8; action="http://tempuri.org/Multiply"'
        assert post.soap_action is None
    else:
        assert post.content_type == "text/xml; charset=utf-8"
        assert post.soap_action == '"http://tempuri.org/Multiply"'


@pytest.mark.parametrize("target", [{}, {"binding": "CalculatorSoap12"}])
async def test_an_asmx_fault_of_either_version_is_a_soap_fault(
    settings: Settings, stage: Stage, ingress: IngressInstance, soap_servers: SoapServers, target: dict[str, str]
) -> None:
    staged = await soap_api(stage, ingress, soap_servers.calculator_wsdl, "Divide", **target)
    body = await failed(settings, ingress, staged, {"intA": 1, "intB": 0}, 502, "soap_fault")
    assert "DivideByZeroException" in body["message"]
    assert body["fault_code"] == ("soap:Receiver" if target else "soap:Server")
    assert body["upstream_status"] == 500


async def test_metro_soap12_add_numbers_answers_and_its_declared_fault_is_a_soap_fault(
    settings: Settings, stage: Stage, ingress: IngressInstance, soap_servers: SoapServers
) -> None:
    staged = await soap_api(stage, ingress, soap_servers.metro_wsdl, "addNumbers")  # SOAP 1.2 only: the default
    status, body = await call(ingress, staged, {"arg0": 2, "arg1": 3})
    assert (status, body) == (200, {"return": 5})
    assert soap_servers.posts("/AddNumbers")[-1].content_type.startswith("application/soap+xml")

    body = await failed(settings, ingress, staged, {"arg0": -1, "arg1": 2}, 502, "soap_fault")
    assert body["message"] == "SOAP fault: Negative numbers can't be added!"
    assert body["fault_code"].endswith(":Receiver")
    assert body["fault_detail"] == {"AddNumbersFault": {"faultInfo": "Numbers: -1, 2", "message": "Negative numbers can't be added!"}}


@pytest.mark.parametrize("operation, args, result", [
    ("greetMe", {"in": "Ada"}, {"out": "Hello Ada"}),
    ("greetUs", {"you": "you", "me": "me"}, {"out": "Hello you and me"}),
])
async def test_cxf_rpc_literal(stage: Stage, ingress: IngressInstance, soap_servers: SoapServers,
                               operation: str, args: dict[str, str], result: dict[str, str]) -> None:
    staged = await soap_api(stage, ingress, soap_servers.cxf_wsdl, operation)
    assert await call(ingress, staged, args) == (200, result)


# -- failures end as a reply with a code and a dead letter -------------------------------------

@pytest.mark.parametrize("kind, upstream_status, excerpt", [
    ("html", 503, "HTTP Error 503. The service is unavailable."),
    ("415", 415, "Unsupported Media Type"),
    ("empty", 200, ""),
])
async def test_an_answer_that_is_no_soap_envelope_is_an_upstream_error_with_status_and_excerpt(
    settings: Settings, stage: Stage, ingress: IngressInstance, soap_servers: SoapServers,
    kind: str, upstream_status: int, excerpt: str
) -> None:
    staged = await soap_api(stage, ingress, soap_servers.broken_wsdl(kind), "Multiply")
    body = await failed(settings, ingress, staged, {"intA": 1, "intB": 2}, 502, "upstream_error")
    assert body["upstream_status"] == upstream_status
    assert excerpt in body["excerpt"] and len(body["excerpt"]) <= 201
    assert f"answered {upstream_status}" in body["message"] and "AttributeError" not in body["message"]


async def test_an_unreachable_wsdl(settings: Settings, stage: Stage, ingress: IngressInstance) -> None:
    wsdl = f"http://127.0.0.1:{free_port()}/nothing.asmx?WSDL"
    staged = await soap_api(stage, ingress, wsdl, "Multiply")
    body = await failed(settings, ingress, staged, {"intA": 1, "intB": 2}, 502, "upstream_unreachable")
    assert wsdl in body["message"]


@pytest.mark.parametrize("operation, target, payload, status, code", [
    ("Power", {}, {"intA": 1}, 502, "unknown_soap_operation"),
    ("Multiply", {"binding": "CalculatorHttpGet"}, {"intA": 1, "intB": 2}, 502, "unknown_soap_port"),
    ("Multiply", {}, {"intA": 1, "nope": 2}, 422, "invalid_soap_arguments"),
    ("Multiply", {}, b"[1, 2]", 422, "invalid_soap_arguments"),
])
async def test_a_call_that_makes_no_envelope_is_answered_and_dead_lettered(
    settings: Settings, stage: Stage, ingress: IngressInstance, soap_servers: SoapServers,
    operation: str, target: dict[str, str], payload: Any, status: int, code: str
) -> None:
    staged = await soap_api(stage, ingress, soap_servers.calculator_wsdl, operation, **target)
    await failed(settings, ingress, staged, payload, status, code)


@pytest.mark.parametrize("path, code", [
    ("/Service1.svc?xsd=xsd1", "soap_bad_wsdl"),  # a schema, no WSDL
    ("/broken/html", "soap_bad_wsdl"),  # no ?wsdl: an HTML page
    ("/calculator.asmx", "wsdl_unavailable"),  # no ?WSDL: a 404
])
async def test_a_wsdl_that_is_no_wsdl_is_answered_and_dead_lettered(
    settings: Settings, stage: Stage, ingress: IngressInstance, soap_servers: SoapServers, path: str, code: str
) -> None:
    staged = await soap_api(stage, ingress, soap_servers.base + path, "GetData")
    await failed(settings, ingress, staged, {}, 502, code)


async def test_the_wsdl_is_loaded_once_per_connector_version(
    stage: Stage, ingress: IngressInstance, soap_servers: SoapServers
) -> None:
    wsdl = f"{soap_servers.calculator_wsdl}&v={uuid.uuid4().hex}"  # a URL of its own, so no other test loaded it
    staged = await soap_api(stage, ingress, wsdl, "Add")

    def loads() -> int:
        query = wsdl.split("?", 1)[1]
        return sum(1 for s in soap_servers.seen if s.method == "GET" and s.path == "/calculator.asmx" and s.query == query)

    for _ in range(3):
        assert await call(ingress, staged, {"intA": 2, "intB": 3}) == (200, {"AddResult": 5})
    assert loads() == 1
    connector = {**staged["connector"], "version": 2}
    connector["target"] = {**connector["target"], "binding": "CalculatorSoap12"}
    await stage.publish("connector", connector, staged["org"])
    # Processors (another process) route with version 2 a moment after ingress sees it: until
    # then calls go out with version 1's binding. Version 2's first call loads the WSDL again.
    for _ in range(200):
        assert await call(ingress, staged, {"intA": 2, "intB": 3}) == (200, {"AddResult": 5})
        if soap_servers.posts("/calculator.asmx")[-1].content_type.startswith("application/soap+xml"):
            break
    else:
        raise AssertionError("version 2 of the connector was never used")
    assert loads() == 2
    assert await call(ingress, staged, {"intA": 2, "intB": 3}) == (200, {"AddResult": 5})
    assert loads() == 2


# -- the SSRF guard on the documents a WSDL imports ------------------------------------------

async def test_an_import_from_a_private_address_is_refused_with_a_reply_and_a_dead_letter(
    settings: Settings, stage: Stage, ingress: IngressInstance, soap_servers: SoapServers, guarded_egress: None,
    untrusted_victim: Any,
) -> None:
    try:
        soap_servers.moved_schema_base = f"{untrusted_victim.url}/Service1.svc"
        staged = await soap_api(stage, ingress, soap_servers.moved_wsdl, "GetData")
        body = await failed(settings, ingress, staged, {}, 502, "target_not_allowed")
        assert "127.0.0.2" in body["message"]
        # The same WSDL with its schemas on the trusted address loads: the refusal is the import's.
        staged = await soap_api(stage, ingress, soap_servers.wcf_wsdl, "GetData")
        status, body = await call(ingress, staged, {})
        assert status == 200 and "GetDataResult" in body
    finally:
        soap_servers.moved_schema_base = "http://localhost:53068/Service1.svc"
    assert untrusted_victim.reached == []


# -- an uploaded WSDL, its schemas beside it, and an address override -------------------------

def _uploaded_wcf(*, leave_out: str | None = None) -> dict[str, Any]:
    """The WCF WSDL and its schemas as Visual Studio saved them (every location on localhost:53068):
    two keyed by their absolute location, the others relative to the WSDL's."""
    from tests.soap_servers import WCF_BASE, _svcmap

    documents: dict[str, str] = {}
    for i, (xsd, name) in enumerate(sorted(_svcmap().items())):
        if xsd == leave_out:
            continue
        key = f"{WCF_BASE}?xsd={xsd}" if i % 2 == 0 else f"Service1.svc?xsd={xsd}"
        documents[key] = (WSDL_DIR / "wcf_service1" / name).read_text(encoding="utf-8")
    return {"wsdl": (WSDL_DIR / "wcf_service1" / "Service1.wsdl").read_text(encoding="utf-8"), "documents": documents}


async def test_an_uploaded_wsdl_with_its_schemas_is_called_at_the_overridden_address_without_fetching(
    stage: Stage, ingress: IngressInstance, soap_servers: SoapServers
) -> None:
    from tests.soap_servers import WCF_BASE

    gets = sum(1 for s in soap_servers.seen if s.method == "GET")
    posts = len(soap_servers.posts("/Service1.svc"))
    staged = await soap_api(stage, ingress, f"{WCF_BASE}?wsdl", "GetData", **_uploaded_wcf(),
                            address=f"{soap_servers.base}/Service1.svc")
    status, body = await call(ingress, staged, {})
    assert status == 200, body
    assert body["GetDataResult"]["Reportsrc2"] == {"Reportrec": [{"id": 3, "message": "third"}]}
    # Nothing was fetched: the WSDL and every schema came with the connector; the envelope went to the address.
    assert sum(1 for s in soap_servers.seen if s.method == "GET") == gets
    assert len(soap_servers.posts("/Service1.svc")) == posts + 1


async def test_an_import_left_out_of_the_upload_is_fetched_and_its_failure_is_answered_and_dead_lettered(
    settings: Settings, stage: Stage, ingress: IngressInstance, soap_servers: SoapServers
) -> None:
    # xsd3 is left out: zeep asks for it at the saved location, where nothing listens.
    staged = await soap_api(stage, ingress, f"http://127.0.0.1:{free_port()}/Service1.svc?wsdl", "GetData",
                            **_uploaded_wcf(leave_out="xsd3"), address=f"{soap_servers.base}/Service1.svc")
    body = await failed(settings, ingress, staged, {}, 502, "upstream_unreachable")
    assert "xsd=xsd3" in body["message"] or "53068" in body["message"], body


async def test_the_address_override_passes_the_ssrf_guard(
    settings: Settings, stage: Stage, ingress: IngressInstance, soap_servers: SoapServers, guarded_egress: None
) -> None:
    posts = len(soap_servers.posts("/calculator.asmx"))
    port = free_port()
    staged = await soap_api(stage, ingress, soap_servers.calculator_wsdl, "Multiply", address=f"http://127.0.0.2:{port}/calc")
    body = await failed(settings, ingress, staged, {"intA": 1, "intB": 2}, 502, "target_not_allowed")
    assert "127.0.0.2" in body["message"]
    assert len(soap_servers.posts("/calculator.asmx")) == posts  # the WSDL's own address was not used instead
