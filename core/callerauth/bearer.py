"""What the two token modes (``jwt``, ``oauth2``) share: the Bearer credential and its scopes."""
from __future__ import annotations

from typing import Any

from core.callerauth.base import Credential, Extracted, Pairs, malformed, single

__all__ = ["extract_bearer", "scopes_of", "subject_of"]

_HEADER = frozenset({"authorization"})


def extract_bearer(mode: str, headers: Pairs) -> Extracted:
    value, count = single(headers, "Authorization")
    if count == 0 or not value:
        return Extracted(None, _HEADER)
    if count > 1:
        return malformed("Authorization", "is given more than once", strip_headers=_HEADER)
    scheme, _, token = value.strip().partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token or " " in token:
        return malformed("Authorization", "is not a Bearer token", strip_headers=_HEADER)
    return Extracted(Credential(mode, token, subject_of(token)), _HEADER)


def subject_of(token: str) -> str:
    """What names a token in counters and events without being it: its (unverified) ``sub`` or
    ``client_id`` when it has one, else a one-way fingerprint."""
    import hashlib

    import jwt

    try:
        claims = jwt.decode(token, options={"verify_signature": False})
        name = claims.get("client_id") or claims.get("sub")
        if isinstance(name, str) and name:
            return name[:128]
    except jwt.PyJWTError:
        pass
    return "tok:" + hashlib.sha256(token.encode()).hexdigest()[:16]


def scopes_of(claims: dict[str, Any]) -> frozenset[str]:
    """``scope`` (RFC 8693: space-separated) or ``scp`` (a list, as some issuers write it)."""
    scope = claims.get("scope")
    if isinstance(scope, str):
        return frozenset(scope.split())
    scp = claims.get("scp")
    if isinstance(scp, list):
        return frozenset(str(s) for s in scp)
    if isinstance(scp, str):
        return frozenset(scp.split())
    return frozenset()
