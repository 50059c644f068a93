"""Fetch, format and run Apache Kafka locally, without Docker: one KRaft broker+controller.

The jars come from Maven (``junction/kafka/pom.xml``, the one place the version lives) into
``<home>/libs``; the data lives in ``<home>/data`` and survives restarts.

    python -m junction.kafka_local run [--port 19092] [--home .junction/kafka] [--sasl]
    python -m junction.kafka_local fetch [--home .junction/kafka]

With ``--sasl`` (``LocalKafka(sasl=LocalSasl(...))``) clients must authenticate with SCRAM and the
StandardAuthorizer denies whatever no ACL allows; docs/kafka-security.md.
"""
from __future__ import annotations

import argparse
import asyncio
import base64
import fcntl
import hashlib
import logging
import os
import secrets
import shutil
import signal
import subprocess
import sys
import time
import uuid
import xml.etree.ElementTree as ET
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import KafkaError

from core.settings import InvalidConfiguration, load_settings
from junction.broker import PortTaken, check_port_free, die_with_parent

__all__ = [
    "DEFAULT_HOME", "DEFAULT_PORT", "KAFKA_VERSION", "POM", "KafkaLocalError", "LocalKafka", "LocalSasl",
    "fetch", "main", "scram_salted_password",
]

log = logging.getLogger(__name__)

POM = Path(__file__).resolve().parent / "kafka" / "pom.xml"  # package data: an installed junction has it too
DEFAULT_HOME = Path(".junction/kafka")
DEFAULT_PORT = 19092
_POM_NS = {"m": "http://maven.apache.org/POM/4.0.0"}


class KafkaLocalError(RuntimeError):
    """The local Kafka could not be fetched, formatted or started."""


def _pom_version(pom: Path = POM) -> str:
    version = ET.parse(pom).getroot().findtext("m:properties/m:kafka.version", namespaces=_POM_NS)
    if not version:
        raise KafkaLocalError(f"{pom} has no <kafka.version> property")
    return version.strip()


KAFKA_VERSION: str = _pom_version()


def _tool(name: str) -> str:
    if name == "java" and os.environ.get("JAVA_HOME"):
        candidate = Path(os.environ["JAVA_HOME"]) / "bin" / "java"
        if os.access(candidate, os.X_OK):
            return str(candidate)
    path = shutil.which(name)
    if path is None:
        what = "a JDK 17+ (java)" if name == "java" else "Apache Maven (mvn)"
        raise KafkaLocalError(f"{name} is not on PATH: the local Kafka needs {what}")
    return path


