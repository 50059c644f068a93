"""Real SOAP services on loopback that serve the real-world WSDLs of ``../shared/data/wsdl``.

The WSDLs and schemas are read by path and served unedited except for what the original
server would itself write at run time: its own address in ``soap:address``/``soap12:address``
and, for WCF, the ``…/Service1.svc?xsd=xsdN`` base of the schema locations. Each service
behaves like the stack it comes from where a client can notice (see ``SOURCES.md``):

* ASMX (``calculator.wsdl``): SOAP 1.1 is routed by the ``SOAPAction`` header, an unknown one
  is a ``soap:Client`` fault; SOAP 1.2 (``application/soap+xml``) by the body element.
* WCF ``basicHttpBinding`` (``wcf_service1/``): SOAP 1.1 only, ``text/xml`` or 415; a wrong
  action is an ``a:ActionNotSupported`` fault (ContractFilter mismatch); the schemas come
  from ``?xsd=xsdN``, mapped to files by ``Reference.svcmap``.
* Metro JAX-WS (``AddNumbers_soap12.wsdl``): a Content-Type other than
  ``application/soap+xml`` is 415; a negative number is an ``env:Receiver`` fault with
  ``AddNumbersFault`` in ``env:Detail``.
* CXF rpc/literal (``hello_world_rpc_lit.wsdl``): greetMe/greetUs/sayHi, unqualified parts.

Plus ``/broken/{kind}``: the calculator WSDL whose endpoint answers something that is not a
SOAP envelope (an IIS HTML error page, a bare 415, an empty body), and ``/moved/Service1.svc``:
the WCF WSDL with its schema base pointing wherever a test says (an SSRF probe).
"""
from __future__ import annotations

import contextlib
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from xml.sax.saxutils import escape

from aiohttp import web
from lxml import etree

from tests.support import serving

__all__ = ["SOAP11", "SOAP12", "WSDL_DIR", "Seen", "SoapServers", "serving_soap"]

WSDL_DIR = Path(__file__).resolve().parents[2] / "shared" / "data" / "wsdl"
SOAP11 = "http://schemas.xmlsoap.org/soap/envelope/"
SOAP12 = "http://www.w3.org/2003/05/soap-envelope"
TEMPURI = "http://tempuri.org/"
DUKE = "http://duke.example.org"
RPCLIT = "http://apache.org/hello_world_rpclit"
WCF_BASE = "http://localhost:53068/Service1.svc"  # as Visual Studio saved it
WCF_ACTION = "http://tempuri.org/IService1/GetData"
_PARSER = etree.XMLParser(resolve_entities=False, no_network=True, huge_tree=False, remove_blank_text=True)


@dataclass(frozen=True)
class Seen:
    """One request a service received, as a test asserts on it."""

    method: str
    path: str
    query: str
    content_type: str
    soap_action: str | None
    body: bytes


@dataclass
class SoapServers:
    base: str
    seen: list[Seen] = field(default_factory=list)
    moved_schema_base: str = WCF_BASE  # where /moved/Service1.svc's WSDL says its schemas are

    @property
    def calculator_wsdl(self) -> str:
        return f"{self.base}/calculator.asmx?WSDL"

    @property
    def wcf_wsdl(self) -> str:
        return f"{self.base}/Service1.svc?wsdl"

    @property
    def metro_wsdl(self) -> str:
        return f"{self.base}/AddNumbers?wsdl"

    @property
    def cxf_wsdl(self) -> str:
        return f"{self.base}/SOAPServiceRPCLit/SoapPort?wsdl"

    def broken_wsdl(self, kind: str) -> str:
        return f"{self.base}/broken/{kind}?wsdl"

    @property
    def moved_wsdl(self) -> str:
        return f"{self.base}/moved/Service1.svc?wsdl"

    def fetches(self, path: str) -> int:
        """How many times a document under ``path`` was fetched (GET)."""
        return sum(1 for s in self.seen if s.method == "GET" and s.path == path)

    def posts(self, path: str) -> list[Seen]:
        return [s for s in self.seen if s.method == "POST" and s.path == path]


# -- envelopes ---------------------------------------------------------------------

def _envelope(version: str, body: str) -> str:
    return f'<?xml version="1.0" encoding="utf-8"?><soap:Envelope xmlns:soap="{version}"><soap:Body>{body}</soap:Body></soap:Envelope>'


def _reply(version: str, body: str, status: int = 200) -> web.Response:
    ctype = "text/xml" if version == SOAP11 else "application/soap+xml"
    return web.Response(status=status, body=_envelope(version, body).encode(), content_type=ctype, charset="utf-8")


