"""Session fixtures: real Kafka-protocol broker, PostgreSQL and Redis.

Each run isolates itself by name: its own topic prefix, group prefix, Redis key
prefix and PostgreSQL schema, so leftovers from earlier runs never matter.

Broker selection:
- ``KAFKA_BOOTSTRAP_SERVERS`` set: use that Kafka (broker profile ``kafka``).
- ``JUNCTION_TEST_BROKER=kafka`` (``make test-kafka``): Apache Kafka of the run's own, fetched from
  Maven Central by junction.kafka_local, on free ports with a fresh log directory.
- ``JUNCTION_TESTCONTAINERS=1`` and Docker present: Apache Kafka, PostgreSQL
  and Redis from testcontainers.
- otherwise: the embedded broker (Tansu) on a free loopback port.

PostgreSQL and Redis: ``JUNCTION_DATABASE_URL`` / ``JUNCTION_REDIS_URL`` when set,
otherwise embedded servers of this run's own, on free ports, with throwaway data.
"""
from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import tempfile
import uuid
from pathlib import Path
from collections.abc import AsyncIterator, Iterator

import asyncpg
import pytest
import pytest_asyncio

from core.kafka import ensure_topics, wait_for_broker
from core.sealing import new_seal_key
from core.settings import Settings, load_settings
from junction.broker import EmbeddedBroker, free_port
from junction.embedded_stores import EmbeddedStores
from junction.kafka_local import LocalKafka, fetch

from tests.control_support import control, control_settings  # noqa: E402,F401  (fixtures for every test folder)

RUN_ID = uuid.uuid4().hex[:10]  # per process: each of `make test`'s workers is a run of its own

# The longest modules first (measured on two workers): `make test` runs two workers (pytest-xdist, whole
# modules each), and a long module scheduled last would run alone at the end while the other worker idles.
# The rest keeps the collection order, where tests/unit/ comes last.
RUN_FIRST = ("tests/control/test_control_openapi.py", "tests/e2e/", "tests/console/",
             "tests/unit/test_packaging.py", "tests/control/test_declarative.py", "tests/control/test_control_sdk_cli.py",
             "tests/pipeline/test_installation_identity.py", "tests/control/test_consumers.py",
             "tests/control/test_control_properties.py", "tests/control/test_control_usability.py",
             "tests/unit/test_embedded_stores.py", "tests/unit/test_routing_scale.py")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    def rank(item: pytest.Item) -> int:
        return next((n for n, prefix in enumerate(RUN_FIRST) if item.nodeid.startswith(prefix)), len(RUN_FIRST))

    items.sort(key=rank)  # stable: every module stays whole, in its order


def _use_testcontainers() -> bool:
    return os.environ.get("JUNCTION_TESTCONTAINERS") == "1" and shutil.which("docker") is not None


def _local_kafka(stack: contextlib.ExitStack) -> LocalKafka:
    """Apache Kafka of this run's own (``make test-kafka``): fetched with Maven, a fresh log directory,
    so tests may restart or kill it. Small segments let compaction run within a test."""
    home = Path(tempfile.mkdtemp(prefix=f"junction-kafka-{RUN_ID}-"))
    stack.callback(shutil.rmtree, home, True)
    kafka = LocalKafka(home, free_port(), free_port(), libs=fetch(), overrides={
        "log.cleaner.backoff.ms": 200, "log.cleaner.min.compaction.lag.ms": 0, "log.segment.delete.delay.ms": 500,
        "group.initial.rebalance.delay.ms": 0,
    })
    kafka.start()
    stack.callback(kafka.stop)
    asyncio.run(kafka.wait_ready())
    return kafka


@pytest.fixture(scope="session")
def run_id() -> str:
    return RUN_ID


