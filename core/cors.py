"""An API's CORS policy: which browser origins may call it, and with what (docs/cors.md).

An organisation's ``cors`` is the policy of its APIs that have none of their own (an API's replaces it
whole). Control checks a policy with :func:`cors_errors` when an API or organisation is saved; ingress applies it
(ingress/cors.py). Both read origin rules with the one grammar here, so what control accepts is
exactly what ingress matches.

An origin rule is ``*``, an origin as browsers send it (``scheme://host[:port]``, lowercase, no path,
no default port), or one whose host starts with ``*.``, which takes every subdomain of the rest and
not the rest itself. ``null`` is refused: sandboxed frames and local files send it, so allowing it
allows any page that chooses to be one.
"""
from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from core.errors import FieldError

__all__ = ["ANY_ORIGIN", "SAFELISTED_HEADERS", "CorsPolicy", "cors_errors", "origin_rule_problem"]

ANY_ORIGIN = "*"
# Request headers a browser sends cross-origin without asking (the Fetch standard's CORS-safelisted ones).
SAFELISTED_HEADERS = frozenset({"accept", "accept-language", "content-language", "content-type"})
_DEFAULT_PORTS = {"http": "80", "https": "443", "ws": "80", "wss": "443"}
_LABEL = r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?"
_ORIGIN = re.compile(rf"([a-z][a-z0-9+.-]{{0,31}})://(\*\.)?((?:{_LABEL}\.)*{_LABEL}|\[[0-9a-f:.]{{2,45}}\])"
                     r"(?::([0-9]{1,5}))?")
_RULE_SHAPE = "must be * or an origin as browsers send it: scheme://host[:port], lowercase, no path " \
              "(such as https://app.example.com, or https://*.example.com for its subdomains)"


def origin_rule_problem(rule: str) -> str | None:
    """Why ``rule`` is not an origin rule, or None when it is one."""
    if rule == ANY_ORIGIN:
        return None
    if rule.strip().lower() == "null":
        return "null is not allowed: sandboxed frames and local files send it, so any page can"
    if rule != rule.lower():
        return "must be lowercase, as browsers send an origin"
    found = _ORIGIN.fullmatch(rule)
    if found is None:
        head = _ORIGIN.match(rule)
        if head is not None and rule[head.end():].startswith("/"):
            return f"an origin has no path: {head.group(0)}"
        return _RULE_SHAPE
    scheme, wildcard, host, port = found.groups()
    if wildcard and host.startswith("["):
        return "*. takes the subdomains of a name, not of an address"
    if port is not None:
        if not 1 <= int(port) <= 65535 or port.startswith("0"):
            return "its port must be 1 to 65535"
        if _DEFAULT_PORTS.get(scheme) == port:
            return f"leave out the default port {port}: browsers send {scheme}://{(wildcard or '') + host}"
    return None


@dataclass(frozen=True)
class CorsPolicy:
    """An API's ``cors``, ready to answer with. ``methods`` and ``headers`` None: the API's methods, and
    whatever request headers a preflight asks for."""

    any_origin: bool
    exact: frozenset[str]
    subdomains: tuple[tuple[str, str, str | None], ...]  # (scheme, ".example.com", port)
    methods: tuple[str, ...] | None
    headers: frozenset[str] | None  # lowercase
    exposed: tuple[str, ...]
    credentials: bool
    max_age_s: int | None

    @classmethod
    def of(cls, config: dict[str, Any]) -> CorsPolicy:
        """The policy of a ``cors`` as control stored it (rules it would refuse match nothing)."""
        exact: set[str] = set()
        subdomains: list[tuple[str, str, str | None]] = []
        for rule in config.get("origins") or ():
            if rule == ANY_ORIGIN or origin_rule_problem(rule) is not None:
                continue
            found = _ORIGIN.fullmatch(rule)
            assert found is not None  # origin_rule_problem accepted it
            scheme, wildcard, host, port = found.groups()
            if wildcard:
                subdomains.append((scheme, "." + host, port))
            else:
                exact.add(rule)
        headers = config.get("headers")
        methods = config.get("methods")
        return cls(
            any_origin=ANY_ORIGIN in (config.get("origins") or ()), exact=frozenset(exact), subdomains=tuple(subdomains),
            methods=tuple(methods) if methods else None,
            headers=frozenset(h.lower() for h in headers) if headers is not None else None,
            exposed=tuple(config.get("exposed_headers") or ()),
            # "*" with credentials is refused by control; were one to arrive, "*" wins and no credential is allowed.
            credentials=bool(config.get("credentials")) and ANY_ORIGIN not in (config.get("origins") or ()),
            max_age_s=config.get("max_age_s"),
        )

    def allows(self, origin: str) -> bool:
        """Whether a page of ``origin`` (an Origin header's value) may call the API."""
        if self.any_origin:
            return True
        if origin in self.exact:
            return True
        if not self.subdomains:
            return False
        found = _ORIGIN.fullmatch(origin)
        if found is None or found.group(2):
            return False
        scheme, _, host, port = found.groups()
        return any(scheme == s and port == p and host.endswith(suffix) and len(host) > len(suffix)
                   for s, suffix, p in self.subdomains)

    def allow_origin(self, origin: str) -> str:
        """The Access-Control-Allow-Origin for an allowed ``origin``."""
        return ANY_ORIGIN if self.any_origin else origin

    @property
    def varies_by_origin(self) -> bool:
        return not self.any_origin


def cors_errors(cors: dict[str, Any] | None, api_methods: Iterable[str] | None) -> list[FieldError]:
    """What the body schema cannot say about an API's ``cors``: the origin rules, ``*`` with
    credentials, and methods the API does not take (``api_methods`` None: an organisation's policy, for
    APIs of any methods, whose methods are not checked)."""
    if not cors:
        return []
    errors: list[FieldError] = []
    origins = cors.get("origins") or []
    for i, rule in enumerate(origins):
        problem = origin_rule_problem(rule)
        if problem is not None:
            errors.append(FieldError(f"cors.origins[{i}]", problem))
    if cors.get("credentials") and ANY_ORIGIN in origins:
        errors.append(FieldError("cors.credentials", "cannot be true with the origin *: browsers refuse it; "
                                                     "list the origins that may send credentials"))
    taken = set(api_methods) if api_methods is not None else {"*"}
    if "*" not in taken:
        for i, method in enumerate(cors.get("methods") or []):
            if method not in taken:
                errors.append(FieldError(f"cors.methods[{i}]", f"is not a method of this API ({', '.join(sorted(taken))})"))
    return errors
