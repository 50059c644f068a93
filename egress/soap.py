"""Outbound SOAP calls: zeep builds and reads the envelopes, aiohttp carries them.

zeep's own transports block (requests) or need httpx; here the WSDL is fetched
once per URL with the pooled aiohttp session, parsed by zeep in a worker thread
(it is CPU work), and cached. Each call is then envelope building, one async
POST and reply parsing.

Every byte comes through the egress session and so through its SSRF guard: the
WSDL, each document it imports (wsdl:import, xsd:import/include, fetched from
the parsing thread on the event loop; http and https only, at most
``MAX_DOCUMENTS`` per WSDL) and the POST to the port's ``soap:address`` (or the
address the call overrides it with). zeep's own transport never fetches.

Contract: the OutboundCall body is a JSON object of the operation's arguments
(the connector script shapes it); the Reply body is the operation's result as
JSON. A SOAP fault becomes a 502 ``soap_fault`` with the fault string.
"""
from __future__ import annotations

import asyncio
import concurrent.futures
import json
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any
from urllib.parse import urlsplit

from core.errors import DeadlineExceeded, InvalidInput, JunctionError, UpstreamError
from core.ssrf import TargetNotAllowed

__all__ = ["MAX_DOCUMENTS", "SoapCaller", "SoapFault"]

MAX_DOCUMENTS = 32  # the WSDL and what it imports, transitively


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
        """``fetch(url, timeout_s, follow_redirects=...) -> bytes`` loads a WSDL or a
        document it imports; ``post(url, headers, body, timeout_s, follow_redirects=...)``
        returns an UpstreamResponse. Both come from the egress REST caller, so
        SOAP shares its pool, SSRF guard, timeouts and error mapping."""
        self._fetch = fetch
        self._post = post
        self._clients: dict[str, Any] = {}
        self._locks: dict[str, asyncio.Lock] = {}

    async def _client(self, wsdl_url: str, timeout_s: float, follow_redirects: bool) -> Any:
        client = self._clients.get(wsdl_url)
        if client is not None:
            return client
        lock = self._locks.setdefault(wsdl_url, asyncio.Lock())
        async with lock:
            if wsdl_url not in self._clients:
                document = await self._fetch(wsdl_url, timeout_s, follow_redirects=follow_redirects)
                load = self._loader(wsdl_url, timeout_s, follow_redirects)
                try:
                    self._clients[wsdl_url] = await asyncio.to_thread(_parse_wsdl, wsdl_url, document, load)
                except JunctionError:
                    raise
                except Exception as exc:  # zeep and lxml raise many shapes for a bad document
                    raise UpstreamError(f"unreadable WSDL {wsdl_url}: {type(exc).__name__}: {exc}", code="soap_bad_wsdl") from None
        return self._clients[wsdl_url]

    def _loader(self, wsdl_url: str, timeout_s: float, follow_redirects: bool) -> Callable[[str], bytes]:
        """What zeep's transport calls, in the parsing thread, for each imported
        document: a fetch on the event loop, through the guarded session."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        loaded = [1]  # the WSDL itself

        def load(location: str) -> bytes:
            if urlsplit(location).scheme.lower() not in ("http", "https"):
                raise TargetNotAllowed(f"the WSDL {wsdl_url} imports {location!r}: only http and https documents are loaded")
            try:
                asyncio.get_running_loop()
            except RuntimeError:
                pass  # the parsing thread, as it should be
            else:
                raise UpstreamError(f"the WSDL {wsdl_url} imports {location} after it was parsed", code="soap_bad_wsdl")
            loaded[0] += 1
            if loaded[0] > MAX_DOCUMENTS:
                raise UpstreamError(f"the WSDL {wsdl_url} imports more than {MAX_DOCUMENTS - 1} documents", code="soap_bad_wsdl")
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise DeadlineExceeded(f"loading the WSDL {wsdl_url} took longer than {timeout_s * 1000:.0f} ms", code="upstream_timeout")
            future = asyncio.run_coroutine_threadsafe(self._fetch(location, remaining, follow_redirects=follow_redirects), loop)
            try:
                return future.result(timeout=remaining + 5)
            except concurrent.futures.TimeoutError:
                future.cancel()
                raise DeadlineExceeded(f"loading {location} took longer than {timeout_s * 1000:.0f} ms", code="upstream_timeout") from None

        return load

    async def call(self, wsdl_url: str, operation: str, body: bytes, headers: list[tuple[str, str]], timeout_s: float, *,
                   address: str | None = None, follow_redirects: bool = False) -> tuple[int, bytes]:
        """Call ``operation``; the envelope goes to ``address`` if given (a connector's
        override), else to the WSDL port's ``soap:address``."""
        from zeep.exceptions import Fault, XMLSyntaxError

        client = await self._client(wsdl_url, timeout_s, follow_redirects)
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
        endpoint = address or port.binding_options.get("address")
        if not endpoint:
            raise UpstreamError(f"the WSDL {wsdl_url} gives no address for its port", code="soap_bad_wsdl")
        response = await self._post(endpoint, send_headers, payload, timeout_s, follow_redirects=follow_redirects)
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


def _parse_wsdl(url: str, document: bytes, load: Callable[[str], bytes]) -> Any:
    """Build a zeep client from an already-fetched WSDL, in a worker thread.
    Imported documents come through ``load`` (the guarded session), never
    through zeep's own transport, whatever their scheme."""
    from zeep import Client, Settings
    from zeep.transports import Transport

    class _Guarded(Transport):
        def load(self, location: str) -> bytes:
            if location == url:
                return document
            return load(location)

        def _load_remote_data(self, location: str) -> bytes:
            return load(location)

        def get(self, address: str, params: Any, headers: Any) -> Any:
            raise UpstreamError("zeep's own transport is not used", code="soap_bad_wsdl")

        def post(self, address: str, message: Any, headers: Any) -> Any:
            raise UpstreamError("zeep's own transport is not used", code="soap_bad_wsdl")

    # Safe parsing: no DTDs, no entities. Imports are allowed (forbid_external off):
    # each goes through ``load`` and so through the SSRF guard.
    settings = Settings(strict=False, xml_huge_tree=False, forbid_dtd=True, forbid_entities=True, forbid_external=False)
    return Client(url, transport=_Guarded(timeout=10, operation_timeout=10), settings=settings)
