"""Loading a WSDL with zeep, every document through the egress session, and picking its port.

zeep parses in a worker thread (a WSDL with its schemas is tens of milliseconds of CPU, more
for big ones). Each document it imports (``wsdl:import``, ``xsd:import``/``xsd:include``, in
cycles too: zeep keeps the documents it has already loaded) comes through ``fetch`` on the
event loop, so through the SSRF guard of the egress session, within a budget: at most
``MAX_DOCUMENTS`` documents and ``MAX_WSDL_BYTES`` bytes in all, http and https only, before
the call's deadline. zeep's own transport (requests) never fetches anything.
"""
from __future__ import annotations

import asyncio
import concurrent.futures
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urljoin, urlsplit

from core.errors import DeadlineExceeded, JunctionError, UpstreamError
from core.ssrf import TargetNotAllowed

__all__ = ["MAX_DOCUMENTS", "MAX_WSDL_BYTES", "Fetch", "Port", "SoapLoadTimeout", "SoapWsdlError", "loader", "naming", "parse_wsdl",
           "select_port", "uploaded_lookup"]

MAX_DOCUMENTS = 32  # the WSDL and what it imports, transitively
MAX_WSDL_BYTES = 8 * 1024 * 1024  # all of them together

Fetch = Callable[..., Awaitable[bytes]]  # fetch(url, timeout_s, follow_redirects=...) -> bytes
SOAP11_BINDING = "Soap11Binding"
SOAP12_BINDING = "Soap12Binding"


class SoapWsdlError(UpstreamError):
    code = "soap_bad_wsdl"


class SoapLoadTimeout(UpstreamError):
    """The WSDL did not load before the call's deadline. An UpstreamError (not a plain
    DeadlineExceeded) so that, like every other WSDL failure, it leaves a dead letter."""

    status = 504
    code = "upstream_timeout"


@dataclass(frozen=True)
class Port:
    """The port a connector calls: its binding (SOAP 1.1 or 1.2) and ``soap:address``."""

    name: str
    binding: Any  # zeep.wsdl.bindings.soap.SoapBinding
    address: str | None

    @property
    def soap12(self) -> bool:
        return type(self.binding).__name__ == SOAP12_BINDING


class _Budget:
    def __init__(self, wsdl_url: str, first: bytes) -> None:
        self.wsdl_url = wsdl_url
        self.documents = 1
        self.size = 0
        self.add(first)

    def add(self, document: bytes) -> None:
        self.size += len(document)
        if self.size > MAX_WSDL_BYTES:
            raise SoapWsdlError(f"the WSDL {self.wsdl_url} and its imports exceed {MAX_WSDL_BYTES} bytes")


def uploaded_lookup(wsdl_url: str, documents: Mapping[str, str] | None) -> dict[str, bytes]:
    """A connector's uploaded documents by the absolute location zeep will ask for: each key is
    taken as written and as resolved against the WSDL's own location (imports are relative)."""
    found: dict[str, bytes] = {}
    for key, text in (documents or {}).items():
        raw = text.encode("utf-8")
        found[key] = raw
        found.setdefault(urljoin(wsdl_url, key), raw)
    return found


