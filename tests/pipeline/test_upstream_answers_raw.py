"""Upstream answers egress must not relay as they came: header bytes that are not UTF-8, statuses no
HTTP answer has, answers that are not HTTP at all, a HEAD's Content-Length, and encodings nobody asked
for. Each upstream is real, on loopback: a raw asyncio server where aiohttp would not write such an answer."""
from __future__ import annotations

import asyncio
import contextlib
import gzip
import json
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import pytest_asyncio
from aiohttp import web

from control.replay import read_dead_letters
from core.settings import Settings
from tests.support import IngressInstance, Stage, serving, wait_until

SEEN_ACCEPT: list[str | None] = []  # the Accept of each request _negotiating's upstream read
INVALID_ANSWER = "the upstream's answer was not valid HTTP"  # what the caller reads, whatever the parser said

# path -> the bytes answered, as written; the connection is closed after each.
ANSWERS = {
    "/latin1": b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nX-Name: Caf\xe9\r\nX-Utf: Caf\xc3\xa9\r\n"
               b"Content-Length: 2\r\n\r\nok",
    "/sized": b"HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\nContent-Length: 1024\r\n\r\n",
    "/101": b"HTTP/1.1 101 Switching Protocols\r\n\r\n",
    "/600": b"HTTP/1.1 600 Beyond\r\nContent-Length: 2\r\n\r\nok",
    "/999": b"HTTP/1.1 999 Beyond\r\nContent-Type: application/octet-stream\r\nContent-Length: 2\r\n\r\nok",
    "/garbage": b"NOT HTTP AT ALL\r\n\r\n",
    "/dupcl": b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\nok",
    "/owned": b"HTTP/1.1 200 OK\r\nX-Request-Id: upstream-req-1\r\nIdempotent-Replayed: true\r\nX-Cache: HIT\r\n"
              b"X-Correlation-Id: upstream-corr-1\r\nX-Upstream-Own: kept\r\nContent-Length: 2\r\n\r\nok",
}

SURROGATE_HEADER = '''
def transform_request(request, ctx):
    return None

def transform_response(response, ctx):
    response.headers["X-S"] = "a" + chr(0xdce9)
'''

READS_JSON = '''
def transform_request(request, ctx):
    return None

def transform_response(response, ctx):
    d = response.json()
    response.set_json({"name": d["name"].upper()})
'''


@dataclass
class RawUpstream:
    url: str
    requests: list[tuple[str, str]] = field(default_factory=list)  # (method, path and query) of each


@pytest_asyncio.fixture(loop_scope="session")
async def raw() -> AsyncIterator[RawUpstream]:
    """A raw HTTP/1.1 upstream answering ``ANSWERS`` by path; its own port per test, so one test's failures
    are not another's open breaker."""
    upstream = RawUpstream("")

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1")
            method, target, _ = head.split("\r\n", 1)[0].split(" ", 2)
            upstream.requests.append((method, target))
            writer.write(ANSWERS[_first_segment(target)])
            await writer.drain()
        finally:
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    upstream.url = f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}"
    try:
        yield upstream
    finally:
        server.close()
        await server.wait_closed()


async def _api(stage: Stage, ingress: IngressInstance, url: str, *, script: str | None = None) -> dict[str, Any]:
    staged = await stage.api(url, path="/p", script=script, retry={"attempts": 1})
    await wait_until(lambda: staged["api"]["id"] in ingress.snapshot.apis)
    return staged


async def _send(ingress: IngressInstance, staged: dict[str, Any], method: str = "GET", *,
                headers: dict[str, str] | None = None) -> tuple[int, Any, bytes]:
    # skip_auto_headers: a caller that sends no Accept-Encoding and no Accept, unless the test gives one.
    async with aiohttp.ClientSession(auto_decompress=False, skip_auto_headers=("Accept-Encoding", "Accept")) as s:
        async with s.request(method, f"{ingress.url}/{staged['org']}/p", headers=headers or {},
                             timeout=aiohttp.ClientTimeout(total=20)) as r:
            return r.status, r.headers, await r.read()


async def _letters(settings: Settings, org: str) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    for _ in range(100):
        found = [v.letter for v in await read_dead_letters(settings, org=org, limit=0)]
        if found:
            return found
        await asyncio.sleep(0.1)
    return found