def _fault11(code: str, message: str, *, nsdecl: str = "", detail: str = "") -> web.Response:
    body = (f"<soap:Fault{nsdecl}><faultcode>{code}</faultcode><faultstring>{escape(message)}</faultstring>"
            f"{detail}</soap:Fault>")
    return _reply(SOAP11, body, 500)


def _fault12(code: str, message: str, detail: str = "") -> web.Response:
    body = (f"<soap:Fault><soap:Code><soap:Value>soap:{code}</soap:Value></soap:Code>"
            f'<soap:Reason><soap:Text xml:lang="en">{escape(message)}</soap:Text></soap:Reason>'
            f"{f'<soap:Detail>{detail}</soap:Detail>' if detail else ''}</soap:Fault>")
    return _reply(SOAP12, body, 400 if code == "Sender" else 500)


def _fault(version: str, client_side: bool, message: str) -> web.Response:
    if version == SOAP11:
        return _fault11("soap:Client" if client_side else "soap:Server", message)
    return _fault12("Sender" if client_side else "Receiver", message)


def _media_type(request: web.Request) -> str:
    return request.headers.get("Content-Type", "").split(";", 1)[0].strip().lower()


def _body_child(raw: bytes, version: str) -> etree._Element | None:
    """The first element of the envelope's Body; None if ``raw`` is no ``version`` envelope."""
    try:
        root = etree.fromstring(raw, _PARSER)
    except etree.XMLSyntaxError:
        return None
    if root.tag != f"{{{version}}}Envelope":
        return None
    body = root.find(f"{{{version}}}Body")
    return body[0] if body is not None and len(body) else None


def _int(node: etree._Element, name: str) -> int:
    return int((node.findtext(name) or "").strip())


# -- the services -------------------------------------------------------------------

def _document(name: str, replacements: dict[str, str]) -> bytes:
    text = (WSDL_DIR / name).read_text(encoding="utf-8")
    for old, new in replacements.items():
        text = text.replace(old, new)
    return text.encode()


def _xml(body: bytes) -> web.Response:
    return web.Response(body=body, content_type="text/xml", charset="utf-8")


def _svcmap() -> dict[str, str]:
    """``xsdN`` → file name, read from the Reference.svcmap Visual Studio saved."""
    root = etree.parse(str(WSDL_DIR / "wcf_service1" / "Reference.svcmap"), _PARSER).getroot()
    found: dict[str, str] = {}
    for node in root.iter("{urn:schemas-microsoft-com:xml-wcfservicemap}MetadataFile"):
        match = re.search(r"\?xsd=(xsd\d+)$", node.get("SourceUrl", ""))
        if match:
            found[match.group(1)] = node.get("FileName", "")
    return found


