"""Delivering what an alert owes: an event on the alerts topic, a signed webhook, an e-mail.

Webhooks go out on egress's REST caller (egress/caller.py), so every connection passes the SSRF guard
(core/ssrf.py) at connect time, redirect hops included (none are followed). Each is a JSON POST whose
``X-Junction-Signature: sha256=<hex>`` is the HMAC-SHA256 of the exact body under the rule's
webhook secret. A webhook or an SMTP server that fails transiently (unreachable, timeout, 429, 5xx,
a 4xx SMTP reply) is tried again with exponential backoff (tenacity), up to
``JUNCTION_ALERT_ATTEMPTS`` attempts; then the notification is recorded as failed with its reason.
A refusal of the guard or another 4xx is not retried. The topic is retried at every evaluation
until the broker takes the event.
"""
from __future__ import annotations

import hashlib
import hmac
import json
import logging
from dataclasses import dataclass
from email.message import EmailMessage
from typing import Any, Literal

import aiosmtplib
from aiokafka.errors import KafkaError
from tenacity import (
    AsyncRetrying,
    retry_if_exception,
    stop_after_attempt,
    wait_exponential,
)

from control.alerting.rules import open_secret
from control.store.alerts import Delivery
from core.errors import JunctionError
from core.sealing import Sealer, SealError
from core.settings import Settings
from egress.caller import RestCaller

__all__ = ["Notifier", "Outcome", "body_of", "signature"]

log = logging.getLogger(__name__)

SIGNATURE_HEADER = "X-Junction-Signature"
MAX_RESPONSE_BYTES = 64 * 1024


@dataclass(frozen=True)
class Outcome:
    status: Literal["sent", "failed", "pending"]
    attempts: int
    error: str | None = None


class _Transient(Exception):
    """A failure another attempt may get past."""


class _Permanent(Exception):
    """A failure no retry helps: recorded at once."""


def body_of(payload: dict[str, Any]) -> bytes:
    """The exact bytes sent (and signed): compact JSON with sorted keys."""
    return json.dumps(payload, separators=(",", ":"), sort_keys=True).encode()


def signature(secret: str, body: bytes) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def _retriable(exc: BaseException) -> bool:
    if isinstance(exc, JunctionError):
        return exc.retriable or exc.code in ("upstream_timeout", "deadline_exceeded")
    return isinstance(exc, _Transient)


