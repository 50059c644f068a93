"""Content codings at the edge: request bodies decoded, responses encoded (docs/caching.md).

Requests: a body sent with ``Content-Encoding: gzip``, ``deflate`` or ``br`` is decoded as it
arrives, in steps of bounded output, and the body limit counts the *decoded* bytes: a decoder is
never asked for more than the room left under the limit, so a zip bomb ends as 413 ``body_too_large``
after at most ``max_body_bytes`` of output, never as a process out of memory. The encoded bytes
count against the same limit. Another coding is 415 ``unsupported_content_encoding``; a body that
does not decode, 400 ``malformed_body``. The ingress listener reads bodies as sent for this
(``ServeOptions.raw_bodies``): aiohttp's own decoding would answer a bad body after the handler.

Responses: a body of at least ``compression_min_bytes`` is sent as br or gzip when the caller's
``Accept-Encoding`` takes one (q-values honoured; br preferred on a tie), unless it already carries a
``Content-Encoding`` or its type is compressed already (images, audio, video, archives). Large bodies
are compressed in a worker thread, off the event loop.
"""
from __future__ import annotations

import asyncio
import gzip
import zlib
from collections.abc import Iterable
from typing import Protocol

import brotli
from aiohttp import web

from core.errors import BodyTooLarge, FieldError, MalformedBody, UnsupportedMediaType
from core.settings import Settings

__all__ = ["ENCODED_REQUESTS", "add_vary", "compress_response", "decoded_headers", "negotiate", "read_body"]

# Codings a request body may come in; "identity" is none. x-gzip is gzip (RFC 9110 §8.4.1.3).
ENCODED_REQUESTS = ("gzip", "x-gzip", "deflate", "br")
_RESPONSE_CODINGS = ("br", "gzip")  # in order of preference when the caller rates them alike
_STEP_BYTES = 256 * 1024  # decoded bytes per step; the loop gets a turn between steps
_INLINE_COMPRESS_BYTES = 64 * 1024  # larger bodies are compressed in a thread
_GZIP_LEVEL = 6
_BROTLI_QUALITY = 5  # 11 is several times slower for a few per cent: too slow for answers made per call
# Already compressed: a second coding costs CPU and saves nothing.
_COMPRESSED_TYPES = ("image/", "audio/", "video/", "font/woff", "application/zip", "application/gzip",
                     "application/x-gzip", "application/x-bzip2", "application/x-xz", "application/zstd",
                     "application/x-7z-compressed", "application/x-rar-compressed", "application/pdf")
_UNCOMPRESSED_IMAGES = ("image/svg+xml", "image/bmp", "image/x-icon")
_NEVER = frozenset({204, 206, 304})  # no body, or a byte range of the unencoded one


# -- requests --------------------------------------------------------------------------------------------

class _Decoder(Protocol):
    def step(self, data: bytes, room: int) -> bytes:
        """Decode ``data`` (b"" to go on with what is buffered), at most about ``room`` bytes."""

    def pending(self) -> bool:
        """Input is buffered that the last step had no room for."""

    def done(self) -> bool:
        """The stream ended properly."""


class _Zlib:
    """gzip (members in sequence, as RFC 1952 allows) or deflate (zlib-wrapped, or raw as some clients send)."""

    def __init__(self, coding: str) -> None:
        self._coding = coding
        self._d: zlib._Decompress | None = None
        self._tail = b""
        self._out_pending = False

    def _new(self, first: bytes) -> zlib._Decompress:
        if self._coding == "deflate":
            return zlib.decompressobj(zlib.MAX_WBITS if first[0] & 0x0F == 8 else -zlib.MAX_WBITS)
        return zlib.decompressobj(16 + zlib.MAX_WBITS)

    def step(self, data: bytes, room: int) -> bytes:
        data = self._tail + data
        if self._d is None:
            if not data:
                return b""
            self._d = self._new(data)
        out = self._d.decompress(data, room)
        self._tail = self._d.unconsumed_tail
        # Output cut at the room may leave more inside zlib with no input left.
        self._out_pending = len(out) >= room
        if self._d.eof:
            rest = self._d.unused_data
            if rest and self._coding != "deflate":
                self._d, self._tail = self._new(rest), rest  # the next gzip member
            elif rest:
                raise zlib.error("data after the end of the stream")
        return out

    def pending(self) -> bool:
        return bool(self._tail) or self._out_pending

    def done(self) -> bool:
        return self._d is not None and self._d.eof and not self._tail


class _Brotli:
    def __init__(self) -> None:
        self._d = brotli.Decompressor()

    def step(self, data: bytes, room: int) -> bytes:
        return self._d.process(data, output_buffer_limit=room)

    def pending(self) -> bool:
        return not self._d.can_accept_more_data()

    def done(self) -> bool:
        return self._d.is_finished()


def _decoder(coding: str) -> _Decoder:
    return _Brotli() if coding == "br" else _Zlib("gzip" if coding == "x-gzip" else coding)


def _coding_of(request: web.Request) -> str | None:
    """The request body's one content coding (None: not encoded); 415 for any other."""
    codings = [c.strip().lower() for v in request.headers.getall("Content-Encoding", []) for c in v.split(",")]
    codings = [c for c in codings if c and c != "identity"]
    if not codings:
        return None
    if len(codings) == 1 and codings[0] in ENCODED_REQUESTS:
        return codings[0]
    raise UnsupportedMediaType(
        f"a request body may be encoded with one of {', '.join(ENCODED_REQUESTS)}, not {', '.join(codings)[:100]}",
        code="unsupported_content_encoding", headers={"Accept-Encoding": "gzip, deflate, br"},
        fields=[FieldError("Content-Encoding", f"must be one of {', '.join(ENCODED_REQUESTS)}")])


