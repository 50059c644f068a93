"""Kafka access control on Apache Kafka (``make test-kafka``): SASL/SCRAM users and ACLs from junction.kafka_acl.

The module starts an Apache Kafka of its own with SASL and the StandardAuthorizer (nothing is allowed
without an ACL), provisions it as the admin, then runs the pipeline with each service under its own
principal: processors and egress as child processes, ingress and the config publisher (the control
principal) in this process, and control's dead-letter indexer and replay answer reader in their consumer
groups. What each principal may not do is tried for real and must be refused.
"""
from __future__ import annotations

import asyncio
import os
import re
import shutil
import stat
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import pytest_asyncio
from aiohttp import web
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import (
    GroupAuthorizationFailedError,
    KafkaConnectionError,
    KafkaError,
    TopicAuthorizationFailedError,
)

from bench.procs import stop  # SIGTERM, then SIGKILL after 20 s
from control.dead_letters import GROUP as DEAD_LETTER_GROUP
from control.dead_letters import DeadLetterIndexer
from control.migrate import apply_migrations
from control.observe.stage import GROUP as OBSERVE_GROUP
from control.replay_jobs import ANSWERS_GROUP, ReplayJobs
from core.consume import read_topic
from core.db import make_pool
from core.errors import JunctionError
from core.kafka import make_admin, make_consumer, make_producer
from core.messages import error_reply
from core.redis import make_redis
from core.settings import Settings
from junction import kafka_acl
from junction.broker import die_with_parent, free_port
from junction.kafka_local import LocalKafka, LocalSasl, fetch
from schemas import decode, encode
from tests.dead_letter_support import inbound_call, letter_bytes
from tests.support import IngressInstance, Stage, serving, wait_http_ok

pytestmark = [pytest.mark.slow, pytest.mark.timeout(240)]

ADMIN = LocalSasl("SCRAM-SHA-512", "admin", f"admin-{uuid.uuid4().hex}")
PRODUCER = "app"


@pytest.fixture(scope="module")
def secured_kafka(external_services: dict[str, Any]) -> Iterator[LocalKafka]:
    """A SASL+ACL Apache Kafka of this module's own (the session's broker stays open for the other tests)."""
    if external_services.get("local_kafka") is None:
        pytest.skip("needs Apache Kafka from Maven: make test-kafka")
    home = Path(tempfile.mkdtemp(prefix="junction-kafka-acl-"))
    kafka = LocalKafka(home, free_port(), free_port(), libs=fetch(), sasl=ADMIN, overrides={"group.initial.rebalance.delay.ms": 0})
    kafka.start()
    try:
        asyncio.run(kafka.wait_ready())
        yield kafka
    finally:
        kafka.stop()
        shutil.rmtree(home, ignore_errors=True)


@dataclass
class Secured:
    admin: Settings
    roles: dict[str, Settings]  # each service's settings, with its own principal
    producer_props: dict[str, str]  # the async producer's Kafka client properties, as provisioned
    credentials: Path
    report: kafka_acl.ProvisionReport
    ingress: IngressInstance
    control: Stage
    upstream_url: str
    org: str
    logs: dict[str, Path]
    kafka: LocalKafka

    def password(self, role: str) -> str:
        return self.roles[role].kafka_sasl_password


def _env_file(path: Path) -> dict[str, str]:
    return dict(line.split("=", 1) for line in path.read_text().splitlines() if "=" in line and not line.startswith("#"))


def _settings_for(base: Settings, env: dict[str, str], **more: Any) -> Settings:
    """A service's settings from the .env file kafka-acl wrote (only the Kafka lines differ between services)."""
    return base.with_overrides(
        kafka_bootstrap_servers=env["JUNCTION_KAFKA_BOOTSTRAP_SERVERS"], broker_profile="kafka",
        kafka_security_protocol=env["JUNCTION_KAFKA_SECURITY_PROTOCOL"], kafka_sasl_mechanism=env["JUNCTION_KAFKA_SASL_MECHANISM"],
        kafka_sasl_username=env["JUNCTION_KAFKA_SASL_USERNAME"], kafka_sasl_password=env["JUNCTION_KAFKA_SASL_PASSWORD"],
        **more)


