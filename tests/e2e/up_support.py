"""Running `junction up` as a user would, in a test: its own ports, data folder, topic and group names."""
from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from core.settings import Settings
from junction.broker import free_port

PORT_NAMES = ("INGRESS", "CONTROL", "PROCESSORS", "EGRESS", "DEMO_UPSTREAM", "EMBEDDED_BROKER", "EMBEDDED_POSTGRES",
              "EMBEDDED_REDIS", "INGRESS_METRICS", "CONTROL_METRICS", "PROCESSORS_METRICS", "EGRESS_METRICS")
ADMIN_EMAIL = "ops@example.com"
ADMIN_PASSWORD = "a-long-password"


@dataclass
class UpEnv:
    env: dict[str, str]
    ports: dict[str, int]
    data_dir: str
    extra: list[str] = field(default_factory=list)
    pid: int = 0  # of the running `junction up`, once started

    @property
    def ingress(self) -> str:
        return f"http://127.0.0.1:{self.ports['INGRESS']}"

    @property
    def control(self) -> str:
        return f"http://127.0.0.1:{self.ports['CONTROL']}"

    def start(self, *args: str, log: Path | None = None) -> subprocess.Popen[bytes]:
        """``junction up ARGS``; its output is piped, or appended to ``log`` (a long run would fill a pipe)."""
        out = open(log, "ab") if log else subprocess.PIPE
        try:
            proc = subprocess.Popen([sys.executable, "-m", "junction", "up", *args], env=self.env,
                                    stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT)
            self.pid = proc.pid
            return proc
        finally:
            if log:
                out.close()  # the child holds its own copy


def up_env(settings: Settings, **overrides: str) -> UpEnv:
    """The environment of a `junction up` of the test's own: nothing inherited from the suite's JUNCTION_*
    settings except the broker, when the suite runs on an external Kafka."""
    run = uuid.uuid4().hex[:8]
    ports = {name: free_port() for name in PORT_NAMES}
    data_dir = tempfile.mkdtemp(prefix="junction-up-")
    os.chmod(data_dir, 0o755)  # our own folder; the embedded PostgreSQL may run as nobody
    env = {k: v for k, v in os.environ.items() if not k.startswith("JUNCTION_") and k != "KAFKA_BOOTSTRAP_SERVERS"}
    env.update({f"JUNCTION_{name}_PORT": str(port) for name, port in ports.items()})
    env.update({
        "JUNCTION_TOPIC_PREFIX": f"up{run}", "JUNCTION_GROUP_PREFIX": f"up{run}",
        "JUNCTION_ALLOW_PRIVATE_TARGETS": "1", "JUNCTION_ADMIN_EMAIL": ADMIN_EMAIL,
        "JUNCTION_ADMIN_PASSWORD": ADMIN_PASSWORD, "JUNCTION_DATA_DIR": data_dir,
        "JUNCTION_LOG_LEVEL": "WARNING",
    })
    if settings.broker.name == "kafka":
        env["KAFKA_BOOTSTRAP_SERVERS"] = settings.kafka_bootstrap_servers  # the suite runs on an external Kafka
    env.update(overrides)
    return UpEnv(env, ports, data_dir)


def service_pid(root: int, service: str, pids: list[int]) -> int:
    """The pid of `junction serve <service>` among ``pids`` (the descendants of ``root``)."""
    for pid in pids:
        try:
            cmd = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if cmd[-3:-1] == [b"serve", service.encode()] or cmd[-2:] == [b"serve", service.encode()]:
            return pid
    raise LookupError(f"no {service} under {root}")
