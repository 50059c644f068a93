"""Provision Kafka access for one topic prefix: SCRAM users and the ACLs that confine each to its topics.

    python -m junction.kafka_acl [--producer NAME ...] [--credentials DIR]     (or: junction kafka-acl)

It connects with the settings' own credentials, which must be a super user's (the admin), and:

- creates the topics (as ``junction topics`` would: the services' principals may not);
- creates or updates one SCRAM user per service (control, ingress, processors, egress) and per async
  producer, reusing the password already in ``DIR`` (so a re-run changes nothing) or making one;
- makes each user's ACLs exactly the table below: bindings it lacks are added, bindings it has
  beyond them removed. Only these users' ACLs are touched.
- writes each user's client settings into ``DIR`` (mode 0600): ``<role>.env`` for a service,
  ``producer-<name>.properties`` (Kafka's client format) for an async producer.

Why the Kafka protocol from Python rather than Kafka's own tools: aiokafka 0.14 has no admin method for
ACLs or SCRAM users, but it ships the CreateAcls/DescribeAcls/DeleteAcls request types and the means to
define AlterUserScramCredentials (KIP-554) — the same requests Kafka's Admin client sends. The fetched jars
hold no AclCommand (it lives in kafka-tools), and one JVM per ACL command costs seconds each on a small
machine, while this is one round trip per kind of request; a password never appears on a command line.
"""
from __future__ import annotations

import argparse
import asyncio
import logging
import os
import re
import secrets
import sys
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeAlias

from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import KafkaError, for_code
from aiokafka.protocol.admin import (
    CreateAclsRequest_v1,
    DeleteAclsRequest_v1,
    DescribeAclsRequest_v1,
)
from aiokafka.protocol.api import Request, RequestStruct, Response
from aiokafka.protocol.types import (
    CompactArray,
    CompactBytes,
    CompactString,
    Int8,
    Int16,
    Int32,
    Schema,
    TaggedFields,
)

from core.kafka import ensure_topics, make_admin
from core.settings import InvalidConfiguration, Settings, Topics, load_settings
from junction.kafka_acl_args import DEFAULT_CREDENTIALS_DIR, add_arguments
from junction.kafka_local import SCRAM_ITERATIONS, scram_salted_password

__all__ = [
    "CREATE",
    "GROUP",
    "LITERAL",
    "PREFIXED",
    "READ",
    "SERVICES",
    "TOPIC",
    "WRITE",
    "Binding",
    "KafkaAclError",
    "Principal",
    "ProvisionReport",
    "credentials_for",
    "main",
    "plan",
    "provision",
    "provision_all",
]

log = logging.getLogger(__name__)

SERVICES = ("control", "ingress", "processors", "egress")
_NAME = re.compile(r"^[A-Za-z0-9._-]{1,100}$")

# Kafka's wire codes (org.apache.kafka.common.acl / resource).
_ANY = 1
TOPIC, GROUP = 2, 3
LITERAL, PREFIXED = 3, 4
READ, WRITE, CREATE = 3, 4, 5
ALLOW = 3
_OPERATION_NAMES = {READ: "READ", WRITE: "WRITE", CREATE: "CREATE"}
_SCRAM_MECHANISMS = {"SCRAM-SHA-256": 1, "SCRAM-SHA-512": 2}


class KafkaAclError(RuntimeError):
    """The broker refused a user or an ACL."""


@dataclass(frozen=True, order=True)
class Binding:
    """One ALLOW ACL from any host. READ and WRITE imply DESCRIBE, so none is listed on its own."""

    resource_type: int
    name: str
    pattern: int
    operation: int

    def describe(self) -> str:
        kind = "topic" if self.resource_type == TOPIC else "group"
        how = "prefix" if self.pattern == PREFIXED else "name"
        return f"{_OPERATION_NAMES.get(self.operation, self.operation)} {kind} {how} {self.name}"


@dataclass(frozen=True)
class Principal:
    role: str  # a service, or "producer-<name>"
    username: str
    bindings: frozenset[Binding]

    @property
    def principal(self) -> str:
        return f"User:{self.username}"


