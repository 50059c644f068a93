"""Outbound SOAP calls: zeep builds and reads the envelopes, aiohttp carries them.

Every byte comes through the egress session and so through its SSRF guard: the WSDL, each
document it imports (see egress/soap_wsdl.py) and the POST to the port's ``soap:address`` (or
the address the call overrides it with). zeep's own transport never fetches.

A WSDL is loaded once per connector version (a new version of the connector loads it again,
so a fixed or moved WSDL takes effect with the connector change) and kept in a bounded LRU.
The port is chosen per connector: ``target.port`` (a port name) or ``target.binding`` (a
binding name), by default the first SOAP 1.1 port, else the first SOAP 1.2 one. SOAP 1.1 is
sent as ``text/xml`` with ``SOAPAction``; SOAP 1.2 as ``application/soap+xml; action=…``.

zeep's CPU work stays off the event loop: the WSDL is parsed in a pool of its own, and each
envelope is built and each answer read in a small bounded pool, unless it is small enough to
cost less than the hop to a thread. ``bench/soap_bench.py`` measured this against zeep's async
path, which does both on the loop: equal throughput on large answers with the loop's lag cut
from hundreds of milliseconds to tens, and small answers faster inline than through the pool
(bench/results/soap.json).

Contract: the OutboundCall body is a JSON object of the operation's arguments (the connector
script shapes it); the Reply body is the operation's result as JSON, keyed by the response's
element names (egress/soap_reply.py). Failures are JunctionErrors with a code; every failure
to load the WSDL or to build the envelope is dead-lettered by the worker (an UpstreamError or
a :class:`SoapArgumentsInvalid`).
"""
from __future__ import annotations

import asyncio
import hashlib
import json
from collections import OrderedDict
from collections.abc import Callable, Mapping
from concurrent.futures import Executor, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, TypeVar

from core.errors import DeadlineExceeded, InvalidInput, JunctionError, UpstreamError
from egress.soap_reply import SoapFault, read_reply
from egress.soap_wsdl import (MAX_DOCUMENTS, MAX_WSDL_BYTES, Fetch, Port, SoapLoadTimeout, SoapWsdlError, loader,
                              parse_wsdl, select_port, uploaded_lookup)

__all__ = ["MAX_CLIENTS", "MAX_DOCUMENTS", "MAX_WSDL_BYTES", "PreparedCall", "SoapArgumentsInvalid", "SoapCaller", "SoapFault",
           "SoapLoadTimeout", "SoapWsdlError", "soap_options"]

MAX_CLIENTS = 256  # loaded WSDLs kept, across connectors and their versions
CPU_THREADS = 2  # envelope building and answer reading; the GIL makes more threads no faster
INLINE_BELOW = 16 * 1024  # bytes: smaller arguments or answers are handled on the loop, faster than a thread hop
WSDL_THREADS = 2  # WSDL parsing: seldom, but long, so apart from the calls' pool

T = TypeVar("T")
VersionKey = tuple[str, int]
Uploaded = tuple[str, dict[str, str]]  # a connector's own WSDL document, and the documents it imports


@dataclass(frozen=True)
class PreparedCall:
    """An envelope ready to send, and what reading its answer needs."""

    port: Port
    operation: Any  # zeep's SoapOperation
    endpoint: str
    payload: bytes
    headers: list[tuple[str, str]]
    deadline: float  # event loop time
    follow_redirects: bool


class SoapArgumentsInvalid(InvalidInput):
    """The call's arguments make no envelope for the operation: the caller's (or the
    script's) fault, hence 422, and dead-lettered like every SOAP failure."""

    code = "invalid_soap_arguments"


class UnknownSoapOperation(SoapWsdlError):
    code = "unknown_soap_operation"


def soap_options(call: Mapping[str, Any], connector: Mapping[str, Any] | None) -> dict[str, Any]:
    """The keyword arguments of :meth:`SoapCaller.call` that come from the call's connector."""
    target = (connector or {}).get("target") or {}
    options: dict[str, Any] = {"follow_redirects": target.get("follow_redirects") is True,
                               "binding": target.get("binding"), "port": target.get("port"),
                               "address": target.get("address"), "document": target.get("wsdl"),
                               "documents": target.get("documents")}
    if call.get("connector_id"):
        options["version_key"] = (str(call["connector_id"]), int(call.get("connector_version") or 0))
    return options


