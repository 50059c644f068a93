"""What every caller-authentication mode shares: the credential it extracts, the principal it
verifies, the challenge it answers with, and the consumer checks that apply whatever the mode.

A mode (see :mod:`core.callerauth.registry`) is a module with the same four names, like a Kong plugin:
``NAME``, ``SCHEME`` (for ``WWW-Authenticate``), ``extract(auth, headers, query)`` and
``async verify(credential, api, org, env)``. Extraction is pure and cheap; verification consults the
config snapshot (and, for some modes, bcrypt or a JWKS document).
"""
from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from core.errors import FieldError, Forbidden, Unauthorized

if TYPE_CHECKING:
    from core.callerauth.basic import PasswordCache
    from core.callerauth.jwks import JwksCache
    from core.sealing import Sealer
    from core.settings import Settings
    from core.snapshot import ConfigSnapshot

__all__ = [
    "DEFAULT_CONSUMER_HEADER", "EXPIRED", "INVALID", "MISSING", "AuthEnv", "Credential", "Extracted", "Pairs", "Principal", "admit", "belongs",
    "challenge", "consumer_header", "consumer_headers", "forbidden", "malformed", "single", "unauthorized", "without",
]

Pairs = list[tuple[str, str]]
# The codes of a 401: nothing presented (not a violation), or presented and refused (counted).
MISSING = "credential_missing"
INVALID = "invalid_credential"
EXPIRED = "credential_expired"
DEFAULT_CONSUMER_HEADER = "X-Consumer-Id"


@dataclass(frozen=True)
class Credential:
    """A credential as presented. ``subject`` names it without revealing it (a key's prefix, a
    username, a client id): what may be counted, logged and recorded in security events."""

    mode: str
    value: str = field(repr=False)
    subject: str

    def fingerprint(self) -> str:
        """A short, one-way name of the whole credential, for counters that must tell keys apart."""
        return hashlib.sha256(self.value.encode()).hexdigest()[:16]


@dataclass(frozen=True)
class Extracted:
    """What a mode found in a request, and what must not travel on (names lower-case: a credential
    found case-insensitively is stripped the same way)."""

    credential: Credential | None
    strip_headers: frozenset[str] = frozenset()
    strip_query: frozenset[str] = frozenset()
    # Set when the request carries something unusable (two values, a malformed header): a 401,
    # never "no credential" (which an allow-less API might treat differently one day).
    malformed: str | None = None
    # The header or query parameter at fault when ``malformed``: the 401 names it in ``fields``.
    malformed_field: FieldError | None = None


def malformed(name: str, problem: str, *, strip_headers: frozenset[str] = frozenset(),
              strip_query: frozenset[str] = frozenset()) -> Extracted:
    """What a request carrying ``name`` (a header or query parameter) in an unusable form yields: a 401
    whose message and ``fields`` name it (``X-API-Key`` is given more than once, say)."""
    return Extracted(None, strip_headers, strip_query, malformed=f"{name} {problem}",
                     malformed_field=FieldError(name, problem))


@dataclass(frozen=True)
class Principal:
    consumer: dict[str, Any] | None
    scopes: frozenset[str] = frozenset()

    @property
    def consumer_id(self) -> str | None:
        return None if self.consumer is None else str(self.consumer.get("id", ""))


@dataclass
class AuthEnv:
    """What verification may consult; one per process, shared by every call."""

    settings: "Settings"
    snapshot: "ConfigSnapshot"
    sealer: "Sealer | None"
    passwords: "PasswordCache"
    jwks: "JwksCache"


def single(pairs: Pairs, name: str) -> tuple[str | None, int]:
    """The value of ``name`` (case-insensitive) and how many times it appears."""
    lowered = name.lower()
    values = [v for k, v in pairs if k.lower() == lowered]
    return (values[0] if values else None), len(values)


