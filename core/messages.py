"""Building the Reply and DeadLetter records that several stages write."""
from __future__ import annotations

import json
import time
from typing import Any

from core.errors import JunctionError

__all__ = ["dead_letter", "error_reply", "now_ms", "reply_target", "strip_secrets"]


def now_ms() -> int:
    return int(time.time() * 1000)


def error_reply(call: dict[str, Any], err: JunctionError, *, stage: str) -> dict[str, Any]:
    """The Reply that carries ``err`` to the caller, rendered once, as JSON."""
    body = {**err.to_dict(), "correlation_id": call["correlation_id"]}
    headers = [{"name": "Content-Type", "value": "application/json"}]
    headers += [{"name": k, "value": v} for k, v in err.headers.items()]
    return {
        "correlation_id": call["correlation_id"],
        "org": call.get("org", ""),
        "status": err.status,
        "headers": headers,
        "body": json.dumps(body, separators=(",", ":")).encode(),
        "error_code": err.code,
        "error_message": err.message,
        "stage": stage,
        "config_version": int(call.get("config_version", 0)),
        "produced_at_ms": now_ms(),
    }


def reply_target(call: dict[str, Any]) -> tuple[str, int] | None:
    """(topic, partition) the caller asked replies on, or None for fire-and-forget."""
    if call.get("reply_topic") and int(call.get("reply_partition", -1)) >= 0:
        return call["reply_topic"], int(call["reply_partition"])
    return None


def strip_secrets(call: dict[str, Any]) -> dict[str, Any]:
    """A copy without sealed caller credentials: what may be logged or dead-lettered."""
    return {**call, "sealed_credentials": None} if "sealed_credentials" in call else dict(call)


def dead_letter(
    call: dict[str, Any], err: JunctionError, *, stage: str, original_topic: str, original: bytes, details: list[str] | None = None
) -> dict[str, Any]:
    lines = list(details or err.extra.get("traceback", []))
    return {
        "correlation_id": call.get("correlation_id", ""),
        "org": call.get("org", ""),
        "stage": stage,
        "error_code": err.code,
        "error_message": err.message,
        "original_topic": original_topic,
        "original": original,
        "attempt": int(call.get("attempt", 1)),
        "api_id": call.get("api_id", ""),
        "connector_id": call.get("connector_id", ""),
        "connector_version": int(call.get("connector_version", 0)),
        "config_version": int(call.get("config_version", 0)),
        "failed_at_ms": now_ms(),
        "details": [str(x) for x in lines][:200],
    }