def _first_segment(target: str) -> str:
    return "/" + target.split("?", 1)[0].lstrip("/").split("/", 1)[0]


async def test_a_header_that_is_not_utf8_reaches_the_caller_read_as_latin1(
        ingress: IngressInstance, stage: Stage, raw: RawUpstream) -> None:
    staged = await _api(stage, ingress, raw.url + "/latin1")
    key = {"Idempotency-Key": uuid.uuid4().hex}
    status, headers, body = await _send(ingress, staged, "POST", headers=key)
    assert (status, body) == (200, b"ok"), body
    assert headers["X-Name"] == "Café"  # the byte é was, as Latin-1 reads it
    assert headers["X-Utf"] == "Café"  # valid UTF-8 is read as such
    # The answer was kept under its key: the repeat is answered from it, not made again.
    status, headers, body = await _send(ingress, staged, "POST", headers=key)
    assert (status, body, headers.get("Idempotent-Replayed")) == (200, b"ok", "true")
    assert raw.requests == [("POST", "/latin1")]


async def test_a_script_that_sets_a_header_no_reply_can_carry_is_transform_failed_and_dead_lettered(
        settings: Settings, ingress: IngressInstance, stage: Stage, raw: RawUpstream) -> None:
    staged = await _api(stage, ingress, raw.url + "/latin1", script=SURROGATE_HEADER)
    status, _, body = await _send(ingress, staged)
    error = json.loads(body)
    assert status == 502 and error["code"] == "transform_failed", body
    assert "X-S" in error["message"] and "line" in error
    assert raw.requests == [("GET", "/latin1")]
    letters = await _letters(settings, staged["org"])
    assert [(l["stage"], l["error_code"]) for l in letters] == [("egress", "transform_failed")]


async def test_a_head_answer_keeps_the_upstreams_content_length(
        ingress: IngressInstance, stage: Stage, raw: RawUpstream) -> None:
    staged = await _api(stage, ingress, raw.url + "/sized")
    status, headers, body = await _send(ingress, staged, "HEAD")
    assert status == 200 and body == b""
    assert headers["Content-Length"] == "1024"
    assert raw.requests == [("HEAD", "/sized")]


async def test_a_status_no_final_answer_has_is_a_502_and_a_breaker_failure(
        egress: dict[str, Any], ingress: IngressInstance, stage: Stage, raw: RawUpstream) -> None:
    breakers = egress["worker"]._breakers
    for path in ("/101", "/600", "/999"):  # each staged API is an organisation of its own: its own breaker
        staged = await _api(stage, ingress, raw.url + path)
        status, headers, body = await _send(ingress, staged)
        error = json.loads(body)
        assert (status, error["code"], error["message"]) == (502, "upstream_error", INVALID_ANSWER), (path, body)
        assert (await breakers.state(staged["org"], raw.url)).failures == 1, path


async def test_an_answer_that_is_not_http_tells_the_caller_nothing_of_the_target(
        settings: Settings, ingress: IngressInstance, stage: Stage, raw: RawUpstream) -> None:
    for path in ("/garbage", "/dupcl"):
        staged = await _api(stage, ingress, f"{raw.url}{path}/hooks/PATHSECRET123?code=QSECRET")
        status, _, body = await _send(ingress, staged)
        error = json.loads(body)
        assert (status, error["code"], error["message"]) == (502, "upstream_error", INVALID_ANSWER), body
        port = raw.url.rsplit(":", 1)[1].encode()
        assert not any(secret in body for secret in (b"PATHSECRET123", b"QSECRET", port, b"Error")), body
        # The operator's detail: the dead letter's.
        letters = await _letters(settings, staged["org"])
        details = " ".join(letters[0]["details"])
        assert "ClientResponseError" in details and "PATHSECRET123" in details, details
        assert letters[0]["error_message"] == INVALID_ANSWER


