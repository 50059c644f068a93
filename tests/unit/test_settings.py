"""One settings object: defaults, JUNCTION_* overrides and the broker profile."""
from __future__ import annotations

import pytest

from core.settings import InvalidConfiguration, load_settings


def test_defaults() -> None:
    s = load_settings({})
    assert (s.ingress_port, s.control_port) == (8080, 8081)
    assert s.uses_embedded_broker and s.broker.name == "embedded"
    # Kafka's 500 ms fetch wait default would cost a quarter second per hop here.
    assert s.broker.fetch_max_wait_ms <= 5
    assert s.broker.enable_idempotence is False


def test_every_field_can_be_overridden_by_environment() -> None:
    s = load_settings({"JUNCTION_INGRESS_PORT": "9000", "JUNCTION_ALLOW_PRIVATE_TARGETS": "false", "JUNCTION_TOPIC_PREFIX": "x"})
    assert s.ingress_port == 9000 and s.allow_private_targets is False and s.topics.requests == "x.requests"
    again = load_settings(s.to_env())
    assert again == s


def test_external_kafka_selects_the_kafka_profile() -> None:
    s = load_settings({"KAFKA_BOOTSTRAP_SERVERS": "kafka:9092"})
    assert s.bootstrap_servers == "kafka:9092" and not s.uses_embedded_broker
    assert s.broker.name == "kafka" and s.broker.enable_idempotence is True


def test_broker_profile_fields_can_be_overridden() -> None:
    s = load_settings({"JUNCTION_BROKER_FETCH_MAX_WAIT_MS": "3"})
    assert s.broker.fetch_max_wait_ms == 3
    assert load_settings(s.to_env()).broker.fetch_max_wait_ms == 3


@pytest.mark.parametrize("env", [
    {"JUNCTION_INGRESS_PORT": "eighty"},
    {"JUNCTION_BROKER_PROFILE": "pulsar"},
    {"JUNCTION_BROKER_FETCH_MAX_WAIT_MS": "0"},
    {"JUNCTION_PARTITIONS": "0"},
    {"JUNCTION_ALLOW_PRIVATE_TARGETS": "maybe"},
    {"JUNCTION_INGRESS_REFUSAL_LOG_PER_S": "-1"},
    {"JUNCTION_INGRESS_REFUSAL_LOG_PER_S": "many"},
])
def test_bad_values_are_refused_with_the_variable_named(env: dict[str, str]) -> None:
    with pytest.raises(InvalidConfiguration) as info:
        load_settings(env)
    assert "JUNCTION_" in str(info.value)
    assert next(iter(env)) in str(info.value)
