"""Which rate limit applies to a call, and the window it counts in.

An API's ``rate_limit`` wins; else its organisation's default. ``by`` picks what shares a window:
``consumer`` (the authenticated consumer; the source address for anonymous callers), ``api``,
``org`` or ``ip``. A window belongs to where its limit is defined: an API's limit by ``org`` counts
that API's calls of the whole organisation; the organisation default by ``org`` counts every call
of the organisation.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

__all__ = ["BY", "Limit", "limit_for"]

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


def limit_for(api: dict[str, Any], org: dict[str, Any], consumer_id: str | None, source: str) -> Limit | None:
    """The limit on this call, or None when neither the API nor its organisation sets one."""
    for owner, doc in (("api", api), ("org", org)):
        parsed = _parse(doc.get("rate_limit"))
        if parsed is None:
            continue
        requests, per, by = parsed
        subject = {"consumer": f"c:{consumer_id}" if consumer_id else f"ip:{source}", "api": f"a:{api.get('id')}",
                   "org": f"o:{org.get('id') or org.get('slug')}", "ip": f"ip:{source}"}[by]
        scope = str(api.get("id")) if owner == "api" else str(org.get("id") or org.get("slug"))
        return Limit(requests, per, ("rl", owner, scope, by, subject))
    return None
