"""junction.kafka_local without Java: its config matches infra/docker-compose.yml, one version everywhere,
fetch skips Maven when up to date, and start-up refuses taken ports and stops only real leftovers."""
from __future__ import annotations

import base64
import os
import signal
import socket
import subprocess
import sys
import uuid
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
import yaml

from junction import kafka_local
from junction.broker import PortTaken, free_port
from junction.kafka_local import KAFKA_VERSION, POM, KafkaLocalError, LocalKafka, fetch

COMPOSE_KAFKA = yaml.safe_load(Path("infra/docker-compose.yml").read_text())["services"]["kafka"]
# Addresses differ by design (container host names versus loopback ports); compared separately below.
ADDRESSES = {"listeners", "advertised.listeners", "controller.quorum.voters"}


def _compose_properties() -> dict[str, str]:
    # The apache/kafka image turns KAFKA_FOO_BAR into foo.bar.
    env = COMPOSE_KAFKA["environment"]
    return {k.removeprefix("KAFKA_").lower().replace("_", "."): str(v).lower() if isinstance(v, bool) else str(v)
            for k, v in env.items()}


def test_the_pom_the_module_and_the_compose_image_name_one_kafka_4_version() -> None:
    root = ET.parse(POM).getroot()
    ns = {"m": "http://maven.apache.org/POM/4.0.0"}
    pom_version = root.findtext("m:properties/m:kafka.version", namespaces=ns)
    deps = {d.findtext("m:artifactId", namespaces=ns): d.findtext("m:version", namespaces=ns)
            for d in root.iterfind("m:dependencies/m:dependency", ns)}
    assert deps["kafka_2.13"] == "${kafka.version}"
    assert KAFKA_VERSION == pom_version and KAFKA_VERSION.split(".")[0] == "4"
    assert COMPOSE_KAFKA["image"] == f"apache/kafka:{KAFKA_VERSION}"


def test_server_properties_carry_every_compose_setting_and_no_other(tmp_path: Path) -> None:
    ours = LocalKafka(tmp_path, 19092).server_properties()
    compose = _compose_properties()
    for name, value in compose.items():
        if name not in ADDRESSES:
            assert ours.get(name) == value, name
    # Only the log directory is ours alone (compose keeps the image's default).
    assert set(ours) - set(compose) == {"log.dirs"}
    assert ours["message.max.bytes"] == "16777216" and ours["auto.create.topics.enable"] == "false"


def _listener_names(value: str) -> list[str]:
    return sorted(part.split("://")[0] for part in value.split(","))


def test_addresses_are_the_compose_listeners_on_loopback_ports(tmp_path: Path) -> None:
    ours = LocalKafka(tmp_path, 29092, 29555).server_properties()
    compose = _compose_properties()
    assert _listener_names(ours["listeners"]) == _listener_names(compose["listeners"]) == ["CONTROLLER", "PLAINTEXT"]
    assert ours["listeners"] == "PLAINTEXT://127.0.0.1:29092,CONTROLLER://127.0.0.1:29555"
    assert ours["advertised.listeners"] == "PLAINTEXT://127.0.0.1:29092"
    assert ours["controller.quorum.voters"] == "1@127.0.0.1:29555"
    assert compose["controller.quorum.voters"].split("@")[0] == ours["node.id"] == "1"
    assert LocalKafka(tmp_path, 19092).server_properties()["controller.quorum.voters"] == "1@127.0.0.1:19093"


def test_overrides_add_and_replace_settings_and_data_lives_under_home(tmp_path: Path) -> None:
    kafka = LocalKafka(tmp_path / "k", 19092, overrides={
        "log.segment.bytes": 1024, "log.cleaner.enable": True, "message.max.bytes": 1000})
    kafka._write_config()
    written = dict(line.split("=", 1) for line in kafka.config_path.read_text().splitlines() if not line.startswith("#"))
    assert written == kafka.server_properties()
    assert written["log.segment.bytes"] == "1024" and written["log.cleaner.enable"] == "true"
    assert written["message.max.bytes"] == "1000"
    assert Path(written["log.dirs"]) == (tmp_path / "k" / "data").absolute()
    assert str(kafka.log_file.parent) in (tmp_path / "k" / "log4j2.properties").read_text()


