"""Content codings at the edge, through the whole pipeline (ingress → broker → processors → egress → a raw
echo upstream): answers compressed as the caller's Accept-Encoding asks and only when worth it, never
twice; request bodies sent gzip, deflate or br decoded with the body limit on the decoded bytes, so a
zip bomb is a 413 and not a process out of memory; a corrupt body a 400, an unknown coding a 415."""
from __future__ import annotations

import asyncio
import gzip
import os
import uuid
import zlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import brotli
import pytest_asyncio
from aiohttp import web
from hypothesis import HealthCheck, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st
from multidict import CIMultiDict

from core.settings import Settings
from tests.support import IngressInstance, Stage, serving, wait_until

TEXT = b'{"item": "a fairly compressible answer", "n": 12345}\n' * 200  # ~10 KB, over the threshold


@dataclass
class RawEcho:
    url: str
    seen: dict[str, tuple[CIMultiDict[str], bytes]] = field(default_factory=dict)


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def raw_echo() -> AsyncIterator[RawEcho]:
    """Answers with the bytes it received (typed ``?ct=``, gzip-encoded itself with ``?pre=gzip``) and keeps
    what each ``?t=`` call brought."""
    found = RawEcho("")

    async def echo(request: web.Request) -> web.Response:
        body = await request.read()
        found.seen[request.query.get("t", "")] = (CIMultiDict(request.headers), body)
        headers = {"Content-Type": request.query.get("ct", "text/plain")}
        if request.query.get("pre") == "gzip":
            body, headers["Content-Encoding"] = gzip.compress(body), "gzip"
        if "etag" in request.query:
            headers["ETag"] = '"v1"'
        return web.Response(body=body, headers=headers)

    app = web.Application(client_max_size=64 * 1024 * 1024)
    app.router.add_route("*", "/raw", echo)
    async with serving(app) as url:
        found.url = url
        yield found


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def api(stage: Stage, ingress: IngressInstance, raw_echo: RawEcho) -> str:
    """The echo API's URL on ingress."""
    staged = await stage.api(raw_echo.url + "/raw", path="/raw", timeout_ms=30_000)
    await wait_until(lambda: staged["api"]["id"] in ingress.snapshot.apis)
    return f"{ingress.url}/{staged['org']}/raw"


async def _post(url: str, body: bytes, *, headers: dict[str, str] | None = None,
                query: dict[str, str] | None = None) -> tuple[int, CIMultiDict[str], bytes]:
    # auto_decompress off: the test sees the bytes on the wire
    async with aiohttp.ClientSession(auto_decompress=False) as s, s.post(
        url, data=body, headers={"Accept-Encoding": "identity", **(headers or {})}, params=query or {},
        timeout=aiohttp.ClientTimeout(total=60),
    ) as r:
        return r.status, CIMultiDict(r.headers), await r.read()


def _decode(coding: str | None, body: bytes) -> bytes:
    if coding == "gzip":
        return gzip.decompress(body)
    if coding == "br":
        return brotli.decompress(body)
    assert coding is None, coding
    return body


async def test_answers_are_compressed_as_the_caller_accepts(api: str) -> None:
    cases = [("gzip", "gzip"), ("br", "br"), ("gzip, deflate, br", "br"), ("gzip;q=1.0, br;q=0.5", "gzip"),
             ("br;q=0, gzip;q=0.1", "gzip"), ("*", "br"), ("*;q=0.5, br;q=0", "gzip"), ("identity", None),
             ("gzip;q=0, br;q=0", None), ("deflate", None), ("GZIP", "gzip"), ("gzip;q=bogus", None)]
    for accept, expected in cases:
        status, headers, body = await _post(api, TEXT, headers={"Accept-Encoding": accept})
        assert status == 200
        assert headers.get("Content-Encoding") == expected, accept
        assert "Accept-Encoding" in headers.get("Vary", ""), accept
        assert _decode(expected, body) == TEXT, accept
        if expected:
            assert len(body) < len(TEXT) / 5


async def test_small_compressed_and_preencoded_answers_go_as_they_are(api: str, settings: Settings) -> None:
    small = TEXT[: settings.compression_min_bytes - 1]
    status, headers, body = await _post(api, small, headers={"Accept-Encoding": "gzip"})
    assert status == 200 and "Content-Encoding" not in headers and body == small
    # An image is compressed already; a second coding would cost CPU for nothing.
    status, headers, body = await _post(api, TEXT, headers={"Accept-Encoding": "gzip, br"}, query={"ct": "image/png"})
    assert "Content-Encoding" not in headers and body == TEXT
    # The upstream encoded it itself: passed on as it is, never encoded twice.
    status, headers, body = await _post(api, TEXT, headers={"Accept-Encoding": "gzip, br"}, query={"pre": "gzip"})
    assert headers["Content-Encoding"] == "gzip" and gzip.decompress(body) == TEXT
    # Random bytes do not shrink: they go unencoded rather than larger.
    noise = os.urandom(8192)
    status, headers, body = await _post(api, noise, headers={"Accept-Encoding": "gzip"}, query={"ct": "application/octet-stream"})
    assert "Content-Encoding" not in headers and body == noise


async def test_a_compressed_answer_has_a_weak_etag(api: str) -> None:
    _, headers, _ = await _post(api, TEXT, headers={"Accept-Encoding": "gzip"}, query={"etag": "1"})
    assert headers["Content-Encoding"] == "gzip" and headers["ETag"] == 'W/"v1"'
    _, headers, _ = await _post(api, TEXT, query={"etag": "1"})
    assert headers["ETag"] == '"v1"'


