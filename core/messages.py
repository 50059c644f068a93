"""Building the Reply and DeadLetter records that several stages write."""
from __future__ import annotations

import json
import logging
import re
import time
from collections.abc import Mapping
from typing import Any

from core.errors import FieldError, JunctionError
from core.redaction import redact_original, scrub
from schemas.types import DeadLetter, InboundCall, Reply

__all__ = [
    "INVALID_CALL", "INVALID_CORRELATION_ID", "INVALID_REPLY_PARTITION", "call_contract_error", "INVALID_REPLY_TOPIC", "correlation_id_error", "dead_letter",
    "encodable", "error_reply", "expired", "is_results_topic", "nobody_waits", "now_ms", "reply_route_error",
    "reply_target", "strip_secrets", "undecodable_call",
]

log = logging.getLogger(__name__)

INVALID_REPLY_TOPIC = "invalid_reply_topic"
INVALID_CORRELATION_ID = "invalid_correlation_id"
INVALID_REPLY_PARTITION = "invalid_reply_partition"
INVALID_CALL = "invalid_call"
# What Kafka accepts as a topic name.
_TOPIC_NAME = re.compile(r"^[A-Za-z0-9._-]{1,249}$")
# Code points UTF-8 cannot carry: a lone surrogate (from a script's text, a decoded byte, a caller's escape).
_SURROGATES = re.compile("[\ud800-\udfff]")
_REPLACEMENT = "\ufffd"


def encodable(text: str) -> str:
    """``text`` with every surrogate code point replaced by U+FFFD: what a message field can carry. Error
    text may come from a script or a caller, and a Reply or dead letter that cannot be encoded is an error
    nobody ever sees."""
    try:
        text.encode("utf-8")
        return text
    except UnicodeEncodeError:
        return _SURROGATES.sub(_REPLACEMENT, text)


def _encodable_data(value: Any) -> Any:
    """A JSON-able value with every string in it (keys too) made :func:`encodable`."""
    if isinstance(value, str):
        return encodable(value)
    if isinstance(value, Mapping):
        return {encodable(str(k)): _encodable_data(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_encodable_data(v) for v in value]
    return value


def now_ms() -> int:
    return int(time.time() * 1000)


def error_reply(call: Mapping[str, Any], err: JunctionError, *, stage: str) -> Reply:
    """The Reply that carries ``err`` to the caller, rendered once, as JSON."""
    body = _encodable_data({**err.to_dict(), "correlation_id": call["correlation_id"]})
    headers = [{"name": "Content-Type", "value": "application/json"}]
    headers += [{"name": encodable(str(k)), "value": encodable(str(v))} for k, v in err.headers.items()]
    return {
        "correlation_id": call["correlation_id"],
        "org": call.get("org", ""),
        "status": err.status,
        "headers": headers,
        "body": json.dumps(body, separators=(",", ":")).encode(),
        "error_code": encodable(err.code),
        "error_message": encodable(err.message),
        "stage": stage,
        "config_version": int(call.get("config_version", 0)),
        "produced_at_ms": now_ms(),
    }


def _topics_of(settings: Any) -> Any:
    """The :class:`core.settings.Topics` of a Settings (or the Topics themselves)."""
    return getattr(settings, "topics", settings)


def is_results_topic(name: Any, settings: Any = None) -> bool:
    """Whether replies may be written to topic ``name``: a *results topic*.

    With ``settings`` (a Settings or its Topics, prefix ``p``): ``p.replies`` or a name starting with
    ``p.results.``; never the config, requests, calls or dead-letter topic. Without them (a caller
    that does not know the prefix) only the shape is checked: a name ending in ``.replies`` or holding
    ``.results.``, and not ending like one of Junction's own other topics.
    """
    if not isinstance(name, str) or not _TOPIC_NAME.match(name):
        return False
    if settings is None:
        if name.endswith((".config", ".requests", ".calls", ".dlq")):
            return False
        head, sep, rest = name.partition(".results.")
        return (bool(sep) and bool(head) and bool(rest)) or (name.endswith(".replies") and len(name) > len(".replies"))
    topics = _topics_of(settings)
    if name in (topics.config, topics.requests, topics.calls, topics.dlq):
        return False
    results = f"{topics.prefix}.results."
    return name == topics.replies or (name.startswith(results) and len(name) > len(results))


# What a correlation id may be: it travels as a Kafka key, a header to the upstream and the caller, and into
# logs, so visible ASCII only, and short (ingress makes 32 hex digits; a producer's UUID has 36 characters).
_CORRELATION_ID = re.compile(r"[!-~]{1,128}")


def correlation_id_error(call: dict[str, Any]) -> JunctionError | None:
    """Why a call's correlation id cannot be used (a producer's: a line break would forge log lines and break
    the upstream call's header), or None."""
    if _CORRELATION_ID.fullmatch(str(call.get("correlation_id", ""))):
        return None
    return JunctionError("correlation_id must be 1 to 128 visible ASCII characters (a UUID, say)",
                         code=INVALID_CORRELATION_ID, status=400,
                         fields=[FieldError("correlation_id", "must be 1 to 128 visible ASCII characters")])


# An HTTP method is a token (RFC 9110 §9.1, §5.6.2); anything else would be a request line of the producer's.
_METHOD = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]{1,64}")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def call_contract_error(call: Mapping[str, Any]) -> JunctionError | None:
    """Why an InboundCall's method, path or attempt is outside its contract (docs/topics.md), or None.

    Ingress never sends such a call; an async producer may, and nothing of it may reach an upstream."""
    method, path, attempt = call.get("method"), call.get("path"), call.get("attempt", 1)
    if not isinstance(method, str) or not _METHOD.fullmatch(method):
        field, why = "method", "must be an HTTP method: 1 to 64 token characters, no space or line break"
    elif not isinstance(path, str) or not path.startswith("/") or _CONTROL.search(path):
        field, why = "path", "must start with '/' and hold no control character"
    elif not isinstance(attempt, int) or attempt < 1:
        field, why = "attempt", "must be 1 or more (1 for a new call)"
    else:
        return None
    return JunctionError(f"{field} {why}", code=INVALID_CALL, status=400, fields=[FieldError(field, why)])