def _topic(name: str, *ops: int, prefixed: bool = False) -> list[Binding]:
    return [Binding(TOPIC, name, PREFIXED if prefixed else LITERAL, op) for op in ops]


def _group(name: str) -> list[Binding]:
    # By prefix: the group's name may grow a suffix (an instance or a version) without a new ACL.
    return [Binding(GROUP, name, PREFIXED, READ)]


def plan(topics: Topics, group_prefix: str, producers: Iterable[str] = (), user_prefix: str | None = None) -> list[Principal]:
    """Every principal for this prefix and exactly what it may do (docs/kafka-security.md has the table)."""
    # Imported here, not at the top: the CLI builds this command's parser for every `junction` command, and
    # these modules bring in most of the control server.
    from control.dead_letters import GROUP as DEAD_LETTER_GROUP
    from control.observe.stage import GROUP as OBSERVE_GROUP
    from control.replay_jobs import ANSWERS_GROUP as REPLAY_ANSWERS_GROUP

    t = topics
    results = f"{t.prefix}.results."
    user = user_prefix or t.prefix
    roles: dict[str, list[Binding]] = {
        # The outbox relay is the one writer of the config topic. The dead-letter indexer reads the dead
        # letters in a group of its own; replay reads the requests they point at, sends calls back to
        # requests or calls, and reads their answers from its own results topic in another group; the
        # observe stage reads every pipeline topic, in a third.
        "control": [*_topic(t.config, WRITE, READ), *_topic(t.requests, WRITE, READ), *_topic(t.calls, WRITE, READ),
                    *_topic(t.dlq, READ), *_topic(t.replay_results, READ), *_topic(t.refusals, READ),
                    *_topic(t.alerts, WRITE),  # the alert evaluator writes alert events
                    # The observe stage reads every pipeline topic for metrics and request logs.
                    *_topic(t.replies, READ), *_topic(results, READ, prefixed=True),
                    *_group(f"{group_prefix}.{DEAD_LETTER_GROUP}"), *_group(f"{group_prefix}.{REPLAY_ANSWERS_GROUP}"),
                    *_group(f"{group_prefix}.{OBSERVE_GROUP}")],
        # Readers by assignment (no group): replies of its leased partitions, and the config.
        "ingress": [*_topic(t.requests, WRITE), *_topic(t.replies, READ), *_topic(t.config, READ),
                    *_topic(t.refusals, WRITE)],  # calls it refused, for the request log
        "processors": [*_topic(t.requests, READ), *_topic(t.config, READ), *_topic(t.calls, WRITE),
                       *_topic(t.replies, WRITE), *_topic(t.dlq, WRITE), *_topic(results, WRITE, prefixed=True),
                       *_group(f"{group_prefix}.processors")],
        "egress": [*_topic(t.calls, READ), *_topic(t.config, READ), *_topic(t.replies, WRITE), *_topic(t.dlq, WRITE),
                   *_topic(results, WRITE, prefixed=True), *_group(f"{group_prefix}.egress")],
    }
    for name in producers:
        if not _NAME.match(name):
            raise KafkaAclError(f"producer name {name!r}: use letters, digits, '.', '_' and '-' only")
        if f"{results}{name}" == t.replay_results:
            raise KafkaAclError(f"producer name {name!r} is taken: {t.replay_results} holds control's replay answers")
        # Posts calls, and creates and reads a results topic of its own for the replies: nothing else.
        roles[f"producer-{name}"] = [*_topic(t.requests, WRITE), *_topic(f"{results}{name}", CREATE, READ)]
    return [Principal(role, f"{user}-{role}", frozenset(bindings)) for role, bindings in roles.items()]


# -- the requests Kafka's Admin client sends ----------------------------------------------------

