"""CORS at the edge, for an API with a ``cors`` policy (core/cors.py, docs/cors.md): its own, else its
organisation's (the most specific wins, whole: an API's policy is never merged with the organisation's).

Ingress answers a preflight itself, from the policy alone: a browser sends no credential with one, so it
is neither authenticated nor counted against a rate limit, and nothing goes on the broker. On every other
answer of such an API (errors included, so that a page can read why it failed) ingress sets the
``Access-Control-*`` headers and removes the upstream's: the policy is the API's, and an upstream's
``Access-Control-Allow-Origin: *`` must not widen it.
"""
from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from core.cors import SAFELISTED_HEADERS, CorsPolicy
from core.errors import FieldError, Forbidden
from core.headers import HEADER_NAME
from ingress.compression import add_vary
from ingress.per_version import PerVersion

__all__ = ["POLICY_KEY", "cors_middleware", "policy_of", "preflight_method", "preflight_response"]

POLICY_KEY = web.RequestKey("cors_policy", CorsPolicy)  # set by the gateway once it knows the API
REQUEST_METHOD = "Access-Control-Request-Method"
REQUEST_HEADERS = "Access-Control-Request-Headers"
_MAX_ASKED_HEADERS = 100
_MAX_ECHO = 200  # of an origin, in an error message
_policies = PerVersion("cors", CorsPolicy.of)
_org_policies = PerVersion("cors", CorsPolicy.of)


def policy_of(api: dict[str, Any], org: dict[str, Any] | None) -> CorsPolicy | None:
    """The policy the API follows: its own, else its organisation's; each parsed once per version of it."""
    if api.get("cors"):
        return _policies.of(api)
    return _org_policies.of(org) if org is not None else None


def preflight_method(request: web.Request) -> str | None:
    """The method a browser's preflight asks about, or None when ``request`` is not a preflight."""
    if request.method != "OPTIONS" or "Origin" not in request.headers:
        return None
    return request.headers.get(REQUEST_METHOD)


def preflight_response(request: web.Request, policy: CorsPolicy, api_methods: list[str], asked: str) -> web.Response:
    """204 with what the page may do, or :class:`Forbidden` naming what the policy refuses."""
    origin = request.headers["Origin"]
    if not policy.allows(origin):
        raise Forbidden(f"pages of {origin[:_MAX_ECHO]!r} may not call this API", code="cors_origin_not_allowed",
                        fields=[FieldError("Origin", "is not among the API's cors.origins")])
    # An organisation's policy may name methods an API does not take: pages are told only of the API's.
    methods = [m for m in policy.methods if m in api_methods or "*" in api_methods] if policy.methods is not None \
        else [m for m in api_methods if m != "*"]
    if asked not in methods and not (policy.methods is None and "*" in api_methods):
        raise Forbidden(f"{asked[:_MAX_ECHO]!r} is not a method browsers may use on this API", code="cors_method_not_allowed",
                        fields=[FieldError(REQUEST_METHOD, f"must be one of {', '.join(methods)}" if methods
                                          else "no method of this API is among cors.methods")])
    asked_headers = [h.strip() for h in request.headers.get(REQUEST_HEADERS, "").split(",") if h.strip()]
    if len(asked_headers) > _MAX_ASKED_HEADERS or not all(HEADER_NAME.fullmatch(h) for h in asked_headers):
        raise Forbidden("the preflight asks for headers that are not header names, or too many",
                        code="cors_headers_not_allowed",
                        fields=[FieldError(REQUEST_HEADERS, f"must be at most {_MAX_ASKED_HEADERS} header names")])
    if policy.headers is not None:
        refused = [h for h in asked_headers if h.lower() not in policy.headers and h.lower() not in SAFELISTED_HEADERS]
        if refused:
            raise Forbidden(f"pages may not send {', '.join(refused)} to this API", code="cors_headers_not_allowed",
                            fields=[FieldError(REQUEST_HEADERS, f"{', '.join(refused)} not among the API's cors.headers")])
    response = web.Response(status=204)
    headers = response.headers
    headers["Access-Control-Allow-Origin"] = policy.allow_origin(origin)
    headers["Access-Control-Allow-Methods"] = ", ".join(methods) if methods and "*" not in api_methods else asked
    if asked_headers:
        headers["Access-Control-Allow-Headers"] = ", ".join(asked_headers)
    if policy.credentials:
        headers["Access-Control-Allow-Credentials"] = "true"
    if policy.max_age_s is not None:
        headers["Access-Control-Max-Age"] = str(policy.max_age_s)
    for name in ("Origin", REQUEST_METHOD, REQUEST_HEADERS):
        add_vary(response, name)
    return response


def _decorate(request: web.Request, response: web.StreamResponse, policy: CorsPolicy) -> None:
    headers = response.headers
    for name in [k for k in headers if k.lower().startswith("access-control-")]:
        del headers[name]
    if policy.varies_by_origin:
        add_vary(response, "Origin")
    origin = request.headers.get("Origin")
    if origin is None or not policy.allows(origin):
        return  # the browser then keeps the answer from the page: that is the refusal
    headers["Access-Control-Allow-Origin"] = policy.allow_origin(origin)
    if policy.credentials:
        headers["Access-Control-Allow-Credentials"] = "true"
    if policy.exposed:
        headers["Access-Control-Expose-Headers"] = ", ".join(policy.exposed)


@web.middleware
async def cors_middleware(request: web.Request,
                          handler: Callable[[web.Request], Awaitable[web.StreamResponse]]) -> web.StreamResponse:
    """Outermost: it sees every answer, the error middleware's too."""
    response = await handler(request)
    policy = request.get(POLICY_KEY)
    if policy is not None and not response.prepared:
        _decorate(request, response, policy)
    return response