def without(pairs: Pairs, names: frozenset[str]) -> Pairs:
    """``pairs`` less every pair whose name is one of ``names`` (compared case-insensitively)."""
    return [(k, v) for k, v in pairs if k.lower() not in names] if names else list(pairs)


def challenge(auth: dict[str, Any], scheme: str, realm: str, *, error: str | None = None,
              description: str | None = None, scope: Iterable[str] | None = None) -> str:
    """The ``WWW-Authenticate`` value (RFC 9110 §11.6.1; RFC 6750 §3 for Bearer's error fields)."""
    params = [f'realm="{_quoted(realm)}"']
    if scheme == "ApiKey":
        params.append(f'{"header" if auth.get("in", "header") == "header" else "query"}="{_quoted(_key_name(auth))}"')
    if scheme == "Basic":
        params.append('charset="UTF-8"')
    if error:
        params.append(f'error="{error}"')
    if description:
        params.append(f'error_description="{_quoted(description)}"')
    if scope:
        params.append(f'scope="{_quoted(" ".join(sorted(scope)))}"')
    return f"{scheme} " + ", ".join(params)


def _key_name(auth: dict[str, Any]) -> str:
    return str(auth.get("name") or "X-API-Key")


def _quoted(text: str) -> str:
    return "".join(c for c in text if c.isprintable() and c not in '"\\')[:200]


def unauthorized(auth: dict[str, Any], scheme: str, org: str, message: str, *, code: str = INVALID,
                 fields: list[FieldError] | None = None) -> Unauthorized:
    """A 401 naming the scheme and realm. ``code`` is :data:`MISSING` when nothing was presented (no
    Bearer ``error``, RFC 6750 §3.1), else why the credential was refused; the message never quotes it."""
    error = None if code == MISSING or scheme != "Bearer" else "invalid_token"
    return Unauthorized(message, code=code, headers={"WWW-Authenticate": challenge(auth, scheme, org, error=error)},
                        fields=fields)


def forbidden(auth: dict[str, Any], scheme: str, org: str, message: str, *, code: str = "forbidden",
              scope: Iterable[str] | None = None) -> Forbidden:
    headers = {}
    if scope is not None and scheme == "Bearer":
        headers["WWW-Authenticate"] = challenge(auth, scheme, org, error="insufficient_scope", scope=scope)
    return Forbidden(message, code=code, headers=headers)


def belongs(consumer: dict[str, Any], org: dict[str, Any]) -> bool:
    """Whether a consumer is one of ``org``'s: by id when both documents carry one, else by slug."""
    if consumer.get("org_id") and org.get("id"):
        return str(consumer["org_id"]) == str(org["id"])
    return bool(consumer.get("org")) and consumer.get("org") == org.get("slug")


def admit(principal: Principal, auth: dict[str, Any], scheme: str, org: str) -> Principal:
    """The checks every mode shares once the credential is good: the consumer is enabled and, when
    the API names the consumers it allows, one of them."""
    consumer = principal.consumer
    if consumer is None:
        return principal
    if consumer.get("enabled") is False:
        raise forbidden(auth, scheme, org, "this consumer is disabled", code="consumer_disabled")
    allowed = auth.get("consumers")
    if allowed is not None and str(consumer.get("id")) not in {str(c) for c in allowed}:
        raise forbidden(auth, scheme, org, "this consumer may not call this API", code="consumer_not_allowed")
    return principal


def consumer_header(auth: dict[str, Any]) -> str:
    return str(auth.get("consumer_header") or DEFAULT_CONSUMER_HEADER)


def consumer_headers(auth: dict[str, Any]) -> frozenset[str]:
    """The headers (lower-case) that tell an upstream who called: the API's consumer header and the default
    one. Only Junction sets them, on every API (an anonymous one too): an upstream serving an open and an
    authenticated API alike could not tell a caller's copy from Junction's."""
    return frozenset({DEFAULT_CONSUMER_HEADER.lower(), consumer_header(auth).lower()})
