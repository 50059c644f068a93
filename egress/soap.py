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
script shapes it), checked against the WSDL before anything is sent (:func:`argument_errors`:
names, XML Schema attributes as keys beside the elements, required elements, values of the simple
types and the facets of restricted ones (egress/soap_facets.py, read once per loaded WSDL), at most
MAX_ARGUMENT_DEPTH levels deep), so a caller's bad argument is its 422, never an envelope the
service refuses and a 502 counted against the service's breaker; the Reply body is the operation's
result as JSON, keyed by the response's element names (egress/soap_reply.py). Failures are
JunctionErrors with a code; every failure to load the WSDL or to build the envelope is dead-lettered
by the worker (an UpstreamError or a :class:`SoapArgumentsInvalid`). The envelope asks for an
``identity`` answer, and one compressed anyway is decoded within ``max_answer_bytes``.
"""
from __future__ import annotations

import asyncio
import hashlib
import json
import math
import re
from collections import OrderedDict
from collections.abc import Callable, Mapping
from concurrent.futures import Executor, ThreadPoolExecutor
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, TypeVar
from urllib.parse import urlsplit

from core.errors import DeadlineExceeded, FieldError, InvalidInput, JunctionError, UpstreamError
from core.nesting import MAX_JSON_DEPTH, depth_over
from core.settings import Settings
from core.soap_contract import MAX_DECIMAL_CHARS, plain_length
from egress.soap_facets import Facets, SchemaFacets, facet_error, schema_facets
from egress.soap_reply import SoapFault, decode_answer, read_reply
from egress.soap_wsdl import (MAX_DOCUMENTS, MAX_WSDL_BYTES, Fetch, Port, SoapLoadTimeout, SoapWsdlError, loader, naming,
                              parse_wsdl, select_port, uploaded_lookup)

__all__ = ["MAX_CLIENTS", "MAX_DOCUMENTS", "MAX_WSDL_BYTES", "PreparedCall", "SoapArgumentsInvalid", "SoapCaller", "SoapFault",
           "SoapLoadTimeout", "SoapWsdlError", "argument_errors", "soap_options"]

MAX_CLIENTS = 256  # loaded WSDLs kept, across connectors and their versions
CPU_THREADS = 2  # envelope building and answer reading; the GIL makes more threads no faster
INLINE_BELOW = 16 * 1024  # bytes: smaller arguments or answers are handled on the loop, faster than a thread hop
WSDL_THREADS = 2  # WSDL parsing: seldom, but long, so apart from the calls' pool
# Headers of the caller's that say nothing to the SOAP service: the envelope is Junction's, and so is the
# answer's coding (the caller's Accept-Encoding is for the JSON reply, which ingress encodes itself).
_NOT_SENT = frozenset({"content-type", "content-length", "soapaction", "accept", "accept-encoding"})
SHOWN_ARGUMENTS = 20  # argument names a message lists; a wider operation's list ends with "…"
MAX_FIELDS = 50  # problems an invalid_soap_arguments lists; the message counts the rest
# Objects and arrays nested in a call's arguments, as a config body is bounded: deeper is refused before
# anything walks them (the checks below and zeep's rendering recurse once per level).
MAX_ARGUMENT_DEPTH = MAX_JSON_DEPTH

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


@dataclass(frozen=True)
class _Loaded:
    """A loaded WSDL: zeep's client, and the facets of its simple types (which zeep drops), read once."""

    client: Any
    facets: SchemaFacets


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
                 max_clients: int = MAX_CLIENTS, max_answer_bytes: int = Settings.max_body_bytes) -> None:
        """``fetch(url, timeout_s, follow_redirects=...) -> bytes`` loads a WSDL or a document it
        imports; ``post(url, headers, body, timeout_s, follow_redirects=...)`` returns an
        UpstreamResponse. Both come from the egress REST caller, so SOAP shares its pool, SSRF
        guard, size limit, timeouts and error mapping. ``cpu`` builds the envelopes and reads the
        answers (default: a pool of ``CPU_THREADS``), except those smaller than ``inline_below``
        bytes (JSON arguments, answer), which take less time on the loop than a thread hop.
        ``max_answer_bytes`` bounds an answer decoded from its Content-Encoding (JUNCTION_MAX_BODY_BYTES,
        as ``post`` bounds the bytes received)."""
        self._fetch = fetch
        self._post = post
        self._cpu = cpu if cpu is not None else ThreadPoolExecutor(CPU_THREADS, thread_name_prefix="soap-cpu")
        self._wsdl_pool = ThreadPoolExecutor(WSDL_THREADS, thread_name_prefix="soap-wsdl")
        self._inline_below = inline_below
        self._max_clients = max_clients
        self._max_answer_bytes = max_answer_bytes
        self._clients: OrderedDict[tuple[Any, ...], _Loaded] = OrderedDict()
        self._locks: dict[tuple[Any, ...], asyncio.Lock] = {}

    def loaded(self, wsdl_url: str) -> int:
        """How many loaded copies of ``wsdl_url`` are cached (one per connector version)."""
        return sum(1 for key in self._clients if key[1] == wsdl_url)

    async def _cpu_work(self, size: int, fn: Callable[..., T], *args: Any) -> T:
        if size < self._inline_below:
            return fn(*args)
        return await asyncio.get_running_loop().run_in_executor(self._cpu, fn, *args)

    async def _client(self, wsdl_url: str, timeout_s: float, follow_redirects: bool, version_key: VersionKey | None,
                      uploaded: Uploaded | None = None) -> _Loaded:
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

    async def _load(self, wsdl_url: str, timeout_s: float, follow_redirects: bool, uploaded: Uploaded | None) -> _Loaded:
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
        parsing = loop.run_in_executor(self._wsdl_pool, _parse, wsdl_url, document, load)
        try:
            async with asyncio.timeout(max(remaining, 0.001)):
                return await parsing
        except TimeoutError:
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
            raise naming(exc, f"loading the WSDL {wsdl_url}") from None

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
        loaded = await self._client(wsdl_url, timeout_s, follow_redirects, version_key, uploaded)
        chosen = select_port(loaded.client, wsdl_url, binding=binding, port=port)
        try:
            op = chosen.binding.get(operation)
        except ValueError:
            raise UnknownSoapOperation(f"the WSDL's port {chosen.name} has no operation {operation!r}") from None
        endpoint = address or chosen.address
        if not endpoint:
            raise SoapWsdlError(f"the WSDL {wsdl_url} gives no soap:address for its port {chosen.name} (and the connector "
                                "no target.address)")
        if not _http_url(endpoint):
            where = ("the connector's target.address" if address else
                     f"the soap:address of port {chosen.name} in the WSDL {wsdl_url}")
            raise UpstreamError(f"{where} is {_shown(endpoint)!r}, not an http or https URL", code="invalid_upstream_url")
        payload, soap_headers = await self._cpu_work(len(body), _build, loaded, chosen, operation, args, endpoint)
        send = [(k, v) for k, v in headers if k.lower() not in _NOT_SENT]
        # identity: the answer is parsed here, not passed on (a server that compresses anyway is decoded in send).
        return PreparedCall(chosen, op, endpoint, payload, [*send, *soap_headers, ("Accept-Encoding", "identity")], deadline,
                            follow_redirects)

    async def send(self, prepared: PreparedCall) -> tuple[int, bytes]:
        """POST the envelope and read the answer: (200, the result as JSON), or a JunctionError."""
        remaining = prepared.deadline - asyncio.get_running_loop().time()
        if remaining <= 0:
            raise DeadlineExceeded("deadline passed before the SOAP envelope was sent", code="upstream_timeout")
        response = await self._post(prepared.endpoint, prepared.headers, prepared.payload, remaining,
                                    follow_redirects=prepared.follow_redirects)
        content_type = next((v for k, v in response.headers if k.lower() == "content-type"), "")
        coding = ", ".join(v for k, v in response.headers if k.lower() == "content-encoding")
        # An encoded answer goes to the pool however small: a few kilobytes can decode to megabytes.
        size = len(response.body) if not coding else max(len(response.body), self._inline_below)
        result = await self._cpu_work(size, _read, prepared, response.status, content_type, coding, response.body,
                                      self._max_answer_bytes)
        return 200, result

    async def call(self, wsdl_url: str, operation: str, body: bytes, headers: list[tuple[str, str]], timeout_s: float,
                   **options: Any) -> tuple[int, bytes]:
        """:meth:`prepare` then :meth:`send`."""
        return await self.send(await self.prepare(wsdl_url, operation, body, headers, timeout_s, **options))


