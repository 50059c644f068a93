"""Metrics of the calls: GET /api/v1/orgs/{org}/metrics, GET /api/v1/metrics (global admin) and the
live stream GET /api/v1/orgs/{org}/metrics/stream (Server-Sent Events).

The numbers come from ``metric_windows``, which control's observe stage fills from the topics
(docs/observability.md). A series has one point per window that saw calls; ``step`` (10s, 1m or
1h) is chosen from the range when absent. Another organisation's metrics answer 404.
"""
from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import logging
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any

from aiohttp import web

from control.filters import api_ref, param_errors, parse_time
from control.handlers.common import api_named, org_for, principal, reply, state
from control.store.metrics import STEPS, points, window_rows
from control.validation import raise_if
from core.errors import FieldError, ServiceUnavailable

__all__ = ["MAX_POINTS", "Range", "close_streams", "routes"]

log = logging.getLogger(__name__)

MAX_POINTS = 10_000
DEFAULT_SPAN = timedelta(hours=1)
STREAM_POLL_S = 2.0
STREAM_SETTLE_S = 5.0  # a 10 s window is sent this long after it ends: the stage flushes meanwhile
STREAM_BACKLOG = timedelta(minutes=5)
STREAM_MAX_S = 3600.0  # then the stream ends; EventSource clients reconnect by themselves
_STREAMS = "metric_streams"


@dataclass(frozen=True)
class Range:
    since: datetime
    until: datetime
    step: str
    api_id: str | None
    api_name: str | None  # given instead of an id: looked up in the organisation


def _choose_step(span: timedelta) -> str:
    if span <= timedelta(hours=1):
        return "10s"
    if span <= timedelta(days=2):
        return "1m"
    return "1h"


def _range(request: web.Request) -> Range:
    q = request.query
    errors = param_errors(request.query, ("api", "from", "to", "step"))
    raise_if(errors)
    until = parse_time(q["to"], "to", errors) if "to" in q else datetime.now(timezone.utc)
    since = parse_time(q["from"], "from", errors) if "from" in q else None
    api_id, api_name = api_ref(q.get("api"), "api", errors)
    step = q.get("step")
    if step is not None and step not in STEPS:
        errors.append(FieldError("step", f"must be one of {', '.join(STEPS)}"))
    raise_if(errors)
    assert until is not None
    if since is None:
        since = until - DEFAULT_SPAN if until - datetime.min.replace(tzinfo=timezone.utc) > DEFAULT_SPAN else until
    if since > until:
        errors.append(FieldError("from", "must not be after to"))
    step = step or _choose_step(until - since)
    if errors == [] and (until - since).total_seconds() / STEPS[step] > MAX_POINTS:
        errors.append(FieldError("step", f"gives more than {MAX_POINTS} points for this range: use a coarser step "
                                         "or a shorter range"))
    raise_if(errors)
    return Range(since, until, step, api_id, api_name)


def _window(r: Range) -> dict[str, Any]:
    return {"step": r.step, "from": r.since.isoformat(), "to": r.until.isoformat(), "api": r.api_id}


async def org_metrics(request: web.Request) -> web.Response:
    r = _range(request)
    async with state(request).db.acquire() as conn:
        org = await org_for(conn, request)
        if r.api_name is not None:
            r = dataclasses.replace(r, api_id=await api_named(conn, str(org["id"]), r.api_name), api_name=None)
        rows = await window_rows(conn, step_s=STEPS[r.step], since=r.since, until=r.until, org_id=str(org["id"]),
                                 api_id=r.api_id)
    return reply({"org": org["slug"], "org_id": str(org["id"]), **_window(r), "points": points(rows)})


async def all_metrics(request: web.Request) -> web.Response:
    principal(request).require_global_admin()
    r = _range(request)
    async with state(request).db.acquire() as conn:
        if r.api_name is not None:
            await api_named(conn, None, r.api_name)  # a 422: a name needs an organisation
        rows = await window_rows(conn, step_s=STEPS[r.step], since=r.since, until=r.until, api_id=r.api_id)
    by_org: dict[str, list[Any]] = {}
    for row in rows:
        by_org.setdefault(str(row["org_id"]), []).append(row)
    series = [{"org_id": org_id, "org": group[0]["org"], "points": points(group)} for org_id, group in sorted(by_org.items())]
    return reply({**_window(r), "series": series})


@dataclass
class _Streams:
    """The live streams of one control instance: bounded, and all ended when it shuts down."""

    limit: int
    open: int = 0
    closing: asyncio.Event = field(default_factory=asyncio.Event)


def _streams(request: web.Request) -> _Streams:
    st = state(request)
    streams = st.extras.get(_STREAMS)
    if streams is None:
        streams = st.extras[_STREAMS] = _Streams(st.settings.control_metric_streams)
    return streams


async def close_streams(app: web.Application) -> None:
    """on_shutdown: end every live stream now, rather than have shutdown wait for them."""
    from control.state import STATE

    streams = app[STATE].extras.get(_STREAMS)
    if streams is not None:
        streams.closing.set()


async def metrics_stream(request: web.Request) -> web.StreamResponse:
    """Each 10 s window of the organisation (or one API) as an SSE ``window`` event, once it has
    settled; a comment line in between keeps proxies from closing an idle stream."""
    errors = param_errors(request.query, ("api",))
    api_id, api_name = api_ref(request.query.get("api"), "api", errors)
    raise_if(errors)
    db = state(request).db
    async with db.acquire() as conn:
        org = await org_for(conn, request)
        if api_name is not None:
            api_id = await api_named(conn, str(org["id"]), api_name)
    streams = _streams(request)
    if streams.open >= streams.limit or streams.closing.is_set():
        raise ServiceUnavailable("too many live metric streams; try again later", code="too_many_streams",
                                 headers={"Retry-After": "10"})
    streams.open += 1
    try:
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache",
                                               "X-Accel-Buffering": "no"})
        await response.prepare(request)
        await _pump(response, db, str(org["id"]), api_id, streams.closing)
        return response
    finally:
        streams.open -= 1


async def _pump(response: web.StreamResponse, db: Any, org_id: str, api_id: str | None, closing: asyncio.Event) -> None:
    # A dashboard that connects gets the last few minutes at once, then each window as it settles.
    sent_until = datetime.now(timezone.utc) - STREAM_BACKLOG
    ends = time.monotonic() + STREAM_MAX_S
    try:
        await response.write(b"retry: 5000\n\n")
        while time.monotonic() < ends and not closing.is_set():
            settled = datetime.now(timezone.utc) - timedelta(seconds=10 + STREAM_SETTLE_S)
            async with db.acquire() as conn:
                rows = await window_rows(conn, step_s=10, since=sent_until + timedelta(microseconds=1), until=settled,
                                         org_id=org_id, api_id=api_id)
            chunk = b"".join(b"event: window\ndata: " + json.dumps(p, separators=(",", ":")).encode() + b"\n\n"
                             for p in points(rows))
            sent_until = max(sent_until, settled)
            await response.write(chunk or b": idle\n\n")
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(STREAM_POLL_S):
                    await closing.wait()
    except (ConnectionResetError, ConnectionError):
        log.debug("metrics stream client went away")  # the normal end of a stream


def routes() -> list[web.RouteDef]:
    return [
        web.get("/api/v1/metrics", all_metrics),
        web.get("/api/v1/orgs/{org}/metrics", org_metrics),
        web.get("/api/v1/orgs/{org}/metrics/stream", metrics_stream),
    ]
