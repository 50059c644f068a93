"""The faust application: one agent from requests to calls."""
from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from typing import Any

from aiohttp import web
from aiokafka.errors import KafkaConnectionError, KafkaError, KafkaTimeoutError

from core.callerauth import CallerAuth
from core.config_feed import ConfigFollower
from core.http import SERVE_OPTIONS, error_middleware, health_routes, serve, serve_options
from core.kafka import Outgoing, faust_app, make_producer
from core.metrics import PRODUCE_RETRIES
from core.sealing import sealer_for
from core.settings import Settings
from core.db import make_pool, ping_pool
from core.snapshot import ConfigSnapshot
from core.ssrf import TargetPolicy  # the one SSRF guard: JWKS fetches too
from processors import observe
from processors.router import Router
from sandbox import pool_for

__all__ = ["build_app", "run"]

log = logging.getLogger(__name__)

AGENT_CONCURRENCY = 4
BATCH_MAX = 256
BATCH_WITHIN_S = 0.001


def build_app(settings: Settings) -> Any:
    Path(settings.data_dir).mkdir(parents=True, exist_ok=True)
    app = faust_app(settings, "processors")
    raw: dict[str, Any] = dict(value_type=bytes, key_type=bytes, value_serializer="raw", key_serializer="raw")
    requests = app.topic(settings.topics.requests, **raw)
    # Output goes through the one client factory's producer, not faust's topic.send:
    # it is lighter per message, and awaiting delivery before the event is acked
    # keeps at-least-once across a crash.
    clients: dict[str, Any] = {}  # created on the worker's loop, in side_services
    snapshot = ConfigSnapshot()
    follower = ConfigFollower(settings, snapshot)
    pool = pool_for(settings)
    caller_auth = CallerAuth(settings, snapshot, sealer_for(settings) if settings.seal_key else None,
                             guard=TargetPolicy(allow_private=settings.allow_private_targets))
    router = Router(settings, snapshot, sandbox=pool, caller_auth=caller_auth,
                    config_caught_up=follower.caught_up)
    ready = asyncio.Event()
    observe.install(app, settings, snapshot, ready)  # metrics and request logs, off the request path

    @app.agent(requests, concurrency=AGENT_CONCURRENCY)
    async def route(stream: Any) -> Any:
        # Nothing is processed before the snapshot and the sandbox are up.
        await ready.wait()
        producer = clients["producer"]
        # Whatever has arrived is handled together: calls are routed (and their
        # scripts run) concurrently, and the batch's output is produced in one go
        # and awaited once before faust acks the batch, so a crash redelivers
        # rather than loses it.
        async for events in stream.take_events(BATCH_MAX, within=BATCH_WITHIN_S):
            # Each call is isolated: the router turns whatever fails in one into that call's
            # error reply and dead letter, and the rest of the batch goes on.
            outcomes = await asyncio.gather(*(
                router.process(e.value, inbound=(e.message.partition, e.message.offset)) for e in events))
            await _produce_acknowledged(producer, [m for outcome in outcomes for m in outcome.messages])

    @app.task
    async def side_services() -> None:
        # Cancelled when the worker stops; the finally clauses close everything.
        db = await make_pool(settings, min_size=1, max_size=4)
        producer = clients["producer"] = make_producer(settings)
        await producer.start()
        await pool.start()
        await follower.start()
        try:
            await follower.wait_synced()
            ready.set()
            health = web.Application(middlewares=[error_middleware])
            health[SERVE_OPTIONS] = serve_options(settings, metrics_port=settings.processors_metrics_port)
            health.add_routes(health_routes({
                "config": follower.ready, "kafka": _consumer_ready(app), "database": lambda: ping_pool(db),
                "sandbox": pool.check,
            }))
            await serve(health, settings.ingress_host, settings.processors_port, asyncio.Event())
        finally:
            await follower.stop()
            await router.close()
            await pool.stop()
            await producer.stop()
            await db.close()

    app.junction_snapshot = snapshot  # for introspection in tests and the CLI
    return app


async def _produce_acknowledged(producer: Any, messages: list[Outgoing]) -> None:
    """Send a batch's output and wait for the broker's acknowledgement of every record.

    faust acks the batch only after this returns, so a broker that is away means waiting and
    retrying (the records were not acknowledged; sending again may duplicate, which the stages
    downstream tolerate), never dropping: a crash meanwhile redelivers the batch.
    """
    pending = messages
    backoff = 0.05
    while pending:
        sends = [await producer.send(m.topic, key=m.key, value=m.value, partition=m.partition) for m in pending]
        results = await asyncio.gather(*sends, return_exceptions=True)
        failed = [(m, r) for m, r in zip(pending, results) if isinstance(r, BaseException)]
        for _, exc in failed:
            if not isinstance(exc, KafkaError) or not (exc.retriable or isinstance(exc, (KafkaTimeoutError, KafkaConnectionError))):
                raise exc
        if failed:
            PRODUCE_RETRIES.labels("processors").inc(len(failed))
            log.warning("%d records not acknowledged (%s); retrying in %.2fs", len(failed), failed[0][1], backoff)
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, 2.0)
        pending = [m for m, _ in failed]


def _consumer_ready(app: Any) -> Any:
    async def check() -> None:
        if not app.consumer.assignment():
            raise RuntimeError("no partitions assigned yet")

    return check


def run(settings: Settings) -> None:
    """Run the processors until SIGINT or SIGTERM (faust's worker owns the loop)."""
    import faust

    app = build_app(settings)
    # faust narrates every start-up step at INFO; keep its own logs at WARNING unless debugging.
    level = "debug" if settings.log_level.upper() == "DEBUG" else "warning"
    worker = faust.Worker(app, loglevel=level, quiet=True, override_logging=False)
    logging.getLogger("faust").setLevel(level.upper())
    logging.getLogger("mode").setLevel(level.upper())
    worker.execute_from_commandline()
