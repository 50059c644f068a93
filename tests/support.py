"""Helpers the end-to-end tests share: running services on loopback."""
from __future__ import annotations

import asyncio
import contextlib
import json
import os
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web

from control.outbox import publish_config_events
from core.kafka import make_producer
from schemas import encode
from core.settings import Settings
from core.snapshot import ConfigSnapshot
from core.http import SERVE_OPTIONS
from ingress.app import SNAPSHOT, create_app
from bench.procs import wait_http_ok  # one copy: bench may not import tests, tests may import bench
from junction.broker import die_with_parent, free_port

__all__ = ["IngressInstance", "ProcessorsProcess", "Stage", "alive", "descendants", "serving", "serving_handler", "wait_http_ok", "wait_until"]


@contextlib.asynccontextmanager
async def serving(app: web.Application, host: str = "127.0.0.1") -> AsyncIterator[str]:
    """Serve ``app`` on a free loopback port for the block; yields its base URL."""
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, host, port).start()
    try:
        yield f"http://{host}:{port}"
    finally:
        await runner.cleanup()


@contextlib.asynccontextmanager
async def serving_handler(handle: Callable[[web.Request], Awaitable[web.StreamResponse]]) -> AsyncIterator[str]:
    """``handle`` answering every method and path, served as :func:`serving` does; yields its base URL."""
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handle)
    async with serving(app) as url:
        yield url


@contextlib.asynccontextmanager
async def header_recorder(header: str) -> AsyncIterator[tuple[str, list[str]]]:
    """An upstream on loopback that answers ``{"ok": true}`` and records ``header`` of every call it
    receives (empty when absent); yields its base URL and the list of values, in arrival order."""
    seen: list[str] = []

    async def record(request: web.Request) -> web.Response:
        seen.append(request.headers.get(header, ""))
        return web.json_response({"ok": True})

    async with serving_handler(record) as url:
        yield url, seen


@dataclass
class ProcessorsProcess:
    settings: Settings
    process: subprocess.Popen[bytes] | None = None

    @property
    def log_file(self) -> Path:
        return Path(self.settings.data_dir) / f"processors-{self.settings.processors_port}.log"

    async def start(self) -> None:
        env = {**os.environ, **self.settings.to_env(), "JUNCTION_LOG_LEVEL": "WARNING"}
        with open(self.log_file, "ab") as out:  # tests read it (no credential may appear in any log)
            self.process = subprocess.Popen([sys.executable, "-m", "junction", "serve", "processors"], env=env,
                                            stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                                            preexec_fn=die_with_parent)
        await wait_http_ok(f"http://127.0.0.1:{self.settings.processors_port}/readyz", proc=self.process)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


@dataclass
class IngressInstance:
    settings: Settings
    port: int = field(default_factory=free_port)
    runner: web.AppRunner | None = None
    app: web.Application | None = None
    instance_id: str | None = None  # default: ingress-<random>

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def snapshot(self) -> ConfigSnapshot:
        assert self.app is not None
        return self.app[SNAPSHOT]

    async def start(self) -> None:
        self.app = create_app(self.settings, instance_id=self.instance_id)
        # As core.http.listening serves it: request bodies as sent when the app asks (ingress decodes them).
        self.runner = web.AppRunner(self.app, access_log=None, auto_decompress=not self.app[SERVE_OPTIONS].raw_bodies)
        await self.runner.setup()
        await web.TCPSite(self.runner, "127.0.0.1", self.port).start()

    async def stop(self) -> None:
        if self.runner is not None:
            await self.runner.cleanup()
            self.runner = None