def test_cluster_ids_look_like_kafkas(monkeypatch: pytest.MonkeyPatch) -> None:
    for _ in range(50):
        cid = kafka_local._new_cluster_id()
        assert len(cid) == 22 and len(base64.urlsafe_b64decode(cid + "==")) == 16
    # One that would start with '-' (a command-line option to the storage tool) is drawn again.
    draws = iter([uuid.UUID(bytes=b"\xf8" + bytes(15)), uuid.UUID(bytes=b"\x01" * 16)])
    monkeypatch.setattr(kafka_local.uuid, "uuid4", lambda: next(draws))
    assert kafka_local._new_cluster_id() == base64.urlsafe_b64encode(b"\x01" * 16).decode().rstrip("=")


def test_fetch_does_not_run_maven_when_the_stamp_matches_the_pom(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import hashlib

    (tmp_path / "libs").mkdir()
    (tmp_path / "libs.stamp").write_text(hashlib.sha256(POM.read_bytes()).hexdigest() + "\n")
    monkeypatch.setattr(kafka_local.shutil, "which", lambda name: None)  # mvn would be "missing"
    assert fetch(tmp_path) == (tmp_path / "libs").absolute()
    # A changed pom needs Maven again, and its absence is named.
    (tmp_path / "libs.stamp").write_text("stale\n")
    monkeypatch.delenv("JAVA_HOME", raising=False)
    with pytest.raises(KafkaLocalError, match="java is not on PATH"):
        fetch(tmp_path)
    monkeypatch.setattr(kafka_local.shutil, "which", lambda name: "/usr/bin/java" if name == "java" else None)
    with pytest.raises(KafkaLocalError, match=r"mvn is not on PATH.*Maven"):
        fetch(tmp_path)


def test_a_taken_port_is_a_clear_error(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        for kafka in (LocalKafka(tmp_path, port, free_port(), libs=tmp_path),
                      LocalKafka(tmp_path, free_port(), port, libs=tmp_path)):
            with pytest.raises(PortTaken, match=f"port {port} for Apache Kafka.* is taken; choose another with --"):
                kafka.start()
            assert kafka.process is None


@pytest.mark.skipif(not Path("/proc/sys/net/ipv4/ip_local_port_range").exists(), reason="reads /proc")
def test_ports_handed_out_for_one_run_never_coincide() -> None:
    # The kernel hands the same ephemeral port to consecutive binds often enough that a run's nine ports
    # once held a duplicate (CI: ingress and egress on one port). 500 draws collide almost surely without
    # the process's memory of what it handed out.
    ports = [free_port() for _ in range(500)]
    assert len(set(ports)) == len(ports)
    # Nor can the run's own outgoing connections take one before its server binds it: they get ports
    # from the ephemeral range.
    low, high = map(int, Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split())
    assert not [port for port in ports if low <= port <= high]


def _fake_kafka(config: Path) -> subprocess.Popen[bytes]:
    """A process whose command line looks like a LocalKafka's, without Java."""
    return subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)", "kafka.Kafka", str(config)])


def _wait_argv(pid: int, token: bytes) -> None:
    # Popen returns before exec; wait until the child's command line is the new program's.
    import time

    until = time.monotonic() + 10
    while token not in Path(f"/proc/{pid}/cmdline").read_bytes():
        assert time.monotonic() < until
        time.sleep(0.01)


@pytest.mark.skipif(not Path("/proc/self/cmdline").exists(), reason="reads /proc")
def test_a_leftover_of_a_dead_run_is_stopped_and_anything_else_is_left_alone(tmp_path: Path) -> None:
    kafka = LocalKafka(tmp_path, free_port())
    kafka.home.mkdir(parents=True, exist_ok=True)
    pid_file = tmp_path / "kafka.pid"
    bystander = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    other_home = _fake_kafka(tmp_path / "elsewhere" / "server.properties")
    leftover = _fake_kafka(kafka.config_path)
    live = _fake_kafka(kafka.config_path)
    try:
        _wait_argv(leftover.pid, b"kafka.Kafka")
        _wait_argv(live.pid, b"kafka.Kafka")
        _wait_argv(other_home.pid, b"kafka.Kafka")
        for innocent in (bystander, other_home):  # a reused pid, or another home's Kafka
            pid_file.write_text(f"{innocent.pid} 1\n")
            kafka._clear_leftover()
            assert innocent.poll() is None and not pid_file.exists()

        # Still the child of the process named as its starter: someone's live broker, refused.
        pid_file.write_text(f"{live.pid} {os.getpid()}\n")
        with pytest.raises(KafkaLocalError, match=f"pid {live.pid}.* already runs"):
            kafka._clear_leftover()
        kafka.stop()  # this instance started nothing: the other run's pid file stays
        assert live.poll() is None and pid_file.exists()

        # Its starter is gone (it names a pid that is not its parent): a leftover, stopped.
        pid_file.write_text(f"{leftover.pid} {os.getpid() + 1_000_000}\n")
        kafka._clear_leftover()
        assert leftover.wait(timeout=5) == -signal.SIGTERM and not pid_file.exists()
    finally:
        for proc in (bystander, other_home, leftover, live):
            proc.kill()
            proc.wait()


def test_main_fetch_prints_the_libs_directory(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(kafka_local, "fetch", lambda home: home / "libs-here")
    assert kafka_local.main(["fetch", "--home", str(tmp_path)]) == 0
    assert capsys.readouterr().out.strip() == str(tmp_path / "libs-here")
    with pytest.raises(SystemExit):
        kafka_local.main(["run", "--port", "not-a-port"])


def test_without_sasl_nothing_changes_and_with_it_every_client_must_authenticate(tmp_path: Path) -> None:
    plain = LocalKafka(tmp_path, 29092, 29093).server_properties()
    assert not any(k.startswith(("sasl.", "listener.name.", "authorizer.", "super.")) for k in plain)
    sasl = kafka_local.LocalSasl("SCRAM-SHA-256", "root", "s3cret-pw")
    ours = LocalKafka(tmp_path, 29092, 29093, sasl=sasl).server_properties()
    # No PLAINTEXT listener is left for a client to slip in by.
    assert ours["listeners"] == "SASL_PLAINTEXT://127.0.0.1:29092,CONTROLLER://127.0.0.1:29093"
    assert ours["listener.security.protocol.map"] == "CONTROLLER:SASL_PLAINTEXT,SASL_PLAINTEXT:SASL_PLAINTEXT"
    assert ours["sasl.enabled.mechanisms"] == ours["sasl.mechanism.inter.broker.protocol"] == "SCRAM-SHA-256"
    assert ours["authorizer.class.name"] == "org.apache.kafka.metadata.authorizer.StandardAuthorizer"
    assert ours["allow.everyone.if.no.acl.found"] == "false"
    assert ours["super.users"] == "User:root;User:controller"
    assert 'username="root" password="s3cret-pw"' in ours["listener.name.sasl_plaintext.scram-sha-256.sasl.jaas.config"]


def test_the_sasl_config_file_is_private_and_the_admin_password_is_never_on_a_command_line(tmp_path: Path) -> None:
    sasl = kafka_local.LocalSasl("SCRAM-SHA-512", "root", "s3cret-pw")
    assert "s3cret-pw" not in repr(sasl)
    kafka = LocalKafka(tmp_path, 29092, 29093, sasl=sasl)
    kafka._write_config()
    assert kafka.config_path.stat().st_mode & 0o777 == 0o600
    args = kafka._format_scram_args()
    assert "s3cret-pw" not in " ".join(args)
    fields = dict(part.split("=", 1) for part in args[1].removeprefix("SCRAM-SHA-512=[").removesuffix("]").split(","))
    salt = base64.b64decode(fields["salt"].strip('"'))
    # What the storage tool is given is the password's SCRAM form, as the broker will check it.
    assert base64.b64decode(fields["saltedpassword"].strip('"')) == kafka_local.scram_salted_password(
        "SCRAM-SHA-512", "s3cret-pw", salt, int(fields["iterations"]))
    assert fields["name"] == "root" and LocalKafka(tmp_path, 29092)._format_scram_args() == []


@pytest.mark.parametrize("bad", [{"mechanism": "PLAIN"}, {"admin_password": ""}, {"admin_password": 'a"b'},
                                 {"admin_username": "a,b"}, {"admin_password": "a=b"}])
def test_local_sasl_refuses_what_a_jaas_line_or_the_storage_tool_would_misread(bad: dict[str, str]) -> None:
    with pytest.raises(KafkaLocalError):
        kafka_local.LocalSasl(**{"admin_password": "ok-pw", **bad})