@pytest.fixture(scope="session")
def external_services() -> Iterator[dict[str, str]]:
    """Bootstrap servers, database URL and Redis URL for this session."""
    env = {k: v for k, v in os.environ.items()}
    if _use_testcontainers():
        from testcontainers.kafka import KafkaContainer
        from testcontainers.postgres import PostgresContainer
        from testcontainers.redis import RedisContainer

        with KafkaContainer().with_kraft() as kafka, PostgresContainer("postgres:16") as pg, RedisContainer() as rds:
            yield {
                "kafka": kafka.get_bootstrap_server(),
                "profile": "kafka",
                "database_url": pg.get_connection_url().replace("+psycopg2", ""),
                "redis_url": f"redis://{rds.get_container_host_ip()}:{rds.get_exposed_port(6379)}/0",
            }
        return
    with contextlib.ExitStack() as stack:
        services: dict[str, str] = {}
        if env.get("KAFKA_BOOTSTRAP_SERVERS"):
            services.update(kafka=env["KAFKA_BOOTSTRAP_SERVERS"], profile="kafka")
        elif env.get("JUNCTION_TEST_BROKER") == "kafka":
            kafka = _local_kafka(stack)
            services.update(kafka=kafka.bootstrap, profile="kafka", local_kafka=kafka)  # type: ignore[dict-item]
        else:
            broker = EmbeddedBroker(free_port())
            broker.start()
            stack.callback(broker.stop)
            asyncio.run(broker.wait_ready())
            services.update(kafka=broker.bootstrap, profile="embedded")
        # A configured URL wins; otherwise this run's own throwaway servers, like `junction up` starts.
        data_dir = tempfile.mkdtemp(prefix=f"junction-stores-{RUN_ID}-")
        os.chmod(data_dir, 0o755)  # this run's own folder: PostgreSQL may run as nobody and must reach it
        store_settings = load_settings(
            data_dir=data_dir,
            embedded_postgres_port=free_port(), embedded_redis_port=free_port(),
        )
        stores = EmbeddedStores(store_settings, durable=False)
        stack.callback(shutil.rmtree, data_dir, True)
        stack.callback(stores.stop)
        asyncio.run(stores.start())
        started = stores.apply(store_settings)
        services.update(database_url=started.database_dsn, redis_url=started.redis_dsn)
        yield services


@pytest.fixture(scope="session")
def settings(external_services: dict[str, str]) -> Settings:
    """Settings isolated to this run, with the topics created."""
    overrides: dict[str, object] = dict(
        kafka_bootstrap_servers=external_services["kafka"],
        broker_profile=external_services["profile"],
        topic_prefix=f"t{RUN_ID}",
        group_prefix=f"t{RUN_ID}",
        redis_prefix=f"jt:{RUN_ID}:",
        database_schema=f"t_{RUN_ID}",
        ingress_port=free_port(),
        control_port=free_port(),
        processors_port=free_port(),
        egress_port=free_port(),
        demo_upstream_port=free_port(),
        # 0: no metrics listener; each test that wants one sets a port (many processes share these settings)
        ingress_metrics_port=0, control_metrics_port=0, processors_metrics_port=0, egress_metrics_port=0,
        jwt_secret=f"test-secret-{RUN_ID}",
        seal_key=new_seal_key(),
        allow_private_targets=True,  # every upstream in the tests is on loopback
        # Dead letters are kept: many tests index letters dated 2023 (fixed instants their filters name), and a
        # control app another test starts on this schema purged them mid-test (its indexer purges on start).
        # tests/control/test_dead_letter_index.py tests retention with its own settings.
        dlq_retention_days=0,
        data_dir=tempfile.mkdtemp(prefix=f"junction-{RUN_ID}-"),
    )
    for key in ("database_url", "redis_url"):
        if key in external_services:
            overrides[key] = external_services[key]
    s = load_settings(**overrides)
    asyncio.run(_prepare(s))
    return s


async def _prepare(s: Settings) -> None:
    await wait_for_broker(s)
    await ensure_topics(s)


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def log_db(settings: Settings) -> AsyncIterator[asyncpg.Pool]:
    """A pool on the run's database, with control's tables made: for tests that read what control's observe
    stage wrote (request logs, metrics windows)."""
    from control.migrate import apply_migrations
    from core.db import make_pool

    pool = await make_pool(settings, min_size=1, max_size=2)
    await apply_migrations(pool)
    yield pool
    await pool.close()


@pytest_asyncio.fixture(scope="session", loop_scope="session", autouse=True)
async def _drop_schema_at_end(settings: Settings) -> AsyncIterator[None]:
    yield
    conn = await asyncpg.connect(settings.database_dsn)
    try:
        await conn.execute(f'DROP SCHEMA IF EXISTS "{settings.database_schema}" CASCADE')
    finally:
        await conn.close()
    import redis.asyncio as aioredis

    r = aioredis.from_url(settings.redis_dsn)
    try:
        keys = [k async for k in r.scan_iter(match=settings.redis_prefix + "*", count=1000)]
        if keys:
            await r.delete(*keys)
    finally:
        await r.aclose()
