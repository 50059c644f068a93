"""When a joined call is complete, and what its outcome is.

Complete means: its arrival is known and either the reply it waits for came, or (a call that
waits for none) a dead letter came. A call still open when its deadline has passed by the
grace period is *forced*: it is finished with what is known (a reply or dead letter without the
arrival; for fire-and-forget, handed to egress and no failure = 202; otherwise the reply never
came = 504 ``no_reply``), so every call that entered ends in exactly one row and one count.
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
from typing import Any

from core.errors import JunctionError
from core.messages import INVALID_REPLY_PARTITION, INVALID_REPLY_TOPIC

__all__ = ["Finished", "finish", "status_of_code"]

# Codes processors raise with a status their class does not carry (core/errors.py holds the rest).
_CODE_STATUS = {"org_not_found": 404, "route_not_found": 404, "api_not_in_org": 404, "api_disabled": 404,
                "method_not_allowed": 405, INVALID_REPLY_TOPIC: 400, INVALID_REPLY_PARTITION: 400,
                "undecodable": 400, "upstream_unavailable": 502}


@dataclass(frozen=True)
class Finished:
    """One call's outcome: a request-log row's final columns and what metrics count."""

    org: str
    correlation_id: str
    org_id: str | None
    api_id: str
    status: int
    error_code: str | None
    stage: str | None
    latency_ms: float | None
    upstream_ms: float | None
    bytes_in: int
    bytes_out: int
    at_ms: int  # when the call arrived (else when it was first seen to end): its metrics window


@cache
def _codes() -> dict[str, int]:
    out: dict[str, int] = {}
    todo: list[type[JunctionError]] = [JunctionError]
    while todo:
        cls = todo.pop()
        out.setdefault(cls.code, cls.status)
        todo += cls.__subclasses__()
    return {**out, **_CODE_STATUS}


def status_of_code(code: str | None) -> int:
    """The HTTP status a dead letter's error code stands for (it carries no status)."""
    return _codes().get(code or "", 500)


def _span(start: int | None, end: int | None) -> float | None:
    if not start or not end:
        return None
    return float(max(end - start, 0))


def finish(row: Mapping[str, Any], *, now_ms: int, forced: bool = False) -> Finished | None:
    """The outcome of the joined ``row``, or None while it must wait for more."""
    received = row.get("received_ms")
    has_reply = row.get("reply_status") is not None
    has_letter = row.get("dlq_code") is not None
    waits_reply = bool(row.get("expects_reply"))
    if not forced:
        if received is None or not (has_reply or (has_letter and not waits_reply)):
            return None
    upstream = None
    if has_reply:
        status, code, stage, end = int(row["reply_status"]), row.get("reply_code") or row.get("dlq_code"), \
            row.get("reply_stage"), row.get("replied_ms")
        upstream = row.get("reply_upstream_ms")
        if upstream is None and stage == "egress" and row.get("handoff_ms") and end:
            # A Reply that does not say (an egress of before Reply.upstream_ms) bounds it from
            # above by the time from the handoff to egress to the reply.
            upstream = float(max(end - row["handoff_ms"], 0))
    elif has_letter:
        status, code, stage, end = status_of_code(row["dlq_code"]), row["dlq_code"], row.get("dlq_stage"), row.get("failed_ms")
    elif not waits_reply and row.get("handoff_ms"):
        status, code, stage, end = 202, None, "egress", row["handoff_ms"]
    else:
        status, code, stage, end = 504, "no_reply", None, row.get("deadline_ms") or now_ms
    if code is None and status >= 400:
        code = f"http_{status}"
    return Finished(
        org=str(row["org"]), correlation_id=str(row["correlation_id"]),
        org_id=str(row["org_id"]) if row.get("org_id") else None, api_id=str(row.get("api_id") or ""),
        status=status, error_code=code, stage=stage, latency_ms=_span(received, end),
        upstream_ms=float(upstream) if upstream is not None else None,
        bytes_in=int(row.get("bytes_in") or 0), bytes_out=int(row.get("bytes_out") or 0),
        at_ms=int(received or end or now_ms),
    )
