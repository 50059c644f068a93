"""Control-plane middlewares: security and CORS headers, CORS preflights, rate limits per token, and
bearer-token authentication (with revocation, disabled users and usage counts).

The order in :func:`control.app.create_app`: error rendering, preflight, rate limit, authentication.
Headers go on in ``on_response_prepare``, so every response gets them, errors included.
"""
from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from control.auth import token_revoked
from control.rbac import PRINCIPAL, Principal
from control.state import STATE, ControlState
from control.store.users import get_user
from control.usage import count_request
from control.validation import is_uuid
from core.client_address import Network, trusted_networks
from core.client_address import client_address as core_client_address
from core.errors import Forbidden, JunctionError, RateLimited, Unauthorized
from core.http import SECURITY_HEADERS
from core.security import record_security_event
from core.ratelimit import SlidingWindow
from core.settings import Settings

__all__ = ["PUBLIC_PATHS", "TOKEN_CLAIMS", "authenticate", "client_address", "cors_preflight", "rate_limit",
           "response_headers"]

PUBLIC_PATHS = frozenset({"/api/v1/auth/login", "/api/v1/openapi.json"})
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
Middleware = Callable[[web.Request, Handler], Awaitable[web.StreamResponse]]
# The verified claims of the request's token, for logout (which revokes exactly that token).
TOKEN_CLAIMS: Any = web.RequestKey("token_claims", dict) if hasattr(web, "RequestKey") else "token_claims"

CORS_METHODS = "GET, POST, PUT, PATCH, DELETE"
CORS_HEADERS = "Authorization, Content-Type, If-Match, X-Request-Id"
CORS_EXPOSED = "ETag, X-Request-Id, Retry-After, RateLimit-Limit, RateLimit-Remaining, RateLimit-Reset"
CORS_MAX_AGE = "600"
_WINDOW = "control_rate_window"


def _split(raw: str) -> list[str]:
    return [part.strip() for part in raw.split(",") if part.strip()]


def _networks(settings: Settings) -> tuple[Network, ...]:
    return trusted_networks(settings.control_trusted_proxies, "JUNCTION_CONTROL_TRUSTED_PROXIES")


def client_address(request: web.Request) -> str:
    """The peer address; behind a trusted proxy (``control_trusted_proxies``), the address that proxy
    saw (core/client_address.py)."""
    return core_client_address(request.remote or "", request.headers.getall("X-Forwarded-For", []),
                               _networks(request.app[STATE].settings))


def _allowed_origin(settings: Settings, origin: str) -> str | None:
    """What Access-Control-Allow-Origin answers ``origin``: itself, ``*``, or None (not allowed)."""
    origins = _split(settings.control_cors_origins)
    if origin in origins:
        return origin
    return "*" if "*" in origins else None


def response_headers(settings: Settings) -> Callable[[web.Request, web.StreamResponse], Awaitable[None]]:
    """An ``on_response_prepare`` hook: security headers on every response, CORS headers on those
    to an allowed origin."""
    cors = bool(_split(settings.control_cors_origins))
    _networks(settings)  # a bad trusted-proxy entry fails at start-up, not on the first request

    async def hook(request: web.Request, response: web.StreamResponse) -> None:
        for name, value in SECURITY_HEADERS.items():
            response.headers.setdefault(name, value)
        if request.path.startswith("/api/v1/"):
            response.headers.setdefault("Cache-Control", "no-store")  # tokens and generated passwords
        if not cors:
            return
        response.headers.add("Vary", "Origin")
        allowed = _allowed_origin(settings, request.headers.get("Origin", ""))
        if allowed is None:
            return
        response.headers["Access-Control-Allow-Origin"] = allowed
        response.headers["Access-Control-Expose-Headers"] = CORS_EXPOSED
        if allowed != "*":  # a wildcard never comes with credentials
            response.headers["Access-Control-Allow-Credentials"] = "true"

    return hook


