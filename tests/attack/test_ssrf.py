"""SSRF through egress: the guard refuses before connecting, wherever the address comes from.

Real servers on loopback, the real egress caller and SOAP caller. Tests may only
reach loopback, so:

* the "victim" is a server on 127.0.0.1 and ::1 that counts every TCP connection
  it accepts: a refused call must leave it at zero;
* an "allowed upstream" (standing in for a public one) is a server on 127.0.0.2,
  which the policy is told to allow with ``allow_networks``;
* names are given their answers by a resolver injected under the guard (as DNS
  would give them), so a rebinding is a second, different answer;
* addresses in other private ranges (10/8, 169.254/16, fd00::/8 …) are only ever
  refused: the ``only_loopback`` tripwire fails the test if anything tries to
  connect to a non-loopback address.
"""
from __future__ import annotations

import asyncio
import contextlib
import errno
import ipaddress
import socket
import ssl
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.abc import AbstractResolver, ResolveResult

from core.errors import JunctionError
from egress.caller import MAX_REDIRECTS, RestCaller
from egress.soap import SoapCaller
from core.ssrf import TargetNotAllowed, TargetPolicy
from junction.demo_soap import NS, WSDL, soap_routes
from tests.upstream_support import TestCA

ALLOWED = "127.0.0.2"  # the stand-in for a public upstream


# -- fixtures and helpers ---------------------------------------------------------

@pytest.fixture(autouse=True)
def only_loopback(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[Any]]:
    """Tripwire: no socket of this process may connect to anything but loopback."""
    attempts: list[Any] = []
    real_connect = socket.socket.connect

    def connect(self: socket.socket, address: Any) -> None:
        if isinstance(address, tuple):
            try:
                loopback = ipaddress.ip_address(str(address[0]).split("%")[0]).is_loopback
            except ValueError:
                loopback = address[0] == "localhost"
            if not loopback:
                attempts.append(address)
                raise OSError(errno.ENETUNREACH, f"test tripwire: connect to {address!r} refused")
        return real_connect(self, address)

    monkeypatch.setattr(socket.socket, "connect", connect)
    yield attempts
    assert attempts == [], f"something tried to connect outside loopback: {attempts}"


Respond = Callable[[str, str], tuple[int, dict[str, str], bytes]]


class RawServer:
    """A minimal HTTP/1.1 server that counts every TCP connection it accepts and
    answers each request with ``respond(method, target)``, then closes."""

    def __init__(self, respond: Respond | None = None) -> None:
        self.respond: Respond = respond or (lambda method, target: (200, {}, b"reached"))
        self.connections = 0
        self.requests: list[tuple[str, str, dict[str, str]]] = []
        self.port = 0
        self._servers: list[asyncio.base_events.Server] = []

    async def start(self, *hosts: str) -> "RawServer":
        for _ in range(20):  # the same free port on every address
            try:
                for host in hosts:
                    server = await asyncio.start_server(self._serve, host, self.port)
                    self._servers.append(server)
                    self.port = server.sockets[0].getsockname()[1]
                return self
            except OSError:
                await self.stop()
                self.port = 0
        raise RuntimeError(f"no common free port on {hosts}")

    async def stop(self) -> None:
        for server in self._servers:
            server.close()
            await server.wait_closed()
        self._servers = []

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1").split("\r\n")
            method, target, _ = head[0].split(" ", 2)
            headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in head[1:] if line)}
            await reader.readexactly(int(headers.get("content-length", "0")))
            self.requests.append((method, target, headers))
            status, extra, body = self.respond(method, target)
            lines = [f"HTTP/1.1 {status} X", f"Content-Length: {len(body)}", "Connection: close",
                     *(f"{k}: {v}" for k, v in extra.items())]
            writer.write(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body)
            await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()