class _CreateAcls(Request[CreateAclsRequest_v1]):
    API_KEY = 30

    def __init__(self, creations: list[tuple[Any, ...]]) -> None:
        self._creations = creations

    def build(self, request_struct_class: type[CreateAclsRequest_v1]) -> CreateAclsRequest_v1:
        return request_struct_class(self._creations)


class _DescribeAcls(Request[DescribeAclsRequest_v1]):
    API_KEY = 29

    def __init__(self, principal: str) -> None:
        self._principal = principal

    def build(self, request_struct_class: type[DescribeAclsRequest_v1]) -> DescribeAclsRequest_v1:
        return request_struct_class(_ANY, None, _ANY, self._principal, None, _ANY, _ANY)


class _DeleteAcls(Request[DeleteAclsRequest_v1]):
    API_KEY = 31

    def __init__(self, filters: list[tuple[Any, ...]]) -> None:
        self._filters = filters

    def build(self, request_struct_class: type[DeleteAclsRequest_v1]) -> DeleteAclsRequest_v1:
        return request_struct_class(self._filters)


class _AlterUserScramCredentialsResponse_v0(Response):
    API_KEY = 51
    API_VERSION = 0
    SCHEMA = Schema(
        ("throttle_time_ms", Int32),
        ("results", CompactArray(
            ("user", CompactString("utf-8")), ("error_code", Int16), ("error_message", CompactString("utf-8")),
            ("tags", TaggedFields))),
        ("tags", TaggedFields),
    )


class _AlterUserScramCredentialsRequest_v0(RequestStruct):
    """KIP-554; KRaft stores the credential in the metadata log, so a new user works on every broker."""

    FLEXIBLE_VERSION = True
    API_KEY = 51
    API_VERSION = 0
    RESPONSE_TYPE = _AlterUserScramCredentialsResponse_v0
    SCHEMA = Schema(
        ("deletions", CompactArray(("name", CompactString("utf-8")), ("mechanism", Int8), ("tags", TaggedFields))),
        ("upsertions", CompactArray(
            ("name", CompactString("utf-8")), ("mechanism", Int8), ("iterations", Int32), ("salt", CompactBytes),
            ("salted_password", CompactBytes), ("tags", TaggedFields))),
        ("tags", TaggedFields),
    )


_Upsertion: TypeAlias = tuple[str, int, int, bytes, bytes, dict[int, bytes]]


class _AlterUserScramCredentials(Request[_AlterUserScramCredentialsRequest_v0]):
    API_KEY = 51

    def __init__(self, upsertions: list[_Upsertion]) -> None:
        self._upsertions = upsertions

    def build(self, request_struct_class: type[_AlterUserScramCredentialsRequest_v0]) -> _AlterUserScramCredentialsRequest_v0:
        return request_struct_class([], self._upsertions, {})


def _check(code: int, message: str | None, what: str) -> None:
    if code:
        raise KafkaAclError(f"{what}: {for_code(code).__name__} {message or ''}".rstrip())


# -- provisioning ---------------------------------------------------------------------------------

@dataclass(frozen=True)
class ProvisionReport:
    users: list[str]
    added: list[str]
    removed: list[str]


async def _current(admin: AIOKafkaAdminClient, principal: str) -> set[Binding]:
    response = await admin._send_request(_DescribeAcls(principal))
    _check(response.error_code, response.error_message, f"describing the ACLs of {principal}")
    found: set[Binding] = set()
    for resource_type, name, pattern, acls in response.resources:
        for _, host, operation, permission in acls:
            if host == "*" and permission == ALLOW:
                found.add(Binding(resource_type, name, pattern, operation))
            else:
                # Anything but an ALLOW from any host was not made here: a DENY or a host rule someone
                # chose on purpose is left alone, and never counted as one of ours.
                log.info("leaving %s's %s ACL on %s alone", principal, "DENY" if permission != ALLOW else host, name)
    return found


