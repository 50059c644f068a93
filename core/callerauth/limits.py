"""Which rate limits apply to a call, and the windows they count in.

An API's ``rate_limit`` wins; else its organisation's default. ``by`` picks what shares a window:
``consumer`` (the authenticated consumer; the source address for anonymous callers), ``api``,
``org`` or ``ip``. A window belongs to where its limit is defined: an API's limit by ``org`` counts
that API's calls of the whole organisation; the organisation default by ``org`` counts every call
of the organisation.

A consumer's own ``rate_limit`` (its tier, as a Kong plugin on a consumer) is its allowance wherever a limit
by ``consumer`` applies: its numbers replace that limit's, in that limit's window. A limit by ``api``,
``org`` or ``ip`` protects what every caller shares, so it still applies, and the consumer's own counts
beside it, across the organisation, as it does where no limit applies at all.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

__all__ = ["BY", "Limit", "limits_for"]

BY = frozenset({"consumer", "api", "org", "ip"})


@dataclass(frozen=True)
class Limit:
    requests: int
    per_seconds: float
    window: tuple[str, ...]  # the parts of the window's Redis key


def _parse(doc: Any) -> tuple[int, float, str] | None:
    if not isinstance(doc, dict):
        return None
    try:
        requests, per = int(doc["requests"]), float(doc.get("per_seconds", 1))
    except (KeyError, TypeError, ValueError):
        return None
    by = str(doc.get("by") or "consumer")
    if requests < 0 or per <= 0 or by not in BY:
        return None
    return requests, per, by


def _own(consumer: dict[str, Any] | None) -> tuple[int, float] | None:
    doc = consumer.get("rate_limit") if consumer else None
    parsed = _parse({**doc, "by": "consumer"}) if isinstance(doc, dict) else None
    return None if parsed is None else parsed[:2]


def limits_for(api: dict[str, Any], org: dict[str, Any], consumer: dict[str, Any] | None, source: str) -> list[Limit]:
    """The limits on this call: the API's (else its organisation's), and the consumer's own."""
    consumer_id = str(consumer.get("id", "")) if consumer else None
    own = _own(consumer)
    org_scope = str(org.get("id") or org.get("slug"))
    limits: list[Limit] = []
    for owner, doc in (("api", api), ("org", org)):
        parsed = _parse(doc.get("rate_limit"))
        if parsed is None:
            continue
        requests, per, by = parsed
        subject = {"consumer": f"c:{consumer_id}" if consumer_id else f"ip:{source}", "api": f"a:{api.get('id')}",
                   "org": f"o:{org_scope}", "ip": f"ip:{source}"}[by]
        scope = str(api.get("id")) if owner == "api" else org_scope
        if by == "consumer" and own is not None:
            (requests, per), own = own, None
        limits.append(Limit(requests, per, ("rl", owner, scope, by, subject)))
        break
    if own is not None and consumer_id:
        limits.append(Limit(own[0], own[1], ("rl", "consumer", org_scope, "own", f"c:{consumer_id}")))
    return limits
