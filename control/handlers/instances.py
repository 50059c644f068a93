"""``GET /api/v1/config/applied``: has every running instance applied the changes made so far (any
signed-in user; ``?wait=`` seconds to wait for it). ``GET /api/v1/instances``: the running ingress,
processors and egress instances and how far each has applied the configuration (global admins: it
names hosts and processes)."""
from __future__ import annotations

from datetime import datetime, timezone

from aiohttp import web

from control.config_applied import MAX_WAIT_S, ConfigApplied, is_applied
from control.handlers.common import principal, reply, state
from core.errors import FieldError, InvalidInput, ServiceUnavailable

__all__ = ["CONFIG_APPLIED", "routes"]

CONFIG_APPLIED = "config_applied"  # the ConfigApplied in ControlState.extras, when control runs with Kafka


def _checker(request: web.Request) -> ConfigApplied:
    checker = state(request).extras.get(CONFIG_APPLIED)
    if checker is None:
        raise ServiceUnavailable("this control instance runs without Kafka and cannot see the instances")
    return checker


def _wait_s(request: web.Request) -> float:
    raw = request.query.get("wait", "0")
    try:
        value = float(raw) if len(raw) <= 10 else -1.0
    except ValueError:
        value = -1.0
    if not 0 <= value <= MAX_WAIT_S:  # NaN fails too
        raise InvalidInput("wait: must be a number of seconds from 0 to 60",
                           fields=[FieldError("wait", f"must be a number of seconds from 0 to {MAX_WAIT_S:g}")])
    return value


async def config_applied(request: web.Request) -> web.Response:
    principal(request)
    wait_s = _wait_s(request)
    return reply(await _checker(request).status(wait_s))


async def list_instances(request: web.Request) -> web.Response:
    principal(request).require_global_admin()
    target, live = await _checker(request).instances()
    items = [{**s.to_dict(), "applied": is_applied(s, target),
              "started_at": datetime.fromtimestamp(s.started_at_ms / 1000, timezone.utc).isoformat()} for s in live]
    for item in items:
        del item["started_at_ms"]
    return reply({"config_offset": target, "items": items})


def routes() -> list[web.RouteDef]:
    return [web.get("/api/v1/config/applied", config_applied, allow_head=False),
            web.get("/api/v1/instances", list_instances, allow_head=False)]