async def read_body(request: web.Request, limit: int) -> bytes:
    """The request body, decoded if it is encoded, of at most ``limit`` bytes (413 beyond)."""
    coding = _coding_of(request)
    if request.content_length is not None and request.content_length > limit:
        raise BodyTooLarge.over(limit, f"body of {request.content_length} bytes")
    if coding is None:
        try:
            return await request.read()
        except web.HTTPRequestEntityTooLarge:
            raise BodyTooLarge.over(limit) from None
    decoder, body, received = _decoder(coding), bytearray(), 0
    try:
        async for chunk in request.content.iter_any():
            received += len(chunk)
            if received > limit:
                raise BodyTooLarge.over(limit, "encoded body")
            data = chunk
            while True:
                # One byte over the limit is enough to know: the decoder never makes more than that.
                room = limit + 1 - len(body)
                body += decoder.step(data, min(room, _STEP_BYTES))
                if len(body) > limit:
                    raise BodyTooLarge.over(limit, "decoded body")
                if not decoder.pending():
                    break
                data = b""
                await asyncio.sleep(0)  # a highly compressed chunk decodes in many steps; others go between them
    except (zlib.error, brotli.error):
        raise MalformedBody(f"the request body is not valid {coding}", code="malformed_body",
                            fields=[FieldError("(body)", f"is not valid {coding}")]) from None
    if received and not decoder.done():
        raise MalformedBody(f"the request body ends before its {coding} stream does", code="malformed_body",
                            fields=[FieldError("(body)", f"ends before its {coding} stream does")])
    return bytes(body)


def decoded_headers(headers: Iterable[tuple[str, str]]) -> list[tuple[str, str]]:
    """The caller's headers for a body ingress decoded: it goes on unencoded."""
    return [(k, v) for k, v in headers if k.lower() != "content-encoding"]


# -- responses -------------------------------------------------------------------------------------------

def _ratings(accept_encoding: str) -> dict[str, float]:
    rated: dict[str, float] = {}
    for item in accept_encoding.split(","):
        name, _, params = item.partition(";")
        name = name.strip().lower()
        if not name:
            continue
        q = 1.0
        for param in params.split(";"):
            key, _, value = param.partition("=")
            if key.strip().lower() == "q":
                try:
                    q = min(max(float(value.strip()), 0.0), 1.0)
                except ValueError:
                    q = 0.0  # an unreadable weight accepts nothing rather than guessing
        rated["gzip" if name == "x-gzip" else name] = q
    return rated


def negotiate(accept_encoding: str | None) -> str | None:
    """The coding to answer with: br or gzip, whichever the caller rates higher (q > 0), else None."""
    if not accept_encoding:
        return None  # no header: any coding would do (RFC 9110 §12.5.3), but an old client may not cope
    rated = _ratings(accept_encoding)
    star = rated.get("*", 0.0)
    best, best_q = None, 0.0
    for coding in _RESPONSE_CODINGS:
        q = rated.get(coding, star)
        if q > best_q:
            best, best_q = coding, q
    return best


def _compressible(response: web.Response, settings: Settings) -> bool:
    if not settings.compress_responses or response.status in _NEVER or "Content-Encoding" in response.headers:
        return False
    body = response.body
    if not isinstance(body, (bytes, bytearray)) or len(body) < settings.compression_min_bytes:
        return False
    media = response.headers.get("Content-Type", "").split(";")[0].strip().lower()
    return not media.startswith(_COMPRESSED_TYPES) or media in _UNCOMPRESSED_IMAGES


def _encode(coding: str, body: bytes) -> bytes:
    if coding == "br":
        return brotli.compress(body, quality=_BROTLI_QUALITY)
    return gzip.compress(body, compresslevel=_GZIP_LEVEL, mtime=0)


def add_vary(response: web.StreamResponse, name: str) -> None:
    present = [v.strip().lower() for value in response.headers.getall("Vary", []) for v in value.split(",")]
    if name.lower() not in present and "*" not in present:
        response.headers.add("Vary", name)


async def compress_response(request: web.Request, response: web.StreamResponse, settings: Settings) -> web.StreamResponse:
    """``response``, its body encoded as the caller accepts when it is worth it."""
    if request.method == "HEAD" or not isinstance(response, web.Response) or not _compressible(response, settings):
        return response
    add_vary(response, "Accept-Encoding")  # the answer depends on it, encoded or not
    coding = negotiate(",".join(request.headers.getall("Accept-Encoding", [])))
    if coding is None:
        return response
    body = bytes(response.body)  # type: ignore[arg-type]
    encoded = await asyncio.to_thread(_encode, coding, body) if len(body) > _INLINE_COMPRESS_BYTES else _encode(coding, body)
    if len(encoded) >= len(body):
        return response  # incompressible after all: send it as it is
    response.body = encoded
    response.headers["Content-Encoding"] = coding
    etag = response.headers.get("ETag")
    if etag and not etag.startswith("W/"):
        response.headers["ETag"] = "W/" + etag  # another representation: no longer byte-for-byte the strong one
    return response