async def test_encoded_request_bodies_reach_the_upstream_decoded(api: str, raw_echo: RawEcho) -> None:
    raw_deflate = zlib.compressobj(6, zlib.DEFLATED, -zlib.MAX_WBITS)
    encoders = {
        "gzip": gzip.compress, "x-gzip": gzip.compress, "br": brotli.compress, "deflate": zlib.compress,
        "Deflate": lambda b: raw_deflate.compress(b) + raw_deflate.flush(),  # raw, as some clients send it
        "identity": lambda b: b,
    }
    for coding, encode in encoders.items():
        tag = uuid.uuid4().hex
        status, _, body = await _post(api, encode(TEXT), headers={"Content-Encoding": coding}, query={"t": tag})
        assert status == 200 and body == TEXT, (coding, body[:200])
        headers, received = raw_echo.seen[tag]
        assert received == TEXT and "Content-Encoding" not in headers, coding
    # Two gzip members in sequence are one body (RFC 1952).
    tag = uuid.uuid4().hex
    status, _, body = await _post(api, gzip.compress(b"first ") + gzip.compress(b"second"),
                                  headers={"Content-Encoding": "gzip"}, query={"t": tag})
    assert status == 200 and body == b"first second"


async def test_corrupt_and_unknown_encodings_are_refused(api: str) -> None:
    for coding, body in [("gzip", b"\x1f\x8b this is not gzip at all"), ("gzip", gzip.compress(TEXT)[:-20]),
                         ("br", b"\xff\xff\xff not brotli"), ("deflate", b"\x78\x9c garbage")]:
        status, _, got = await _post(api, body, headers={"Content-Encoding": coding})
        assert status == 400 and b'"malformed_body"' in got and b'"field":"(body)"' in got.replace(b" ", b""), (coding, got)
    for coding in ("zstd", "compress", "x-unknown", "gzip, br"):
        status, headers, got = await _post(api, b"whatever", headers={"Content-Encoding": coding})
        assert status == 415 and b'"unsupported_content_encoding"' in got, (coding, got)
        assert b'"field":"Content-Encoding"' in got.replace(b" ", b""), (coding, got)
        assert "gzip" in headers["Accept-Encoding"]


def _rss_bytes() -> int:
    return int(Path("/proc/self/statm").read_text().split()[1]) * 4096


def _gzip_bomb(mib: int) -> bytes:
    c, zeros = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS), bytes(1 << 20)
    return b"".join(c.compress(zeros) for _ in range(mib)) + c.flush()


def _brotli_bomb(mib: int) -> bytes:
    c, zeros = brotli.Compressor(quality=5), bytes(1 << 20)
    return b"".join(c.process(zeros) for _ in range(mib)) + c.finish()


async def test_a_zip_bomb_is_413_and_memory_stays_flat(api: str, settings: Settings) -> None:
    bombs = {"gzip": await asyncio.to_thread(_gzip_bomb, 256), "br": await asyncio.to_thread(_brotli_bomb, 1024)}
    assert len(bombs["gzip"]) < 400_000 and len(bombs["br"]) < 10_000  # 256 MiB and 1 GiB of zeros
    for coding, bomb in bombs.items():
        baseline, peak, done = _rss_bytes(), [0], asyncio.Event()

        async def sample(done: asyncio.Event, peak: list[int]) -> None:  # the ingress under test runs in this process
            while not done.is_set():
                peak[0] = max(peak[0], _rss_bytes())
                await asyncio.sleep(0.002)

        sampler = asyncio.create_task(sample(done, peak))
        try:
            status, _, got = await _post(api, bomb, headers={"Content-Encoding": coding})
        finally:
            done.set()
            await sampler
        assert status == 413 and b'"body_too_large"' in got, (coding, got[:300])
        # Decoded up to the limit and no further: far below the bomb's size.
        assert peak[0] - baseline < settings.max_body_bytes * 6, (coding, (peak[0] - baseline) >> 20)


PROPS = hsettings(max_examples=25, deadline=None, database=None,
                  suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
CODING = st.sampled_from(["gzip", "br", "deflate", "identity", "*", "x-unknown"])
ACCEPT = st.lists(st.tuples(CODING, st.sampled_from(["", ";q=0", ";q=0.3", ";q=1", ";q=0.999", ";Q=0.5", ";q=x"])),
                  max_size=4).map(lambda items: ", ".join(c + q for c, q in items))


@PROPS
@given(body=st.one_of(st.binary(max_size=6000), st.text(max_size=3000).map(lambda t: (t * 3).encode())),
       accept=ACCEPT, media=st.sampled_from(["text/plain", "application/json", "image/jpeg", "application/octet-stream"]))
async def test_property_decoding_what_ingress_sends_gives_the_upstreams_body(api: str, body: bytes, accept: str,
                                                                            media: str) -> None:
    status, headers, got = await _post(api, body, headers={"Accept-Encoding": accept}, query={"ct": media})
    assert status == 200
    assert _decode(headers.get("Content-Encoding"), got) == body


async def test_settings_turn_compression_off(settings: Settings, raw_echo: RawEcho, stage: Stage,
                                             processors: Any, egress: Any) -> None:
    inst = IngressInstance(settings.with_overrides(compress_responses=False))
    await inst.start()
    try:
        staged = await stage.api(raw_echo.url + "/raw", path="/raw")
        await wait_until(lambda: staged["api"]["id"] in inst.snapshot.apis)
        status, headers, body = await _post(f"{inst.url}/{staged['org']}/raw", TEXT, headers={"Accept-Encoding": "gzip"})
        assert status == 200 and "Content-Encoding" not in headers and body == TEXT
    finally:
        await inst.stop()
