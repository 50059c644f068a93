"""The demo upstream: answers JSON describing exactly what it received."""
from __future__ import annotations

import asyncio
import base64

from aiohttp import web

from core.http import json_response

__all__ = ["echo_app", "describe", "run_upstream"]


async def describe(request: web.Request) -> dict[str, object]:
    body = await request.read()
    try:
        text, encoded = body.decode("utf-8"), False
    except UnicodeDecodeError:
        text, encoded = base64.b64encode(body).decode(), True
    out: dict[str, object] = {
        "method": request.method,
        "path": request.path,
        "query": {k: v for k, v in request.query.items()},
        "headers": {k: v for k, v in request.headers.items()},
        "body": text,
    }
    if encoded:
        out["body_base64"] = True
    return out


def echo_app(extra_routes: list[web.RouteDef] | None = None) -> web.Application:
    """The echo upstream; ``extra_routes`` are matched before the catch-all."""

    async def echo(request: web.Request) -> web.Response:
        return json_response(await describe(request))

    app = web.Application(client_max_size=64 * 1024 * 1024)
    app.add_routes(extra_routes or [])
    app.router.add_route("*", "/{tail:.*}", echo)
    return app


async def run_upstream(host: str, port: int, stop: asyncio.Event) -> None:
    """The demo upstream of ``make run``: the echo at any path, and the SOAP
    order service at ``/orders`` (WSDL at ``/orders?wsdl``)."""
    from core.http import health_routes, serve
    from junction.demo_soap import soap_routes

    await serve(echo_app([*health_routes({}), *soap_routes()]), host, port, stop)