class SoapCaller:
    def __init__(self, fetch: Fetch, post: Any, *, cpu: Executor | None = None, inline_below: int = INLINE_BELOW,
                 max_clients: int = MAX_CLIENTS) -> None:
        """``fetch(url, timeout_s, follow_redirects=...) -> bytes`` loads a WSDL or a document it
        imports; ``post(url, headers, body, timeout_s, follow_redirects=...)`` returns an
        UpstreamResponse. Both come from the egress REST caller, so SOAP shares its pool, SSRF
        guard, size limit, timeouts and error mapping. ``cpu`` builds the envelopes and reads the
        answers (default: a pool of ``CPU_THREADS``), except those smaller than ``inline_below``
        bytes (JSON arguments, answer), which take less time on the loop than a thread hop."""
        self._fetch = fetch
        self._post = post
        self._cpu = cpu if cpu is not None else ThreadPoolExecutor(CPU_THREADS, thread_name_prefix="soap-cpu")
        self._wsdl_pool = ThreadPoolExecutor(WSDL_THREADS, thread_name_prefix="soap-wsdl")
        self._inline_below = inline_below
        self._max_clients = max_clients
        self._clients: OrderedDict[tuple[Any, ...], Any] = OrderedDict()
        self._locks: dict[tuple[Any, ...], asyncio.Lock] = {}

    def loaded(self, wsdl_url: str) -> int:
        """How many loaded copies of ``wsdl_url`` are cached (one per connector version)."""
        return sum(1 for key in self._clients if key[1] == wsdl_url)

    async def _cpu_work(self, size: int, fn: Callable[..., T], *args: Any) -> T:
        if size < self._inline_below:
            return fn(*args)
        return await asyncio.get_running_loop().run_in_executor(self._cpu, fn, *args)

    async def _client(self, wsdl_url: str, timeout_s: float, follow_redirects: bool, version_key: VersionKey | None,
                      uploaded: Uploaded | None = None) -> Any:
        # An uploaded WSDL is its own key (the same location may be fetched by another call); a connector
        # version fixes its document, so only a call without one pays for hashing it.
        key = (version_key, wsdl_url, follow_redirects, uploaded is not None if version_key else _digest(uploaded))
        client = self._clients.get(key)
        if client is not None:
            self._clients.move_to_end(key)
            return client
        lock = self._locks.setdefault(key, asyncio.Lock())
        async with lock:
            if key not in self._clients:
                self._clients[key] = await self._load(wsdl_url, timeout_s, follow_redirects, uploaded)
                self._locks.pop(key, None)
                while len(self._clients) > self._max_clients:
                    self._clients.popitem(last=False)
        return self._clients[key]

    async def _load(self, wsdl_url: str, timeout_s: float, follow_redirects: bool, uploaded: Uploaded | None) -> Any:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        if uploaded is not None:
            document = uploaded[0].encode("utf-8")
        else:
            document = await self._fetch_wsdl(wsdl_url, timeout_s, follow_redirects)
        if len(document) > MAX_WSDL_BYTES:
            raise SoapWsdlError(f"the WSDL {wsdl_url} exceeds {MAX_WSDL_BYTES} bytes")
        remaining = deadline - loop.time()
        load = loader(self._fetch, wsdl_url, document, remaining, follow_redirects,
                      uploaded_lookup(wsdl_url, uploaded[1]) if uploaded is not None else None)
        parsing = loop.run_in_executor(self._wsdl_pool, parse_wsdl, wsdl_url, document, load)
        try:
            return await asyncio.wait_for(parsing, max(remaining, 0.001))
        except asyncio.TimeoutError:
            # The parsing thread stops at its next import (its loader sees the deadline passed).
            raise SoapLoadTimeout(f"loading the WSDL {wsdl_url} took longer than {timeout_s * 1000:.0f} ms") from None
        except JunctionError:
            raise
        except Exception as exc:  # noqa: BLE001 - zeep and lxml raise many shapes for a bad document
            raise SoapWsdlError(f"unreadable WSDL {wsdl_url}: {type(exc).__name__}: {exc}") from None

    async def _fetch_wsdl(self, wsdl_url: str, timeout_s: float, follow_redirects: bool) -> bytes:
        try:
            return await self._fetch(wsdl_url, timeout_s, follow_redirects=follow_redirects)
        except DeadlineExceeded as exc:
            raise SoapLoadTimeout(f"loading the WSDL {wsdl_url}: {exc.message}") from None
        except JunctionError as exc:  # same class and code, the message names the WSDL
            raise type(exc)(f"loading the WSDL {wsdl_url}: {exc.message}", code=exc.code, status=exc.status,
                            extra=exc.extra) from None

    async def prepare(self, wsdl_url: str, operation: str, body: bytes, headers: list[tuple[str, str]], timeout_s: float, *,
                      address: str | None = None, follow_redirects: bool = False, binding: str | None = None,
                      port: str | None = None, version_key: VersionKey | None = None, document: str | None = None,
                      documents: Mapping[str, str] | None = None) -> PreparedCall:
        """Everything before the POST: the WSDL loaded, the port chosen, the envelope built. The
        WSDL is ``document`` if given (uploaded with the connector, ``wsdl_url`` then only its
        location), with ``documents`` the imports uploaded beside it; else it is fetched. The
        envelope goes to ``address`` if given (a connector's override), else to the port's
        ``soap:address``. Nothing here is a call of the operation's endpoint, so the worker
        keeps it out of the upstream's circuit breaker: a bad WSDL or bad arguments is no outage."""
        args = _arguments(body)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        uploaded = (document, dict(documents or {})) if document else None
        client = await self._client(wsdl_url, timeout_s, follow_redirects, version_key, uploaded)
        chosen = select_port(client, wsdl_url, binding=binding, port=port)
        try:
            op = chosen.binding.get(operation)
        except ValueError:
            raise UnknownSoapOperation(f"the WSDL's port {chosen.name} has no operation {operation!r}") from None
        endpoint = address or chosen.address
        if not endpoint:
            raise SoapWsdlError(f"the WSDL {wsdl_url} gives no address for its port {chosen.name}")
        payload, soap_headers = await self._cpu_work(len(body), _build, client, chosen, operation, args, endpoint)
        send = [(k, v) for k, v in headers if k.lower() not in ("content-type", "content-length", "soapaction", "accept")]
        return PreparedCall(chosen, op, endpoint, payload, send + soap_headers, deadline, follow_redirects)

    async def send(self, prepared: PreparedCall) -> tuple[int, bytes]:
        """POST the envelope and read the answer: (200, the result as JSON), or a JunctionError."""
        remaining = prepared.deadline - asyncio.get_running_loop().time()
        if remaining <= 0:
            raise DeadlineExceeded("deadline passed before the SOAP envelope was sent", code="upstream_timeout")
        response = await self._post(prepared.endpoint, prepared.headers, prepared.payload, remaining,
                                    follow_redirects=prepared.follow_redirects)
        content_type = next((v for k, v in response.headers if k.lower() == "content-type"), "")
        result = await self._cpu_work(len(response.body), read_reply, prepared.port.binding, prepared.operation,
                                      response.status, content_type, response.body)
        return 200, result

    async def call(self, wsdl_url: str, operation: str, body: bytes, headers: list[tuple[str, str]], timeout_s: float,
                   **options: Any) -> tuple[int, bytes]:
        """:meth:`prepare` then :meth:`send`."""
        return await self.send(await self.prepare(wsdl_url, operation, body, headers, timeout_s, **options))


