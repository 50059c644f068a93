"""``junction up``: the broker and every service under one supervising command.

Each service runs as a child process (``junction serve <name>``) with the
settings passed through the environment. A child that dies is restarted with
backoff. SIGINT or SIGTERM stops every child, then the broker.
"""
from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field

import aiohttp

from core.http import HttpLimits
from core.kafka import ensure_topics, wait_for_broker
from core.sealing import resolve_seal_key
from core.settings import InvalidConfiguration, Settings
from junction.broker import EmbeddedBroker, check_port_free, die_with_parent
from junction.embedded_stores import EmbeddedStores, StoreStartError

__all__ = ["Child", "check_ports", "up"]

log = logging.getLogger("junction.up")


@dataclass
class Child:
    name: str
    env: dict[str, str]
    health_url: str | None
    process: subprocess.Popen[bytes] | None = None
    restarts: list[float] = field(default_factory=list)
    # Not needed to serve (the demo upstream): crash-looping, it is left down instead of taking the rest along.
    essential: bool = True
    given_up: bool = False

    def start(self) -> None:
        self.process = subprocess.Popen([sys.executable, "-m", "junction", "serve", self.name], env=self.env,
                                        stdin=subprocess.DEVNULL, preexec_fn=die_with_parent)
        log.info("started %s (pid %s)", self.name, self.process.pid)

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def terminate(self) -> None:
        if self.alive():
            assert self.process is not None
            self.process.send_signal(signal.SIGTERM)

    def wait(self, timeout: float) -> None:
        if self.process is None:
            return
        try:
            self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=5)


async def _wait_ready(children: list[Child], timeout_s: float = 60.0) -> None:
    until = time.monotonic() + timeout_s
    async with aiohttp.ClientSession() as session:
        for child in children:
            if child.health_url is None:
                continue
            while True:
                if not child.alive():
                    raise RuntimeError(f"{child.name} exited during start-up")
                try:
                    async with session.get(child.health_url, timeout=aiohttp.ClientTimeout(total=2)) as resp:
                        if resp.status == 200:
                            break
                except (aiohttp.ClientError, asyncio.TimeoutError):
                    pass
                if time.monotonic() > until:
                    raise TimeoutError(f"{child.name} was not ready within {timeout_s}s ({child.health_url})")
                await asyncio.sleep(0.2)


def _ports(settings: Settings, demo: bool) -> list[tuple[int, str, str]]:
    """(port, what listens there, the variable that moves it) for everything `junction up` starts."""
    ports = [
        (settings.ingress_port, "ingress", "JUNCTION_INGRESS_PORT"),
        (settings.control_port, "the management API", "JUNCTION_CONTROL_PORT"),
        (settings.processors_port, "processors' health", "JUNCTION_PROCESSORS_PORT"),
        (settings.egress_port, "egress' health", "JUNCTION_EGRESS_PORT"),
    ]
    for service in ("ingress", "control", "processors", "egress"):
        port = getattr(settings, f"{service}_metrics_port")
        if port:  # 0: that service serves no /metrics
            ports.append((port, f"{service} metrics", f"JUNCTION_{service.upper()}_METRICS_PORT"))
    if demo:
        ports.append((settings.demo_upstream_port, "the demo upstream", "JUNCTION_DEMO_UPSTREAM_PORT"))
    if settings.uses_embedded_broker:
        ports.append((settings.embedded_broker_port, "the embedded broker", "JUNCTION_EMBEDDED_BROKER_PORT"))
    return ports