def loader(fetch: Fetch, wsdl_url: str, document: bytes, timeout_s: float, follow_redirects: bool,
           uploaded: Mapping[str, bytes] | None = None) -> Callable[[str], bytes]:
    """What zeep's transport calls, in the parsing thread, for each imported document: one of
    ``uploaded`` (a connector's own documents), else a fetch on the event loop (this one,
    captured now), through the guarded session. Both count against the same budget."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    budget = _Budget(wsdl_url, document)
    uploaded = uploaded or {}

    def load(location: str) -> bytes:
        if location in uploaded:
            budget.documents += 1
            if budget.documents > MAX_DOCUMENTS:
                raise SoapWsdlError(f"the WSDL {wsdl_url} imports more than {MAX_DOCUMENTS - 1} documents")
            budget.add(uploaded[location])
            return uploaded[location]
        if urlsplit(location).scheme.lower() not in ("http", "https"):
            raise TargetNotAllowed(f"the WSDL {wsdl_url} imports {location!r}: only http and https documents are loaded")
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            pass  # the parsing thread, as it should be
        else:  # a fetch from the loop's own thread would wait for itself
            raise SoapWsdlError(f"the WSDL {wsdl_url} imports {location} after it was parsed")
        budget.documents += 1
        if budget.documents > MAX_DOCUMENTS:
            raise SoapWsdlError(f"the WSDL {wsdl_url} imports more than {MAX_DOCUMENTS - 1} documents")
        remaining = deadline - loop.time()
        if remaining <= 0:
            raise SoapLoadTimeout(f"loading the WSDL {wsdl_url} took longer than {timeout_s * 1000:.0f} ms")
        future = asyncio.run_coroutine_threadsafe(fetch(location, remaining, follow_redirects=follow_redirects), loop)
        try:
            loaded = future.result(timeout=remaining + 1)
        except concurrent.futures.TimeoutError:
            future.cancel()
            raise SoapLoadTimeout(f"loading {location} took longer than {timeout_s * 1000:.0f} ms") from None
        except DeadlineExceeded as exc:  # the session's own timeout
            raise SoapLoadTimeout(f"loading {location}: {exc.message}") from None
        except JunctionError as exc:  # same class and code; the message names the document (the session's says only how)
            raise naming(exc, f"loading {location}, imported by the WSDL {wsdl_url}") from None
        budget.add(loaded)
        return loaded

    return load


def naming(exc: JunctionError, what: str) -> JunctionError:
    """``exc`` again (same class, code, status), its message saying which document it was about."""
    named = type(exc)(f"{what}: {exc.message}", code=exc.code, status=exc.status, extra=exc.extra)
    named.detail = exc.detail  # what egress/caller.py keeps for the log and the dead letter only
    return named


def parse_wsdl(url: str, document: bytes, load: Callable[[str], bytes]) -> Any:
    """A zeep client for an already-fetched WSDL; runs in a worker thread. Imported documents
    come through ``load``, never through zeep's own transport, whatever their scheme."""
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
            raise SoapWsdlError("zeep's own transport is not used")

        def post(self, address: str, message: Any, headers: Any) -> Any:
            raise SoapWsdlError("zeep's own transport is not used")

    # No DTDs, no entities; imports are allowed (forbid_external off) because each goes through
    # ``load``, so through the SSRF guard. strict=False: real WSDLs bend the schema rules. force_https off: an
    # http soap:address is where the service listens, whatever scheme the WSDL itself was fetched over.
    settings = Settings(strict=False, xml_huge_tree=False, forbid_dtd=True, forbid_entities=True, forbid_external=False,
                        force_https=False)
    return Client(url, transport=_Guarded(timeout=10, operation_timeout=10), settings=settings)


def select_port(client: Any, wsdl_url: str, *, binding: str | None = None, port: str | None = None) -> Port:
    """The port named ``port``, or the first port of the binding named ``binding`` (a local
    name or ``{namespace}name``); by default the first SOAP 1.1 port, else the first SOAP 1.2.
    A WSDL with no wsdl:service has no port: its SOAP bindings then stand for ports without an
    address (a connector's address override says where the envelopes go)."""
    ports = [(name, p) for service in client.wsdl.services.values() for name, p in service.ports.items()
             if type(p.binding).__name__ in (SOAP11_BINDING, SOAP12_BINDING)]
    if not ports and not client.wsdl.services:
        ports = [(b.name.localname, _Unbound(b)) for b in client.wsdl.bindings.values()
                 if type(b).__name__ in (SOAP11_BINDING, SOAP12_BINDING)]
    if not ports:
        raise SoapWsdlError(f"the WSDL {wsdl_url} has no SOAP 1.1 or 1.2 port")
    if port is not None:
        chosen = [(n, p) for n, p in ports if n == port]
        what = f"port {port!r}"
    elif binding is not None:
        chosen = [(n, p) for n, p in ports if binding in (p.binding.name.text, p.binding.name.localname)]
        what = f"binding {binding!r}"
    else:
        chosen = ([(n, p) for n, p in ports if type(p.binding).__name__ == SOAP11_BINDING]
                  or [(n, p) for n, p in ports if type(p.binding).__name__ == SOAP12_BINDING])
        what = "SOAP port"
    if not chosen:
        known = sorted({f"{n} (binding {p.binding.name.localname})" for n, p in ports})
        raise SoapWsdlError(f"the WSDL {wsdl_url} has no {what}; it has: {', '.join(known)}", code="unknown_soap_port")
    name, found = chosen[0]
    return Port(name, found.binding, found.binding_options.get("address"))


class _Unbound:
    """A SOAP binding of a WSDL with no wsdl:service, as a port with no soap:address."""

    def __init__(self, binding: Any) -> None:
        self.binding = binding
        self.binding_options: dict[str, Any] = {}
