"""Mode ``api_key``: a consumer's key in a header or a query parameter (``auth.in``/``auth.name``).

Keys are looked up by the SHA-256 of the whole key, the only form the config carries, so the
lookup is a hash-table probe on a digest: nothing about a stored key leaks through timing.
"""
from __future__ import annotations

import hashlib
import time
from typing import Any

from core.callerauth.base import (
    EXPIRED, AuthEnv, Credential, Extracted, Pairs, Principal, belongs, malformed, single, unauthorized,
)

__all__ = ["NAME", "PREFIX_CHARS", "SCHEME", "extract", "verify"]

NAME = "api_key"
SCHEME = "ApiKey"
PREFIX_CHARS = 10  # "jk_" and 7 characters of the key: enough to tell keys apart in events, too few to matter


def _where(auth: dict[str, Any]) -> tuple[str, str]:
    return ("query" if auth.get("in") == "query" else "header"), str(auth.get("name") or "X-API-Key")


def extract(auth: dict[str, Any], headers: Pairs, query: Pairs) -> Extracted:
    where, name = _where(auth)
    value, count = single(query if where == "query" else headers, name)
    strip = frozenset({name.lower()})
    stripped = Extracted(None, strip_headers=strip if where == "header" else frozenset(),
                         strip_query=strip if where == "query" else frozenset())
    if count == 0 or not value:
        return stripped
    if count > 1:
        return malformed(name, "is given more than once", strip_headers=stripped.strip_headers,
                         strip_query=stripped.strip_query)
    value = value.strip()
    return Extracted(Credential(NAME, value, value[:PREFIX_CHARS]), stripped.strip_headers, stripped.strip_query)


async def verify(credential: Credential, api: dict[str, Any], org: dict[str, Any], env: AuthEnv) -> Principal:
    slug = str(org.get("slug", ""))
    found = env.snapshot.consumer_by_key_hash(hashlib.sha256(credential.value.encode()).hexdigest())
    # A key of another organisation is no key here: the same answer as an unknown one.
    if found is None or not belongs(found[0], org):
        raise unauthorized(api.get("auth") or {}, SCHEME, slug, "the API key is not valid")
    consumer, key = found
    expires = key.get("expires_at_ms")
    if expires is not None and int(expires) <= int(time.time() * 1000):
        raise unauthorized(api.get("auth") or {}, SCHEME, slug, "the API key has expired", code=EXPIRED)
    return Principal(consumer)
