"""Run the egress worker with its health endpoints."""
from __future__ import annotations

import asyncio

from aiohttp import web

from core.http import SERVE_OPTIONS, error_middleware, health_routes, serve, serve_options
from core.settings import Settings
from egress.assemble import build_parts
from egress.worker import EgressWorker

__all__ = ["run"]


async def run(settings: Settings, stop: asyncio.Event) -> None:
    worker = EgressWorker(settings, build_parts(settings))
    await worker.start()
    app = web.Application(middlewares=[error_middleware])
    app[SERVE_OPTIONS] = serve_options(settings, metrics_port=settings.egress_metrics_port)
    app.add_routes(health_routes({"kafka": worker.ping_broker, "redis": worker.ping_redis, "consumer": worker.check,
                                  "config": worker.config_ready, "sandbox": worker.sandbox_ready}))
    try:
        await serve(app, settings.ingress_host, settings.egress_port, stop)
    finally:
        await worker.stop()
