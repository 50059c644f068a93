"""Outbound SOAP calls: zeep builds and reads the envelopes, aiohttp carries them.

zeep's own transports block (requests) or need httpx; here the WSDL is fetched
once per URL with the pooled aiohttp session, parsed by zeep in a worker thread
(it is CPU work and may fetch imported schemas), and cached. Each call is then
envelope building, one async POST and reply parsing.

Contract: the OutboundCall body is a JSON object of the operation's arguments
(the connector script shapes it); the Reply body is the operation's result as
JSON. A SOAP fault becomes a 502 ``soap_fault`` with the fault string.
"""
from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from core.errors import InvalidInput, JunctionError, UpstreamError

__all__ = ["SoapCaller", "SoapFault"]


class SoapFault(UpstreamError):
    code = "soap_fault"


@dataclass
class _Reply:
    """The shape zeep's ``process_reply`` reads (a requests-like response)."""

    status_code: int
    content: bytes
    headers: dict[str, str]
    encoding: str | None = "utf-8"


def _json_default(value: Any) -> Any:
    if isinstance(value, Decimal):
        return str(value)
    if hasattr(value, "isoformat"):
        return value.isoformat()
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return str(value)


class SoapCaller:
    def __init__(self, fetch: Any, post: Any) -> None:
        """``fetch(url, timeout_s) -> bytes`` loads a WSDL; ``post(url, headers, body, timeout_s)``
        returns an UpstreamResponse. Both come from the egress REST caller, so
        SOAP shares its pool, timeouts and error mapping."""
        self._fetch = fetch
        self._post = post
        self._clients: dict[str, Any] = {}
        self._locks: dict[str, asyncio.Lock] = {}

    async def _client(self, wsdl_url: str, timeout_s: float) -> Any:
        client = self._clients.get(wsdl_url)
        if client is not None:
            return client
        lock = self._locks.setdefault(wsdl_url, asyncio.Lock())
        async with lock:
            if wsdl_url not in self._clients:
                document = await self._fetch(wsdl_url, timeout_s)
                self._clients[wsdl_url] = await asyncio.to_thread(_parse_wsdl, wsdl_url, document)
        return self._clients[wsdl_url]

    def forget(self, wsdl_url: str) -> None:
        """Drop a cached WSDL (a connector's target changed)."""
        self._clients.pop(wsdl_url, None)

    async def call(self, wsdl_url: str, operation: str, body: bytes, headers: list[tuple[str, str]], timeout_s: float) -> tuple[int, bytes]:
        from zeep.exceptions import Fault, XMLSyntaxError

        client = await self._client(wsdl_url, timeout_s)
        try:
            args = json.loads(body or b"{}")
        except ValueError:
            raise InvalidInput("a SOAP call's body must be a JSON object of operation arguments", code="invalid_soap_arguments") from None
        if not isinstance(args, dict):
            raise InvalidInput("a SOAP call's body must be a JSON object of operation arguments", code="invalid_soap_arguments")
        port = next(iter(next(iter(client.wsdl.services.values())).ports.values()))
        binding = port.binding
        try:
            op = binding.get(operation)
        except ValueError:
            raise JunctionError(f"the WSDL has no operation {operation!r}", code="unknown_soap_operation", status=502) from None
        try:
            envelope = client.create_message(client.service, operation, **args)
        except (TypeError, ValueError) as exc:
            raise InvalidInput(f"arguments do not fit operation {operation}: {exc}", code="invalid_soap_arguments") from None
        from lxml import etree

        payload = etree.tostring(envelope, xml_declaration=True, encoding="utf-8")
        send_headers = [(k, v) for k, v in headers if k.lower() not in ("content-type", "content-length", "soapaction", "accept")]
        send_headers += [("Content-Type", "text/xml; charset=utf-8"), ("SOAPAction", f'"{op.soapaction or ""}"')]
        response = await self._post(port.binding_options["address"], send_headers, payload, timeout_s)
        reply = _Reply(response.status, response.body, dict(response.headers))
        try:
            result = binding.process_reply(client, op, reply)
        except Fault as fault:
            raise SoapFault(f"SOAP fault: {fault.message}", extra={"fault_code": str(fault.code)}) from None
        except (XMLSyntaxError, Exception) as exc:  # zeep raises many shapes for a bad answer
            if isinstance(exc, JunctionError):
                raise
            raise UpstreamError(f"unreadable SOAP answer: {type(exc).__name__}: {exc}", code="soap_bad_response") from None
        from zeep.helpers import serialize_object

        return 200, json.dumps(serialize_object(result, dict), default=_json_default).encode()


def _parse_wsdl(url: str, document: bytes) -> Any:
    """Build a zeep client from an already-fetched WSDL. Imported schemas are
    fetched by zeep's own transport, in this worker thread."""
    from zeep import Client, Settings
    from zeep.transports import Transport

    class _Preloaded(Transport):
        def load(self, location: str) -> bytes:
            if location == url:
                return document
            return super().load(location)

    # Safe parsing: no external entities, no DTD-driven network access.
    settings = Settings(strict=False, xml_huge_tree=False, forbid_dtd=True, forbid_entities=True, forbid_external=True)
    return Client(url, transport=_Preloaded(timeout=10, operation_timeout=10), settings=settings)
