"""The control application: management API on /api/v1 plus health routes.

Resources live in ``cleanup_ctx`` generators, one per resource: the asyncpg
pool (migrations run when it opens), Redis, the outbox relay with its Kafka
producer, the config-applied checker (control/config_applied.py), the dead-letter
indexer (control/dead_letters.py), the replay jobs (control/replay_jobs.py), the
observe stage that turns the topics into metrics and request logs (control/observe/),
the alert evaluator (control/alerting/), and the sandbox pool for the connector
try-out endpoint.

With the relay, control refuses to start when the config topic belongs to another
installation (control/installation.py): two installations on one topic prefix would
overwrite each other's configuration. A broker that cannot be reached at start leaves
the check to the relay, which makes it before it publishes anything.
"""
from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator
from pathlib import Path

from aiohttp import web
from aiokafka.errors import KafkaError

from control.alerting import AlertEvaluator
from control.auth import TokenIssuer, dummy_hash, resolve_jwt_secret
from control.bodies import request_schemas
from control.catch_up import DEAD_LETTER_INDEXER, OBSERVE_STAGE, CatchUp
from control.config_applied import ConfigApplied
from control.console import console_routes
from control.dead_letters import GROUP as DEAD_LETTER_GROUP
from control.dead_letters import DeadLetterIndexer
from control.handlers import routes
from control.handlers.instances import CONFIG_APPLIED
from control.handlers.metrics import close_streams
from control.installation import check_topic_prefix, installation_id
from control.middleware import authenticate, cors_preflight, rate_limit, response_headers
from control.migrate import apply_migrations
from control.observe import ObserveService
from control.observe.stage import GROUP as OBSERVE_GROUP
from control.observe.stage import observed_topics
from control.outbox import OutboxRelay
from control.replay_jobs import ReplayJobs
from control.state import STATE, ControlState
from core.db import make_pool, ping_pool
from core.http import SERVE_OPTIONS, error_middleware, health_routes, serve_options
from core.installation import ForeignInstallation
from core.redis import make_redis
from core.settings import Settings

__all__ = ["create_app"]

log = logging.getLogger(__name__)


