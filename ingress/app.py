"""The ingress application: one cleanup-context generator per resource."""
from __future__ import annotations

import asyncio
import dataclasses
import uuid
from collections.abc import AsyncIterator

from aiohttp import web

from core.callerauth import CallerAuth
from core.client_address import trusted_networks
from core.config_feed import ConfigFollower
from core.errors import NotFound
from core.http import SERVE_OPTIONS, error_middleware, health_routes, serve_options
from core.kafka import make_producer
from core.redis import make_redis
from core.sealing import sealer_for
from core.settings import Settings
from core.snapshot import ConfigSnapshot
from core.ssrf import TargetPolicy  # the one SSRF guard: JWKS fetches too
from ingress.async_results import RESULTS_PATH, AsyncResults
from ingress.auth import EdgeAuth
from ingress.cors import cors_middleware
from ingress.gateway import Gateway
from ingress.idempotency import IdempotencyKeys
from ingress.lease import PartitionLease
from ingress.oauth_token import TokenEndpoint
from ingress.refusal_log import RefusalLog
from ingress.replies import ReplyReader
from ingress.response_cache import ResponseCache

__all__ = ["create_app"]

SNAPSHOT = web.AppKey("snapshot", ConfigSnapshot)
READER = web.AppKey("reply_reader", ReplyReader)


def create_app(settings: Settings, *, instance_id: str | None = None) -> web.Application:
    trusted_networks(settings.ingress_trusted_proxies, "JUNCTION_INGRESS_TRUSTED_PROXIES")  # a bad entry fails here
    app = web.Application(middlewares=[cors_middleware, error_middleware], client_max_size=settings.max_body_bytes)
    # Bodies as sent: the gateway decodes them itself, under the body limit (ingress/compression.py).
    app[SERVE_OPTIONS] = dataclasses.replace(serve_options(settings, metrics_port=settings.ingress_metrics_port),
                                             raw_bodies=True)
    owner = instance_id or settings.instance_id or f"ingress-{uuid.uuid4().hex[:12]}"
    snapshot = ConfigSnapshot()
    app[SNAPSHOT] = snapshot
    state: dict[str, object] = {}

    async def redis_ctx(app: web.Application) -> AsyncIterator[None]:
        state["redis"] = redis = make_redis(settings)
        yield
        await redis.aclose()

    async def config_ctx(app: web.Application) -> AsyncIterator[None]:
        follower = ConfigFollower(settings, snapshot, service="ingress", instance=owner)
        state["follower"] = follower
        await follower.start()
        await follower.wait_synced()
        yield
        await follower.stop()

    async def producer_ctx(app: web.Application) -> AsyncIterator[None]:
        state["producer"] = producer = make_producer(settings)
        await producer.start()
        yield
        await producer.stop()

    async def replies_ctx(app: web.Application) -> AsyncIterator[None]:
        results = AsyncResults(settings, state["redis"])  # type: ignore[arg-type]
        reader = ReplyReader(settings, PartitionLease(settings, state["redis"], owner), keep=results.keep)  # type: ignore[arg-type]
        await reader.start()
        app[READER] = reader
        caller_auth = CallerAuth(settings, snapshot, sealer_for(settings) if settings.seal_key else None,
                                 guard=TargetPolicy(allow_private=settings.allow_private_targets))
        edge = EdgeAuth(settings, state["redis"], caller_auth)  # type: ignore[arg-type]
        refusals = RefusalLog(settings, state["producer"])  # type: ignore[arg-type]
        gateway = Gateway(settings, snapshot, state["producer"], reader, edge, results,  # type: ignore[arg-type]
                          IdempotencyKeys(settings, state["redis"]),  # type: ignore[arg-type]
                          cache=ResponseCache(settings, state["redis"]), refusals=refusals)  # type: ignore[arg-type]
        state["gateway"] = gateway
        state["token"] = TokenEndpoint(settings, snapshot, edge)
        yield
        await refusals.close()  # before the producer's own clean-up, which comes after this one
        await reader.stop()
        await caller_auth.close()

    app.cleanup_ctx.extend([redis_ctx, config_ctx, producer_ctx, replies_ctx])

    async def handle(request: web.Request) -> web.StreamResponse:
        return await state["gateway"].handle(request)  # type: ignore[attr-defined]

    async def result(request: web.Request) -> web.StreamResponse:
        return await state["gateway"].result(request)  # type: ignore[attr-defined]

    async def result_preflight(request: web.Request) -> web.StreamResponse:
        return await state["gateway"].result_preflight(request)  # type: ignore[attr-defined]

    async def token(request: web.Request) -> web.StreamResponse:
        return await state["token"].handle(request)  # type: ignore[attr-defined]

    async def redis_ready() -> None:
        await state["redis"].ping()  # type: ignore[attr-defined]

    async def broker_ready() -> None:
        producer = state["producer"]
        await producer.client.fetch_all_metadata()  # type: ignore[attr-defined]

    async def replies_ready() -> None:
        await app[READER].check()

    async def config_ready() -> None:
        await state["follower"].ready()  # type: ignore[attr-defined]

    async def no_metrics(request: web.Request) -> web.StreamResponse:
        # Every organisation's traffic is in /metrics: it is served on the metrics listener, never here.
        raise NotFound(f"no route for {request.path}")

    app.add_routes(health_routes({"redis": redis_ready, "kafka": broker_ready, "replies": replies_ready, "config": config_ready}))
    app.router.add_route("*", "/metrics", no_metrics)
    app.router.add_route("*", "/metrics/{tail:.*}", no_metrics)
    # Before the catch-all: an API of the organisation at /oauth/token is shadowed by the token endpoint.
    app.router.add_route("POST", "/{org}/oauth/token", token)
    # No organisation's slug starts with "_": this path is no API's.
    app.router.add_route("GET", RESULTS_PATH + "/{correlation_id}", result)
    app.router.add_route("OPTIONS", RESULTS_PATH + "/{correlation_id}", result_preflight)
    # [\s\S]: a path with a decoded line break reaches the handler, which refuses it as such (not a 404).
    app.router.add_route("*", r"/{org}/{path:[\s\S]*}", handle)
    app.router.add_route("*", "/{org}", handle)
    return app


async def run(settings: Settings, stop: asyncio.Event) -> None:
    from core.http import serve

    await serve(create_app(settings), settings.ingress_host, settings.ingress_port, stop)
