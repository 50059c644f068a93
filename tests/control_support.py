"""Control-plane fixtures: a live control app on a free port, backed by the
session's real PostgreSQL schema, Redis prefix and Kafka broker. Shared by the
control tests and the end-to-end tests that configure the pipeline through it."""
from __future__ import annotations

import asyncio
import contextlib
import json
import os
import sys
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

import aiohttp
from multidict import CIMultiDict
import asyncpg
import pytest
import pytest_asyncio
from aiokafka import TopicPartition

from control.app import create_app
from control.admin import create_admin
from core.http import listening
from core.kafka import make_consumer
from core.settings import Settings
from junction.broker import free_port
from schemas import decode

ADMIN_EMAIL = "root@example.com"
ADMIN_PASSWORD = "root-password-1"


@dataclass
class Reply:
    status: int
    body: Any
    headers: Any  # case-insensitive


class ConfigWatch:
    """Reads the config topic from the beginning in the background and keeps
    every event plus the latest per ``kind/id``."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.events: list[dict[str, Any]] = []
        self.latest: dict[str, dict[str, Any]] = {}
        self._task: asyncio.Task[None] | None = None
        self._consumer: Any = None

    async def start(self) -> None:
        tp = TopicPartition(self.settings.topics.config, 0)
        # background: the config topic is read as the services read it, without polling the broker every few ms
        self._consumer = make_consumer(self.settings, background=True)
        await self._consumer.start()
        self._consumer.assign([tp])
        await self._consumer.seek_to_beginning(tp)

        async def run() -> None:
            while True:
                batch = await self._consumer.getmany(tp, timeout_ms=100)
                for rec in batch.get(tp, []):
                    _, event = decode(rec.value, expected="ConfigEvent")
                    self.events.append(event)
                    self.latest[f"{event['kind']}/{event['id']}"] = event

        self._task = asyncio.create_task(run())

    async def stop(self) -> None:
        if self._task:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self._consumer:
            await self._consumer.stop()

    async def wait_for(self, predicate: Callable[[], bool], timeout_s: float = 10.0) -> None:
        loop = asyncio.get_running_loop()
        until = loop.time() + timeout_s
        while not predicate():
            if loop.time() > until:
                raise AssertionError("config events did not arrive in time")
            await asyncio.sleep(0.05)

    def document(self, kind: str, id_: str) -> dict[str, Any] | None:
        event = self.latest.get(f"{kind}/{id_}")
        return json.loads(event["document"]) if event and event["document"] else None


@dataclass
class Control:
    base_url: str
    settings: Settings
    session: aiohttp.ClientSession
    pool: asyncpg.Pool
    watch: ConfigWatch
    app: Any = None
    admin_token: str = ""
    _tokens: dict[str, str] = field(default_factory=dict)

    async def call(self, method: str, path: str, token: str | None = None, json_body: Any = None,
                   *, data: Any = None, headers: dict[str, str] | None = None) -> Reply:
        h = dict(headers or {})
        if token:
            h["Authorization"] = f"Bearer {token}"
        kwargs: dict[str, Any] = {"headers": h}
        if data is not None:
            kwargs["data"] = data
        elif json_body is not None:
            kwargs["json"] = json_body
        async with self.session.request(method, self.base_url + path, **kwargs) as resp:
            raw = await resp.read()
            try:
                body = json.loads(raw) if raw else None
            except ValueError:
                body = raw.decode(errors="replace")
            return Reply(resp.status, body, CIMultiDict(resp.headers))

    async def login(self, email: str, password: str) -> str:
        r = await self.call("POST", "/api/v1/auth/login", json_body={"email": email, "password": password})
        assert r.status == 200, r.body
        return r.body["access_token"]

    async def new_org(self, prefix: str = "org") -> dict[str, Any]:
        slug = f"{prefix}-{uuid.uuid4().hex[:10]}"
        r = await self.call("POST", "/api/v1/orgs", self.admin_token, {"slug": slug, "name": slug})
        assert r.status == 201, r.body
        return r.body

    async def new_user(self, org: str, role: str) -> tuple[dict[str, Any], str]:
        email = f"u{uuid.uuid4().hex[:12]}@example.com"
        r = await self.call("POST", f"/api/v1/orgs/{org}/users", self.admin_token,
                            {"email": email, "password": "password-123", "role": role})
        assert r.status == 201, r.body
        return r.body, await self.login(email, "password-123")

    async def new_connector(self, org: str, token: str | None = None, **fields: Any) -> dict[str, Any]:
        body = {"name": f"c-{uuid.uuid4().hex[:8]}", "target": {"protocol": "rest", "url": "http://127.0.0.1:9/x",
                                                               "method": "GET"}, **fields}
        r = await self.call("POST", f"/api/v1/orgs/{org}/connectors", token or self.admin_token, body)
        assert r.status == 201, r.body
        return r.body

    async def new_api(self, org: str, connector: str, token: str | None = None, **fields: Any) -> dict[str, Any]:
        body = {"name": f"a-{uuid.uuid4().hex[:8]}", "methods": ["GET"], "path": f"/p{uuid.uuid4().hex[:8]}/{{id}}",
                "connector": connector, **fields}
        r = await self.call("POST", f"/api/v1/orgs/{org}/apis", token or self.admin_token, body)
        assert r.status == 201, r.body
        return r.body


async def assert_api_field_refused(control: Control, org: str, key: str,
                                   cases: list[tuple[Any, str, str]]) -> None:
    """Each (value, field, words): an API created with ``key`` set to the value is refused with 422, the field
    named and the words in its message; and nothing of them was saved."""
    conn = await control.new_connector(org)
    base = {"name": "a", "methods": ["GET"], "path": "/x", "connector": conn["id"]}
    for value, name, words in cases:
        r = await control.call("POST", f"/api/v1/orgs/{org}/apis", control.admin_token, {**base, key: value})
        assert r.status == 422 and r.body["code"] == "invalid_input", (value, r.body)
        found = [f for f in r.body["fields"] if f["field"] == name]
        assert found and words in found[0]["message"], (value, r.body)
    r = await control.call("GET", f"/api/v1/orgs/{org}/apis", control.admin_token)
    assert r.body["items"] == []  # nothing half-saved


@pytest.fixture(scope="session")
def control_settings(settings: Settings) -> Settings:
    # Cheap bcrypt keeps user-heavy property tests fast; production uses 12. No alert evaluator in the
    # shared app: tests/control/test_alerts.py drives its own, on its own clock.
    # The session's admin token is made once: it must outlive the run however slow the machine (15 minutes,
    # the default, ran out in an 18-minute run and failed every later test with token_expired).
    return settings.with_overrides(bcrypt_rounds=4, control_port=free_port(),
                                   jwt_secret=settings.jwt_secret.ljust(40, "x"), alert_interval_s=0,
                                   jwt_ttl_s=4 * 3600)


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def control(control_settings: Settings) -> AsyncIterator[Control]:
    s = control_settings
    # No observe stage here: the tests that read request logs start their own (tests/pipeline/conftest.py),
    # and reading every topic of the run on this process's loop would slow every other test.
    app = create_app(s, observe=False)
    # Served as `junction serve control` serves it (core/http.py's listener: its JSON protocol errors, its
    # deadlines and connection cap), not by aiohttp's test server, whose protocol errors are plain text.
    server = contextlib.AsyncExitStack()
    await server.enter_async_context(listening(app, "127.0.0.1", s.control_port))
    pool = await asyncpg.create_pool(s.database_dsn, min_size=1, max_size=4,
                                     server_settings={"search_path": s.database_schema})
    watch = ConfigWatch(s)
    await watch.start()
    session = aiohttp.ClientSession()
    c = Control(f"http://127.0.0.1:{s.control_port}", s, session, pool, watch, app)
    await create_admin(s, ADMIN_EMAIL, ADMIN_PASSWORD)
    c.admin_token = await c.login(ADMIN_EMAIL, ADMIN_PASSWORD)
    try:
        yield c
    finally:
        await session.close()
        await watch.stop()
        await pool.close()
        await server.aclose()


async def run_cli(control: "Control", *argv: str, token: str | None = None) -> tuple[int, Any, str]:
    """``python -m junction ARGV`` with the control's settings and a token (the admin's unless given):
    its exit code, its standard output as JSON (or text), its standard error."""
    env = {**os.environ, **control.settings.to_env(), "JUNCTION_TOKEN": control.admin_token if token is None else token}
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "junction", *argv, env=env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await proc.communicate()
    try:
        data = json.loads(out) if out.strip() else None
    except ValueError:
        data = out.decode()
    return proc.returncode or 0, data, err.decode()