def _parse(wsdl_url: str, document: bytes, load: Callable[[str], bytes]) -> _Loaded:
    """zeep's client, and the facets of the simple types of the very bytes it parsed (each document kept as
    ``load`` hands it over: never a second fetch); runs in the WSDL pool."""
    seen: list[tuple[str, bytes]] = [(wsdl_url, document)]

    def kept(location: str) -> bytes:
        loaded = load(location)
        seen.append((location, loaded))
        return loaded

    client = parse_wsdl(wsdl_url, document, kept)
    return _Loaded(client, schema_facets(seen))


def _http_url(url: str) -> bool:
    """An absolute http(s) URL with a host, as a soap:address must be to be posted to."""
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError for a port that is not a number
    except ValueError:
        return False
    return parts.scheme.lower() in ("http", "https") and bool(parts.hostname) and not any(c.isspace() for c in url)


def _digest(uploaded: Uploaded | None) -> str | None:
    if uploaded is None:
        return None
    return hashlib.sha256(json.dumps(uploaded, sort_keys=True).encode()).hexdigest()


def _arguments(body: bytes) -> dict[str, Any]:
    """The call's JSON arguments; a number with a fraction or an exponent is kept as the Decimal it is
    written as (1e30 is 10**30 exactly for an xsd:decimal; zeep writes it in exponent form for a double)."""
    try:
        args = json.loads(body or b"{}", parse_float=Decimal)
    except RecursionError:
        raise _too_deep() from None
    except ValueError:
        args = None
    if not isinstance(args, dict):
        raise SoapArgumentsInvalid("a SOAP call's body must be a JSON object of operation arguments")
    if depth_over(args, MAX_ARGUMENT_DEPTH):
        raise _too_deep()
    return args