def check_ports(settings: Settings, demo: bool) -> None:
    """Refuse to start, naming the port and its variable, when a port is taken (say, by a `junction up`
    already running) or given twice. A child that cannot bind would otherwise crash-loop while the health
    checks reach whatever holds the port. The embedded PostgreSQL and Redis check their own ports."""
    stores = []
    if settings.uses_embedded_postgres:
        stores.append((settings.embedded_postgres_port, "the embedded PostgreSQL", "JUNCTION_EMBEDDED_POSTGRES_PORT"))
    if settings.uses_embedded_redis:
        stores.append((settings.embedded_redis_port, "the embedded Redis", "JUNCTION_EMBEDDED_REDIS_PORT"))
    seen: dict[int, tuple[str, str]] = {}
    for port, what, variable in [*_ports(settings, demo), *stores]:
        if port in seen:
            other, other_variable = seen[port]
            raise StoreStartError(f"port {port} is given to both {other} ({other_variable}) and {what} ({variable}); "
                                  "choose another for one of them")
        seen[port] = (what, variable)
    for port, what, variable in _ports(settings, demo):
        check_port_free(port, what, variable)


async def _supervise(settings: Settings, demo: bool) -> int:
    HttpLimits.from_settings(settings)  # bad values stop us here, not in every child
    check_ports(settings, demo)  # before anything starts
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)

    broker: EmbeddedBroker | None = None
    stores = EmbeddedStores(settings)
    children: list[Child] = []
    try:
        await stores.start()
        settings = stores.apply(settings)
        if settings.uses_embedded_broker:
            broker = EmbeddedBroker(settings.embedded_broker_port)
            broker.start()
            await broker.wait_ready()
        await wait_for_broker(settings)
        created = await ensure_topics(settings)
        if created:
            log.info("created topics: %s", ", ".join(created))
        settings = await resolve_seal_key(settings)  # every child seals and opens with the same key
        admin_email, admin_line = await _prepare_control(settings)
        print(admin_line, flush=True)  # now, in case start-up fails later: a generated password is shown once

        env = {**os.environ, **settings.to_env()}
        host = settings.ingress_host
        names = [
            ("control", f"http://{settings.control_host}:{settings.control_port}/readyz"),
            ("egress", f"http://{host}:{settings.egress_port}/readyz"),
            ("processors", f"http://{host}:{settings.processors_port}/readyz"),
            ("ingress", f"http://{host}:{settings.ingress_port}/readyz"),
        ]
        if demo:
            names.insert(0, ("demo-upstream", f"http://{host}:{settings.demo_upstream_port}/healthz"))
        # Each child's own stable instance id: restarted, it rejoins its consumer groups as the same
        # static member and takes back its partitions at once (core/kafka.py).
        children = [Child(name, {**env, "JUNCTION_INSTANCE_ID": _instance_id(settings, name)}, url,
                          essential=name != "demo-upstream") for name, url in names]
        for child in children:
            child.start()
        await _wait_ready(children)
        if demo:
            from junction.demo_setup import create_demo

            await create_demo(settings, admin_email)
        _banner(settings, demo, admin_line)

        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(1.0):
                    await stop.wait()
            for child in children:
                if not stop.is_set() and not child.given_up and not child.alive():
                    _restart(child)
            # Nothing serves without them, and restarting one behind the services' backs would not do: the
            # memory-only broker comes back without topics. Exiting non-zero hands it to whatever runs us.
            gone = stores.exited() or _broker_exited(broker)
            if gone and not stop.is_set():
                raise RuntimeError(f"{gone}; Junction cannot serve without it, so everything stops (start it again)")
        return 0
    finally:
        log.info("stopping")
        for child in reversed(children):
            child.terminate()
        for child in reversed(children):
            child.wait(timeout=15)
        if broker is not None:
            broker.stop()
        stores.stop()


def _instance_id(settings: Settings, service: str) -> str:
    """Unique per host and `junction up` (two cannot share the ports), stable across restarts."""
    if settings.instance_id:
        return f"{settings.instance_id}-{service}"
    return f"{socket.gethostname()}-{settings.ingress_port}-{service}"


def _broker_exited(broker: EmbeddedBroker | None) -> str | None:
    if broker is not None and broker.process is not None and broker.process.poll() is not None:
        return f"the embedded broker exited with {broker.process.returncode}"
    return None