async def provision(settings: Settings, principals: Sequence[Principal], passwords: Mapping[str, str]) -> ProvisionReport:
    """Make the broker match ``principals``: their SCRAM users (with ``passwords``) and exactly their ACLs.

    Idempotent: a second run with the same passwords adds and removes nothing (a SCRAM credential is
    rewritten with a fresh salt, which leaves the password as it was).
    """
    mechanism = settings.kafka_sasl_mechanism
    if mechanism not in _SCRAM_MECHANISMS:
        raise InvalidConfiguration(f"JUNCTION_KAFKA_SASL_MECHANISM: {mechanism!r} is not a SCRAM mechanism")
    admin = make_admin(settings)
    await admin.start()
    try:
        upsertions: list[_Upsertion] = []
        for p in principals:
            salt = secrets.token_bytes(16)
            salted = scram_salted_password(mechanism, passwords[p.username], salt)
            upsertions.append((p.username, _SCRAM_MECHANISMS[mechanism], SCRAM_ITERATIONS, salt, salted, {}))
        response = await admin._send_request(_AlterUserScramCredentials(upsertions))
        for user, code, message, _ in response.results:
            _check(code, message, f"SCRAM user {user}")

        added: list[str] = []
        removed: list[str] = []
        creations: list[tuple[Any, ...]] = []
        deletions: list[tuple[Any, ...]] = []
        for p in principals:
            current = await _current(admin, p.principal)
            for b in sorted(p.bindings - current):
                creations.append((b.resource_type, b.name, b.pattern, p.principal, "*", b.operation, ALLOW))
                added.append(f"{p.username}: {b.describe()}")
            for b in sorted(current - p.bindings):
                deletions.append((b.resource_type, b.name, b.pattern, p.principal, "*", b.operation, ALLOW))
                removed.append(f"{p.username}: {b.describe()}")
        if creations:
            created = await admin._send_request(_CreateAcls(creations))
            for (code, message), what in zip(created.creation_responses, added):
                _check(code, message, f"adding {what}")
        if deletions:
            deleted = await admin._send_request(_DeleteAcls(deletions))
            for code, message, *_ in deleted.filter_responses:
                _check(code, message, "removing an ACL")
        return ProvisionReport([p.username for p in principals], added, removed)
    finally:
        await admin.close()


# -- credentials files ----------------------------------------------------------------------------

def _read_properties(path: Path) -> dict[str, str]:
    out: dict[str, str] = {}
    if path.exists():
        for line in path.read_text().splitlines():
            if "=" in line and not line.lstrip().startswith("#"):
                key, value = line.split("=", 1)
                out[key.strip()] = value.strip()
    return out


def _write_private(path: Path, text: str) -> None:
    # Created 0600 from the start: a password must not be readable even for a moment.
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write(text)
    os.chmod(path, 0o600)


def _file_for(directory: Path, p: Principal) -> Path:
    return directory / (f"{p.role}.properties" if p.role.startswith("producer-") else f"{p.role}.env")


def _password_in(path: Path) -> str | None:
    props = _read_properties(path)
    if "JUNCTION_KAFKA_SASL_PASSWORD" in props:
        return props["JUNCTION_KAFKA_SASL_PASSWORD"] or None
    found = re.search(r'password="([^"]+)"', props.get("sasl.jaas.config", ""))
    return found.group(1) if found else None


