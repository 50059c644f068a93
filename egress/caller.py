"""The outbound REST call, on one pooled aiohttp session.

Every connection of the session goes through the SSRF guard (core/ssrf.py):
its connector resolves names with the guard's resolver and connects to exactly
the addresses that resolver checked, and a client middleware checks literal
addresses, on each redirect hop too. The Host header and TLS (SNI, certificate
check) stay those of the URL's host name.

Redirects are not followed unless the call asks for it (a connector's
``target.follow_redirects``); a redirect not followed is the upstream's answer,
3xx and Location as they came. Followed, each hop is guarded like the first and
at most ``max_redirects`` hops are taken (502 ``too_many_redirects`` beyond).

An answer that is not valid HTTP (a bad status line, framing the parser refuses, a
final status outside 200..599) is a 502 ``upstream_error``. What the caller reads is
a fixed message per kind of failure: the exception's own text names the target URL
(hosts, ports, secrets in its path or query), so it goes only to the log and the
dead letter (the error's ``detail``).
"""
from __future__ import annotations

import asyncio
import io
import ssl
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import Any

import aiohttp
from aiohttp.abc import AbstractResolver
from yarl import URL

from core.errors import DeadlineExceeded, UpstreamError, UpstreamNotConnected, UpstreamUnreachable
from core.headers import end_to_end
from core.ssrf import TargetPolicy

__all__ = ["INVALID_ANSWER", "RestCaller", "UpstreamResponse", "follows_redirects"]

MAX_REDIRECTS = 5
INVALID_ANSWER = "the upstream's answer was not valid HTTP"


def follows_redirects(connector: Mapping[str, Any] | None) -> bool:
    """Whether a connector's target lets its calls follow redirects (``target.follow_redirects``; default no)."""
    target = (connector or {}).get("target") or {}
    return target.get("follow_redirects") is True


@dataclass(frozen=True)
class UpstreamResponse:
    status: int
    headers: list[tuple[str, str]]
    body: bytes