def _too_deep() -> SoapArgumentsInvalid:
    problem = f"nests objects and arrays deeper than {MAX_ARGUMENT_DEPTH} levels"
    return SoapArgumentsInvalid(f"the arguments {problem}", fields=[FieldError("(body)", problem)])


def _read(prepared: PreparedCall, status: int, content_type: str, coding: str, body: bytes, limit: int) -> bytes:
    """The answer decoded, then read (egress/soap_reply.py); runs off the event loop unless small."""
    return read_reply(prepared.port.binding, prepared.operation, status, content_type, decode_answer(coding, body, limit))


def _build(loaded: _Loaded, port: Port, operation: str, args: dict[str, Any], endpoint: str) -> tuple[bytes, list[tuple[str, str]]]:
    """The envelope and its HTTP headers; runs off the event loop."""
    from lxml import etree
    from zeep.exceptions import Error as ZeepError
    from zeep.exceptions import ValidationError

    op = port.binding.get(operation)
    errors = argument_errors(op, args, loaded.facets)
    if errors:
        raise _invalid(op, errors)
    try:
        # zeep's own path (WS-Addressing headers where the WSDL declares actions), short of sending.
        envelope, _ = port.binding._create(operation, (), args, client=loaded.client, options={"address": endpoint})
    except RecursionError:  # past MAX_ARGUMENT_DEPTH nothing recurses this deep; kept as the caller's, not a 502
        raise _too_deep() from None
    except ValidationError as exc:  # what argument_errors leaves to zeep (a choice, an extension, occurrences)
        raise _invalid(op, [FieldError(_zeep_path(op, exc.path), _zeep_message(exc.message))]) from None
    except (TypeError, ValueError, ZeepError) as exc:
        # zeep's text is a Python signature or an internal message: only the name it refused is kept.
        refused = re.search(r"unexpected keyword argument '([^']+)'", str(exc))
        field = (FieldError(_shown(refused.group(1)), "is not a field of the object it is in") if refused
                 else FieldError("(body)", "does not fit the operation's input"))
        raise _invalid(op, [field]) from None
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