def _aiokafka_kwargs(props: dict[str, str]) -> dict[str, Any]:
    """Kafka's client properties as aiokafka arguments: what docs/kafka-security.md shows an async producer."""
    jaas = props["sasl.jaas.config"]
    return {"bootstrap_servers": props["bootstrap.servers"], "security_protocol": props["security.protocol"],
            "sasl_mechanism": props["sasl.mechanism"],
            "sasl_plain_username": re.search(r'username="([^"]+)"', jaas).group(1),  # type: ignore[union-attr]
            "sasl_plain_password": re.search(r'password="([^"]+)"', jaas).group(1)}  # type: ignore[union-attr]


def _spawn(settings: Settings, service: str, log: Path) -> subprocess.Popen[bytes]:
    env = {**os.environ, **settings.to_env(), "JUNCTION_LOG_LEVEL": "INFO"}
    with open(log, "wb") as out:
        return subprocess.Popen([sys.executable, "-m", "junction", "serve", service], env=env, stdin=subprocess.DEVNULL,
                                stdout=out, stderr=subprocess.STDOUT, preexec_fn=die_with_parent)


async def _echo(request: web.Request) -> web.Response:
    return web.json_response({"echo": (await request.read()).decode()})


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def secured(settings: Settings, secured_kafka: LocalKafka) -> AsyncIterator[Secured]:
    run = uuid.uuid4().hex[:8]
    admin = settings.with_overrides(
        kafka_bootstrap_servers=secured_kafka.bootstrap, broker_profile="kafka", topic_prefix=f"a{run}",
        group_prefix=f"a{run}", redis_prefix=f"ja:{run}:", kafka_security_protocol="SASL_PLAINTEXT",
        kafka_sasl_mechanism=ADMIN.mechanism, kafka_sasl_username=ADMIN.admin_username,
        kafka_sasl_password=ADMIN.admin_password)
    credentials = Path(tempfile.mkdtemp(prefix="junction-kafka-creds-"))
    _, report = await kafka_acl.provision_all(admin, [PRODUCER], credentials)
    ports = {"processors": free_port(), "egress": free_port()}
    roles = {
        "control": _settings_for(admin, _env_file(credentials / "control.env")),
        "ingress": _settings_for(admin, _env_file(credentials / "ingress.env")),
        "processors": _settings_for(admin, _env_file(credentials / "processors.env"), processors_port=ports["processors"]),
        "egress": _settings_for(admin, _env_file(credentials / "egress.env"), egress_port=ports["egress"]),
    }
    props = _env_file(credentials / f"producer-{PRODUCER}.properties")
    logs = {name: credentials / f"{name}.log" for name in ("processors", "egress")}
    app = web.Application()
    app.router.add_post("/work", _echo)
    async with serving(app) as upstream_url:
        procs = {name: _spawn(roles[name], name, logs[name]) for name in ("processors", "egress")}
        ingress = IngressInstance(roles["ingress"])
        control = Stage(roles["control"])
        try:
            for name, proc in procs.items():
                await wait_http_ok(f"http://127.0.0.1:{ports[name]}/readyz", proc=proc)
            await control.start()
            await ingress.start()
            staged = await control.api(upstream_url + "/work", methods=["POST"], path="/work", timeout_ms=20_000)
            yield Secured(admin, roles, props, credentials, report, ingress, control, upstream_url, staged["org"], logs, secured_kafka)
        finally:
            await ingress.stop()
            await control.stop()
            for proc in procs.values():
                stop([proc])
            shutil.rmtree(credentials, ignore_errors=True)


async def _write_refused(producer: AIOKafkaProducer, topic: str) -> KafkaError:
    """The broker's answer to one write: a write that goes through fails the test at once."""
    try:
        await producer.send_and_wait(topic, key=b"k", value=b"not allowed")
    except TopicAuthorizationFailedError as exc:
        return exc
    raise AssertionError(f"{topic} accepted a write it must refuse")