class Names(AbstractResolver):
    """DNS for made-up names: each name has a list of answers, given in turn
    (the last one repeats). An answer is a list of (address, port)."""

    def __init__(self, answers: dict[str, list[list[tuple[str, int]]]]) -> None:
        self._answers = answers
        self.asked: list[str] = []

    async def resolve(self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET) -> list[ResolveResult]:
        self.asked.append(host)
        turns = self._answers.get(host)
        if not turns:
            raise socket.gaierror(socket.EAI_NONAME, f"{host} is not a test name")
        answer = turns.pop(0) if len(turns) > 1 else turns[0]
        return [ResolveResult(hostname=host, host=ip, port=p, family=socket.AF_INET6 if ":" in ip else socket.AF_INET,
                              proto=0, flags=socket.AI_NUMERICHOST | socket.AI_NUMERICSERV) for ip, p in answer]

    async def close(self) -> None:
        return None


def guarded(**kw: Any) -> TargetPolicy:
    return TargetPolicy(allow_private=False, allow_networks=[f"{ALLOWED}/32"], **kw)


@contextlib.asynccontextmanager
async def rest_caller(**kw: Any) -> AsyncIterator[RestCaller]:
    kw.setdefault("targets", guarded())
    caller = RestCaller(connect_timeout_s=2, **kw)
    await caller.start()
    try:
        yield caller
    finally:
        await caller.stop()


async def get(caller: RestCaller, url: str, **kw: Any) -> Any:
    return await caller.call("GET", url, [("Authorization", "Bearer tenant-secret")], b"", 5, **kw)


def assert_refused(info: pytest.ExceptionInfo[TargetNotAllowed], *hidden: str) -> None:
    err = info.value
    assert err.code == "target_not_allowed" and err.status == 502, err
    for detail in hidden:  # what a name resolved to is never told
        assert detail not in err.message, err.message


@pytest.fixture
async def victim() -> AsyncIterator[RawServer]:
    server = await RawServer().start("127.0.0.1", "::1")
    yield server
    await server.stop()


@pytest.fixture
async def allowed() -> AsyncIterator[RawServer]:
    server = await RawServer().start(ALLOWED)
    yield server
    await server.stop()


# -- direct targets ---------------------------------------------------------------

@pytest.mark.parametrize("template", [
    "http://127.0.0.1:{port}/", "http://localhost:{port}/", "http://[::1]:{port}/",
    "http://0x7f000001:{port}/", "http://2130706433:{port}/", "http://127.1:{port}/",
    "http://017700000001:{port}/", "http://0x7f.1:{port}/", "http://127.0.0.1.:{port}/", "http://localhost.:{port}/",
    "http://LOCALHOST:{port}/", "http://api.localhost:{port}/", "http://[::ffff:127.0.0.1]:{port}/",
    "http://[::ffff:7f00:1]:{port}/", "http://[64:ff9b::7f00:1]:{port}/", "http://[2002:7f00:1::]:{port}/",
    "http://0.0.0.0:{port}/", "http://0:{port}/",
])
async def test_loopback_targets_are_refused_and_never_connected(victim: RawServer, template: str) -> None:
    async with rest_caller() as caller:
        with pytest.raises(TargetNotAllowed) as info:
            await get(caller, template.format(port=victim.port))
    assert_refused(info)
    assert victim.connections == 0


@pytest.mark.parametrize("url", [
    "http://10.0.0.1/", "http://192.168.1.1:8080/", "http://172.16.5.4/", "http://100.64.0.1/",
    "http://169.254.169.254/latest/meta-data/", "http://[fd00::2]/", "http://[fe80::1%25eth0]/", "http://[fec0::1]/",
    "http://[::ffff:10.0.0.1]/", "http://[64:ff9b::a9fe:a9fe]/", "http://224.0.0.1/", "http://[ff02::1]/",
    "http://255.255.255.255/", "http://192.0.2.1/", "http://0xa000001/", "http://167772161/",
])
async def test_private_and_reserved_targets_are_refused_before_connecting(url: str) -> None:
    async with rest_caller() as caller:
        with pytest.raises(TargetNotAllowed) as info:
            await get(caller, url)
    assert_refused(info)