def credentials_for(settings: Settings, p: Principal, password: str) -> str:
    """The client settings of ``p``: Junction's environment for a service, Kafka's client properties
    (kafka-console-producer, any Java client; docs/kafka-security.md maps them to aiokafka) for a producer."""
    protocol = settings.kafka_security_protocol
    if not p.role.startswith("producer-"):
        lines = [f"JUNCTION_KAFKA_BOOTSTRAP_SERVERS={settings.bootstrap_servers}",
                 f"JUNCTION_TOPIC_PREFIX={settings.topic_prefix}", f"JUNCTION_GROUP_PREFIX={settings.group_prefix}",
                 f"JUNCTION_KAFKA_SECURITY_PROTOCOL={protocol}", f"JUNCTION_KAFKA_SASL_MECHANISM={settings.kafka_sasl_mechanism}",
                 f"JUNCTION_KAFKA_SASL_USERNAME={p.username}", f"JUNCTION_KAFKA_SASL_PASSWORD={password}"]
        if settings.kafka_ssl_cafile:
            lines.append(f"JUNCTION_KAFKA_SSL_CAFILE={settings.kafka_ssl_cafile}")
        return "\n".join(lines) + "\n"
    lines = [(f"# {p.role}: may write {settings.topics.requests} and create and read "
             f"{settings.topics.prefix}.results.{p.role.removeprefix('producer-')}, nothing else"),
             f"bootstrap.servers={settings.bootstrap_servers}", f"security.protocol={protocol}",
             f"sasl.mechanism={settings.kafka_sasl_mechanism}",
             ("sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required "
             f'username="{p.username}" password="{password}";')]
    if settings.kafka_ssl_cafile:
        lines += ["ssl.truststore.type=PEM", f"ssl.truststore.location={settings.kafka_ssl_cafile}"]
    return "\n".join(lines) + "\n"


def _passwords(directory: Path, principals: Sequence[Principal], rotate: bool) -> dict[str, str]:
    """The password in each principal's file, or a new one (every one new with ``rotate``)."""
    out: dict[str, str] = {}
    for p in principals:
        existing = None if rotate else _password_in(_file_for(directory, p))
        out[p.username] = existing or secrets.token_urlsafe(24)
    return out


async def provision_all(settings: Settings, producers: Sequence[str] = (), directory: Path = DEFAULT_CREDENTIALS_DIR,
                        rotate: bool = False, create_topics: bool = True) -> tuple[list[Principal], ProvisionReport]:
    """Topics, users, ACLs and the credentials files: what ``junction kafka-acl`` does."""
    if settings.kafka_security_protocol == "PLAINTEXT":
        raise InvalidConfiguration("junction kafka-acl connects as the admin: set JUNCTION_KAFKA_SECURITY_PROTOCOL "
                                   "and the admin's JUNCTION_KAFKA_SASL_USERNAME/_PASSWORD")
    principals = plan(settings.topics, settings.group_prefix, producers)
    directory.mkdir(parents=True, exist_ok=True)
    os.chmod(directory, 0o700)
    passwords = _passwords(directory, principals, rotate)
    if create_topics:
        await ensure_topics(settings)
    report = await provision(settings, principals, passwords)
    # Written once the broker holds them: a file never names a password the broker refuses.
    for p in principals:
        _write_private(_file_for(directory, p), credentials_for(settings, p, passwords[p.username]))
    return principals, report


def main(argv: Sequence[str] | None = None, settings: Settings | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="junction kafka-acl",
        description="Create the SCRAM users and ACLs of one topic prefix (JUNCTION_TOPIC_PREFIX), connecting as the "
                    "admin (JUNCTION_KAFKA_SASL_USERNAME/_PASSWORD). See docs/kafka-security.md.")
    add_arguments(parser)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    logging.getLogger("aiokafka").setLevel(logging.WARNING)
    try:
        return run(args, settings or load_settings())
    except InvalidConfiguration as exc:
        print(f"junction kafka-acl: invalid configuration: {exc}", file=sys.stderr)
        return 2


def run(args: argparse.Namespace, settings: Settings) -> int:
    try:
        principals, report = asyncio.run(provision_all(
            settings, args.producer, args.credentials, rotate=args.rotate, create_topics=args.create_topics))
    except InvalidConfiguration as exc:
        print(f"junction kafka-acl: invalid configuration: {exc}", file=sys.stderr)
        return 2
    except (KafkaAclError, KafkaError, OSError) as exc:
        print(f"junction kafka-acl: {exc}", file=sys.stderr)
        return 1
    for line in report.added:
        print(f"added    {line}")
    for line in report.removed:
        print(f"removed  {line}")
    print(f"{len(principals)} users ready, {len(report.added)} ACLs added, {len(report.removed)} removed; "
          f"credentials in {args.credentials}/")
    return 0


if __name__ == "__main__":
    sys.exit(main())