class _Services:
    def __init__(self, servers: SoapServers) -> None:
        self.s = servers
        self.xsd_files = _svcmap()

    def routes(self) -> list[web.RouteDef]:
        return [
            web.get("/calculator.asmx", self.calculator_wsdl), web.post("/calculator.asmx", self.asmx),
            web.get("/Service1.svc", self.wcf_document), web.post("/Service1.svc", self.wcf),
            web.get("/moved/Service1.svc", self.wcf_moved),
            web.get("/AddNumbers", self.metro_wsdl), web.post("/AddNumbers", self.metro),
            web.get("/SOAPServiceRPCLit/SoapPort", self.cxf_wsdl), web.post("/SOAPServiceRPCLit/SoapPort", self.cxf),
            web.get("/broken/{kind}", self.broken_wsdl), web.post("/broken/{kind}", self.broken),
        ]

    @web.middleware
    async def record(self, request: web.Request, handler: Any) -> web.StreamResponse:
        body = await request.read()
        self.s.seen.append(Seen(request.method, request.path, request.query_string, request.headers.get("Content-Type", ""),
                                request.headers.get("SOAPAction"), body))
        return await handler(request)

    # ASMX --------------------------------------------------------------------------
    async def calculator_wsdl(self, request: web.Request) -> web.Response:
        if "wsdl" not in {k.lower() for k in request.query}:
            raise web.HTTPNotFound()
        return _xml(_document("calculator.wsdl", {"http://www.dneonline.com/calculator.asmx": f"{self.s.base}/calculator.asmx"}))

    async def asmx(self, request: web.Request) -> web.Response:
        media = _media_type(request)
        raw = await request.read()
        if media == "text/xml":
            version = SOAP11
            action = (request.headers.get("SOAPAction") or "").strip().strip('"')
            operation = action.removeprefix(TEMPURI) if action.startswith(TEMPURI) else ""
            if operation not in ("Add", "Subtract", "Multiply", "Divide"):
                return _fault11("soap:Client", f"System.Web.Services.Protocols.SoapException: Server did not recognize "
                                               f"the value of HTTP Header SOAPAction: {action}.")
        elif media == "application/soap+xml":
            version = SOAP12
            operation = ""
        else:
            return web.Response(status=415, text="Unsupported Media Type")
        node = _body_child(raw, version)
        if node is None:
            return _fault(version, True, "Server was unable to read request. ---> There is an error in XML document (1, 1).")
        if version == SOAP12:  # routed by the body element
            operation = etree.QName(node).localname if etree.QName(node).namespace == TEMPURI else ""
        if node.tag != f"{{{TEMPURI}}}{operation}":
            return _fault(version, True, f"Server did not recognize the request element {node.tag}.")
        a, b = _int(node, f"{{{TEMPURI}}}intA"), _int(node, f"{{{TEMPURI}}}intB")
        if operation == "Divide" and b == 0:
            return _fault(version, False, "System.Web.Services.Protocols.SoapException: Server was unable to process "
                                          "request. ---> System.DivideByZeroException: Attempted to divide by zero.")
        result = {"Add": a + b, "Subtract": a - b, "Multiply": a * b, "Divide": a // b if b else 0}[operation]
        return _reply(version, f'<{operation}Response xmlns="{TEMPURI}"><{operation}Result>{result}</{operation}Result>'
                               f"</{operation}Response>")

    # WCF ---------------------------------------------------------------------------
    async def wcf_document(self, request: web.Request) -> web.Response:
        return self._wcf_document(request, f"{self.s.base}/Service1.svc")

    async def wcf_moved(self, request: web.Request) -> web.Response:
        return self._wcf_document(request, self.s.moved_schema_base)

    def _wcf_document(self, request: web.Request, schema_base: str) -> web.Response:
        replacements = {WCF_BASE + "?xsd=": schema_base + "?xsd=", WCF_BASE: f"{self.s.base}/Service1.svc"}
        if "wsdl" in request.query:
            return _xml(_document("wcf_service1/Service1.wsdl", replacements))
        name = self.xsd_files.get(request.query.get("xsd", ""))
        if name is None:
            raise web.HTTPNotFound()
        return _xml(_document(f"wcf_service1/{name}", replacements))

    async def wcf(self, request: web.Request) -> web.Response:
        ctype = request.headers.get("Content-Type", "")
        if _media_type(request) != "text/xml":
            return web.Response(status=415, text=f"Cannot process the message because the content type '{ctype}' was "
                                                 "not the expected type 'text/xml; charset=utf-8'.")
        action = (request.headers.get("SOAPAction") or "").strip().strip('"')
        if action != WCF_ACTION:
            return _fault11("a:ActionNotSupported", f"The message with Action '{action}' cannot be processed at the receiver, "
                            "due to a ContractFilter mismatch at the EndpointDispatcher. This may be because of either a "
                            "contract mismatch (mismatched Actions between sender and receiver) or a binding/security "
                            "mismatch between the sender and the receiver.  Check that sender and receiver have the same "
                            "contract and the same binding (including security requirements, e.g. Message, Transport, None).",
                            nsdecl=' xmlns:a="http://schemas.microsoft.com/ws/2005/05/addressing/none"')
        node = _body_child(await request.read(), SOAP11)
        if node is None or node.tag != f"{{{TEMPURI}}}GetData":
            return _fault11("a:DeserializationFailed", "The formatter threw an exception while trying to deserialize the message.",
                            nsdecl=' xmlns:a="http://schemas.microsoft.com/net/2005/12/windowscommunicationfoundation/dispatcher"')
        record = "<a:id>{0}</a:id><a:message>{1}</a:message>"
        return _reply(SOAP11, (
            f'<GetDataResponse xmlns="{TEMPURI}"><GetDataResult xmlns:a="http://schemas.datacontract.org/2004/07/WcfService1.data"'
            ' xmlns:i="http://www.w3.org/2001/XMLSchema-instance">'
            '<a:Reportsrc xmlns:b="http://schemas.microsoft.com/2003/10/Serialization/Arrays">'
            + "".join(f"<b:KeyValueOfintReportrecR8Et_PRyU><b:Key>{k}</b:Key><b:Value>{record.format(k, m)}</b:Value>"
                      "</b:KeyValueOfintReportrecR8Et_PRyU>" for k, m in ((1, "first"), (2, "second")))
            + "</a:Reportsrc><a:Reportsrc2>"
            + "".join(f"<a:Reportrec>{record.format(k, m)}</a:Reportrec>" for k, m in ((3, "third"),))
            + "</a:Reportsrc2></GetDataResult></GetDataResponse>"))

    # Metro ---------------------------------------------------------------------------
    async def metro_wsdl(self, request: web.Request) -> web.Response:
        if "wsdl" not in request.query:
            raise web.HTTPNotFound()
        return _xml(_document("AddNumbers_soap12.wsdl", {"REPLACE_WITH_ACTUAL_URL": f"{self.s.base}/AddNumbers"}))

    async def metro(self, request: web.Request) -> web.Response:
        if _media_type(request) != "application/soap+xml":
            ctype = request.headers.get("Content-Type", "")
            return web.Response(status=415, text=f"Unsupported Content-Type: {ctype} Supported ones are: [application/soap+xml]")
        node = _body_child(await request.read(), SOAP12)
        if node is None or node.tag != f"{{{DUKE}}}addNumbers":
            return _fault12("Sender", "Cannot find dispatch method for the request")
        a, b = _int(node, f"{{{DUKE}}}arg0"), _int(node, f"{{{DUKE}}}arg1")
        if a < 0 or b < 0:
            message = "Negative numbers can't be added!"
            return _fault12("Receiver", message, f'<ns2:AddNumbersFault xmlns:ns2="{DUKE}"><ns2:faultInfo>Numbers: {a}, {b}'
                                                 f"</ns2:faultInfo><ns2:message>{message}</ns2:message></ns2:AddNumbersFault>")
        return _reply(SOAP12, f'<ns2:addNumbersResponse xmlns:ns2="{DUKE}"><ns2:return>{a + b}</ns2:return></ns2:addNumbersResponse>')

    # CXF rpc/literal ---------------------------------------------------------------------
    async def cxf_wsdl(self, request: web.Request) -> web.Response:
        if "wsdl" not in request.query:
            raise web.HTTPNotFound()
        return _xml(_document("hello_world_rpc_lit.wsdl", {"http://localhost:9002/": f"{self.s.base}/"}))

    async def cxf(self, request: web.Request) -> web.Response:
        if _media_type(request) != "text/xml":
            return web.Response(status=415, text="Unsupported Media Type")
        node = _body_child(await request.read(), SOAP11)
        if node is None or etree.QName(node).namespace != RPCLIT:
            return _fault11("soap:Client", "Message part was not recognized.  (Does it exist in service WSDL?)")
        operation = etree.QName(node).localname
        parts = {child.tag: child.text or "" for child in node}  # rpc/literal parts are unqualified
        if operation == "greetMe":
            out = f"Hello {parts.get('in', '')}"
        elif operation == "greetUs":
            out = f"Hello {parts.get('you', '')} and {parts.get('me', '')}"
        elif operation == "sayHi":
            out = "Bonjour"
        else:
            return _fault11("soap:Client", f"Unexpected wrapper element {node.tag} found.")
        return _reply(SOAP11, f'<ns1:{operation}Response xmlns:ns1="{RPCLIT}"><out>{escape(out)}</out></ns1:{operation}Response>')

    # Not SOAP at all ------------------------------------------------------------------
    async def broken_wsdl(self, request: web.Request) -> web.Response:
        kind = request.match_info["kind"]
        if "wsdl" not in request.query:  # a page for people, where a WSDL was expected
            return web.Response(content_type="text/html", text=(
                '<!DOCTYPE html><html><head><title>IIS Windows Server</title></head><body><img src="iisstart.png"></body></html>'))
        return _xml(_document("calculator.wsdl", {"http://www.dneonline.com/calculator.asmx": f"{self.s.base}/broken/{kind}"}))

    async def broken(self, request: web.Request) -> web.Response:
        kind = request.match_info["kind"]
        if kind == "html":  # what IIS answers when the application pool is down
            return web.Response(status=503, content_type="text/html", text=(
                '<!DOCTYPE html PUBLIC "-//W3C//DTD XHTML 1.0 Strict//EN"><html><head><title>Service Unavailable</title>'
                "</head><body><h2>Service Unavailable</h2><hr><p>HTTP Error 503. The service is unavailable.</p></body></html>"))
        if kind == "415":
            return web.Response(status=415, text="Unsupported Media Type")
        if kind == "empty":
            return web.Response(status=200)
        raise web.HTTPNotFound()


@contextlib.asynccontextmanager
async def serving_soap() -> AsyncIterator[SoapServers]:
    """All the services on one free loopback port, for the block."""
    servers = SoapServers(base="")
    services = _Services(servers)
    app = web.Application(middlewares=[services.record])
    app.add_routes(services.routes())
    async with serving(app) as base:
        servers.base = base
        yield servers
