"""Calls ingress refuses before they enter the pipeline, told to the request log.

A call refused at the edge (a 401 or 403 of caller auth, a 404 for a path no API of a known organisation
has, a 413, a 429, a 503 while Redis is away) reaches no topic, so control's observe stage, which writes
the request log from the topics, never heard of it: Prometheus counted it, the log did not. Ingress now
puts an EdgeRefusal on ``<prefix>.refusals`` for each; the observe stage reads it like a call's reply.

Telling costs the answer nothing: the record is produced in the background and its acknowledgement is
not awaited; a broker that is away loses the record, never the answer. A flood of refusals (a scan, a
client retrying with a revoked key) must not become a flood on the broker and the database either: at
most ``JUNCTION_INGRESS_REFUSAL_LOG_PER_S`` a second are told per process, with a second's worth as a
burst; the others are counted (``junction_ingress_refusals_unlogged_total``) and nothing more. Paths of
organisations ingress does not know are never told: anyone can make up those.
"""
from __future__ import annotations

import asyncio
import logging
import time
import uuid

from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError

from core.messages import now_ms
from core.metrics import INGRESS_REFUSALS_LOGGED, INGRESS_REFUSALS_UNLOGGED
from core.settings import Settings
from core.tasks import finish_or_cancel
from schemas import encode

__all__ = ["RefusalLog"]

log = logging.getLogger(__name__)

MAX_IN_FLIGHT = 1000  # records sent and not yet acknowledged; past it (a broker that is away) they are dropped
MAX_PATH = 2048  # as the request log keeps it (control/observe/events.py)


class RefusalLog:
    def __init__(self, settings: Settings, producer: AIOKafkaProducer) -> None:
        self._topic = settings.topics.refusals
        self._producer = producer
        self._rate = float(settings.ingress_refusal_log_per_s)
        self._tokens = self._rate
        self._filled_at = time.monotonic()
        self._sending: set[asyncio.Task[None]] = set()

    def tell(self, *, org: str, api_id: str, method: str, path: str, status: int, error_code: str, bytes_in: int,
             received_at_ms: int) -> str | None:
        """Put one refusal on its way, if the rate allows, and return at once: the id of its request-log row
        (the caller is told it as ``X-Correlation-Id``), or None when it is not told. The id is always a new
        one: a caller's own (an ``X-Request-Id``) could name another call's row and overwrite it."""
        if self._rate <= 0:
            return None
        if not self._take():
            INGRESS_REFUSALS_UNLOGGED.labels("rate").inc()
            return None
        if len(self._sending) >= MAX_IN_FLIGHT:
            INGRESS_REFUSALS_UNLOGGED.labels("backlog").inc()
            return None
        correlation_id = uuid.uuid4().hex
        value = encode("EdgeRefusal", {
            "correlation_id": correlation_id, "org": org, "api_id": api_id,
            "method": method[:16], "path": path[:MAX_PATH], "status": status, "error_code": error_code,
            "bytes_in": max(bytes_in, 0), "received_at_ms": received_at_ms, "refused_at_ms": now_ms(),
        })
        task = asyncio.create_task(self._send(org, value))
        self._sending.add(task)
        task.add_done_callback(self._sending.discard)
        return correlation_id

    async def close(self) -> None:
        """Give the records on their way a moment (they are small), then drop the rest."""
        await finish_or_cancel(self._sending, grace_s=1.0)

    def _take(self) -> bool:
        now = time.monotonic()
        self._tokens = min(self._rate, self._tokens + (now - self._filled_at) * self._rate)
        self._filled_at = now
        if self._tokens < 1:
            return False
        self._tokens -= 1
        return True

    async def _send(self, org: str, value: bytes) -> None:
        try:
            ack = await self._producer.send(self._topic, value=value, key=org.encode())
            await ack
        except KafkaError as exc:
            INGRESS_REFUSALS_UNLOGGED.labels("broker").inc()
            log.debug("a refusal was not told to the request log: %r", exc)
            return
        INGRESS_REFUSALS_LOGGED.inc()