def fetch(home: Path = DEFAULT_HOME, pom: Path = POM) -> Path:
    """Return ``<home>/libs`` holding every jar the pom lists; runs mvn only when the pom changed."""
    home = Path(home).absolute()  # mvn resolves a relative outputDirectory against the pom's folder
    home.mkdir(parents=True, exist_ok=True)
    libs, stamp = home / "libs", home / "libs.stamp"
    digest = hashlib.sha256(pom.read_bytes()).hexdigest()
    # Parallel test processes may fetch at once; one runs mvn, the others then see its stamp.
    with open(home / ".fetch.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if libs.is_dir() and stamp.exists() and stamp.read_text().strip() == digest:
            return libs
        _tool("java")  # fail now, not after a download, when there is no JVM to run it on
        mvn = _tool("mvn")
        # Into a fresh directory, swapped in whole: copy-dependencies over old jars would leave two
        # Kafka versions on the classpath, and an interrupted fetch must not look complete.
        staging = home / "libs.tmp"
        shutil.rmtree(staging, ignore_errors=True)
        log.info("fetching Apache Kafka %s with Maven into %s", _pom_version(pom), libs)
        cmd = [mvn, "-q", "-B", "-f", str(pom), "dependency:copy-dependencies", f"-DoutputDirectory={staging}"]
        # Captured: Maven 3.8's -q still prints stray colour codes; its output matters only on failure.
        done = subprocess.run(cmd, stdin=subprocess.DEVNULL, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            raise KafkaLocalError(f"{' '.join(cmd)} failed with exit code {done.returncode}:\n{done.stdout}{done.stderr}")
        shutil.rmtree(libs, ignore_errors=True)
        staging.rename(libs)
        stamp.write_text(digest + "\n")
    return libs


_SCRAM_HASHES = {"SCRAM-SHA-256": "sha256", "SCRAM-SHA-512": "sha512"}
# Kafka refuses fewer than 4096 iterations; 8192 is what its own tools use.
SCRAM_ITERATIONS = 8192


def scram_salted_password(mechanism: str, password: str, salt: bytes, iterations: int = SCRAM_ITERATIONS) -> bytes:
    """RFC 5802's SaltedPassword, Hi(password, salt, i): what Kafka stores instead of the password."""
    if mechanism not in _SCRAM_HASHES:
        raise KafkaLocalError(f"{mechanism!r} is not one of {sorted(_SCRAM_HASHES)}")
    return hashlib.pbkdf2_hmac(_SCRAM_HASHES[mechanism], password.encode(), salt, iterations)


@dataclass(frozen=True)
class LocalSasl:
    """SASL/SCRAM with ACLs for a LocalKafka: the admin is a super user, added when the storage is formatted.

    The controller listener authenticates with SASL/PLAIN as a super user of its own, whose password is
    made afresh on every start: SCRAM cannot serve it (the controller would need the metadata log, which
    holds the SCRAM credentials, before it can read them).
    """

    mechanism: str = "SCRAM-SHA-512"
    admin_username: str = "admin"
    admin_password: str = field(default="", repr=False)

    def __post_init__(self) -> None:
        if self.mechanism not in _SCRAM_HASHES:
            raise KafkaLocalError(f"LocalSasl: {self.mechanism!r} is not one of {sorted(_SCRAM_HASHES)}")
        for value in (self.admin_username, self.admin_password):
            # Both go into a JAAS line and a StorageTool argument, which quote with '"' and split on ',' and '='.
            if not value or any(c in value for c in '"\\,=[] \n'):
                raise KafkaLocalError("LocalSasl: the admin's name and password must be non-empty, without quotes, "
                                      "backslashes, commas, '=', brackets or spaces")

    def client_kwargs(self) -> dict[str, Any]:
        """aiokafka's arguments to connect as the admin."""
        return {"security_protocol": "SASL_PLAINTEXT", "sasl_mechanism": self.mechanism,
                "sasl_plain_username": self.admin_username, "sasl_plain_password": self.admin_password}


def _new_cluster_id() -> str:
    # Kafka's Uuid.randomUuid(): 16 random bytes, URL-safe base64 without padding, never starting
    # with '-' (it would read as a command-line option).
    while True:
        cid = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        if not cid.startswith("-"):
            return cid


def _parent_of(pid: int) -> int | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return int(stat.rsplit(")", 1)[1].split()[1])  # after "pid (comm) state": the parent's pid


_LOG4J2 = """\
# Written by junction/kafka_local.py on every start.
status = warn
# Log4j's own shutdown hook would stop logging before Kafka's has logged its shutdown.
shutdownHook = disable
appender.console.type = Console
appender.console.name = CONSOLE
appender.console.target = SYSTEM_ERR
appender.console.layout.type = PatternLayout
appender.console.layout.pattern = [kafka %d{{HH:mm:ss}}] %p %m (%c)%n
appender.console.filter.threshold.type = ThresholdFilter
appender.console.filter.threshold.level = warn
appender.file.type = RollingFile
appender.file.name = FILE
appender.file.fileName = {logs}/server.log
appender.file.filePattern = {logs}/server.log.%i
appender.file.layout.type = PatternLayout
appender.file.layout.pattern = [%d] %p %m (%c)%n
appender.file.policies.type = Policies
appender.file.policies.size.type = SizeBasedTriggeringPolicy
appender.file.policies.size.size = 20MB
appender.file.strategy.type = DefaultRolloverStrategy
appender.file.strategy.max = 3
rootLogger.level = info
rootLogger.appenderRef.console.ref = CONSOLE
rootLogger.appenderRef.file.ref = FILE
"""


class LocalKafka:
    """One Apache Kafka process on loopback, combined KRaft broker and controller, data under ``home``.

    Call ``start()`` from a long-lived thread (normally the main one): Linux delivers the
    die-with-parent signal when the *thread* that started the child exits.
    """

    def __init__(
        self,
        home: Path = DEFAULT_HOME,
        port: int = DEFAULT_PORT,
        controller_port: int | None = None,
        overrides: Mapping[str, object] | None = None,
        libs: Path | None = None,
        heap: str = "512m",
        sasl: LocalSasl | None = None,
    ) -> None:
        self.home = Path(home).absolute()
        self.port = port
        self.controller_port = controller_port if controller_port is not None else port + 1
        self.overrides = dict(overrides or {})
        self.libs = libs
        self.heap = heap
        self.sasl = sasl
        # The controller listener's own PLAIN password (with sasl): only in server.properties, new each start.
        self._controller_password = secrets.token_urlsafe(24)
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def data_dir(self) -> Path:
        return self.home / "data"

    @property
    def config_path(self) -> Path:
        return self.home / "server.properties"

    @property
    def log_file(self) -> Path:
        return self.home / "logs" / "server.log"

    @property
    def _pid_file(self) -> Path:
        return self.home / "kafka.pid"

    def server_properties(self) -> dict[str, str]:
        """The broker's configuration: infra/docker-compose.yml's kafka service, on loopback ports."""
        props: dict[str, object] = {
            "process.roles": "broker,controller",
            "node.id": 1,
            "listeners": f"PLAINTEXT://127.0.0.1:{self.port},CONTROLLER://127.0.0.1:{self.controller_port}",
            "advertised.listeners": f"PLAINTEXT://127.0.0.1:{self.port}",
            "controller.listener.names": "CONTROLLER",
            "listener.security.protocol.map": "CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT",
            # A static voter: the controller's address is not written into the formatted storage
            # (as it is with controller.quorum.bootstrap.servers), so the ports can change between runs.
            "controller.quorum.voters": f"1@127.0.0.1:{self.controller_port}",
            "log.dirs": str(self.data_dir),
            "offsets.topic.replication.factor": 1,
            "transaction.state.log.replication.factor": 1,
            "transaction.state.log.min.isr": 1,
            "group.initial.rebalance.delay.ms": 0,
            "auto.create.topics.enable": False,
            "message.max.bytes": 16777216,
        }
        if self.sasl is not None:
            props.update(self._sasl_properties(self.sasl))
        props.update(self.overrides)
        return {k: (str(v).lower() if isinstance(v, bool) else str(v)) for k, v in props.items()}

    def _sasl_properties(self, sasl: LocalSasl) -> dict[str, object]:
        """Clients on SASL_PLAINTEXT with SCRAM, the controller on SASL/PLAIN, and nothing allowed without an ACL."""
        mech = sasl.mechanism.lower()
        return {
            "listeners": f"SASL_PLAINTEXT://127.0.0.1:{self.port},CONTROLLER://127.0.0.1:{self.controller_port}",
            "advertised.listeners": f"SASL_PLAINTEXT://127.0.0.1:{self.port}",
            "listener.security.protocol.map": "CONTROLLER:SASL_PLAINTEXT,SASL_PLAINTEXT:SASL_PLAINTEXT",
            "inter.broker.listener.name": "SASL_PLAINTEXT",
            "sasl.enabled.mechanisms": sasl.mechanism,
            "sasl.mechanism.inter.broker.protocol": sasl.mechanism,
            # The broker's own connections to itself authenticate as the admin.
            f"listener.name.sasl_plaintext.{mech}.sasl.jaas.config":
                f'org.apache.kafka.common.security.scram.ScramLoginModule required '
                f'username="{sasl.admin_username}" password="{sasl.admin_password}";',
            "sasl.mechanism.controller.protocol": "PLAIN",
            "listener.name.controller.sasl.enabled.mechanisms": "PLAIN",
            "listener.name.controller.plain.sasl.jaas.config":
                f'org.apache.kafka.common.security.plain.PlainLoginModule required username="controller" '
                f'password="{self._controller_password}" user_controller="{self._controller_password}";',
            "authorizer.class.name": "org.apache.kafka.metadata.authorizer.StandardAuthorizer",
            "allow.everyone.if.no.acl.found": False,
            "super.users": f"User:{sasl.admin_username};User:controller",
        }

    def _java(self, main_class: str, *args: str, heap: str) -> list[str]:
        assert self.libs is not None
        return [
            _tool("java"), f"-Xmx{heap}", "-XX:+UseG1GC", "-XX:MaxGCPauseMillis=20", "-Djava.awt.headless=true",
            f"-Dlog4j2.configurationFile={self.home / 'log4j2.properties'}",
            "-cp", str(self.libs / "*"), main_class, *args,
        ]

    def _write_config(self) -> None:
        self.log_file.parent.mkdir(parents=True, exist_ok=True)
        lines = [f"{k}={v}" for k, v in self.server_properties().items()]
        # With SASL it holds the broker's own passwords: readable by this user only, from its creation on.
        fd = os.open(self.config_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as out:
            out.write("# Written by junction/kafka_local.py on every start.\n" + "\n".join(lines) + "\n")
        os.chmod(self.config_path, 0o600)  # a file an older version wrote keeps its mode otherwise
        (self.home / "log4j2.properties").write_text(_LOG4J2.format(logs=self.log_file.parent))

    def _format_once(self) -> None:
        if (self.data_dir / "meta.properties").exists():
            return
        id_file = self.home / "cluster.id"
        if not id_file.exists():
            id_file.write_text(_new_cluster_id() + "\n")
        cmd = self._java(
            "kafka.tools.StorageTool", "format", "--cluster-id", id_file.read_text().strip(),
            "--config", str(self.config_path), "--ignore-formatted", *self._format_scram_args(), heap="256m",
        )
        done = subprocess.run(cmd, stdin=subprocess.DEVNULL, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            raise KafkaLocalError(f"formatting {self.data_dir} failed:\n{done.stdout}{done.stderr}")

    def _format_scram_args(self) -> list[str]:
        """The admin's SCRAM credential for the metadata log, as salt and salted password: the password itself
        never appears on a command line, where any local user could read it."""
        if self.sasl is None:
            return []
        salt = secrets.token_bytes(16)
        salted = scram_salted_password(self.sasl.mechanism, self.sasl.admin_password, salt)
        b64 = base64.b64encode
        return ["--add-scram", (f'{self.sasl.mechanism}=[name={self.sasl.admin_username},iterations={SCRAM_ITERATIONS},'
                f'salt="{b64(salt).decode()}",saltedpassword="{b64(salted).decode()}"]')]

    def _our_kafka(self, pid: int) -> bool:
        """Whether ``pid`` is a Kafka running this home's config (not a reused pid, not a zombie)."""
        try:
            argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        except OSError:
            return False
        return b"kafka.Kafka" in argv and str(self.config_path).encode() in argv

    def _clear_leftover(self) -> None:
        """Stop a Kafka that a killed earlier run left on this home: it holds the ports and the data.

        The pid file names the Kafka and the process that started it. While that process is still
        its parent, the Kafka is someone's live broker, not a leftover, and is left alone.
        """
        try:
            pid, owner = (int(x) for x in self._pid_file.read_text().split())
        except (OSError, ValueError):
            return
        if self._our_kafka(pid):
            if _parent_of(pid) == owner:
                raise KafkaLocalError(f"Kafka (pid {pid}) already runs on {self.home}, started by pid {owner}")
            log.warning("stopping a leftover Kafka (pid %s) from an earlier run", pid)
            for sig, wait_s in ((signal.SIGTERM, 30.0), (signal.SIGKILL, 10.0)):
                try:
                    os.kill(pid, sig)
                except ProcessLookupError:
                    break
                until = time.monotonic() + wait_s
                while self._our_kafka(pid) and time.monotonic() < until:
                    time.sleep(0.1)
                if not self._our_kafka(pid):
                    break
        self._pid_file.unlink(missing_ok=True)

    def start(self) -> None:
        """Fetch if needed, write the config, format storage on first use, and start the broker."""
        self.home.mkdir(parents=True, exist_ok=True)
        self._clear_leftover()
        check_port_free(self.port, "Apache Kafka", "--port")  # before a fetch, which may take minutes
        check_port_free(self.controller_port, "Apache Kafka's controller", "--controller-port")
        if self.libs is None:
            self.libs = fetch(self.home)
        self._write_config()
        self._format_once()
        self.process = subprocess.Popen(
            self._java("kafka.Kafka", str(self.config_path), heap=self.heap),
            stdin=subprocess.DEVNULL,
            # Its own process group, so a Ctrl-C to ours reaches it only through stop().
            start_new_session=True,
            preexec_fn=die_with_parent,
        )
        self._pid_file.write_text(f"{self.process.pid} {os.getpid()}\n")
        log.info("Apache Kafka %s (pid %s) on %s, data in %s", KAFKA_VERSION, self.process.pid, self.bootstrap, self.data_dir)

    async def wait_ready(self, timeout_s: float = 120.0) -> None:
        """Return once the broker answers a client's metadata request (a TCP accept is not enough).

        The generous default is for a loaded 2-core machine, where the JVM's start-up alone has
        taken 40s; a Kafka that exits fails this at once instead.
        """
        loop = asyncio.get_running_loop()
        until = loop.time() + timeout_s
        while True:
            if self.process is not None and self.process.poll() is not None:
                raise KafkaLocalError(f"Kafka exited with {self.process.returncode}; see {self.log_file}")
            admin = AIOKafkaAdminClient(bootstrap_servers=self.bootstrap, request_timeout_ms=5000,
                                        **(self.sasl.client_kwargs() if self.sasl else {}))
            try:
                # A bare connect first: aiokafka logs an error for every refused bootstrap.
                _, writer = await asyncio.open_connection("127.0.0.1", self.port)
                writer.close()
                await writer.wait_closed()
                await admin.start()
                await admin.list_topics()
                return
            except (KafkaError, OSError, TimeoutError) as exc:
                if loop.time() > until:
                    raise TimeoutError(f"Kafka on {self.bootstrap} not ready within {timeout_s}s; see {self.log_file}") from exc
                await asyncio.sleep(0.25)
            finally:
                await admin.close()

    def stop(self, timeout_s: float = 30.0) -> None:
        """Shut down cleanly (SIGTERM: Kafka flushes and closes its logs), SIGKILL if it hangs."""
        if self.process is None:
            return  # never started here: the pid file, if any, is another run's
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                log.warning("Kafka did not stop within %ss; killing it", timeout_s)
                self.process.kill()
                self.process.wait(timeout=10)
        self.process = None
        self._pid_file.unlink(missing_ok=True)

    def kill(self) -> None:
        """SIGKILL, as a crash would: no flush; the pid file stays, as after a real crash."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=10)
        self.process = None


def _sasl_from_settings() -> LocalSasl:
    """The admin of ``run --sasl``: the credentials `junction kafka-acl` then connects with."""
    settings = load_settings()
    if not settings.kafka_sasl_username or not settings.kafka_sasl_password:
        raise KafkaLocalError("--sasl needs the admin's JUNCTION_KAFKA_SASL_USERNAME and JUNCTION_KAFKA_SASL_PASSWORD")
    return LocalSasl(settings.kafka_sasl_mechanism, settings.kafka_sasl_username, settings.kafka_sasl_password)


class _Interrupted(Exception):
    pass


def _on_signal(signum: int, _frame: object) -> None:
    # Only the first signal interrupts; a second Ctrl-C must not cut the clean shutdown short.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    raise _Interrupted(signum)


def _run(kafka: LocalKafka) -> int:
    signal.signal(signal.SIGINT, _on_signal)
    signal.signal(signal.SIGTERM, _on_signal)
    try:
        t0 = time.monotonic()
        kafka.start()
        asyncio.run(kafka.wait_ready())
        print(
            f"Apache Kafka {KAFKA_VERSION} is ready on {kafka.bootstrap} ({time.monotonic() - t0:.1f}s)\n"
            f"  data: {kafka.data_dir}\n  log:  {kafka.log_file}\n"
            f"Use it:  KAFKA_BOOTSTRAP_SERVERS={kafka.bootstrap} make run   (or make test)\n"
            "Ctrl-C stops it.",
            flush=True,
        )
        assert kafka.process is not None
        code = kafka.process.wait()
        print(f"Kafka exited by itself with {code}; see {kafka.log_file}", file=sys.stderr)
        return code or 1
    except _Interrupted:
        print("stopping Kafka...", file=sys.stderr, flush=True)
        return 0
    finally:
        kafka.stop()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m junction.kafka_local",
                                     description="Run Apache Kafka locally (KRaft, no Docker).")
    sub = parser.add_subparsers(dest="command", required=True)
    run_p = sub.add_parser("run", help="fetch, format and run Kafka in the foreground until Ctrl-C")
    run_p.add_argument("--port", type=int, default=DEFAULT_PORT, help="client port (default %(default)s)")
    run_p.add_argument("--controller-port", type=int, default=None, help="KRaft controller port (default: port + 1)")
    run_p.add_argument("--sasl", action="store_true",
                       help="SASL/SCRAM and ACLs; the admin is JUNCTION_KAFKA_SASL_USERNAME/_PASSWORD with "
                            "JUNCTION_KAFKA_SASL_MECHANISM (docs/kafka-security.md); on a home formatted without it, "
                            "the admin has no credential")
    fetch_p = sub.add_parser("fetch", help="download Kafka's jars with Maven")
    for p in (run_p, fetch_p):
        p.add_argument("--home", type=Path, default=DEFAULT_HOME, help="jars, config and data (default %(default)s)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    try:
        if args.command == "fetch":
            print(fetch(args.home))
            return 0
        sasl = _sasl_from_settings() if args.sasl else None
        return _run(LocalKafka(args.home, port=args.port, controller_port=args.controller_port, sasl=sasl))
    except (KafkaLocalError, PortTaken, InvalidConfiguration) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