async def _read_refused(consumer: AIOKafkaConsumer, tp: TopicPartition, timeout_s: float = 30.0) -> KafkaError:
    """Fetch until the refusal arrives: a consumer reports a fetch error on a later poll, not the first."""
    async with asyncio.timeout(timeout_s):
        while True:
            try:
                records = await consumer.getmany(tp, timeout_ms=500)
            except TopicAuthorizationFailedError as exc:
                return exc
            assert not records, f"{tp.topic} served records it must refuse"


async def test_each_service_under_its_own_principal_serves_a_call_end_to_end(secured: Secured) -> None:
    url = f"{secured.ingress.url}/{secured.org}/work"
    async with aiohttp.ClientSession() as http:
        # The API arrives through the config topic (written by control, read by every service): poll until served.
        async with asyncio.timeout(60):
            while True:
                async with http.post(url, data="through every stage") as r:
                    if r.status == 200:
                        assert await r.json() == {"echo": "through every stage"}
                        break
                    assert r.status in (404, 503, 504), (r.status, await r.text())
                await asyncio.sleep(0.2)
        # A refusal at the edge: ingress writes it for the request log under its own principal, control reads it.
        async with http.get(f"{secured.ingress.url}/{secured.org}/nowhere") as r:
            assert r.status == 404
            refused = r.headers["X-Correlation-Id"]
    control = secured.roles["control"]
    async with asyncio.timeout(30):
        while True:
            told = [decode(rec.value, expected="EdgeRefusal")[1] for rec in await read_topic(control, control.topics.refusals)]
            if any(t["correlation_id"] == refused for t in told):
                break
            await asyncio.sleep(0.2)
    users = {s.kafka_sasl_username for s in secured.roles.values()}
    assert len(users) == 4 and ADMIN.admin_username not in users  # four principals, none the admin


async def test_the_async_producer_may_post_calls_and_read_its_results_but_nothing_else(secured: Secured) -> None:
    topics = secured.admin.topics
    results = f"{topics.prefix}.results.{PRODUCER}"
    kwargs = _aiokafka_kwargs(secured.producer_props)
    # Its results topic it creates itself, as docs/topics.md tells it to.
    admin = AIOKafkaAdminClient(request_timeout_ms=10_000, **kwargs)
    await admin.start()
    try:
        created = await admin.create_topics([NewTopic(results, 1, 1)])
        assert all(code == 0 for _, code, *_ in created.topic_errors), created.topic_errors
        refused = await admin.create_topics([NewTopic(f"{topics.prefix}.results.someone-else", 1, 1)])
        assert [code for _, code, *_ in refused.topic_errors] == [TopicAuthorizationFailedError.errno]
    finally:
        await admin.close()

    producer = AIOKafkaProducer(linger_ms=0, **kwargs)
    consumer = AIOKafkaConsumer(enable_auto_commit=False, auto_offset_reset="earliest", **kwargs)
    await producer.start()
    await consumer.start()
    try:
        consumer.assign([TopicPartition(results, 0)])
        cid = str(uuid.uuid4())
        call = {"correlation_id": cid, "org": secured.org, "method": "POST", "path": "/work", "body": b"async",
                "deadline_ms": int(time.time() * 1000) + 30_000, "reply_topic": results, "reply_partition": 0}
        # Until processors have the API the reply is an error; post again until one is served.
        async with asyncio.timeout(60):
            served = None
            while served is None:
                await producer.send_and_wait(topics.requests, key=cid.encode(), value=encode("InboundCall", call))
                for records in (await consumer.getmany(timeout_ms=2000)).values():
                    for record in records:
                        _, reply = decode(record.value, "Reply")
                        if reply["correlation_id"] == cid and reply["status"] == 200:
                            served = reply
                cid = call["correlation_id"] = str(uuid.uuid4())
        assert served["body"] == b'{"echo": "async"}'

        for topic in (topics.config, topics.calls):
            assert isinstance(await _write_refused(producer, topic), TopicAuthorizationFailedError)
    finally:
        await producer.stop()
        await consumer.stop()

    reader = AIOKafkaConsumer(enable_auto_commit=False, auto_offset_reset="earliest", **kwargs)
    await reader.start()
    try:
        tp = TopicPartition(topics.requests, 0)
        reader.assign([tp])
        assert isinstance(await _read_refused(reader, tp), TopicAuthorizationFailedError)
    finally:
        await reader.stop()