async def test_the_preflight_check_refuses_literals_without_a_lookup(victim: RawServer) -> None:
    policy = guarded()
    for url in (f"http://127.1:{victim.port}/", f"http://[::1]:{victim.port}/", f"http://localhost:{victim.port}/"):
        with pytest.raises(TargetNotAllowed):
            await policy.check(url)
    await policy.check("http://some-name.test/")  # a name is left to the connect-time check
    assert victim.connections == 0


# -- names: resolved once, every address checked, connected to as checked ---------

async def test_a_name_that_resolves_to_loopback_is_refused_at_connect(victim: RawServer) -> None:
    names = Names({"internal.test": [[("127.0.0.1", victim.port)]], "internal6.test": [[("::1", victim.port)]]})
    async with rest_caller(resolver=names) as caller:
        for name in ("internal.test", "internal6.test"):
            with pytest.raises(TargetNotAllowed) as info:
                await get(caller, f"http://{name}:{victim.port}/")
            assert_refused(info, "127.0.0.1", "::1")
            assert name in info.value.message
    assert names.asked == ["internal.test", "internal6.test"]
    assert victim.connections == 0


async def test_a_name_with_one_private_address_among_public_ones_is_refused(victim: RawServer) -> None:
    names = Names({"mixed.test": [[(ALLOWED, victim.port), ("127.0.0.1", victim.port)]],
                   "meta.test": [[("169.254.169.254", 80)]], "intranet.test": [[("10.0.0.1", 80), ("fd00::2", 80)]]})
    async with rest_caller(resolver=names) as caller:
        for url in (f"http://mixed.test:{victim.port}/", "http://meta.test/latest/meta-data/", "http://intranet.test/"):
            with pytest.raises(TargetNotAllowed) as info:
                await get(caller, url)
            assert_refused(info, "127.0.0.1", "169.254", "10.0.0.1", "fd00")
    assert victim.connections == 0


async def test_dns_rebinding_the_second_answer_is_checked_where_it_is_connected_to(allowed: RawServer, victim: RawServer) -> None:
    # First answer: the allowed upstream; second (a TTL-0 rebinding): loopback.
    names = Names({"rebind.test": [[(ALLOWED, allowed.port)], [("127.0.0.1", victim.port)]]})
    async with rest_caller(resolver=names, dns_cache_s=0) as caller:
        await caller.targets.check("http://rebind.test/")  # the pre-flight makes no lookup of its own
        first = await get(caller, "http://rebind.test/a")
        assert first.status == 200 and first.body == b"reached"
        with pytest.raises(TargetNotAllowed) as info:
            await get(caller, "http://rebind.test/b")
    assert_refused(info, "127.0.0.1")
    assert names.asked == ["rebind.test", "rebind.test"]  # one lookup per connect, none beside it
    assert [(m, t, h["host"]) for m, t, h in allowed.requests] == [("GET", "/a", "rebind.test")]  # Host kept
    assert victim.connections == 0


async def test_the_answer_checked_is_the_one_cached_and_reused(allowed: RawServer, victim: RawServer) -> None:
    # With the connector's DNS cache, a rebinding within its lifetime changes nothing: the checked address is reused.
    names = Names({"cached.test": [[(ALLOWED, allowed.port)], [("127.0.0.1", victim.port)]]})
    async with rest_caller(resolver=names, dns_cache_s=60) as caller:
        for path in ("/1", "/2"):
            assert (await get(caller, f"http://cached.test{path}")).status == 200
    assert names.asked == ["cached.test"]
    assert [t for _, t, _ in allowed.requests] == ["/1", "/2"] and victim.connections == 0


# -- redirects --------------------------------------------------------------------

def redirect_to(location: str) -> Respond:
    return lambda method, target: (302, {"Location": location}, b"") if target == "/start" else (200, {}, b"final")