def undecodable_call(key: bytes | None) -> dict[str, Any]:
    """What is known of a record that could not be decoded: its correlation id, when its key (producers key
    a call by it) can be one. The dead letter then carries it, and an operator finds it by that id."""
    try:
        text = (key or b"").decode("ascii")
    except UnicodeDecodeError:
        return {}
    return {"correlation_id": text} if _CORRELATION_ID.fullmatch(text) else {}


def reply_route_error(call: dict[str, Any], settings: Any = None) -> JunctionError | None:
    """Why the reply routing a call names cannot be used, or None if it can (or names none).

    Checks what needs no broker: the topic is a results topic (see :func:`is_results_topic`) and,
    when a topic is named, the partition is not negative. Whether the partition exists is the
    caller's to ask the broker (processors do).
    """
    topic = call.get("reply_topic")
    if not topic:
        return None  # fire-and-forget
    if not is_results_topic(topic, settings):
        return JunctionError(f"reply_topic {str(topic)[:256]!r} is not a results topic", code=INVALID_REPLY_TOPIC, status=400)
    try:
        partition = int(call.get("reply_partition", -1))
    except (TypeError, ValueError):
        partition = -1
    if partition < 0:
        return JunctionError(f"reply_partition {call.get('reply_partition')!r} is not a partition of {topic}: a "
                             "reply_topic needs a reply_partition from 0", code=INVALID_REPLY_PARTITION, status=400)
    return None


def nobody_waits(call: Mapping[str, Any], settings: Any) -> bool:
    """Whether no caller waits at a connection for this call's reply: an async producer's call, or an
    HTTP call answered 202 (``respond_async``). Such a call that expires on the way is dead-lettered,
    and answered where it has a reply topic; a waiting caller got its 504 from ingress already."""
    return bool(call.get("respond_async")) or call.get("reply_topic") != settings.topics.replies


def expired() -> JunctionError:
    return JunctionError("the call's deadline passed before it was made", code="deadline_expired", status=504)


def reply_target(call: dict[str, Any], settings: Any = None) -> tuple[str, int] | None:
    """(topic, partition) the caller asked replies on, or None: fire-and-forget, or a routing
    that must not be used (see :func:`reply_route_error`), which is logged and never raises.

    Pass ``settings`` (a Settings or its Topics) to check the topic against this deployment's
    names; without them only its shape is checked. The partition's upper bound is not checked here.
    """
    if not call.get("reply_topic"):
        return None
    err = reply_route_error(call, settings)
    if err is not None:
        log.warning("not replying to %s: %s", call.get("correlation_id"), err.message)
        return None
    return str(call["reply_topic"]), int(call["reply_partition"])


def strip_secrets(call: InboundCall | dict[str, Any]) -> dict[str, Any]:
    """A copy without sealed caller credentials: what may be logged or dead-lettered."""
    return {**call, "sealed_credentials": None} if "sealed_credentials" in call else dict(call)


def dead_letter(
    call: Mapping[str, Any], err: JunctionError, *, stage: str, original_topic: str, original: bytes, details: list[str] | None = None,
    auth: Mapping[str, Any] | None = None,
) -> DeadLetter:
    """The dead letter of ``call``; ``original`` is kept without caller credentials (core/redaction.py).

    ``auth``, the API's caller auth config when the stage knows it, names an api-key header or query
    parameter of its own; without it the names every API shares (and any credential-looking name) go.
    The values removed are scrubbed from the message and details too: a script's traceback may print them.
    """
    redacted = redact_original(original, auth=auth)
    lines = [encodable(scrub(str(x), redacted.removed_values)) for x in list(details or err.extra.get("traceback", []))][:199]
    if redacted.removed_names:
        lines.append("removed from original: " + ", ".join(dict.fromkeys(redacted.removed_names)))
    return {
        "correlation_id": call.get("correlation_id", ""),
        "org": call.get("org", ""),
        "stage": stage,
        "error_code": encodable(err.code),
        "error_message": encodable(scrub(err.message, redacted.removed_values)),
        "original_topic": original_topic,
        "original": redacted.original,
        "attempt": int(call.get("attempt", 1)),
        "api_id": call.get("api_id", ""),
        "connector_id": call.get("connector_id", ""),
        "connector_version": int(call.get("connector_version", 0)),
        "config_version": int(call.get("config_version", 0)),
        "failed_at_ms": now_ms(),
        "details": lines,
    }
