"""Mode ``oauth2``: Bearer tokens that ingress itself issues at ``POST /{org}/oauth/token``
(client-credentials grant), and their issuance.

Tokens are HS256 JWTs signed with a key of the organisation's own, derived from the seal key:
``HKDF-SHA256(ikm=seal key, salt="junction-oauth2", info="token-signing:" + org id)``. Every instance
derives the same key, no key is stored or sent anywhere, a token of one organisation does not verify
in another, and rotating the seal key ends every token. Claims: ``iss`` ``junction``, ``aud``
``junction:{org id}``, ``sub`` the consumer id, ``client_id``, ``org``, ``scope`` (space-separated),
``iat``, ``exp``, ``jti``. A token stops working when its client is removed or its consumer disabled.
"""
from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import time
from typing import Any

import jwt as pyjwt
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from core.callerauth.base import (
    EXPIRED, AuthEnv, Credential, Extracted, Pairs, Principal, belongs, forbidden, unauthorized,
)
from core.callerauth.bearer import extract_bearer, scopes_of
from core.settings import Settings

__all__ = ["ISSUER", "NAME", "SCHEME", "audience", "check_client", "extract", "issue", "signing_key", "verify"]

NAME = "oauth2"
SCHEME = "Bearer"
ISSUER = "junction"
ALGORITHM = "HS256"


def audience(org_id: str) -> str:
    return f"junction:{org_id}"


def signing_key(settings: Settings, org_id: str) -> bytes:
    if not settings.seal_key:
        raise RuntimeError("JUNCTION_SEAL_KEY is not set: OAuth2 tokens cannot be signed")
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=b"junction-oauth2",
                info=b"token-signing:" + org_id.encode()).derive(base64.b64decode(settings.seal_key))


def check_client(consumer: dict[str, Any] | None, client_id: str, secret: str) -> dict[str, Any] | None:
    """The consumer's client ``client_id`` if ``secret`` is its secret (compared in constant time)."""
    supplied = hashlib.sha256(secret.encode()).hexdigest()
    for client in (consumer or {}).get("oauth_clients") or []:
        if client.get("client_id") == client_id:
            return client if hmac.compare_digest(supplied, str(client.get("secret_hash", ""))) else None
    hmac.compare_digest(supplied, supplied)  # the same work for an unknown client
    return None


def issue(settings: Settings, org: dict[str, Any], consumer: dict[str, Any], client: dict[str, Any],
          requested: frozenset[str] | None, ttl_s: int) -> tuple[str, frozenset[str]]:
    """A token for ``client`` with the scopes requested (all the client's when none are) that it has."""
    granted = frozenset(str(s) for s in client.get("scopes") or [])
    if requested is not None:
        granted &= requested
    now = int(time.time())
    claims = {"iss": ISSUER, "aud": audience(str(org["id"])), "sub": str(consumer["id"]), "client_id": client["client_id"],
              "org": org.get("slug"), "scope": " ".join(sorted(granted)), "iat": now, "exp": now + ttl_s,
              "jti": secrets.token_urlsafe(12)}
    return pyjwt.encode(claims, signing_key(settings, str(org["id"])), algorithm=ALGORITHM), granted


def extract(auth: dict[str, Any], headers: Pairs, query: Pairs) -> Extracted:
    return extract_bearer(NAME, headers)


async def verify(credential: Credential, api: dict[str, Any], org: dict[str, Any], env: AuthEnv) -> Principal:
    auth = api.get("auth") or {}
    slug = str(org.get("slug", ""))
    if not org.get("id"):
        raise unauthorized(auth, SCHEME, slug, "this organisation cannot verify tokens")
    try:
        claims = pyjwt.decode(credential.value, signing_key(env.settings, str(org["id"])), algorithms=[ALGORITHM],
                              audience=audience(str(org["id"])), issuer=ISSUER,
                              options={"require": ["exp", "iat", "sub", "aud", "iss"]})
    except pyjwt.ExpiredSignatureError:
        raise unauthorized(auth, SCHEME, slug, "the token has expired", code=EXPIRED) from None
    except pyjwt.PyJWTError as exc:
        raise unauthorized(auth, SCHEME, slug, f"the token is not valid: {type(exc).__name__}") from None
    consumer = env.snapshot.consumer(str(claims["sub"]))
    clients = {c.get("client_id") for c in (consumer or {}).get("oauth_clients") or []}
    if consumer is None or not belongs(consumer, org) or claims.get("client_id") not in clients:
        raise unauthorized(auth, SCHEME, slug, "the token's client no longer exists")
    scopes = scopes_of(claims)
    required = frozenset(str(s) for s in auth.get("scopes") or [])
    if not required <= scopes:
        raise forbidden(auth, SCHEME, slug, "the token lacks a required scope", code="insufficient_scope", scope=required)
    return Principal(consumer, scopes)
