"""Mode ``jwt``: a Bearer token from an external issuer, checked with PyJWT.

The key is the issuer's JWKS (``auth.jwks_url``, see :mod:`core.callerauth.jwks`) or a shared secret
(``auth.secret_sealed``, sealed for ``api-jwt:{api_id}``). Only the API's ``algorithms`` are accepted,
``none`` never, and never an HMAC algorithm with a JWKS key (the classic confusion: a public key used
as an HMAC secret), nor an asymmetric one with a shared secret. ``exp`` is required; ``nbf``, ``iss``,
``aud`` and the required ``scopes`` are checked; the consumer is the one whose id (or, failing that,
name) is the ``consumer_claim`` (default ``sub``).
"""
from __future__ import annotations

from typing import Any

import jwt as pyjwt

from core.callerauth.base import (
    EXPIRED, AuthEnv, Credential, Extracted, Pairs, Principal, belongs, forbidden, unauthorized,
)
from core.callerauth.bearer import extract_bearer, scopes_of
from core.sealing import SealError

__all__ = ["ASYMMETRIC", "HMAC", "NAME", "SCHEME", "extract", "verify"]

NAME = "jwt"
SCHEME = "Bearer"
HMAC = frozenset({"HS256", "HS384", "HS512"})
ASYMMETRIC = frozenset({"RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA"})


def extract(auth: dict[str, Any], headers: Pairs, query: Pairs) -> Extracted:
    return extract_bearer(NAME, headers)


def allowed_algorithms(auth: dict[str, Any]) -> frozenset[str]:
    """The API's algorithms that fit its key source: asymmetric with a JWKS, HMAC with a secret."""
    configured = frozenset(str(a) for a in (auth.get("algorithms") or (["RS256"] if auth.get("jwks_url") else ["HS256"])))
    return configured & (ASYMMETRIC if auth.get("jwks_url") else HMAC)


async def verify(credential: Credential, api: dict[str, Any], org: dict[str, Any], env: AuthEnv) -> Principal:
    auth = api.get("auth") or {}
    slug = str(org.get("slug", ""))

    def refused(message: str, code: str | None = None) -> Exception:
        return unauthorized(auth, SCHEME, slug, message, **({"code": code} if code else {}))

    try:
        header = pyjwt.get_unverified_header(credential.value)
    except pyjwt.PyJWTError:
        raise refused("the token is not a JWT") from None
    alg = header.get("alg")
    algorithms = allowed_algorithms(auth)
    if not isinstance(alg, str) or alg not in algorithms:
        raise refused("the token's algorithm is not accepted for this API")
    key = await _key(auth, api, header, alg, env)
    if key is None:
        raise refused("the token's key is not known")
    options = {"require": ["exp"], "verify_aud": bool(auth.get("audience"))}
    try:
        claims = pyjwt.decode(credential.value, key, algorithms=[alg], audience=auth.get("audience"),
                              issuer=auth.get("issuer"), leeway=float(auth.get("leeway_s") or 0), options=options)
    except pyjwt.ExpiredSignatureError:
        raise refused("the token has expired", EXPIRED) from None
    except pyjwt.PyJWTError as exc:
        raise refused(f"the token is not valid: {type(exc).__name__}") from None
    claim = str(auth.get("consumer_claim") or "sub")
    value = claims.get(claim)
    consumer = env.snapshot.consumer_by_reference(org, str(value)) if isinstance(value, (str, int)) else None
    if consumer is None or not belongs(consumer, org):
        raise refused(f"no consumer of this organisation is named by the token's {claim!r} claim")
    scopes = scopes_of(claims)
    required = frozenset(str(s) for s in auth.get("scopes") or [])
    if not required <= scopes:
        raise forbidden(auth, SCHEME, slug, "the token lacks a required scope", code="insufficient_scope", scope=required)
    return Principal(consumer, scopes)


async def _key(auth: dict[str, Any], api: dict[str, Any], header: dict[str, Any], alg: str, env: AuthEnv) -> Any:
    if auth.get("jwks_url"):
        kid = header.get("kid")
        jwk = await env.jwks.key(str(auth["jwks_url"]), str(kid) if kid is not None else None)
        if jwk is None or (jwk.get("alg") and jwk["alg"] != alg) or jwk.get("kty") == "oct":
            return None  # a symmetric key in a JWKS, or one meant for another algorithm, signs nothing here
        try:
            return pyjwt.PyJWK(jwk, algorithm=alg).key
        except pyjwt.PyJWTError:
            return None
    sealed = auth.get("secret_sealed")
    if not sealed or env.sealer is None:
        return None
    try:
        secret = env.sealer.open_json(str(sealed), f"api-jwt:{api.get('id')}")
    except SealError:
        return None
    return secret.encode() if isinstance(secret, str) else None
