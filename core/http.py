"""What every HTTP-serving process shares: the error middleware, health
endpoints and the runner.

Handlers raise :mod:`core.errors`; one middleware renders them once as
``{"code", "message", "fields"?}`` JSON. ``CancelledError`` is never swallowed.
"""
from __future__ import annotations

import asyncio
import json
import logging
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from core.errors import JunctionError, MethodNotAllowed, NotFound

__all__ = ["REQUEST_ID", "REQUEST_ID_KEY", "error_middleware", "error_response", "health_routes", "json_response", "ReadinessCheck", "serve"]

log = logging.getLogger(__name__)

REQUEST_ID = "X-Request-Id"
REQUEST_ID_KEY = web.RequestKey("request_id", str)
ReadinessCheck = Callable[[], Awaitable[None]]


def json_response(data: Any, *, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    return web.Response(
        body=json.dumps(data, separators=(",", ":"), default=str).encode(),
        status=status,
        content_type="application/json",
        headers=headers,
    )


def error_response(err: JunctionError, *, request_id: str | None = None) -> web.Response:
    headers = dict(err.headers)
    if request_id:
        headers[REQUEST_ID] = request_id
    body = err.to_dict()
    if request_id:
        body.setdefault("request_id", request_id)
    return json_response(body, status=err.status, headers=headers)


@web.middleware
async def error_middleware(request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]) -> web.StreamResponse:
    request_id = request.headers.get(REQUEST_ID) or uuid.uuid4().hex
    request[REQUEST_ID_KEY] = request_id
    try:
        response = await handler(request)
    except JunctionError as err:
        return error_response(err, request_id=request_id)
    except web.HTTPNotFound:
        return error_response(NotFound(f"no route for {request.path}"), request_id=request_id)
    except web.HTTPMethodNotAllowed as exc:
        return error_response(
            MethodNotAllowed(f"{request.method} is not allowed here", headers={"Allow": ",".join(sorted(exc.allowed_methods))}),
            request_id=request_id,
        )
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        err = JunctionError(exc.reason, status=exc.status, code=exc.reason.lower().replace(" ", "_"))
        return error_response(err, request_id=request_id)
    except asyncio.CancelledError:
        raise
    except Exception:
        log.exception("unhandled error on %s %s", request.method, request.path)
        return error_response(JunctionError("internal error"), request_id=request_id)
    if not response.prepared:
        response.headers.setdefault(REQUEST_ID, request_id)
    return response


def health_routes(checks: dict[str, ReadinessCheck]) -> list[web.RouteDef]:
    """``/healthz`` answers while the process lives; ``/readyz`` runs every
    check; ``/metrics`` is the Prometheus text format."""

    async def healthz(request: web.Request) -> web.Response:
        return json_response({"status": "ok"})

    async def readyz(request: web.Request) -> web.Response:
        results: dict[str, str] = {}
        ok = True
        for name, check in checks.items():
            try:
                await asyncio.wait_for(check(), timeout=2.0)
                results[name] = "ok"
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # a failing dependency is the answer, not an error
                ok = False
                results[name] = f"{type(exc).__name__}: {exc}"[:200]
        return json_response({"status": "ok" if ok else "unavailable", "checks": results}, status=200 if ok else 503)

    async def metrics(request: web.Request) -> web.Response:
        from core.metrics import CONTENT_TYPE_LATEST, render

        return web.Response(body=render(), headers={"Content-Type": CONTENT_TYPE_LATEST})

    return [web.get("/healthz", healthz), web.get("/readyz", readyz), web.get("/metrics", metrics)]


async def serve(app: web.Application, host: str, port: int, stop: asyncio.Event) -> None:
    """Run ``app`` until ``stop`` is set, then shut down gracefully."""
    runner = web.AppRunner(app, access_log=None, handle_signals=False)
    await runner.setup()
    site = web.TCPSite(runner, host, port, reuse_address=True)
    await site.start()
    log.info("listening on http://%s:%s", host, port)
    try:
        await stop.wait()
    finally:
        await runner.cleanup()