# -- the arguments against the WSDL ----------------------------------------------------------------------
# zeep renders whatever it is given (True as "True", 1.5 or 99999999999 for an xsd:int, a dict as its repr):
# the service would refuse the envelope, and its 500 would be the caller's 502 and the service's breaker count.

# The integer types' value spaces (XML Schema part 2, §3.3): zeep converts them but does not bound them.
_INTEGER_RANGES: dict[str, tuple[int | None, int | None]] = {
    "integer": (None, None), "long": (-2**63, 2**63 - 1), "int": (-2**31, 2**31 - 1), "short": (-2**15, 2**15 - 1),
    "byte": (-2**7, 2**7 - 1), "nonNegativeInteger": (0, None), "positiveInteger": (1, None),
    "nonPositiveInteger": (None, 0), "negativeInteger": (None, -1), "unsignedLong": (0, 2**64 - 1),
    "unsignedInt": (0, 2**32 - 1), "unsignedShort": (0, 2**16 - 1), "unsignedByte": (0, 2**8 - 1),
}
# Lexical forms where Python's conversion is wider than XML Schema's (int("1_000"), Decimal("NaN")).
_LEXICAL = {
    "integer": re.compile(r"\s*[+-]?[0-9]+\s*"),
    "decimal": re.compile(r"\s*[+-]?([0-9]+(\.[0-9]*)?|\.[0-9]+)\s*"),
    "float": re.compile(r"\s*([+-]?([0-9]+(\.[0-9]*)?|\.[0-9]+)([eE][+-]?[0-9]+)?|[+-]?INF|NaN)\s*"),
}
_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")
_BOOLEAN_TEXT = frozenset({"true", "false", "1", "0"})
_TEXT_TYPES = frozenset({"string", "normalizedString", "token", "language", "NMTOKEN", "NMTOKENS", "Name", "NCName", "ID",
                         "IDREF", "IDREFS", "ENTITY", "ENTITIES", "anyURI", "QName", "NOTATION", "hexBinary"})
_EXAMPLES = {"date": "a date such as 2024-05-31", "dateTime": "a date and time such as 2024-05-31T12:00:00Z",
             "time": "a time such as 12:00:00", "duration": "a duration such as P1DT2H", "boolean": "true or false",
             "decimal": "a number", "float": "a number", "double": "a number", "base64Binary": "base64 text"}


def argument_errors(operation: Any, args: dict[str, Any], facets: SchemaFacets | None = None) -> list[FieldError]:
    """What in ``args`` does not fit the input of zeep's ``operation``, one FieldError per argument at
    fault (``order.lines[1].qty``): a name the input does not have, a required element left out, a
    value that is no valid value of its element's XML Schema simple type, or (given the WSDL's
    ``facets``, egress/soap_facets.py) one that breaks a facet of its restricted type. Where the WSDL
    says more than a sequence of elements (a choice, an extension, xsd:any), what is not checked here
    is left to zeep's own rendering."""
    body = operation.input.body if operation.input is not None else None
    kind = getattr(body, "type", None) if body is not None else None
    if body is not None and not hasattr(kind, "elements"):
        return []  # one simple-typed part: zeep's conversion is all there is to check
    where = _Where(facets, facets.top(body, type(operation.input).__name__ == "RpcMessage") if facets and body else None)
    return _object_errors(kind, args, "", f"an argument of {_signature(operation)}", where, top=True)


@dataclass(frozen=True)
class _Where:
    """The WSDL's facets, and which complex type's declarations the walk is in (None: not known)."""

    facets: SchemaFacets | None
    owner: tuple[str, ...] | None

    def element(self, element: Any) -> Facets | None:
        return self.facets.element(self.owner, element) if self.facets else None

    def attribute(self, attribute: Any) -> Facets | None:
        return self.facets.attribute(self.owner, attribute) if self.facets else None

    def inside(self, element: Any) -> _Where:
        return _Where(self.facets, self.facets.child(self.owner, element)) if self.facets else self


_NOWHERE = _Where(None, None)