async def test_a_redirect_is_not_followed_by_default_and_comes_back_as_the_3xx(allowed: RawServer, victim: RawServer) -> None:
    allowed.respond = redirect_to(f"http://127.0.0.1:{victim.port}/secret")
    async with rest_caller() as caller:
        response = await get(caller, f"http://{ALLOWED}:{allowed.port}/start")
    assert response.status == 302
    assert dict(response.headers)["Location"] == f"http://127.0.0.1:{victim.port}/secret"
    assert len(allowed.requests) == 1 and victim.connections == 0


@pytest.mark.parametrize("template", [
    "http://127.0.0.1:{port}/secret", "http://localhost:{port}/secret", "http://[::1]:{port}/secret",
    "http://2130706433:{port}/secret", "http://0x7f000001:{port}/secret", "http://internal.test:{port}/secret",
    "http://169.254.169.254/latest/meta-data/", "http://10.0.0.1/", "http://[fd00::2]/",
])
async def test_a_followed_redirect_to_a_private_address_is_refused(allowed: RawServer, victim: RawServer, template: str) -> None:
    allowed.respond = redirect_to(template.format(port=victim.port))
    names = Names({"internal.test": [[("127.0.0.1", victim.port)]]})
    async with rest_caller(resolver=names) as caller:
        with pytest.raises(TargetNotAllowed) as info:
            await get(caller, f"http://{ALLOWED}:{allowed.port}/start", follow_redirects=True)
    assert_refused(info, *(["127.0.0.1"] if "internal.test" in template else []))
    assert [t for _, t, _ in allowed.requests] == ["/start"]
    assert victim.connections == 0


async def test_allowed_redirects_are_followed_when_the_connector_allows_it(allowed: RawServer) -> None:
    names = Names({"public.test": [[(ALLOWED, allowed.port)]]})
    allowed.respond = redirect_to(f"http://public.test:{allowed.port}/final")
    async with rest_caller(resolver=names) as caller:
        response = await get(caller, f"http://{ALLOWED}:{allowed.port}/start", follow_redirects=True)
    assert response.status == 200 and response.body == b"final"
    assert [t for _, t, _ in allowed.requests] == ["/start", "/final"]
    # A hop to another origin does not carry the tenant's credentials.
    assert "authorization" in allowed.requests[0][2] and "authorization" not in allowed.requests[1][2]


async def test_followed_redirects_are_capped(allowed: RawServer) -> None:
    allowed.respond = lambda method, target: (302, {"Location": "/again"}, b"")
    async with rest_caller() as caller:
        with pytest.raises(JunctionError) as info:
            await get(caller, f"http://{ALLOWED}:{allowed.port}/start", follow_redirects=True)
    assert info.value.code == "too_many_redirects" and info.value.status == 502
    assert len(allowed.requests) == MAX_REDIRECTS + 1


# -- TLS: the checked address is connected to, the name is verified ---------------

async def test_tls_goes_to_the_checked_address_with_the_name_for_sni_and_verification(tmp_path: Path) -> None:
    ca = TestCA("ssrf test CA")
    issued = ca.issue("secure.test", server=True, dns_names=("secure.test",), ips=())
    (cert := tmp_path / "leaf.pem").write_text(issued.cert_pem)
    (key := tmp_path / "leaf.key").write_text(issued.key_pem)
    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_ctx.load_cert_chain(cert, key)
    sni: list[str | None] = []
    server_ctx.sni_callback = lambda sock, name, ctx: sni.append(name)  # type: ignore[assignment,return-value]
    hosts: list[str] = []

    async def hello(request: web.Request) -> web.Response:
        hosts.append(request.headers["Host"])
        return web.Response(text="tls")

    app = web.Application()
    app.router.add_get("/", hello)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, ALLOWED, 0, ssl_context=server_ctx).start()
    port = runner.addresses[0][1]
    client_ctx = ssl.create_default_context(cadata=ca.pem)
    names = Names({"secure.test": [[(ALLOWED, port)]], "other.test": [[(ALLOWED, port)]]})
    try:
        async with rest_caller(resolver=names, ssl_context=client_ctx) as caller:
            response = await get(caller, f"https://secure.test:{port}/")
            assert response.status == 200 and response.body == b"tls"
            with pytest.raises(JunctionError) as info:  # same address, a name the certificate does not carry
                await get(caller, f"https://other.test:{port}/")
            assert info.value.code == "upstream_tls_error" and "certificate" in info.value.message.lower()
    finally:
        await runner.cleanup()
    assert sni[:1] == ["secure.test"] and hosts == [f"secure.test:{port}"]


