"""Control-plane middlewares: bearer-token authentication."""
from __future__ import annotations

from collections.abc import Awaitable, Callable

from aiohttp import web

from control.rbac import PRINCIPAL, Principal
from control.state import STATE
from control.store.users import get_user
from control.validation import is_uuid
from core.errors import Unauthorized

__all__ = ["PUBLIC_PATHS", "authenticate"]

PUBLIC_PATHS = frozenset({"/api/v1/auth/login", "/api/v1/openapi.json"})
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def authenticate() -> Callable[[web.Request, Handler], Awaitable[web.StreamResponse]]:
    """Attach ``request["principal"]`` from a bearer token on /api/v1 routes.

    The user row is read on every request, so a deleted user or a changed
    role takes effect at once, not when the token expires.
    """

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        if not request.path.startswith("/api/v1/") or request.path in PUBLIC_PATHS:
            return await handler(request)
        header = request.headers.get("Authorization", "")
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise Unauthorized("a bearer token is required", headers={"WWW-Authenticate": 'Bearer realm="junction"'})
        st = request.app[STATE]
        assert st.tokens is not None
        claims = st.tokens.verify(token.strip())
        sub = str(claims.get("sub", ""))
        if not is_uuid(sub):
            raise Unauthorized("invalid token", code="invalid_token")
        async with st.db.acquire() as conn:
            user = await get_user(conn, sub)
        if user is None:
            raise Unauthorized("the token's user no longer exists", code="invalid_token")
        request[PRINCIPAL] = Principal(str(user["id"]), user["email"], user["role"],
                                         str(user["org_id"]) if user["org_id"] else None)
        return await handler(request)

    return middleware
