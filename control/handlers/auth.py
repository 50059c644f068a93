"""POST /api/v1/auth/login."""
from __future__ import annotations

from aiohttp import web

from control.auth import check_password
from control.handlers.common import body, reply, state
from control.store.users import find_login
from core.errors import Unauthorized

__all__ = ["routes"]


async def login(request: web.Request) -> web.Response:
    data = await body(request, "LoginRequest")
    st = state(request)
    async with st.db.acquire() as conn:
        user = await find_login(conn, data["email"])
    ok = await check_password(data["password"], user["password_hash"] if user else None)
    if user is None or not ok:
        raise Unauthorized("wrong email or password", code="invalid_credentials")
    assert st.tokens is not None
    token = st.tokens.issue(str(user["id"]), user["email"], user["role"],
                            str(user["org_id"]) if user["org_id"] else None)
    return reply(token)


def routes() -> list[web.RouteDef]:
    return [web.post("/api/v1/auth/login", login)]
