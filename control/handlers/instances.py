"""``GET /api/v1/config/applied``: has every running instance applied the changes made so far (any
signed-in user; ``?wait=`` seconds to wait for it). ``GET /api/v1/instances``: the running ingress,
processors and egress instances and how far each has applied the configuration (global admins: it
names hosts and processes)."""
from __future__ import annotations

from datetime import datetime, timezone

from aiohttp import web

from control.config_applied import MAX_WAIT_S, ConfigApplied, is_applied
from control.handlers.common import principal, reply, state, wait_seconds
from core.errors import ServiceUnavailable

__all__ = ["CONFIG_APPLIED", "routes"]

CONFIG_APPLIED = "config_applied"  # the ConfigApplied in ControlState.extras, when control runs with Kafka


def _checker(request: web.Request) -> ConfigApplied:
    checker = state(request).extras.get(CONFIG_APPLIED)
    if checker is None:
        raise ServiceUnavailable("this control instance runs without Kafka and cannot see the instances")
    return checker


async def config_applied(request: web.Request) -> web.Response:
    principal(request)
    wait_s = wait_seconds(request, MAX_WAIT_S)
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
