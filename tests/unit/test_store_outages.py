"""A store that stops answering costs a request a 503 it can retry, within JUNCTION_STORE_TIMEOUT_MS, and the
readiness probe answers within its bound whatever its checks do.

The Redis here is a real listener that accepts connections and never answers, as a frozen host (SIGSTOP,
a full network queue) does; the client is the services' own (``core.redis.make_redis``)."""
from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import aiohttp
from aiohttp import web

from core.http import READY_TIMEOUT_S, error_middleware, health_routes
from core.redis import make_redis
from core.settings import load_settings
from tests.support import serving


@contextlib.asynccontextmanager
async def silent_listener() -> AsyncIterator[int]:
    """A port that takes connections and reads what is sent, and never writes a byte back."""
    held: list[asyncio.StreamWriter] = []

    async def hold(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        held.append(writer)
        with contextlib.suppress(ConnectionError):
            while await reader.read(4096):
                pass

    server = await asyncio.start_server(hold, "127.0.0.1", 0)
    try:
        yield server.sockets[0].getsockname()[1]
    finally:
        for w in held:
            w.close()
        server.close()
        await server.wait_closed()


async def test_a_redis_that_stopped_answering_is_a_503_redis_unavailable_not_a_500() -> None:
    async with silent_listener() as port:
        settings = load_settings(redis_url=f"redis://127.0.0.1:{port}/0", store_timeout_ms=300)
        redis = make_redis(settings)

        async def uses_redis(request: web.Request) -> web.Response:
            await redis.get(settings.redis_key("x"))
            return web.json_response({"ok": True})

        app = web.Application(middlewares=[error_middleware])
        app.router.add_get("/r", uses_redis)
        try:
            async with serving(app) as url, aiohttp.ClientSession() as s, s.get(url + "/r") as r:
                body = await r.json()
                assert r.status == 503, body
                assert body["code"] == "redis_unavailable" and r.headers["Retry-After"] == "1"
                assert "Traceback" not in str(body)
        finally:
            await redis.aclose()


async def test_readiness_answers_within_its_bound_while_a_check_hangs_and_is_slow_to_let_go() -> None:
    """asyncpg, cancelled while it waits on a frozen PostgreSQL, took as long to let go as it had waited: the
    first /readyz never answered. The probe names the check that did not answer and reports the others."""
    letting_go = asyncio.Event()
    released = asyncio.Event()

    async def frozen() -> None:
        try:
            await asyncio.Event().wait()
        finally:
            letting_go.set()
            await released.wait()  # cancellation is slow too

    async def fine() -> None:
        return None

    async def broken() -> None:
        raise ConnectionRefusedError("refused")

    app = web.Application(middlewares=[error_middleware])
    app.add_routes(health_routes({"database": frozen, "broker": fine, "redis": broken}))
    try:
        async with serving(app) as url, aiohttp.ClientSession() as s:
            async with s.get(url + "/readyz", timeout=aiohttp.ClientTimeout(total=READY_TIMEOUT_S * 10)) as r:
                status, body = r.status, await r.json()
            assert status == 503 and body["status"] == "unavailable"
            assert body["checks"]["database"].startswith("TimeoutError")
            assert body["checks"]["broker"] == "ok" and body["checks"]["redis"] == "ConnectionRefusedError: refused"
            assert letting_go.is_set() and not released.is_set()  # answered while the check was still letting go
    finally:
        released.set()
        await asyncio.sleep(0)