# -- SOAP: the WSDL, what it imports and the soap:address -------------------------

SCHEMA = WSDL[WSDL.index("<xsd:schema"):WSDL.index("</xsd:schema>") + len("</xsd:schema>")].replace(
    "<xsd:schema ", '<xsd:schema xmlns:xsd="http://www.w3.org/2001/XMLSchema" ', 1).format(ns=NS)


def wsdl(location: str, schema_location: str | None = None) -> str:
    text = WSDL.format(ns=NS, location=location)
    if schema_location is not None:  # the types come from an imported document
        start, end = text.index("<xsd:schema"), text.index("</xsd:schema>") + len("</xsd:schema>")
        text = (text[:start] + f'<xsd:schema targetNamespace="urn:junction:test:wrapper">'
                f'<xsd:import namespace="{NS}" schemaLocation="{schema_location}"/></xsd:schema>' + text[end:])
    return text


@pytest.fixture
async def soap_host() -> AsyncIterator[tuple[str, dict[str, str], list[str]]]:
    """The allowed SOAP upstream: ``documents[path]`` is served at ``GET /docs/{path}``;
    ``POST /orders`` is the demo order service."""
    documents: dict[str, str] = {}
    fetched: list[str] = []

    async def document(request: web.Request) -> web.Response:
        fetched.append(request.path)
        text = documents.get(request.match_info["name"])
        if text is None:
            raise web.HTTPNotFound()
        return web.Response(text=text, content_type="text/xml")

    app = web.Application()
    app.add_routes([*soap_routes(), web.get("/docs/{name}", document)])
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, ALLOWED, 0).start()
    base = f"http://{ALLOWED}:{runner.addresses[0][1]}"
    try:
        yield base, documents, fetched
    finally:
        await runner.cleanup()


@contextlib.asynccontextmanager
async def soap_caller(**kw: Any) -> AsyncIterator[SoapCaller]:
    async with rest_caller(**kw) as caller:
        yield SoapCaller(caller.get_bytes, caller.post)


async def soap_call(soap: SoapCaller, wsdl_url: str, **kw: Any) -> tuple[int, bytes]:
    return await soap.call(wsdl_url, "GetOrderStatus", b'{"orderId": "A-17"}', [], 5, **kw)


async def test_soap_through_the_guard_works_with_imports_from_an_allowed_host(soap_host: Any) -> None:
    base, documents, fetched = soap_host
    documents["orders.wsdl"] = wsdl(f"{base}/orders", schema_location="types.xsd")  # relative: resolved against the WSDL
    documents["types.xsd"] = SCHEMA
    async with soap_caller() as soap:
        status, body = await soap_call(soap, f"{base}/docs/orders.wsdl")
    assert status == 200 and b'"orderId": "A-17"' in body
    assert fetched == ["/docs/orders.wsdl", "/docs/types.xsd"]


async def test_a_soap_address_on_a_private_host_is_refused(soap_host: Any, victim: RawServer) -> None:
    base, documents, fetched = soap_host
    documents["a.wsdl"] = wsdl(f"http://127.0.0.1:{victim.port}/orders")
    documents["b.wsdl"] = wsdl(f"http://internal.test:{victim.port}/orders")
    documents["c.wsdl"] = wsdl("http://169.254.169.254/orders")
    names = Names({"internal.test": [[("127.0.0.1", victim.port)]]})
    async with soap_caller(resolver=names) as soap:
        for doc in ("a.wsdl", "b.wsdl", "c.wsdl"):
            with pytest.raises(TargetNotAllowed) as info:
                await soap_call(soap, f"{base}/docs/{doc}")
            assert_refused(info, *(["127.0.0.1"] if doc == "b.wsdl" else []))
    assert fetched == ["/docs/a.wsdl", "/docs/b.wsdl", "/docs/c.wsdl"]
    assert victim.connections == 0


