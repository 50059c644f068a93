"""Real servers and data for the alert tests: a webhook receiver (aiohttp) that checks signatures, an
SMTP server (aiosmtpd), metric windows written with the observe stage's own store function, and a
clock the tests move by hand."""
from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email import message_from_bytes
from email.message import Message
from typing import Any

import asyncpg
from aiohttp import web
from aiohttp.test_utils import TestServer
from aiosmtpd.controller import Controller

from core.kafka import make_consumer, topic_partitions
from core.latency import bucket_of
from core.settings import Settings
from junction.broker import free_port
from control.observe.aggregate import Aggregate, WindowKey
from control.observe.store import write_metrics

__all__ = ["Clock", "Hook", "SmtpSink", "WebhookReceiver", "aligned_past", "put_calls", "topic_events"]


class Clock:
    """The evaluator's clock: it moves only when a test says so."""

    def __init__(self, at: datetime) -> None:
        self.now = at

    def __call__(self) -> datetime:
        return self.now


def aligned_past(minutes_ago: int = 30) -> datetime:
    """A 10 s window boundary some minutes ago (inside every retention)."""
    t = int(datetime.now(UTC).timestamp()) - minutes_ago * 60
    return datetime.fromtimestamp(t - t % 60, tz=UTC)


@dataclass
class Hook:
    """One webhook delivery as received."""

    path: str
    headers: dict[str, str]
    body: bytes
    signed_ok: bool

    @property
    def json(self) -> dict[str, Any]:
        return json.loads(self.body)


@dataclass
class WebhookReceiver:
    """Answers ``status`` to every POST, records it, and checks its X-Junction-Signature against ``secret``."""

    secret: str
    status: int = 200
    hooks: list[Hook] = field(default_factory=list)
    server: TestServer | None = None

    async def start(self) -> None:
        async def receive(request: web.Request) -> web.Response:
            body = await request.read()
            expected = "sha256=" + hmac.new(self.secret.encode(), body, hashlib.sha256).hexdigest()
            given = request.headers.get("X-Junction-Signature", "")
            self.hooks.append(Hook(request.path, dict(request.headers), body, hmac.compare_digest(expected, given)))
            return web.Response(status=self.status, text="ok")

        app = web.Application()
        app.router.add_post("/{tail:.*}", receive)
        self.server = TestServer(app, host="127.0.0.1", port=0)
        await self.server.start_server()

    async def stop(self) -> None:
        if self.server is not None:
            await self.server.close()

    def url(self, path: str = "/hook") -> str:
        assert self.server is not None
        return f"http://127.0.0.1:{self.server.port}{path}"

    def to(self, path: str) -> list[Hook]:
        return [h for h in self.hooks if h.path == path]


class _Collect:
    def __init__(self, sink: SmtpSink) -> None:
        self._sink = sink

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self._sink.messages.append((list(envelope.rcpt_tos), message_from_bytes(envelope.content)))
        return "250 Message accepted for delivery"


class SmtpSink:
    """A real SMTP server on loopback (aiosmtpd, in its own thread) that keeps every message."""

    def __init__(self) -> None:
        self.messages: list[tuple[list[str], Message]] = []
        self.port = free_port()
        self._controller = Controller(_Collect(self), hostname="127.0.0.1", port=self.port)

    async def start(self) -> None:
        await asyncio.to_thread(self._controller.start)

    async def stop(self) -> None:
        await asyncio.to_thread(self._controller.stop)

    def to(self, address: str) -> list[Message]:
        return [m for rcpt, m in self.messages if address in rcpt]


async def put_calls(pool: asyncpg.Pool, org_id: str, api_id: str, start: datetime, *, seconds: int, calls: int,
                    errors: int = 0, latency_ms: float = 20.0) -> None:
    """``calls`` calls (``errors`` of them 5xx) in every 10 s window of ``seconds`` from ``start``, written
    as the observe stage writes them."""
    windows: dict[WindowKey, Aggregate] = {}
    for offset in range(0, seconds, 10):
        at_ms = int((start + timedelta(seconds=offset)).timestamp() * 1000)
        windows[WindowKey(10, at_ms - at_ms % 10_000, org_id, api_id)] = Aggregate(
            calls=calls, status_2xx=calls - errors, status_5xx=errors,
            errors={"upstream_error": errors} if errors else {}, latency_count=calls,
            latency_sum_ms=latency_ms * calls, latency_hist={bucket_of(latency_ms): calls} if calls else {})
    async with pool.acquire() as conn:
        await write_metrics(conn, windows)


async def topic_events(settings: Settings, alert_ids: set[str], *, want: int, timeout_s: float = 15.0) -> list[dict[str, Any]]:
    """The events of ``alert_ids`` on the alerts topic, once ``want`` of them are there."""
    consumer = make_consumer(settings)
    await consumer.start()
    try:
        tps = await topic_partitions(settings, settings.topics.alerts)
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        found: list[dict[str, Any]] = []
        deadline = asyncio.get_running_loop().time() + timeout_s
        while len(found) < want and asyncio.get_running_loop().time() < deadline:
            for records in (await consumer.getmany(timeout_ms=200)).values():
                for rec in records:
                    event = json.loads(rec.value)
                    if event.get("alert_id") in alert_ids:
                        found.append(event)
        return found
    finally:
        await consumer.stop()