async def test_only_control_may_write_the_config_topic(secured: Secured) -> None:
    # Control's own writes to it are what staged the API every other test calls.
    for role in ("ingress", "processors", "egress"):
        producer = make_producer(secured.roles[role])
        await producer.start()
        try:
            assert isinstance(await _write_refused(producer, secured.admin.topics.config), TopicAuthorizationFailedError)
        finally:
            await producer.stop()


async def test_a_wrong_password_is_refused(secured: Secured) -> None:
    wrong = secured.roles["ingress"].with_overrides(kafka_sasl_password="not-" + secured.password("ingress"))
    seen = secured.kafka.log_file.stat().st_size
    admin = make_admin(wrong)
    with pytest.raises(KafkaConnectionError):
        await admin.start()  # aiokafka reports the failed SCRAM exchange as a bootstrap that failed
    await admin.close()
    # The broker says why (in what it logged since): the credentials, not the network.
    async with asyncio.timeout(20):
        while True:
            tail = (await asyncio.to_thread(secured.kafka.log_file.read_bytes))[seen:]
            if b"Failed authentication" in tail and b"invalid credentials" in tail:
                break
            await asyncio.sleep(0.1)
    right = make_admin(secured.roles["ingress"])
    await right.start()
    await right.close()


async def test_provisioning_is_idempotent_and_keeps_passwords_private(secured: Secured) -> None:
    assert secured.report.added and not secured.report.removed
    _, again = await kafka_acl.provision_all(secured.admin, [PRODUCER], secured.credentials)
    assert again.added == [] and again.removed == []
    assert secured.roles["ingress"].kafka_sasl_password == _env_file(secured.credentials / "ingress.env")["JUNCTION_KAFKA_SASL_PASSWORD"]
    for path in secured.credentials.glob("*.*"):
        if path.suffix in (".env", ".properties"):
            assert stat.S_IMODE(path.stat().st_mode) == 0o600, path
    # Neither the settings' repr nor any service log shows a password.
    for role, s in secured.roles.items():
        assert s.kafka_sasl_password not in repr(s), role
        for log in secured.logs.values():
            assert s.kafka_sasl_password not in log.read_text(errors="replace"), (role, log)


async def test_control_reads_dead_letters_and_replay_answers_in_its_own_groups(secured: Secured) -> None:
    """The dead-letter indexer and the replay answer reader, as the control app runs them, under control's
    principal: each reads its topic in its own group and commits; no other group is control's to join."""
    s = secured.roles["control"].with_overrides(database_schema=f"acl_{uuid.uuid4().hex[:8]}")
    topics, group = s.topics, s.group_id
    pool = await make_pool(s)
    redis = make_redis(s)
    indexer = replays = None
    try:
        await apply_migrations(pool)
        indexer, replays = DeadLetterIndexer(s, pool), ReplayJobs(s, pool, redis)
        indexer.start()
        replays.start()
        # Written as the stages write them: dead letters and replay answers come from processors and egress.
        egress = make_producer(secured.roles["egress"])
        await egress.start()
        try:
            call = inbound_call(secured.org)
            await egress.send_and_wait(topics.dlq, value=letter_bytes(secured.org, stage="egress", call=call))
            answer = error_reply(call, JunctionError("replayed", code="upstream_unavailable", status=502), stage="egress")
            await egress.send_and_wait(topics.replay_results, value=encode("Reply", answer))
        finally:
            await egress.stop()
        admin = make_admin(secured.admin)
        await admin.start()
        try:
            for name, topic in ((DEAD_LETTER_GROUP, topics.dlq), (ANSWERS_GROUP, topics.replay_results)):
                async with asyncio.timeout(60):
                    while not sum(o.offset for tp, o in (await admin.list_consumer_group_offsets(group(name))).items()
                                  if tp.topic == topic):
                        await asyncio.sleep(0.2)
        finally:
            await admin.close()
        assert indexer.indexed == 1
        async with pool.acquire() as conn:
            assert await conn.fetchval(f'SELECT count(*) FROM "{s.database_schema}".dead_letters') == 1
        # Control writes alert events, and reads no other service's group (egress's, here).
        producer = make_producer(s)
        await producer.start()
        try:
            await producer.send_and_wait(topics.alerts, value=b"{}")
            assert isinstance(await _write_refused(producer, topics.replies), TopicAuthorizationFailedError)
        finally:
            await producer.stop()
        intruder = make_consumer(s, topics.calls, group="egress")
        try:
            with pytest.raises((GroupAuthorizationFailedError, TopicAuthorizationFailedError)):
                async with asyncio.timeout(30):
                    await intruder.start()
                    await intruder.getmany(timeout_ms=5000)
        finally:
            await intruder.stop()
    finally:
        for loop in (indexer, replays):
            if loop is not None:
                await loop.stop()
        async with pool.acquire() as conn:
            await conn.execute(f'DROP SCHEMA IF EXISTS "{s.database_schema}" CASCADE')
        await pool.close()
        await redis.aclose()


