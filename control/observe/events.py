"""What each topic says of a call, as a partial request-log row.

A call is seen up to four times, on four topics, in any order and possibly by different
instances: its InboundCall (arrival), its OutboundCall (handed to egress), its Reply and its
DeadLetter. Each becomes a :class:`Partial` keyed by ``(org, correlation_id)``; the store joins
them in the call's row (control/observe/store.py). Bodies are measured, never kept, and
credentials are never read.
"""
from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from control.storable import storable
from core.errors import JunctionError
from core.ids import is_uuid
from core.messages import is_results_topic
from core.settings import Settings
from core.snapshot import ConfigSnapshot

__all__ = ["COLUMNS", "Partial", "from_call", "from_dead_letter", "from_refusal", "from_reply", "from_request", "merged"]

# Every column a partial may fill, with its PostgreSQL type (the store builds its SQL from this).
COLUMNS: dict[str, str] = {
    "org_id": "uuid", "api_id": "text", "connector_id": "text", "connector_version": "bigint",
    "config_version": "bigint", "method": "text", "path": "text", "bytes_in": "bigint", "bytes_out": "bigint",
    "details": "jsonb", "received_ms": "bigint", "expects_reply": "boolean", "deadline_ms": "bigint",
    "handoff_ms": "bigint", "reply_status": "integer", "reply_code": "text", "reply_stage": "text",
    "replied_ms": "bigint", "reply_upstream_ms": "double precision", "dlq_code": "text", "dlq_stage": "text",
    "failed_ms": "bigint",
}
MAX_DETAIL_LINES = 200
MAX_PATH = 2048


@dataclass
class Partial:
    org: str
    correlation_id: str
    values: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        # One NUL (a producer's path, a script's log line) once made the database refuse the whole flush.
        self.org, self.correlation_id = storable(self.org), storable(self.correlation_id)
        self.values = {k: storable(v) for k, v in self.values.items()}

    @property
    def key(self) -> tuple[str, str]:
        return self.org, self.correlation_id


def _ids(snapshot: ConfigSnapshot | None, org: str, api_id: str) -> dict[str, Any]:
    """The organisation's id (the wire names it by slug, which may change) and the API id."""
    out: dict[str, Any] = {}
    known = snapshot.orgs.get(org) if snapshot is not None else None
    if known and is_uuid(str(known.get("id") or "")):
        # Only ids the control plane issued: a routes file's own names (JUNCTION_ROUTES_FILE) are not
        # measured, rather than stop every flush at the database's uuid column.
        out["org_id"] = str(known["id"])
    if api_id:
        out["api_id"] = api_id
    return out


def _api_of(snapshot: ConfigSnapshot | None, call: dict[str, Any]) -> str:
    """The API a call is for: named by ingress, else matched here as processors would."""
    if call.get("api_id") or snapshot is None:
        return str(call.get("api_id") or "")
    try:
        return str(snapshot.resolve(call["org"], call["method"], call["path"]).api["id"])
    except (JunctionError, KeyError, ValueError):  # no match is an answer too: the call is logged without an API
        return ""


def from_request(call: dict[str, Any], timestamp_ms: int, settings: Settings,
                 snapshot: ConfigSnapshot | None = None) -> Partial:
    """The arrival: when, how big, where it goes, and whether a reply is to be waited for."""
    return Partial(str(call.get("org") or ""), str(call.get("correlation_id") or ""), {
        **_ids(snapshot, str(call.get("org") or ""), _api_of(snapshot, call)),
        "config_version": int(call.get("config_version") or 0),
        "method": str(call.get("method") or "")[:16],
        "path": str(call.get("path") or "")[:MAX_PATH],
        "bytes_in": len(call.get("body") or b""),
        # Ingress stamps arrival; an async producer may not, and then the broker's timestamp is it.
        "received_ms": int(call.get("received_at_ms") or 0) or timestamp_ms,
        "expects_reply": is_results_topic(call.get("reply_topic"), settings),
        "deadline_ms": int(call.get("deadline_ms") or 0) or None,
    })