def _digest(uploaded: Uploaded | None) -> str | None:
    if uploaded is None:
        return None
    return hashlib.sha256(json.dumps(uploaded, sort_keys=True).encode()).hexdigest()


def _arguments(body: bytes) -> dict[str, Any]:
    try:
        args = json.loads(body or b"{}")
    except ValueError:
        args = None
    if not isinstance(args, dict):
        raise SoapArgumentsInvalid("a SOAP call's body must be a JSON object of operation arguments")
    return args


def _build(client: Any, port: Port, operation: str, args: dict[str, Any], endpoint: str) -> tuple[bytes, list[tuple[str, str]]]:
    """The envelope and its HTTP headers; runs off the event loop."""
    from lxml import etree
    from zeep.exceptions import Error as ZeepError

    try:
        # zeep's own path (WS-Addressing headers where the WSDL declares actions), short of sending.
        envelope, _ = port.binding._create(operation, (), args, client=client, options={"address": endpoint})
    except (TypeError, ValueError, ZeepError) as exc:
        raise SoapArgumentsInvalid(f"arguments do not fit operation {operation}: {exc}") from None
    except Exception as exc:  # noqa: BLE001 - a WSDL zeep loaded but cannot serialise for
        raise UpstreamError(f"could not build the {operation} envelope: {type(exc).__name__}: {exc}",
                            code="soap_envelope_failed") from None
    action = port.binding.get(operation).soapaction or ""
    if port.soap12:  # SOAP 1.2: the action is a media type parameter, there is no SOAPAction header
        ctype = "application/soap+xml; charset=utf-8" + (f'; action="{action}"' if action else "")
        headers = [("Content-Type", ctype)]
    else:
        headers = [("Content-Type", "text/xml; charset=utf-8"), ("SOAPAction", f'"{action}"')]
    return etree.tostring(envelope, xml_declaration=True, encoding="utf-8"), headers