def cors_preflight() -> Middleware:
    """Answer a CORS preflight (OPTIONS with Origin and Access-Control-Request-Method) before routing:
    204 with what may be sent for an allowed origin, 403 ``origin_not_allowed`` otherwise. Without
    ``control_cors_origins`` there is no CORS: OPTIONS goes on to routing (405)."""

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        settings = request.app[STATE].settings
        if (request.method != "OPTIONS" or "Access-Control-Request-Method" not in request.headers
                or not _split(settings.control_cors_origins)):
            return await handler(request)
        if _allowed_origin(settings, request.headers.get("Origin", "")) is None:
            raise Forbidden("this origin may not call the management API", code="origin_not_allowed")
        return web.Response(status=204, headers={
            "Access-Control-Allow-Methods": CORS_METHODS, "Access-Control-Allow-Headers": CORS_HEADERS,
            "Access-Control-Max-Age": CORS_MAX_AGE})

    return middleware


def _bearer(request: web.Request) -> str | None:
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    return token.strip() if scheme.lower() == "bearer" and token.strip() else None


def _window(st: ControlState) -> SlidingWindow:
    window = st.extras.get(_WINDOW)
    if window is None:
        window = st.extras[_WINDOW] = SlidingWindow(st.redis)
    return window


def rate_limit() -> Middleware:
    """``control_rate_limit_requests`` per ``control_rate_limit_per_seconds`` per token (its ``jti``),
    per client address for requests without a valid token; 429 ``rate_limited`` over it. Both carry
    the RateLimit-* headers."""

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        st = request.app[STATE]
        limit = st.settings.control_rate_limit_requests
        if limit <= 0 or not request.path.startswith("/api/v1/"):
            return await handler(request)
        subject = "address:" + client_address(request)
        token = _bearer(request)
        if token and st.tokens is not None:
            try:
                subject = "token:" + str(st.tokens.verify(token)["jti"])
            except JunctionError:
                pass  # authentication refuses it next; until then it counts against the address
        decision = await _window(st).hit(st.settings.redis_key("control", "ratelimit", subject), limit,
                                         st.settings.control_rate_limit_per_seconds)
        if not decision.admitted:
            raise RateLimited("too many requests; slow down", headers=decision.headers())
        try:
            response = await handler(request)
        except JunctionError as err:
            err.headers.update(decision.headers())
            raise
        if not response.prepared:
            response.headers.update(decision.headers())
        return response

    return middleware


def authenticate() -> Middleware:
    """Attach ``request["principal"]`` from a bearer token on /api/v1 routes.

    The user row is read on every request, so a deleted or disabled user or a changed
    role takes effect at once, not when the token expires. A logged-out token, or one
    issued before the user's last password change or disable, is refused (``token_revoked``).
    """

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        if not request.path.startswith("/api/v1/") or request.path in PUBLIC_PATHS:
            return await handler(request)
        token = _bearer(request)
        if token is None:
            raise Unauthorized("a bearer token is required", headers={"WWW-Authenticate": 'Bearer realm="junction"'})
        st = request.app[STATE]
        assert st.tokens is not None
        claims = st.tokens.verify(token)
        sub = str(claims.get("sub", ""))
        if not is_uuid(sub):
            raise Unauthorized("invalid token", code="invalid_token")
        async with st.db.acquire() as conn:
            user = await get_user(conn, sub)
        if user is None:
            raise Unauthorized("the token's user no longer exists", code="invalid_token")
        if not user["enabled"]:  # said first: disabling also revoked the token, but this is what to know
            raise Unauthorized("this account is disabled", code="user_disabled")
        if await token_revoked(st.redis, st.settings, claims, user["tokens_not_before"]):
            raise Unauthorized("this token was revoked; log in again", code="token_revoked")
        org_id = str(user["org_id"]) if user["org_id"] else None
        request[PRINCIPAL] = Principal(str(user["id"]), user["email"], user["role"], org_id)
        request[TOKEN_CLAIMS] = claims
        await count_request(st.redis, st.settings, str(user["id"]), org_id)
        try:
            return await handler(request)
        except Forbidden as err:
            # Someone signed in reaching past their role: each attempt is a security event (a viewer's
            # stolen token probing for writes, an org admin trying global routes), not only a 403.
            await record_security_event(st.redis, st.settings, "access_denied", org=org_id,
                                        source=client_address(request), subject=user["email"],
                                        detail={"method": request.method, "path": request.path[:200], "code": err.code})
            raise

    return middleware