def _object_errors(kind: Any, value: dict[str, Any], prefix: str, member_of: str, where: _Where = _NOWHERE, *,
                   top: bool = False) -> list[FieldError]:
    from zeep.xsd.elements import Element

    elements = [(n, e) for n, e in (kind.elements if kind is not None else []) if isinstance(e, Element)]
    # XML Schema attributes are keys beside the elements, as answers carry them (zeep's (name, Attribute) pairs;
    # an attribute named like an element is attr__name).
    attributes = [(n, a) for n, a in (getattr(kind, "attributes", None) or []) if n and not n.startswith("_attr_")]
    known = {n for n, _ in (kind.elements if kind is not None else [])} | {n for n, _ in attributes}
    if top:
        known.add("_soapheaders")  # zeep's own keyword for SOAP header values
    errors = [FieldError(f"{prefix}{_shown(name)}", f"is not {member_of}") for name in value if name not in known]
    for name, element in elements:
        field = f"{prefix}{name}"
        given = value.get(name)
        if given is None:
            if _required(kind, element):
                errors.append(FieldError(field, "is required"))
            continue
        errors += _element_errors(element, given, field, where)
    for name, attribute in attributes:
        field = f"{prefix}{name}"
        given = value.get(name)
        if given is None:
            if getattr(attribute, "required", False):
                errors.append(FieldError(field, "is required (an attribute)"))
            continue
        problem = _simple_value_error(attribute.type, given, where.attribute(attribute))
        if problem:
            errors.append(FieldError(field, problem))
    return errors


def _required(kind: Any, element: Any) -> bool:
    """An element no valid envelope leaves out: a direct child of the type's own sequence (or all),
    at least once, not nillable. Inside a choice or a group it may be left out for another."""
    container = getattr(kind, "_element", None)
    if type(container).__name__ not in ("Sequence", "All") or container.min_occurs == 0 or container.accepts_multiple:
        return False
    return any(child is element for child in container) and element.min_occurs >= 1 and not element.nillable


def _element_errors(element: Any, value: Any, field: str, where: _Where = _NOWHERE) -> list[FieldError]:
    if isinstance(value, list):
        if not element.accepts_multiple:
            return [FieldError(field, "takes one value, not a list")]
        return [e for i, item in enumerate(value) for e in _one_value_errors(element, item, f"{field}[{i}]", where)]
    return _one_value_errors(element, value, field, where)


def _one_value_errors(element: Any, value: Any, field: str, where: _Where = _NOWHERE) -> list[FieldError]:
    kind = element.type
    if value is None:
        return []  # nil, or left out: zeep decides by the element's nillable and minOccurs
    if getattr(kind, "elements", None):  # a complex type with elements of its own
        if not isinstance(value, dict):
            return [FieldError(field, f"must be an object with {_names(n for n, _ in kind.elements)}")]
        return _object_errors(kind, value, f"{field}.", f"a field of {field}", where.inside(element))
    problem = _simple_value_error(kind, value, where.element(element))
    return [FieldError(field, problem)] if problem else []


