"""REST in, SOAP out: egress calls a real SOAP server described by its WSDL."""
from __future__ import annotations

from typing import Any

import aiohttp
import pytest_asyncio

from tests.support import IngressInstance, Stage, wait_until


@pytest_asyncio.fixture(loop_scope="session")
async def soap_api(stage: Stage, ingress: IngressInstance, soap_upstream: str) -> dict[str, Any]:
    staged = await stage.api("", path="/order-status", methods=["POST"],
                             target={"protocol": "soap", "url": soap_upstream, "operation": "GetOrderStatus"})
    await wait_until(lambda: staged["api"]["id"] in ingress.snapshot.apis)
    return staged


async def test_json_arguments_call_the_soap_operation_and_the_result_comes_back_as_json(ingress: IngressInstance, soap_api: dict[str, Any]) -> None:
    async with aiohttp.ClientSession() as s:
        async with s.post(f"{ingress.url}/{soap_api['org']}/order-status", json={"orderId": "A-17"}) as r:
            assert r.status == 200, await r.text()
            assert r.headers["Content-Type"].startswith("application/json")
            got = await r.json()
    assert got["orderId"] == "A-17"
    assert got["status"] in ("shipped", "processing")
    assert float(got["total"]) >= 0


async def test_a_soap_fault_is_a_502_with_the_fault_string(ingress: IngressInstance, soap_api: dict[str, Any]) -> None:
    async with aiohttp.ClientSession() as s:
        async with s.post(f"{ingress.url}/{soap_api['org']}/order-status", json={"orderId": "missing"}) as r:
            assert r.status == 502
            body = await r.json()
    assert body["code"] == "soap_fault"
    assert "order missing not found" in body["message"]


async def test_arguments_that_are_not_a_json_object_are_refused(ingress: IngressInstance, soap_api: dict[str, Any]) -> None:
    async with aiohttp.ClientSession() as s:
        async with s.post(f"{ingress.url}/{soap_api['org']}/order-status", data=b"<not json>") as r:
            assert r.status == 422
            body = await r.json()
    assert body["code"] == "invalid_soap_arguments"