async def test_an_upstream_nobody_listens_on_is_answered_without_its_address(
        settings: Settings, ingress: IngressInstance, stage: Stage) -> None:
    server = await asyncio.start_server(lambda r, w: None, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    server.close()
    await server.wait_closed()  # nothing listens there now: refused
    staged = await _api(stage, ingress, f"http://127.0.0.1:{port}/x?code=QSECRET")
    status, _, body = await _send(ingress, staged)
    error = json.loads(body)
    assert (status, error["code"], error["message"]) == (502, "upstream_unreachable", "could not connect to the upstream")
    assert str(port).encode() not in body and b"QSECRET" not in body
    letters = await _letters(settings, staged["org"])
    assert any(str(port) in line for line in letters[0]["details"]), letters[0]["details"]


@contextlib.asynccontextmanager
async def _negotiating() -> AsyncIterator[tuple[str, list[str | None]]]:
    """An upstream that gzips its JSON when the request's Accept-Encoding takes gzip (nginx's ``gzip on``);
    yields its URL and the Accept-Encoding of each request (None when absent); ``SEEN_ACCEPT`` gets its Accept."""
    seen: list[str | None] = []

    async def answer(request: web.Request) -> web.Response:
        seen.append(request.headers.get("Accept-Encoding"))
        SEEN_ACCEPT.append(request.headers.get("Accept"))
        body = json.dumps({"name": "negotiated"}).encode()
        if "gzip" in (request.headers.get("Accept-Encoding") or ""):
            return web.Response(body=gzip.compress(body), content_type="application/json", headers={"Content-Encoding": "gzip"})
        return web.Response(body=body, content_type="application/json")

    app = web.Application()
    app.router.add_get("/nego", answer)
    async with serving(app) as url:
        yield url + "/nego", seen


async def test_the_callers_accept_encoding_goes_as_it_is_and_none_when_none(ingress: IngressInstance, stage: Stage) -> None:
    async with _negotiating() as (url, seen):
        staged = await _api(stage, ingress, url)
        status, headers, body = await _send(ingress, staged)
        assert status == 200 and "Content-Encoding" not in headers and json.loads(body) == {"name": "negotiated"}
        status, headers, body = await _send(ingress, staged, headers={"Accept-Encoding": "gzip"})
        assert status == 200 and headers["Content-Encoding"] == "gzip"
        assert gzip.decompress(body) == json.dumps({"name": "negotiated"}).encode()  # passed through untouched
    assert seen == [None, "gzip"]


async def test_the_callers_accept_goes_as_it_is_and_none_when_none(ingress: IngressInstance, stage: Stage) -> None:
    """The HTTP client's own ``Accept: */*`` would make the upstream's choice for a caller that made none."""
    SEEN_ACCEPT.clear()
    async with _negotiating() as (url, _):
        staged = await _api(stage, ingress, url)
        for accept in (None, "application/xml;q=0.9, text/csv"):
            status, _, body = await _send(ingress, staged, headers={"Accept": accept} if accept else None)
            assert status == 200 and json.loads(body) == {"name": "negotiated"}
    assert SEEN_ACCEPT == [None, "application/xml;q=0.9, text/csv"]


async def test_a_response_script_reads_an_unencoded_body_whatever_the_caller_accepts(ingress: IngressInstance,
                                                                                      stage: Stage) -> None:
    async with _negotiating() as (url, seen):
        staged = await _api(stage, ingress, url, script=READS_JSON)
        for accept in (None, "gzip, deflate"):
            status, _, body = await _send(ingress, staged, headers={"Accept-Encoding": accept} if accept else None)
            assert status == 200 and json.loads(body) == {"name": "NEGOTIATED"}, (accept, body)
    assert seen == ["identity", "identity"]


async def test_headers_whose_meaning_junction_defines_are_junctions_not_the_upstreams(
        ingress: IngressInstance, stage: Stage, raw: RawUpstream) -> None:
    """An upstream's Idempotent-Replayed or X-Cache would tell the caller a replay or a cache hit happened
    (it would skip its own duplicate handling), and its X-Request-Id would replace the edge's support id."""
    staged = await _api(stage, ingress, raw.url + "/owned")
    status, headers, body = await _send(ingress, staged)
    assert status == 200 and body == b"ok" and headers["X-Upstream-Own"] == "kept"
    assert "Idempotent-Replayed" not in headers and "X-Cache" not in headers
    assert headers["X-Request-Id"] != "upstream-req-1" and headers["X-Correlation-Id"] != "upstream-corr-1"
