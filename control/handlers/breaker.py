"""``GET /api/v1/orgs/{org}/connectors/{id}/breaker``: the circuit breaker of a connector's upstream.

Read-only, from the Redis state every egress instance shares (core/breaker_state.py): the breaker
is the organisation's for the upstream origin, so its connectors calling the same origin show the same one
(another organisation's calls to it have breakers of their own). Readable by
whoever may read the organisation (its admins and viewers, global admins); others get 404.
"""
from __future__ import annotations

from aiohttp import web

from control.handlers.common import org_for, reply, state
from control.store.resources import CONNECTOR, content_of
from core.breaker_state import BreakerStore, target_origins
from core.errors import NotFound
from core.messages import now_ms

__all__ = ["routes"]


async def connector_breaker(request: web.Request) -> web.Response:
    st = state(request)
    ref = request.match_info["id"]
    async with st.db.acquire() as conn:
        org = await org_for(conn, request)
        row = await CONNECTOR.find(conn, str(org["id"]), ref)
    if row is None:
        raise NotFound(f"connector {ref!r} not found")
    target = content_of(row).get("target") or {}
    store, at = BreakerStore(st.redis, st.settings), now_ms()
    views = [(await store.read(str(org["slug"]), o, at)).to_dict() for o in target_origins(target)]
    shown = {**views[0], "connector": str(row["id"]), "fail_max": st.settings.breaker_fail_max,
             "reset_ms": st.settings.breaker_reset_ms}
    # With target.origins, calls go to them and not to target.url's own: the first one's is shown, and each.
    listed = target.get("protocol", "rest") == "rest" and bool(target.get("origins"))
    return reply({**shown, "origins": views} if listed else shown)


def routes() -> list[web.RouteDef]:
    return [web.get("/api/v1/orgs/{org}/connectors/{id}/breaker", connector_breaker)]
