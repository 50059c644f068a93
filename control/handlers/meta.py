"""GET /api/v1/openapi.json."""
from __future__ import annotations

from aiohttp import web

from control.handlers.common import reply, state
from control.openapi import build_openapi

__all__ = ["routes"]


async def openapi(request: web.Request) -> web.Response:
    st = state(request)
    doc = st.extras.get("openapi")
    if doc is None:
        doc = st.extras["openapi"] = build_openapi(st.settings)
    return reply(doc)


def routes() -> list[web.RouteDef]:
    return [web.get("/api/v1/openapi.json", openapi, allow_head=False)]
