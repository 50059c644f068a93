"""The inbound call handler: match, produce, wait for the correlated reply."""
from __future__ import annotations

import asyncio
import time
import uuid
from typing import Any

from aiohttp import web
from aiokafka import AIOKafkaProducer
from multidict import CIMultiDict

from core.errors import BodyTooLarge, DeadlineExceeded, ServiceUnavailable
from core.headers import end_to_end
from core.metrics import INGRESS_LATENCY, INGRESS_REQUESTS
from core.settings import Settings
from core.snapshot import ConfigSnapshot
from ingress.auth import Admission, EdgeAuth
from ingress.replies import ReplyReader
from schemas import encode

__all__ = ["Gateway", "CORRELATION_ID"]

CORRELATION_ID = "X-Correlation-Id"


def _now_ms() -> int:
    return int(time.time() * 1000)


class Gateway:
    def __init__(self, settings: Settings, snapshot: ConfigSnapshot, producer: AIOKafkaProducer, replies: ReplyReader,
                 auth: EdgeAuth) -> None:
        self._settings = settings
        self._snapshot = snapshot
        self._producer = producer
        self._replies = replies
        self._auth = auth

    async def handle(self, request: web.Request) -> web.StreamResponse:
        started = time.perf_counter()
        org = request.match_info["org"]
        path = "/" + request.match_info.get("path", "")
        status = 500
        try:
            match = self._snapshot.resolve(org, request.method, path)
            admission = await self._auth.admit(request, match)
            body = await self._read_body(request)
            timeout_ms = min(int(match.api.get("timeout_ms") or self._settings.default_timeout_ms), self._settings.max_timeout_ms)
            reply = await self._call(request, org, path, match.api, match.path_params, body, timeout_ms, admission)
            response = self._response(reply)
            response.headers.update(admission.response_headers)
            status = response.status
            return response
        except Exception as exc:
            status = getattr(exc, "status", 500)
            raise
        finally:
            INGRESS_REQUESTS.labels(org if org in self._snapshot.orgs else "_unknown", f"{status // 100}xx").inc()
            INGRESS_LATENCY.observe(time.perf_counter() - started)

    async def _read_body(self, request: web.Request) -> bytes:
        limit = self._settings.max_body_bytes
        if request.content_length is not None and request.content_length > limit:
            raise BodyTooLarge(f"body of {request.content_length} bytes exceeds the limit of {limit}", extra={"limit": limit})
        try:
            return await request.read()
        except web.HTTPRequestEntityTooLarge:
            raise BodyTooLarge(f"body exceeds the limit of {limit} bytes", extra={"limit": limit}) from None

    async def _call(
        self, request: web.Request, org: str, path: str, api: dict[str, Any], params: dict[str, str], body: bytes, timeout_ms: int,
        admission: Admission,
    ) -> dict[str, Any]:
        received = _now_ms()
        deadline = received + timeout_ms
        correlation_id = uuid.uuid4().hex
        call = {
            "correlation_id": correlation_id,
            "org": org,
            "api_id": str(api.get("id", "")),
            "config_version": int(api.get("version", 0)),
            "method": request.method,
            "path": path,
            "path_params": params,
            "query": [{"name": k, "value": v} for k, v in admission.query],  # less the caller's credential
            "headers": [{"name": k, "value": v} for k, v in admission.headers],  # filtered once, in egress (core/headers.py)
            # Sealed for this correlation id only: it opens for processors, and for no other call.
            "sealed_credentials": self._auth.caller_auth.seal(admission.credential, correlation_id),
            "body": body,
            "received_at_ms": received,
            "deadline_ms": deadline,
            "reply_topic": self._settings.topics.replies,
            "reply_partition": self._replies.tp.partition,
            "attempt": 1,
            "idempotency_key": request.headers.get("Idempotency-Key"),
        }
        waiter = self._replies.expect(correlation_id)
        try:
            try:
                await asyncio.wait_for(
                    self._producer.send_and_wait(self._settings.topics.requests, key=correlation_id.encode(), value=encode("InboundCall", call)),
                    timeout=timeout_ms / 1000,
                )
            except asyncio.TimeoutError:
                raise ServiceUnavailable("the broker did not accept the call in time", code="broker_unavailable") from None
            remaining = (deadline - _now_ms()) / 1000
            try:
                return await asyncio.wait_for(waiter, timeout=max(remaining, 0.001))
            except asyncio.TimeoutError:
                raise DeadlineExceeded(
                    f"no reply within {timeout_ms} ms", headers={CORRELATION_ID: correlation_id}, extra={"timeout_ms": timeout_ms}
                ) from None
        finally:
            self._replies.forget(correlation_id)

    def _response(self, reply: dict[str, Any]) -> web.Response:
        filtered: CIMultiDict[str] = CIMultiDict(end_to_end((h["name"], h["value"]) for h in reply["headers"]))
        filtered[CORRELATION_ID] = reply["correlation_id"]
        return web.Response(status=reply["status"], body=reply["body"], headers=filtered)