async def test_an_address_override_is_guarded_too(soap_host: Any, victim: RawServer) -> None:
    base, documents, _ = soap_host
    documents["orders.wsdl"] = wsdl(f"http://127.0.0.1:{victim.port}/orders")  # the override replaces it
    async with soap_caller() as soap:
        with pytest.raises(TargetNotAllowed) as info:
            await soap_call(soap, f"{base}/docs/orders.wsdl", address=f"http://2130706433:{victim.port}/orders")
        assert_refused(info)
        status, _ = await soap_call(soap, f"{base}/docs/orders.wsdl", address=f"{base}/orders")
    assert status == 200
    assert victim.connections == 0


@pytest.mark.parametrize("template", [
    "http://127.0.0.1:{port}/types.xsd", "http://localhost:{port}/types.xsd", "http://internal.test:{port}/types.xsd",
    "http://[::1]:{port}/types.xsd", "http://169.254.169.254/types.xsd",
    "file:///etc/hostname", "ftp://127.0.0.1/types.xsd",
])
async def test_a_wsdl_importing_from_a_private_host_or_a_local_file_is_refused(soap_host: Any, victim: RawServer, template: str) -> None:
    base, documents, fetched = soap_host
    documents["orders.wsdl"] = wsdl(f"{base}/orders", schema_location=template.format(port=victim.port))
    names = Names({"internal.test": [[("127.0.0.1", victim.port)]]})
    async with soap_caller(resolver=names) as soap:
        with pytest.raises(TargetNotAllowed) as info:
            await soap_call(soap, f"{base}/docs/orders.wsdl")
    assert_refused(info, *(["127.0.0.1"] if "internal.test" in template else []))
    assert fetched == ["/docs/orders.wsdl"]
    assert victim.connections == 0


async def test_a_wsdl_on_a_private_host_is_refused(victim: RawServer) -> None:
    async with soap_caller() as soap:
        for url in (f"http://127.0.0.1:{victim.port}/orders?wsdl", f"http://127.1:{victim.port}/orders?wsdl"):
            with pytest.raises(TargetNotAllowed):
                await soap_call(soap, url)
    assert victim.connections == 0


# -- the switch -------------------------------------------------------------------

async def test_with_private_targets_allowed_loopback_is_reached(victim: RawServer, soap_host: Any) -> None:
    async with rest_caller(targets=TargetPolicy(allow_private=True)) as caller:  # the system resolver
        for url in (f"http://127.0.0.1:{victim.port}/", f"http://localhost:{victim.port}/", f"http://[::1]:{victim.port}/"):
            response = await get(caller, url)
            assert response.status == 200 and response.body == b"reached", url
    names = Names({"internal.test": [[("127.0.0.1", victim.port)]]})
    async with rest_caller(targets=TargetPolicy(allow_private=True), resolver=names) as caller:
        assert (await get(caller, f"http://internal.test:{victim.port}/")).status == 200
    assert victim.connections == 4
    base, documents, _ = soap_host
    documents["orders.wsdl"] = wsdl(f"{base}/orders")
    async with soap_caller(targets=TargetPolicy(allow_private=True)) as soap:
        assert (await soap_call(soap, f"{base}/docs/orders.wsdl"))[0] == 200


async def test_the_caller_refuses_private_targets_unless_told_otherwise(victim: RawServer) -> None:
    for kw, reached in (({}, False), ({"allow_private": True}, True)):
        caller = RestCaller(connect_timeout_s=2, **kw)
        await caller.start()
        try:
            if reached:
                assert (await get(caller, f"http://127.0.0.1:{victim.port}/")).status == 200
            else:
                with pytest.raises(TargetNotAllowed):
                    await get(caller, f"http://127.0.0.1:{victim.port}/")
        finally:
            await caller.stop()
    assert victim.connections == 1
