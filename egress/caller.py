"""The outbound REST call, on one pooled aiohttp session."""
from __future__ import annotations

import asyncio
import io
from dataclasses import dataclass

import aiohttp

from core.errors import DeadlineExceeded, UpstreamError, UpstreamUnreachable
from core.headers import end_to_end

__all__ = ["RestCaller", "UpstreamResponse"]


@dataclass(frozen=True)
class UpstreamResponse:
    status: int
    headers: list[tuple[str, str]]
    body: bytes


class RestCaller:
    def __init__(self, *, connect_timeout_s: float, max_connections: int = 1000) -> None:
        self._connect_timeout_s = connect_timeout_s
        self._max_connections = max_connections
        self._session: aiohttp.ClientSession | None = None

    async def start(self) -> None:
        connector = aiohttp.TCPConnector(limit=self._max_connections, limit_per_host=0, ttl_dns_cache=60, enable_cleanup_closed=True)
        # No cookie jar: cookies of one tenant's upstream must never reach another call.
        self._session = aiohttp.ClientSession(connector=connector, cookie_jar=aiohttp.DummyCookieJar(), auto_decompress=False)

    async def stop(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def get_bytes(self, url: str, timeout_s: float) -> bytes:
        """A GET whose non-2xx answer is an error (used to load WSDLs)."""
        response = await self.call("GET", url, [], b"", timeout_s)
        if not 200 <= response.status < 300:
            raise UpstreamError(f"GET {url} answered {response.status}", code="wsdl_unavailable")
        return response.body

    async def post(self, url: str, headers: list[tuple[str, str]], body: bytes, timeout_s: float) -> UpstreamResponse:
        return await self.call("POST", url, headers, body, timeout_s)

    async def call(self, method: str, url: str, headers: list[tuple[str, str]], body: bytes, timeout_s: float) -> UpstreamResponse:
        assert self._session is not None, "RestCaller.start() was not awaited"
        timeout = aiohttp.ClientTimeout(total=timeout_s, connect=min(self._connect_timeout_s, timeout_s))
        try:
            async with self._session.request(
                method, url, headers=end_to_end(headers), data=_payload(body), timeout=timeout,
                allow_redirects=False, skip_auto_headers=("User-Agent", "Content-Type"),
            ) as resp:
                payload = await resp.read()
                return UpstreamResponse(resp.status, list(resp.headers.items()), payload)
        except asyncio.TimeoutError:
            raise DeadlineExceeded(f"upstream did not answer within {timeout_s * 1000:.0f} ms", code="upstream_timeout") from None
        except (aiohttp.ClientConnectorError, aiohttp.ServerDisconnectedError, ConnectionError) as exc:
            raise UpstreamUnreachable(f"upstream unreachable: {exc}") from None
        except aiohttp.InvalidURL as exc:
            raise UpstreamError(f"invalid upstream URL: {exc}", code="invalid_upstream_url") from None
        except aiohttp.ClientError as exc:
            raise UpstreamError(f"upstream error: {type(exc).__name__}: {exc}") from None


def _payload(body: bytes) -> bytes | io.BytesIO | None:
    # aiohttp writes large raw bytes in one go and warns; a stream is chunked.
    if not body:
        return None
    return io.BytesIO(body) if len(body) > 512 * 1024 else body