def _simple_value_error(kind: Any, value: Any, facets: Facets | None = None) -> str | None:
    """Why ``value`` is no valid value of the simple type ``kind`` (None: it is, or the type is one
    zeep does not know the value space of). zeep's own conversion, XML text and back, is the check;
    what it lets through (a boolean as text, an int out of range, a non-finite number) is added, and
    then the ``facets`` of a restricted type, on the text zeep writes."""
    name = _builtin_name(kind)
    if name is None:
        return None
    expected = _expected(name)
    if isinstance(value, (dict, list)):
        return f"must be {expected}, not {'an object' if isinstance(value, dict) else 'a list'}"
    if name == "boolean":  # zeep's Boolean renders anything truthy as "true" (" false " too: taken as written only)
        ok = isinstance(value, bool) or (type(value) is int and value in (0, 1)) or (
            isinstance(value, str) and value in _BOOLEAN_TEXT)
        return None if ok else f"must be {expected}"
    if isinstance(value, bool):  # zeep would send "True"
        return f"must be {expected}, not {'true' if value else 'false'}"
    if isinstance(value, float) and not math.isfinite(value):
        return f"must be {expected}, not {value}"
    if isinstance(value, Decimal):  # a JSON number with a fraction or exponent: bounded before zeep writes it out
        if not value.is_finite() or (name in ("float", "double") and not math.isfinite(float(value))):
            return f"must be {expected}, within the range of xsd:{name}" if name in ("float", "double") else f"must be {expected}"
        if name == "decimal" and plain_length(value) > MAX_DECIMAL_CHARS:
            return f"must be {expected} of at most {MAX_DECIMAL_CHARS} characters written out"
    if isinstance(value, str) and _NOT_XML.search(value):  # lxml would refuse the envelope
        return "has a character XML cannot carry (a control character or a lone surrogate)"
    try:
        text = kind.xmlvalue(value)
        parsed = kind.pythonvalue(text)
    except Exception:  # noqa: BLE001 - zeep's conversions raise ValueError, TypeError, isodate's errors, ...
        return f"must be {expected}"
    family = "integer" if name in _INTEGER_RANGES else ("float" if name in ("float", "double") else name)
    lexical = _LEXICAL.get(family)
    if lexical is not None and not lexical.fullmatch(str(text)):
        return f"must be {expected}"
    if family == "integer":
        low, high = _INTEGER_RANGES[name]
        if (low is not None and parsed < low) or (high is not None and parsed > high):
            return f"must be {expected}"
    if facets is not None and not facets.empty and isinstance(text, str):
        return facet_error(facets, text)
    return None


def _builtin_name(kind: Any) -> str | None:
    """The local name of the XML Schema built-in type ``kind`` is or restricts (zeep gives a restricted
    simple type its base type's class), or None."""
    from zeep.xsd.types.builtins import BuiltinType

    for cls in type(kind).__mro__:
        if issubclass(cls, BuiltinType) and "_default_qname" in cls.__dict__:
            return str(cls._default_qname).rpartition("}")[2]
    return None


def _expected(name: str) -> str:
    if name in _INTEGER_RANGES:
        low, high = _INTEGER_RANGES[name]
        span = (f" from {low} to {high}" if low is not None and high is not None
                else f" of at least {low}" if low is not None else f" of at most {high}" if high is not None else "")
        return f"a whole number{span} (xsd:{name})"
    if name in _TEXT_TYPES:
        return f"text (xsd:{name})"
    return f"{_EXAMPLES.get(name, 'a valid value')} (xsd:{name})"


def _signature(operation: Any) -> str:
    body = operation.input.body if operation.input is not None else None
    kind = getattr(body, "type", None) if body is not None else None
    return f"{operation.name} ({_names(n for n, _ in getattr(kind, 'elements', []))})"


def _names(names: Any) -> str:
    shown = list(names)
    return ", ".join(shown[:SHOWN_ARGUMENTS]) + (", …" if len(shown) > SHOWN_ARGUMENTS else "")


def _invalid(operation: Any, errors: list[FieldError]) -> SoapArgumentsInvalid:
    """The 422: a stable message naming the operation's arguments and the first problem, and every problem in ``fields``."""
    first = errors[0]
    more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
    return SoapArgumentsInvalid(f"the arguments do not fit operation {_signature(operation)}: {first.field} {first.message}{more}",
                                fields=errors[:MAX_FIELDS])


def _shown(name: str) -> str:
    """A name the caller sent, as an error can carry it: bounded, and UTF-8 (a lone surrogate from a
    ``\\udce9`` escape in the JSON would make the reply unencodable)."""
    return name[:100].encode("utf-8", "backslashreplace").decode("utf-8") + ("…" if len(name) > 100 else "")


def _zeep_path(operation: Any, path: list[Any]) -> str:
    """zeep's render path (``['Divide', 'lines', 0, 'qty']``) as a field (``lines[0].qty``), the wrapper left out."""
    body = operation.input.body if operation.input is not None else None
    steps = list(path or [])
    if steps and body is not None and steps[0] == getattr(body, "name", None):
        steps = steps[1:]
    field = ""
    for step in steps:
        field += f"[{step}]" if isinstance(step, int) else (f".{step}" if field else str(step))
    return field or "(body)"


def _zeep_message(message: str) -> str:
    return "is required" if message.startswith("Missing element") else message