def create_app(settings: Settings, *, relay: bool = True, sandbox: bool = True,
               dead_letter_index: bool | None = None, observe: bool | None = None) -> web.Application:
    """Build the app; ``relay=False`` / ``sandbox=False`` leave those out (tests, tools), and
    ``dead_letter_index`` the dead-letter indexer and ``observe`` the metrics stage (default: with
    the relay, as they all need Kafka)."""
    st = ControlState(settings=settings, schemas=request_schemas(settings))
    # aiohttp's own limit is a backstop; read_json answers the 413 with our error body.
    app = web.Application(middlewares=[error_middleware, cors_preflight(), rate_limit(), authenticate()],
                          client_max_size=settings.control_max_body_bytes + 1)
    app.on_response_prepare.append(response_headers(settings))  # security and CORS headers, errors included
    app[STATE] = st
    app.on_shutdown.append(close_streams)  # live metric streams end now, not at the shutdown timeout
    # How core.http.serve runs it: the HTTP limits, and /metrics on its own listener.
    app[SERVE_OPTIONS] = serve_options(settings, metrics_port=settings.control_metrics_port)

    async def database(app: web.Application) -> AsyncIterator[None]:
        st.pool = await make_pool(settings)
        try:
            await apply_migrations(st.pool)
            st.tokens = TokenIssuer(await resolve_jwt_secret(settings, st.pool), settings.jwt_ttl_s)
            await dummy_hash(settings.bcrypt_rounds)  # made now, not in the first unknown e-mail's login
            yield
        finally:
            await st.pool.close()

    async def redis(app: web.Application) -> AsyncIterator[None]:
        st.redis = make_redis(settings)
        try:
            yield
        finally:
            await st.redis.aclose()

    async def outbox(app: web.Application) -> AsyncIterator[None]:
        own = await installation_id(st.db)
        try:
            await check_topic_prefix(settings, own)
        except ForeignInstallation as exc:  # control does not start
            log.error("%s", exc)
            raise
        except (TimeoutError, KafkaError, OSError) as exc:
            log.warning("could not check the config topic %s at start (%s: %s); the outbox relay checks it before "
                        "it publishes", settings.topics.config, type(exc).__name__, exc)
        st.relay = OutboxRelay(settings, st.db)
        await st.relay.start()
        try:
            yield
        finally:
            await st.relay.stop()

    async def config_applied(app: web.Application) -> AsyncIterator[None]:
        checker = ConfigApplied(settings, st.db, st.redis, lambda: st.relay is not None and st.relay.resynced)
        await checker.start()
        st.extras[CONFIG_APPLIED] = checker
        try:
            yield
        finally:
            st.extras.pop(CONFIG_APPLIED, None)
            await checker.stop()

    async def catch_ups(app: web.Application) -> AsyncIterator[None]:
        # Whichever control instance runs the readers: they are asked through their groups' offsets.
        readers = {
            DEAD_LETTER_INDEXER: CatchUp(settings, DEAD_LETTER_GROUP, lambda t: t == settings.topics.dlq,
                                         DEAD_LETTER_INDEXER),
            OBSERVE_STAGE: CatchUp(settings, OBSERVE_GROUP, observed_topics(settings).fullmatch, OBSERVE_STAGE),
        }
        async with contextlib.AsyncExitStack() as stack:
            for name, reader in readers.items():
                await reader.start()
                stack.push_async_callback(reader.stop)
                st.extras[name] = reader
                stack.callback(st.extras.pop, name, None)
            yield

    async def dead_letters(app: web.Application) -> AsyncIterator[None]:
        indexer = DeadLetterIndexer(settings, st.db)
        indexer.start()
        st.extras["dead_letter_indexer"] = indexer
        try:
            yield
        finally:
            await indexer.stop()

    async def replays(app: web.Application) -> AsyncIterator[None]:
        jobs = ReplayJobs(settings, st.db, st.redis)
        jobs.start()
        st.extras["replay_jobs"] = jobs
        try:
            yield
        finally:
            await jobs.stop()

    async def observe_stage(app: web.Application) -> AsyncIterator[None]:
        service = ObserveService(settings)
        st.extras["observe"] = service
        try:
            await service.start()
            yield
        finally:
            await service.stop()

    async def alert_evaluator(app: web.Application) -> AsyncIterator[None]:
        evaluator = AlertEvaluator(settings, st.db, st.redis)
        await evaluator.start()
        st.extras["alert_evaluator"] = evaluator
        try:
            yield
        finally:
            await evaluator.stop()

    async def sandbox_pool(app: web.Application) -> AsyncIterator[None]:
        try:
            from sandbox import pool_for
        except ImportError:
            log.warning("sandbox package not available; connector try-out is disabled")
            yield
            return
        pool = pool_for(settings)
        await pool.start()
        st.sandbox = pool
        try:
            yield
        finally:
            st.sandbox = None
            with contextlib.suppress(Exception):
                await pool.stop()

    app.cleanup_ctx.append(database)
    app.cleanup_ctx.append(redis)
    if relay:
        app.cleanup_ctx.append(outbox)
        app.cleanup_ctx.append(config_applied)
        app.cleanup_ctx.append(catch_ups)
    if relay if dead_letter_index is None else dead_letter_index:
        app.cleanup_ctx.append(dead_letters)
        app.cleanup_ctx.append(replays)  # its outcomes include the new dead letters the indexer writes
    with_observe = relay if observe is None else observe
    if with_observe:
        app.cleanup_ctx.append(observe_stage)
    if relay and settings.alert_interval_s > 0:  # alert events go to Kafka, as config events do
        app.cleanup_ctx.append(alert_evaluator)
    if sandbox:
        app.cleanup_ctx.append(sandbox_pool)

    async def check_db() -> None:
        await ping_pool(st.db)

    async def check_redis() -> None:
        await st.redis.ping()

    async def check_kafka() -> None:
        if st.relay is None:
            raise RuntimeError("outbox relay not running")
        await st.relay.ready()

    checks = {"db": check_db, "redis": check_redis}
    if relay:
        checks["kafka"] = check_kafka
    if with_observe:
        checks["observe"] = lambda: st.extras["observe"].check()
    app.add_routes(health_routes(checks))
    app.add_routes(routes())
    # The web console at / (docs/console.md), last: the API's routes win.
    app.add_routes(console_routes(Path(settings.console_dir) if settings.console_dir else None))
    return app
