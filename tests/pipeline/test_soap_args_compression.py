"""REST in, SOAP out: the answer's content coding. Egress asks the SOAP service for ``identity``
whatever the caller's own Accept-Encoding (that one is for the JSON reply, which ingress encodes),
and an answer compressed anyway (gzip, deflate, br: IIS static compression, a proxy in front) is
decoded before it is parsed. The decoded size is bounded like every body: a zip bomb is a 502
``upstream_response_too_large`` after at most the limit's worth of output.

The service is a loopback ASMX-like calculator whose WSDL (the real one, read by path) is uploaded
with the connector and whose endpoint compresses as each test needs."""
from __future__ import annotations

import gzip
import re
import tracemalloc
import zlib
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import brotli
import pytest
import pytest_asyncio
from aiohttp import web

from core.errors import UpstreamError
from egress.soap_reply import decode_answer
from tests.soap_servers import WSDL_DIR
from tests.support import IngressInstance, Stage, serving, wait_until

if not WSDL_DIR.is_dir():
    pytest.skip(f"the real-world WSDLs are not at {WSDL_DIR}", allow_module_level=True)

SOAP11 = "http://schemas.xmlsoap.org/soap/envelope/"
BOMB_BYTES = 64 * 1024 * 1024  # decoded: far past the default body limit (10 MiB)


def _deflate_raw(data: bytes) -> bytes:
    encoder = zlib.compressobj(6, zlib.DEFLATED, -zlib.MAX_WBITS)
    return encoder.compress(data) + encoder.flush()