class Stage:
    """Stages configuration the way the control plane's relay does: ConfigEvents on the config topic."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._producer = make_producer(settings)
        self._event_id = int(uuid.uuid4().int % 10**9)

    async def start(self) -> None:
        await self._producer.start()

    async def stop(self) -> None:
        await self._producer.stop()

    def _event(self, kind: str, doc: dict[str, Any] | None, id_: str, org: str, op: str = "upsert") -> dict[str, Any]:
        self._event_id += 1
        return {"event_id": self._event_id, "kind": kind, "id": id_, "org": org, "version": int((doc or {}).get("version", 0)),
                "op": op, "document": json.dumps(doc) if doc is not None else None}

    async def api(
        self, upstream_url: str, *, org: str | None = None, path: str = "/echo", methods: list[str] | None = None,
        timeout_ms: int = 5000, target_method: str = "*", version: int = 1, target: dict[str, Any] | None = None,
        script: str | None = None, retry: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        org = org or f"o{uuid.uuid4().hex[:8]}"
        org_id = str(uuid.uuid5(uuid.NAMESPACE_DNS, org))  # ids are uuids, as the control plane makes them
        api_id, conn_id = str(uuid.uuid4()), str(uuid.uuid4())
        connector = {"id": conn_id, "org": org, "name": "c", "version": version, "script": script,
                     "target": target or {"protocol": "rest", "url": upstream_url, "method": target_method}}
        if retry is not None:
            connector["retry"] = retry
        api = {"id": api_id, "org": org, "name": "a", "protocol": "rest", "methods": methods or ["*"], "path": path,
               "connector": conn_id, "timeout_ms": timeout_ms, "version": version}
        await publish_config_events(self._producer, self.settings, [
            self._event("org", {"id": org_id, "slug": org, "name": org}, org_id, org),
            self._event("connector", connector, conn_id, org),
            self._event("api", api, api_id, org),
        ])
        return {"org": org, "org_id": org_id, "api": api, "connector": connector}

    async def publish(self, kind: str, doc: dict[str, Any], org: str) -> None:
        await publish_config_events(self._producer, self.settings, [self._event(kind, doc, str(doc["id"]), org)])

    async def delete_api(self, staged: dict[str, Any]) -> None:
        await publish_config_events(self._producer, self.settings, [self._event("api", None, staged["api"]["id"], staged["org"], op="delete")])


async def wait_until(predicate: Any, timeout_s: float = 10.0, interval: float = 0.02) -> None:
    loop = asyncio.get_running_loop()
    until = loop.time() + timeout_s
    while not predicate():
        if loop.time() > until:
            raise TimeoutError("condition not met in time")
        await asyncio.sleep(interval)


def descendants(pid: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        children.setdefault(int(stat.rsplit(")", 1)[1].split()[1]), []).append(int(entry.name))
    found, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


async def answers(url: str) -> bool:
    """Whether ``url`` answers 200 now (a service of another fixture may already be running)."""
    try:
        async with aiohttp.ClientSession() as s, s.get(url, timeout=aiohttp.ClientTimeout(total=2)) as r:
            return r.status == 200
    except (aiohttp.ClientError, asyncio.TimeoutError):
        return False


@contextlib.asynccontextmanager
async def running_pipeline(settings: Settings) -> AsyncIterator[tuple[Stage, IngressInstance]]:
    """Processors (unless some fixture already runs them on these settings), egress and ingress, and a stage
    to publish configuration: the whole request path, for a module of its own."""
    from egress.worker import EgressWorker

    processors = None
    if not await answers(f"http://127.0.0.1:{settings.processors_port}/readyz"):
        processors = ProcessorsProcess(settings)
        await processors.start()
    egress = EgressWorker(settings)
    await egress.start()
    ingress = IngressInstance(settings)
    await ingress.start()
    stage = Stage(settings)
    await stage.start()
    try:
        yield stage, ingress
    finally:
        await stage.stop()
        await ingress.stop()
        await egress.stop()
        if processors is not None:
            processors.stop()


async def post_raw(settings: Settings, call: dict[str, Any]) -> str:
    """Put ``call`` straight onto the requests topic, as an async producer does; its correlation id."""
    producer = make_producer(settings)
    await producer.start()
    try:
        await producer.send_and_wait(settings.topics.requests, key=call["correlation_id"].encode(), value=encode("InboundCall", call))
    finally:
        await producer.stop()
    return call["correlation_id"]