class RestCaller:
    def __init__(self, *, connect_timeout_s: float, max_connections: int = 1000, allow_private: bool = False,
                 targets: TargetPolicy | None = None, resolver: AbstractResolver | None = None,
                 max_redirects: int = MAX_REDIRECTS, dns_cache_s: float = 60, ssl_context: ssl.SSLContext | None = None,
                 max_response_bytes: int | None = None) -> None:
        """``targets`` is the SSRF guard (default: one refusing private targets unless
        ``allow_private``); ``resolver`` the name resolution it wraps (default getaddrinfo);
        ``dns_cache_s`` 0 resolves on every new connection; ``ssl_context`` replaces the
        default verification (system CAs, the URL's host name); ``max_response_bytes`` refuses larger
        answers with 502 ``upstream_response_too_large``."""
        self._connect_timeout_s = connect_timeout_s
        self._max_response_bytes = max_response_bytes
        self._max_connections = max_connections
        self.targets = targets if targets is not None else TargetPolicy(allow_private=allow_private)
        self._resolver = resolver
        self._max_redirects = max_redirects
        self._dns_cache_s = dns_cache_s
        self._ssl: ssl.SSLContext | bool = ssl_context if ssl_context is not None else True
        self._session: aiohttp.ClientSession | None = None

    follows_redirects = staticmethod(follows_redirects)

    async def start(self) -> None:
        connector = aiohttp.TCPConnector(
            limit=self._max_connections, limit_per_host=0, enable_cleanup_closed=True,
            use_dns_cache=self._dns_cache_s > 0, ttl_dns_cache=self._dns_cache_s or None,
            resolver=self.targets.resolver(self._resolver), ssl=self._ssl,
        )
        # No cookie jar: cookies of one tenant's upstream must never reach another call.
        # No trust_env: an environment proxy would make the connector's host a different one.
        self._session = aiohttp.ClientSession(
            connector=connector, cookie_jar=aiohttp.DummyCookieJar(), auto_decompress=False, trust_env=False,
            middlewares=(self.targets.middleware,),
        )

    async def stop(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def get_bytes(self, url: str, timeout_s: float, *, follow_redirects: bool = False) -> bytes:
        """A GET whose non-2xx answer is an error (used to load WSDLs and the documents they import). Its
        errors name the document, as SOAP's errors do (docs/connectors.md): an operator's WSDL location,
        not a REST connector's target."""
        try:
            response = await self.call("GET", url, [], b"", timeout_s, follow_redirects=follow_redirects)
        except UpstreamError as err:
            err.message = f"GET {url}: {err.message}"
            err.args = (err.message,)
            raise
        if not 200 <= response.status < 300:
            raise UpstreamError(f"GET {url} answered {response.status}", code="wsdl_unavailable")
        return response.body

    async def post(self, url: str, headers: list[tuple[str, str]], body: bytes, timeout_s: float, *,
                   follow_redirects: bool = False) -> UpstreamResponse:
        return await self.call("POST", url, headers, body, timeout_s, follow_redirects=follow_redirects)

    async def call(self, method: str, url: str, headers: list[tuple[str, str]], body: bytes, timeout_s: float, *,
                   follow_redirects: bool = False, ssl_context: ssl.SSLContext | None = None,
                   origin_bound: Collection[str] = ()) -> UpstreamResponse:
        """One outbound request. Raises ``TargetNotAllowed`` (502 ``target_not_allowed``)
        before connecting anywhere the guard refuses, redirect hops included.

        ``ssl_context`` replaces the session's TLS settings for this request (a connector's own CA
        bundle and client certificate); ``origin_bound`` names headers (credentials) that a followed
        redirect never carries to another origin (aiohttp itself drops only Authorization)."""
        assert self._session is not None, "RestCaller.start() was not awaited"
        timeout = aiohttp.ClientTimeout(total=timeout_s, connect=min(self._connect_timeout_s, timeout_s))
        extra: dict[str, Any] = {}
        if ssl_context is not None:
            extra["ssl"] = ssl_context
        if follow_redirects and origin_bound:
            extra["middlewares"] = (self.targets.middleware, _origin_bound(URL(url).origin(), origin_bound))
        try:
            async with self._session.request(
                # The one hop-by-hop filter on the way in (core/headers.py): after it, nothing adds a header.
                method, url, headers=end_to_end(headers), data=_payload(body), timeout=timeout,
                allow_redirects=follow_redirects, max_redirects=self._max_redirects + 1,  # aiohttp counts the answer that stops it
                # No Accept-Encoding or Accept of aiohttp's own: the caller's go as they are, none when none,
                # so an answer is never encoded, or its type chosen, for a caller that did not ask.
                skip_auto_headers=("User-Agent", "Content-Type", "Accept-Encoding", "Accept"), **extra,
            ) as resp:
                _check_status(resp)
                payload = await _read_limited(resp, self._max_response_bytes)
                return UpstreamResponse(resp.status, _decoded_headers(resp.raw_headers), payload)
        except aiohttp.TooManyRedirects:
            raise UpstreamError(f"the upstream redirected more than {self._max_redirects} times", code="too_many_redirects") from None
        except asyncio.TimeoutError:
            raise DeadlineExceeded(f"upstream did not answer within {timeout_s * 1000:.0f} ms", code="upstream_timeout") from None
        except aiohttp.ClientSSLError as exc:
            # A certificate the upstream or its CA bundle does not accept: retrying cannot help.
            raise UpstreamError(f"TLS with the upstream failed: {_ssl_reason(exc)}", code="upstream_tls_error") from None
        except aiohttp.ClientConnectorError as exc:  # after ClientSSLError, its subclass
            raise _failed(UpstreamNotConnected("could not connect to the upstream"), exc) from None
        except (aiohttp.ServerDisconnectedError, ConnectionError) as exc:
            raise _failed(UpstreamUnreachable("the connection to the upstream broke before it answered"), exc) from None
        except aiohttp.InvalidURL as exc:
            raise _failed(UpstreamError("the upstream URL is not valid", code="invalid_upstream_url"), exc) from None
        except (aiohttp.ClientResponseError, aiohttp.ClientPayloadError) as exc:
            raise _failed(UpstreamError(INVALID_ANSWER), exc) from None
        except aiohttp.ClientError as exc:
            raise _failed(UpstreamError("the call to the upstream failed"), exc) from None


def _failed(err: UpstreamError, exc: BaseException) -> UpstreamError:
    """``err``, for the caller, with ``exc``'s own text as its ``detail``, for the log and the dead letter."""
    err.detail = f"{type(exc).__name__}: {exc}"
    return err


def _check_status(resp: aiohttp.ClientResponse) -> None:
    """Refuse a final status no HTTP answer has: one outside 100..599, or a 1xx (interim answers are
    skipped by aiohttp, all but 101; a 101 nobody asked for leaves the connection in no known state)."""
    if not 200 <= resp.status <= 599:
        resp.close()  # not back into the pool: what follows on that connection is unknown
        err = UpstreamError(INVALID_ANSWER)
        err.detail = f"final status {resp.status} {resp.reason or ''}, url={resp.url}"
        raise err


def _decoded_headers(raw: tuple[tuple[bytes, bytes], ...]) -> list[tuple[str, str]]:
    """The answer's header fields as text. A byte that is not UTF-8 (obs-text, RFC 9110 §5.5, such as an
    older server's Latin-1 ``filename=café``) makes its field read as Latin-1: aiohttp's own reading keeps it
    as a lone surrogate, which no Reply can carry. Plain str names: aiohttp's istr does not cross to the
    sandbox's worker processes."""
    return [(_text(name), _text(value)) for name, value in raw]


def _text(raw: bytes) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return raw.decode("latin-1")


def _origin_bound(origin: URL, names: Collection[str]) -> Any:
    lowered = {n.lower() for n in names}

    async def middleware(request: aiohttp.ClientRequest, handler: Any) -> aiohttp.ClientResponse:
        if request.url.origin() != origin:
            for name in [k for k in request.headers if k.lower() in lowered]:
                request.headers.popall(name, None)
        return await handler(request)

    return middleware


def _ssl_reason(exc: aiohttp.ClientSSLError) -> str:
    cause = getattr(exc, "certificate_error", None) or getattr(exc, "os_error", None) or exc
    return str(getattr(cause, "verify_message", None) or getattr(cause, "reason", None) or cause)


async def _read_limited(resp: aiohttp.ClientResponse, limit: int | None) -> bytes:
    """The whole body, refused past ``limit``: an answer larger than a message can carry would
    otherwise fail later, when the reply is produced, with no clear error to the caller."""
    if limit is None:
        return await resp.read()
    if resp.content_length is not None and resp.content_length > limit:
        raise _too_large(limit)
    chunks: list[bytes] = []
    size = 0
    async for chunk in resp.content.iter_chunked(256 * 1024):
        size += len(chunk)
        if size > limit:
            raise _too_large(limit)
        chunks.append(chunk)
    return b"".join(chunks)


def _too_large(limit: int) -> UpstreamError:
    return UpstreamError(f"the upstream's answer exceeds {limit} bytes (JUNCTION_MAX_BODY_BYTES)",
                         code="upstream_response_too_large")


def _payload(body: bytes) -> bytes | io.BytesIO | None:
    # aiohttp writes large raw bytes in one go and warns; a stream is chunked.
    if not body:
        return None
    return io.BytesIO(body) if len(body) > 512 * 1024 else body
