"""``GET /api/v1/producer-key``: the public key async producers seal their callers' credentials to
(any signed-in user: it is public, but it names this installation). docs/async-producers.md."""
from __future__ import annotations

import base64

from aiohttp import web

from control.handlers.common import principal, reply, state
from core.sealing import PRODUCER_SUITE, PRODUCER_VERSION, sealer_for

__all__ = ["routes"]


async def producer_key(request: web.Request) -> web.Response:
    principal(request)
    public = sealer_for(state(request).settings).producer_public_key()
    return reply({"public_key": base64.b64encode(public).decode(), "suite": PRODUCER_SUITE,
                  "version_byte": PRODUCER_VERSION})


def routes() -> list[web.RouteDef]:
    return [web.get("/api/v1/producer-key", producer_key, allow_head=False)]