def from_call(call: dict[str, Any], timestamp_ms: int, snapshot: ConfigSnapshot | None = None) -> Partial:
    """Handed to egress: the API and connector versions processors resolved, and when."""
    return Partial(str(call.get("org") or ""), str(call.get("correlation_id") or ""), {
        **_ids(snapshot, str(call.get("org") or ""), str(call.get("api_id") or "")),
        "connector_id": str(call.get("connector_id") or "") or None,
        "connector_version": int(call.get("connector_version") or 0) or None,
        "config_version": int(call.get("config_version") or 0) or None,
        "handoff_ms": timestamp_ms,
    })


def from_reply(reply: dict[str, Any], timestamp_ms: int, snapshot: ConfigSnapshot | None = None) -> Partial:
    upstream = float(reply.get("upstream_ms", -1.0))
    return Partial(str(reply.get("org") or ""), str(reply.get("correlation_id") or ""), {
        **_ids(snapshot, str(reply.get("org") or ""), ""),
        "reply_status": int(reply["status"]),
        "reply_code": reply.get("error_code") or None,
        "reply_stage": str(reply.get("stage") or "") or None,
        "replied_ms": int(reply.get("produced_at_ms") or 0) or timestamp_ms,
        "reply_upstream_ms": upstream if upstream >= 0 else None,
        "bytes_out": len(reply.get("body") or b""),
    })


def from_refusal(refusal: dict[str, Any], snapshot: ConfigSnapshot | None = None) -> Partial:
    """A call ingress answered with an error before it entered the pipeline: its arrival and its answer at
    once, so the row is complete (ingress/refusal_log.py)."""
    org = str(refusal.get("org") or "")
    return Partial(org, str(refusal.get("correlation_id") or ""), {
        **_ids(snapshot, org, str(refusal.get("api_id") or "")),
        "method": str(refusal.get("method") or "")[:16],
        "path": str(refusal.get("path") or "")[:MAX_PATH],
        "bytes_in": int(refusal.get("bytes_in") or 0),
        "received_ms": int(refusal["received_at_ms"]),
        "expects_reply": True,
        "reply_status": int(refusal["status"]),
        "reply_code": str(refusal.get("error_code") or "") or None,
        "reply_stage": "ingress",
        "replied_ms": int(refusal["refused_at_ms"]),
    })


def from_dead_letter(letter: dict[str, Any], timestamp_ms: int, snapshot: ConfigSnapshot | None = None) -> Partial:
    """The failure: its code and stage, and a failed script's lines (already scrubbed of
    credentials by core/messages.dead_letter). The original call it carries is not read."""
    details = [storable(str(line)) for line in letter.get("details") or []][:MAX_DETAIL_LINES]
    return Partial(str(letter.get("org") or ""), str(letter.get("correlation_id") or ""), {
        **_ids(snapshot, str(letter.get("org") or ""), str(letter.get("api_id") or "")),
        "connector_id": str(letter.get("connector_id") or "") or None,
        "connector_version": int(letter.get("connector_version") or 0) or None,
        "dlq_code": str(letter.get("error_code") or "") or None,
        "dlq_stage": str(letter.get("stage") or "") or None,
        "failed_ms": int(letter.get("failed_at_ms") or 0) or timestamp_ms,
        "details": json.dumps(details) if details else None,
    })


def merged(partials: Iterable[Partial]) -> list[Partial]:
    """One partial per call: the first value seen of each column wins, as in the store."""
    out: dict[tuple[str, str], Partial] = {}
    for p in partials:
        if not p.correlation_id:
            continue
        have = out.get(p.key)
        if have is None:
            out[p.key] = Partial(p.org, p.correlation_id, {k: v for k, v in p.values.items() if v is not None})
            continue
        for k, v in p.values.items():
            if v is not None and have.values.get(k) is None:
                have.values[k] = v
    return list(out.values())