def _restart(child: Child) -> None:
    now = time.monotonic()
    child.restarts = [t for t in child.restarts if now - t < 60]
    code = child.process.returncode if child.process else None
    if len(child.restarts) >= 5:
        if child.essential:
            raise RuntimeError(f"{child.name} died {len(child.restarts)} times in a minute (last exit {code}); giving up")
        log.error("%s died %d times in a minute (last exit %s); it is left down, and the rest keeps serving",
                  child.name, len(child.restarts), code)
        child.given_up = True
        return
    log.warning("%s exited with %s; restarting", child.name, code)
    child.restarts.append(now)
    child.start()


async def _prepare_control(settings: Settings) -> tuple[str, str]:
    """Apply migrations, make sure a global admin exists, and refuse a topic prefix that another installation
    uses (control/installation.py: raised here, `junction up` prints it as one line before any child starts);
    returns (email, a line to print)."""
    from control.admin import ensure_admin
    from control.installation import check_topic_prefix, installation_id
    from control.migrate import apply_migrations
    from core.db import make_pool

    pool = await make_pool(settings, max_size=1)
    try:
        await apply_migrations(pool)
        own = await installation_id(pool)
    finally:
        await pool.close()
    # Before the admin is made: a refused start shows no generated password that would then be lost.
    await check_topic_prefix(settings, own)  # ForeignInstallation, a RuntimeError: `up` prints it, exits 1
    email, password = await ensure_admin(settings)
    if password:
        return email, f"Global admin: {email}  password: {password}  (set JUNCTION_ADMIN_EMAIL/JUNCTION_ADMIN_PASSWORD to choose)"
    return email, f"Global admin: {email} (password as set before; to set a new one: junction admin reset-password {email})"


def _banner(settings: Settings, demo: bool, admin_line: str) -> None:
    ingress = f"http://{settings.ingress_host}:{settings.ingress_port}"
    control = f"http://{settings.control_host}:{settings.control_port}"
    lines = [
        "",
        "Junction is up.",
        f"  ingress:   {ingress}   (health: {ingress}/readyz)",
        f"  control:   {control}/api/v1   (OpenAPI: {control}/api/v1/openapi.json)",
        f"  metrics:   {_metrics_line(settings)}",
        f"  broker:    {settings.bootstrap_servers} ({'embedded' if settings.uses_embedded_broker else 'external'})",
        f"  database:  {settings.database_dsn}",
        f"  redis:     {settings.redis_dsn}",
        f"  {admin_line}",
    ]
    if demo:
        lines += [
            "",
            "Try the demo:",
            f"  curl -s '{ingress}/demo/echo?x=1' -d hello",
            f"  curl -s {ingress}/demo/orders/A-42          # REST in, SOAP out, through a connector script",
            "  (loopback targets are allowed, for the demo upstream: JUNCTION_ALLOW_PRIVATE_TARGETS=0 turns the SSRF "
            "guard on)" if settings.allow_private_targets else
            "  (JUNCTION_ALLOW_PRIVATE_TARGETS is off: the SSRF guard refuses the demo upstream on loopback, so these "
            "answer 502 target_not_allowed)",
        ]
    lines += ["", "Ctrl-C stops everything.", ""]
    print("\n".join(lines), flush=True)


def _metrics_line(settings: Settings) -> str:
    served = [f"{service} http://{settings.metrics_host}:{port}/metrics"
              for service in ("ingress", "control", "processors", "egress")
              if (port := getattr(settings, f"{service}_metrics_port"))]
    return ", ".join(served) or "not served"


def up(settings: Settings, *, demo: bool = False) -> int:
    try:
        return asyncio.run(_supervise(settings, demo))
    except KeyboardInterrupt:
        return 0
    except (RuntimeError, TimeoutError, StoreStartError, InvalidConfiguration) as exc:
        print(f"junction up: {exc}", file=sys.stderr)
        return 1
