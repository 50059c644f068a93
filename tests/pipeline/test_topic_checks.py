"""A stage refuses to start on topics that cannot serve its settings, naming the topic and the fix; before, an
ingress leasing a reply partition the topic lacked hung for ever (SIGTERM ignored), and a topic made by hand
with a smaller record limit turned large calls into 500s. `junction topics` says what is wrong in one line."""
from __future__ import annotations

import asyncio
import os
import sys
import uuid

import pytest
from aiokafka.admin import NewTopic

from core.kafka import check_topics, make_admin, topic_specs
from core.settings import InvalidConfiguration, Settings
from junction.broker import free_port


def _own(settings: Settings, **changes: object) -> Settings:
    return settings.with_overrides(topic_prefix=f"tc{uuid.uuid4().hex[:8]}", **changes)


async def _create(settings: Settings, topics: list[NewTopic]) -> None:
    admin = make_admin(settings)
    await admin.start()
    try:
        await admin.create_topics(topics)
    finally:
        await admin.close()


async def _cli(settings: Settings, *argv: str) -> tuple[int, str]:
    env = {**os.environ, **settings.to_env()}
    proc = await asyncio.create_subprocess_exec(sys.executable, "-m", "junction", *argv, env=env,
                                                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    return proc.returncode or 0, (out + err).decode(errors="replace")


async def test_a_replies_topic_with_fewer_partitions_than_ingress_leases_is_refused(settings: Settings) -> None:
    s = _own(settings, reply_partitions=4)
    specs = [NewTopic(t.name, 1 if t.name == s.topics.replies else t.num_partitions, 1, topic_configs=t.topic_configs)
             for t in topic_specs(s)]
    await _create(s, specs)
    with pytest.raises(InvalidConfiguration) as refused:
        await check_topics(s)
    assert f"topic {s.topics.replies} has 1 partition(s), but JUNCTION_REPLY_PARTITIONS=4" in str(refused.value)
    assert "JUNCTION_REPLY_PARTITIONS=1" in str(refused.value)  # the other way out
    code, out = await _cli(s.with_overrides(ingress_port=free_port(), ingress_metrics_port=0), "serve", "ingress")
    assert code == 1 and "junction serve ingress: topic" in out and "Traceback" not in out, out
    await check_topics(s.with_overrides(reply_partitions=1))  # as many as it has: served


async def test_missing_topics_are_named_with_the_command_that_makes_them(settings: Settings) -> None:
    s = _own(settings)
    with pytest.raises(InvalidConfiguration) as refused:
        await check_topics(s)
    assert s.topics.requests in str(refused.value) and "`junction topics`" in str(refused.value)


async def test_a_config_topic_that_is_not_compacted_is_refused(settings: Settings) -> None:
    if not settings.broker.enforces_message_size:
        pytest.skip("the embedded broker keeps no topic configs (docs/brokers.md); the Kafka run checks this")
    s = _own(settings)
    await _create(s, [NewTopic(t.name, t.num_partitions, 1, topic_configs=(
        {"cleanup.policy": "delete", "retention.ms": "60000"} if t.name == s.topics.config else t.topic_configs))
        for t in topic_specs(s)])
    with pytest.raises(InvalidConfiguration) as refused:
        await check_topics(s)
    assert f"topic {s.topics.config} has cleanup.policy=delete" in str(refused.value)


async def test_junction_topics_says_what_is_wrong_in_one_line() -> None:
    dead = f"127.0.0.1:{free_port()}"
    env_settings = Settings(kafka_bootstrap_servers=dead)  # type: ignore[call-arg]
    code, out = await _cli(env_settings.with_overrides(topic_prefix=f"tc{uuid.uuid4().hex[:8]}"), "topics")
    last = out.strip().splitlines()[-1]  # after the client's own log line about the connection
    assert code == 1 and last.startswith("junction topics: the broker at ") and "Traceback" not in out, out
    assert dead in last and last.count("KafkaConnectionError") == 1