def _gzip_bomb(size: int) -> bytes:
    encoder = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    zeros = b"\0" * (1024 * 1024)
    return b"".join(encoder.compress(zeros) for _ in range(size // len(zeros))) + encoder.flush()


ENCODERS = {"gzip": gzip.compress, "deflate": zlib.compress, "deflate-raw": _deflate_raw, "br": brotli.compress}


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def calculator() -> AsyncIterator[dict[str, Any]]:
    """``/nego`` compresses when the request's Accept-Encoding takes gzip (nginx's ``gzip on``);
    ``/always/{coding}`` whatever it is asked; ``/bomb`` answers a gzip bomb; ``/broken`` a gzip
    stream cut short. Each records the Accept-Encoding it was sent."""
    state: dict[str, Any] = {"accept_encoding": [], "bomb": _gzip_bomb(BOMB_BYTES)}

    def envelope(raw: bytes) -> bytes:
        a, b = (int(re.search(rf"<ns0:{n}>(-?\d+)</ns0:{n}>".encode(), raw).group(1)) for n in ("intA", "intB"))  # type: ignore[union-attr]
        return (f'<?xml version="1.0" encoding="utf-8"?><soap:Envelope xmlns:soap="{SOAP11}"><soap:Body>'
                f'<DivideResponse xmlns="http://tempuri.org/"><DivideResult>{a // b}</DivideResult></DivideResponse>'
                "</soap:Body></soap:Envelope>").encode()

    def answer(body: bytes, coding: str | None) -> web.Response:
        response = web.Response(body=body, content_type="text/xml", charset="utf-8")
        if coding:
            response.headers["Content-Encoding"] = coding
        return response

    async def nego(request: web.Request) -> web.Response:
        asked = request.headers.get("Accept-Encoding", "")
        state["accept_encoding"].append(asked)
        body = envelope(await request.read())
        return answer(gzip.compress(body), "gzip") if "gzip" in asked else answer(body, None)

    async def always(request: web.Request) -> web.Response:
        state["accept_encoding"].append(request.headers.get("Accept-Encoding", ""))
        coding = request.match_info["coding"]
        return answer(ENCODERS[coding](envelope(await request.read())), coding.removesuffix("-raw"))

    async def bomb(request: web.Request) -> web.Response:
        await request.read()
        return answer(state["bomb"], "gzip")

    async def broken(request: web.Request) -> web.Response:
        return answer(gzip.compress(envelope(await request.read()))[:-12], "gzip")

    app = web.Application()
    app.router.add_post("/nego", nego)
    app.router.add_post("/always/{coding}", always)
    app.router.add_post("/bomb", bomb)
    app.router.add_post("/broken", broken)
    async with serving(app) as url:
        state["url"] = url
        yield state


async def divide_api(stage: Stage, ingress: IngressInstance, address: str) -> dict[str, Any]:
    wsdl = (WSDL_DIR / "calculator.wsdl").read_text(encoding="utf-8")
    staged = await stage.api("", path="/soap", methods=["POST"], target={
        "protocol": "soap", "url": "http://calculator.example/calculator.asmx?WSDL", "operation": "Divide",
        "wsdl": wsdl, "address": address})
    await wait_until(lambda: staged["api"]["id"] in ingress.snapshot.apis)
    return staged


async def call(ingress: IngressInstance, staged: dict[str, Any], accept_encoding: str | None) -> tuple[int, dict[str, Any]]:
    headers = {"Accept-Encoding": accept_encoding} if accept_encoding else {}
    async with aiohttp.ClientSession(skip_auto_headers=("Accept-Encoding",)) as s:
        async with s.post(f"{ingress.url}/{staged['org']}/soap", json={"intA": 84, "intB": 2}, headers=headers,
                          timeout=aiohttp.ClientTimeout(total=30)) as r:
            return r.status, await r.json()


@pytest.mark.parametrize("accept_encoding", ["gzip, deflate, br", "gzip", None])
async def test_the_service_is_asked_for_identity_whatever_the_caller_accepts(
    stage: Stage, ingress: IngressInstance, calculator: dict[str, Any], accept_encoding: str | None
) -> None:
    staged = await divide_api(stage, ingress, f"{calculator['url']}/nego")
    seen = len(calculator["accept_encoding"])
    assert await call(ingress, staged, accept_encoding) == (200, {"DivideResult": 42})
    assert calculator["accept_encoding"][seen:] == ["identity"]


@pytest.mark.parametrize("coding", ["gzip", "deflate", "deflate-raw", "br"])
async def test_an_answer_compressed_anyway_is_decoded_before_it_is_read(
    stage: Stage, ingress: IngressInstance, calculator: dict[str, Any], coding: str
) -> None:
    staged = await divide_api(stage, ingress, f"{calculator['url']}/always/{coding}")
    assert await call(ingress, staged, "gzip") == (200, {"DivideResult": 42})


async def test_a_compressed_answer_that_does_not_decode_is_an_upstream_error(
    stage: Stage, ingress: IngressInstance, calculator: dict[str, Any]
) -> None:
    staged = await divide_api(stage, ingress, f"{calculator['url']}/broken")
    status, body = await call(ingress, staged, None)
    assert (status, body["code"]) == (502, "upstream_error"), body
    assert "gzip answer does not decode" in body["message"]


# -- attack: a zip bomb ------------------------------------------------------------------------

async def test_a_gzip_bomb_from_the_service_is_refused_at_the_body_limit(
    stage: Stage, ingress: IngressInstance, calculator: dict[str, Any]
) -> None:
    staged = await divide_api(stage, ingress, f"{calculator['url']}/bomb")
    status, body = await call(ingress, staged, None)  # 64 MiB of zeros in 64 KiB
    assert (status, body["code"]) == (502, "upstream_response_too_large"), body
    assert "once decoded from gzip" in body["message"]


@pytest.mark.parametrize("coding", ["gzip", "deflate", "br"])
def test_decoding_a_bomb_never_holds_much_more_than_the_limit(calculator: dict[str, Any], coding: str) -> None:
    limit = 1024 * 1024
    bomb = {"gzip": calculator["bomb"], "deflate": zlib.compress(b"\0" * (64 * limit), 9),
            "br": brotli.compress(b"\0" * (64 * limit), quality=1)}[coding]
    tracemalloc.start()
    try:
        with pytest.raises(UpstreamError) as refused:
            decode_answer(coding, bomb, limit)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert refused.value.code == "upstream_response_too_large"
    assert peak < 4 * limit, peak  # the output stops one byte past the limit (and is copied once)
