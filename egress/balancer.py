"""A connector's ``target.origins``: one upstream served by several origins (Kong's upstream and targets).

Each call's URL is built from ``target.url`` as always; its origin (scheme, host and port) is then replaced by
one of the origins, taken in turn, so the calls of one egress instance go round them. Within one attempt, an
origin whose circuit is open is passed over, and so is one that could not be connected to (nothing was sent,
so another origin may take the call whatever its method). A retry goes to the next origin in turn."""
from __future__ import annotations

from collections import OrderedDict
from collections.abc import Mapping, Sequence
from typing import Any
from urllib.parse import urlsplit, urlunsplit

__all__ = ["Balancer", "origins_of", "with_origin"]

MAX_TRACKED = 10_000  # connectors whose turn is remembered; the oldest is forgotten first


def origins_of(connector: Mapping[str, Any] | None) -> list[str]:
    """The connector's origins, or [] when its calls go where ``target.url`` says."""
    target = (connector or {}).get("target") or {}
    origins = target.get("origins") if target.get("protocol", "rest") == "rest" else None
    return list(origins) if origins else []


def with_origin(url: str, origin: str) -> str:
    """``url`` sent to ``origin`` instead: its path, query and fragment kept as they are."""
    new = urlsplit(origin)
    old = urlsplit(url)
    return urlunsplit((new.scheme, new.netloc, old.path, old.query, old.fragment))


class Balancer:
    """Whose turn it is, per connector, in this process (no coordination between instances: each goes round)."""

    def __init__(self) -> None:
        self._turn: OrderedDict[str, int] = OrderedDict()

    def order(self, connector_id: str, origins: Sequence[str]) -> list[str]:
        """Every origin once, the one whose turn it is first; the next call starts one further."""
        if len(origins) <= 1:
            return list(origins)
        turn = self._turn.pop(connector_id, 0)
        self._turn[connector_id] = turn + 1
        if len(self._turn) > MAX_TRACKED:
            self._turn.popitem(last=False)
        start = turn % len(origins)
        return [*origins[start:], *origins[:start]]