def test_the_plan_gives_each_principal_only_its_own_topics() -> None:
    """Without a broker: the table docs/kafka-security.md shows, checked where it is made."""
    from core.settings import Topics

    t = Topics("p")
    by_role = {p.role: p for p in kafka_acl.plan(t, "g", ["app"])}
    assert set(by_role) == {"control", "ingress", "processors", "egress", "producer-app"}
    assert by_role["ingress"].username == "p-ingress"

    def grants(role: str, op: int) -> set[tuple[str, int]]:
        return {(b.name, b.pattern) for b in by_role[role].bindings if b.operation == op and b.resource_type == kafka_acl.TOPIC}

    writers = {role for role in by_role if (t.config, kafka_acl.LITERAL) in grants(role, kafka_acl.WRITE)}
    assert writers == {"control"}
    assert grants("producer-app", kafka_acl.WRITE) == {(t.requests, kafka_acl.LITERAL)}
    assert grants("producer-app", kafka_acl.READ) == {("p.results.app", kafka_acl.LITERAL)}
    assert not [b for b in by_role["producer-app"].bindings if b.resource_type == kafka_acl.GROUP]
    assert {b.name for b in by_role["egress"].bindings if b.resource_type == kafka_acl.GROUP} == {"g.egress"}
    # Control: the dead-letter indexer and the replay answer reader, each in a group of its own; replay sends
    # calls to requests or calls; the alert evaluator writes alert events.
    # Control's observe stage reads every pipeline topic (results topics by prefix) in a group of its own.
    assert {b.name for b in by_role["control"].bindings if b.resource_type == kafka_acl.GROUP} == {
        f"g.{DEAD_LETTER_GROUP}", f"g.{ANSWERS_GROUP}", f"g.{OBSERVE_GROUP}"}
    assert grants("control", kafka_acl.READ) == {(n, kafka_acl.LITERAL) for n in (
        t.config, t.requests, t.calls, t.replies, t.dlq, t.refusals, "p.results.replays")} | {("p.results.", kafka_acl.PREFIXED)}
    # Ingress writes the calls it refused for the request log, and no other topic but requests.
    assert grants("ingress", kafka_acl.WRITE) == {(n, kafka_acl.LITERAL) for n in (t.requests, t.refusals)}
    assert grants("control", kafka_acl.WRITE) == {(n, kafka_acl.LITERAL) for n in (t.config, t.requests, t.calls, "p.alerts")}
    # Processors read requests and the config, and nothing they write.
    assert {b.name for b in by_role["processors"].bindings if b.resource_type == kafka_acl.GROUP} == {"g.processors"}
    assert grants("processors", kafka_acl.READ) == {(n, kafka_acl.LITERAL) for n in (t.requests, t.config)}
    # An async producer may not take the name of control's replay answers topic (it would read them).
    with pytest.raises(kafka_acl.KafkaAclError):
        kafka_acl.plan(t, "g", ["replays"])
    assert ("p.results.", kafka_acl.PREFIXED) in grants("processors", kafka_acl.WRITE)
    with pytest.raises(kafka_acl.KafkaAclError):
        kafka_acl.plan(t, "g", ["no spaces"])