class Notifier:
    def __init__(self, settings: Settings, *, sealer: Sealer | None, producer: Any = None,
                 caller: RestCaller | None = None) -> None:
        self._settings = settings
        self._sealer = sealer
        self.producer = producer  # set by the evaluator once it has one
        self._timeout_s = settings.alert_send_timeout_ms / 1000
        self._caller = caller or RestCaller(connect_timeout_s=self._timeout_s, max_connections=50,
                                            allow_private=settings.allow_private_targets,
                                            max_response_bytes=MAX_RESPONSE_BYTES)

    async def start(self) -> None:
        await self._caller.start()

    async def stop(self) -> None:
        await self._caller.stop()

    def _retrying(self, retry: Any) -> AsyncRetrying:
        base = self._settings.alert_retry_base_ms / 1000
        return AsyncRetrying(stop=stop_after_attempt(self._settings.alert_attempts), reraise=True, retry=retry,
                             wait=wait_exponential(multiplier=base, min=base, max=max(base, 30.0)))

    async def deliver(self, d: Delivery) -> Outcome:
        """Send one notification; never raises for the channel's own failures."""
        if d.channel == "topic":
            return await self._topic(d)
        attempts = 0
        send = self._webhook if d.channel == "webhook" else self._email
        retry = retry_if_exception(_retriable if d.channel == "webhook" else _smtp_retriable)
        try:
            async for attempt in self._retrying(retry):
                with attempt:
                    attempts += 1
                    await send(d)
        except (JunctionError, _Transient, _Permanent, aiosmtplib.SMTPException, OSError, SealError) as exc:
            # Our own reasons are sentences already; a library's is named by its type.
            reason = (exc.message if isinstance(exc, JunctionError) else str(exc) if isinstance(exc, (_Permanent, _Transient))
                      else f"{type(exc).__name__}: {exc}")
            log.warning("alert %s: %s notification to %s failed after %d attempt(s): %s", d.alert_id, d.event,
                        d.target, attempts, reason)
            return Outcome("failed", attempts, reason[:1000])
        return Outcome("sent", attempts)

    async def _webhook(self, d: Delivery) -> None:
        if self._sealer is None or not d.secret_sealed:
            raise _Permanent("the rule has no webhook secret to sign with")
        body = body_of(d.payload)
        headers = [("Content-Type", "application/json"), ("User-Agent", "Junction-Alerts/1"),
                   ("X-Junction-Event", f"alert.{d.event}"), ("X-Junction-Delivery", d.id),
                   (SIGNATURE_HEADER, signature(open_secret(d.rule_id, d.secret_sealed, self._sealer), body))]
        response = await self._caller.post(d.target, headers, body, self._timeout_s)
        if response.status == 429 or response.status >= 500:
            raise _Transient(f"the webhook answered {response.status}")
        if not 200 <= response.status < 300:
            raise _Permanent(f"the webhook answered {response.status}")

    async def _email(self, d: Delivery) -> None:
        s = self._settings
        if not s.smtp_host:
            raise _Permanent("no SMTP server is configured (JUNCTION_SMTP_HOST)")
        await aiosmtplib.send(_message(s.smtp_from, d), hostname=s.smtp_host, port=s.smtp_port,
                              start_tls=s.smtp_starttls, username=s.smtp_username or None,
                              password=s.smtp_password or None, timeout=self._timeout_s)

    async def _topic(self, d: Delivery) -> Outcome:
        if self.producer is None:
            return Outcome("pending", 0, "no Kafka producer")
        try:
            await self.producer.send_and_wait(self._settings.topics.alerts, body_of(d.payload),
                                               key=str(d.payload.get("rule_id", "")).encode())
        except KafkaError as exc:
            # The broker comes back: the event stays owed and goes at a later evaluation.
            log.warning("alert %s: the %s event is not on the alerts topic yet: %r", d.alert_id, d.event, exc)
            return Outcome("pending", 1, f"{type(exc).__name__}: {exc}"[:1000])
        return Outcome("sent", 1)


def _smtp_retriable(exc: BaseException) -> bool:
    if isinstance(exc, aiosmtplib.SMTPResponseException):
        return 400 <= exc.code < 500  # 4xx: try again later; 5xx: refused for good
    return isinstance(exc, (aiosmtplib.SMTPException, OSError))


def _message(sender: str, d: Delivery) -> EmailMessage:
    p = d.payload
    where = f" ({p['org']})" if p.get("org") else " (global)"
    msg = EmailMessage()
    msg["From"] = sender
    msg["To"] = d.target
    headline = {"fired": "FIRING", "resolved": "RESOLVED", "escalated": "ESCALATED"}.get(d.event, d.event.upper())
    msg["Subject"] = f"[Junction] {headline}: {p['rule_name']}{where}"
    msg["X-Junction-Alert"] = p["alert_id"]
    lines = [f"Alert {p['alert_id']} of rule {p['rule_name']!r} {d.event}.", "",
             f"{p['metric']} {p['comparison']} {p['threshold']} over {p['window']}"
             + (f" (API {p['api']})" if p.get("api") else ""),
             f"value: {p['value']}", f"started: {p['started_at']}"]
    if p.get("resolved_at"):
        lines.append(f"resolved: {p['resolved_at']}")
    if d.event == "escalated":
        lines.append("Nobody acknowledged it in time: POST .../alerts/{id}/ack acknowledges it.")
    msg.set_content("\n".join(lines) + "\n")
    return msg
