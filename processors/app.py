"""The faust application: one agent from requests to calls."""
from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from typing import Any

from aiohttp import web

from core.callerauth import CallerAuth
from core.config_feed import ConfigFollower
from core.db import make_pool, ping_pool
from core.http import SERVE_OPTIONS, error_middleware, health_routes, serve, serve_options
from core.kafka import faust_app, make_producer
from core.outbox import Outbox
from core.sealing import sealer_for
from core.settings import Settings
from core.snapshot import ConfigSnapshot
from core.ssrf import TargetPolicy  # the one SSRF guard: JWKS fetches too
from processors.acks import OrderedAcks
from processors.router import Router
from sandbox import pool_for

__all__ = ["build_app", "run"]

log = logging.getLogger(__name__)

# Calls routed at once by one instance; past it, reading waits (backpressure on the topic).
MAX_IN_FLIGHT = 256


def build_app(settings: Settings) -> Any:
    Path(settings.data_dir).mkdir(parents=True, exist_ok=True)
    app = faust_app(settings, "processors")
    raw: dict[str, Any] = dict(value_type=bytes, key_type=bytes, value_serializer="raw", key_serializer="raw")
    requests = app.topic(settings.topics.requests, **raw)
    # Output goes through the one client factory's producer (in rounds, core/outbox.py), not
    # faust's topic.send: it is lighter per message, and awaiting delivery before the event is
    # acked keeps at-least-once across a crash.
    clients: dict[str, Any] = {}  # created on the worker's loop, in side_services
    snapshot = ConfigSnapshot()
    follower = ConfigFollower(settings, snapshot, service="processors")
    pool = pool_for(settings)
    caller_auth = CallerAuth(settings, snapshot, sealer_for(settings) if settings.seal_key else None,
                             guard=TargetPolicy(allow_private=settings.allow_private_targets))
    router = Router(settings, snapshot, sandbox=pool, caller_auth=caller_auth,
                    config_caught_up=follower.caught_up)
    ready = asyncio.Event()

    @app.agent(requests)
    async def route(stream: Any) -> Any:
        # Nothing is processed before the snapshot and the sandbox are up.
        await ready.wait()
        outbox = clients["outbox"]
        # Each call is its own task, taken as soon as it is read: no batch waits for its slowest
        # script, and reading needs no timer (faust's take() wakes every millisecond to look). The
        # outbox sends the output of the calls finishing together in one round; a call's output is
        # acknowledged by the broker before the call is acked, and acks go in offset order
        # (processors/acks.py), so a crash redelivers rather than loses it.
        manual = stream.noack()
        acks = OrderedAcks(manual.ack)
        room = asyncio.Semaphore(MAX_IN_FLIGHT)
        failed: list[BaseException] = []
        tasks: set[asyncio.Task[None]] = set()

        async def one(event: Any, slot: Any) -> None:
            try:
                # The router turns whatever fails in a call into that call's error reply and dead letter.
                outcome = await router.process(event.value, inbound=(event.message.partition, event.message.offset),
                                               key=event.key)
                await outbox.deliver(outcome.messages)
                await acks.finish(slot)
            except asyncio.CancelledError:
                raise
            except BaseException as exc:  # its offset stays unacked: the agent restarts and it is redelivered
                log.exception("processors could not finish %s@%s; the agent restarts",
                              event.message.tp, event.message.offset)
                failed.append(exc)
            finally:
                room.release()

        try:
            async for event in manual.events():
                if failed:
                    raise failed[0]
                await room.acquire()
                task = asyncio.create_task(one(event, acks.begin(event)))  # begun in the order read
                tasks.add(task)
                task.add_done_callback(tasks.discard)
        finally:
            for task in list(tasks):
                task.cancel()
            if tasks:
                await asyncio.gather(*tasks, return_exceptions=True)

    @app.task
    async def side_services() -> None:
        # Cancelled when the worker stops; the finally clauses close everything.
        db = await make_pool(settings, min_size=1, max_size=4)
        producer = clients["producer"] = make_producer(settings)
        await producer.start()
        outbox = clients["outbox"] = Outbox(producer, stage="processors")
        outbox.start()
        await pool.start()
        await follower.start()
        try:
            await follower.wait_synced()
            ready.set()
            health = web.Application(middlewares=[error_middleware])
            health[SERVE_OPTIONS] = serve_options(settings, metrics_port=settings.processors_metrics_port)
            health.add_routes(health_routes({
                "config": follower.ready, "kafka": _kafka_ready(app, producer), "database": lambda: ping_pool(db),
                "sandbox": pool.check, "outbox": outbox.check,
            }))
            await serve(health, settings.ingress_host, settings.processors_port, asyncio.Event())
        finally:
            await follower.stop()
            await router.close()
            await pool.stop()
            await outbox.stop()
            await producer.stop()
            await db.close()

    app.junction_snapshot = snapshot  # for introspection in tests and the CLI
    return app


def _kafka_ready(app: Any, producer: Any) -> Any:
    async def check() -> None:
        if not app.consumer.assignment():
            raise RuntimeError("no partitions assigned yet")
        # The assignment is remembered while the broker is away: ask it, as ingress and egress do.
        await producer.client.fetch_all_metadata()

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
