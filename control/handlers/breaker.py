"""``GET /api/v1/orgs/{org}/connectors/{id}/breaker``: the circuit breaker of a connector's upstream.

Read-only, from the Redis state every egress instance shares (core/breaker_state.py): the breaker
is the upstream origin's, so connectors calling the same origin show the same one. Readable by
whoever may read the organisation (its admins and viewers, global admins); others get 404.
"""
from __future__ import annotations

from aiohttp import web

from control.handlers.common import org_for, reply, state
from control.store.resources import CONNECTOR, content_of
from core.breaker_state import BreakerStore, origin_of
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
    # A SOAP connector's breaker is where its envelopes go: its address override, else (not knowing the WSDL's
    # soap:address here) the WSDL's origin, which is the service's own in nearly every deployment.
    url = str(target.get("address") or target.get("url", ""))
    store, at = BreakerStore(st.redis, st.settings), now_ms()
    # With target.origins, calls go to them and not to target.url's own: the first one's is shown, and each.
    origins = [origin_of(o) for o in target.get("origins") or []] if target.get("protocol", "rest") == "rest" else []
    views = [(await store.read(o, at)).to_dict() for o in origins or [origin_of(url)]]
    shown = {**views[0], "connector": str(row["id"]), "fail_max": st.settings.breaker_fail_max,
             "reset_ms": st.settings.breaker_reset_ms}
    return reply({**shown, "origins": views} if origins else shown)


def routes() -> list[web.RouteDef]:
    return [web.get("/api/v1/orgs/{org}/connectors/{id}/breaker", connector_breaker)]
