"""Who is calling, and from where a rule lets them (docs/auth.md#the-callers-address).

Behind a load balancer every peer is the balancer, so a limit, a block or an address rule by peer would
treat every caller as one. Proxies the deployment names (``JUNCTION_INGRESS_TRUSTED_PROXIES``,
``JUNCTION_CONTROL_TRUSTED_PROXIES``) are believed about the address they saw, in ``X-Forwarded-For``
read from the right past the trusted hops; anyone else's ``X-Forwarded-For`` is ignored, since anyone can
send one.

An :class:`AddressRule` is an API's ``ip_restriction``: ``deny`` wins over ``allow``, and with an
``allow`` list an address must be on it. Control checks the entries with :func:`address_rule_errors`.
"""
from __future__ import annotations

import functools
import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from core.errors import FieldError
from core.settings import InvalidConfiguration

__all__ = ["AddressRule", "Network", "address_rule_errors", "client_address", "is_trusted", "trusted_networks"]

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
_MAX_HOP = 64  # a hop that is not an address (RFC 7239's "unknown", say) still names a caller: bounded
Address = ipaddress.IPv4Address | ipaddress.IPv6Address


def _address(text: str) -> Address | None:
    try:
        ip = ipaddress.ip_address(text.strip())
    except ValueError:
        return None
    # A dual-stack listener sees an IPv4 caller as ::ffff:a.b.c.d: the rules are written for a.b.c.d.
    mapped = ip.ipv4_mapped if isinstance(ip, ipaddress.IPv6Address) else None
    return mapped or ip


@functools.lru_cache(maxsize=16)
def trusted_networks(raw: str, variable: str) -> tuple[Network, ...]:
    """The comma-separated addresses and networks of ``raw``; InvalidConfiguration naming ``variable``."""
    try:
        return tuple(ipaddress.ip_network(p.strip(), strict=False) for p in raw.split(",") if p.strip())
    except ValueError as exc:
        raise InvalidConfiguration(f"{variable}: {exc}") from None


def is_trusted(address: str, networks: tuple[Network, ...]) -> bool:
    if not networks:
        return False  # the usual case, on every call: no address to parse
    ip = _address(address)
    return ip is not None and any(ip in n for n in networks)


def client_address(peer: str, forwarded_for: Iterable[str], networks: tuple[Network, ...]) -> str:
    """The peer; behind a trusted proxy, the address the outermost trusted proxy saw."""
    if not is_trusted(peer, networks):
        return peer
    hops = [h.strip() for h in ",".join(forwarded_for).split(",") if h.strip()]
    for hop in reversed(hops):
        if not is_trusted(hop, networks):
            return hop[:_MAX_HOP]
    return hops[0][:_MAX_HOP] if hops else peer


def _network_problem(entry: str) -> str | None:
    try:
        ipaddress.ip_network(entry, strict=True)
    except ValueError as exc:
        try:
            loose = ipaddress.ip_network(entry, strict=False)
        except ValueError:
            return f"is not an address or network (such as 203.0.113.7, 10.0.0.0/8 or 2001:db8::/32): {exc}"
        return f"has host bits set: {loose} is the network"
    return None


def address_rule_errors(rule: dict[str, Any] | None, field: str = "ip_restriction") -> list[FieldError]:
    """What the body schema cannot say about an ``ip_restriction``: entries that are networks, and at least
    one list."""
    if rule is None:
        return []
    errors = [FieldError(f"{field}.{side}[{i}]", problem)
              for side in ("allow", "deny") for i, entry in enumerate(rule.get(side) or [])
              if (problem := _network_problem(str(entry))) is not None]
    if not rule.get("allow") and not rule.get("deny"):
        errors.append(FieldError(field, "needs allow or deny (or null, for no restriction)"))
    return errors


@dataclass(frozen=True)
class AddressRule:
    allow: tuple[Network, ...]
    deny: tuple[Network, ...]

    @classmethod
    def of(cls, rule: dict[str, Any]) -> AddressRule:
        """The rule as control stored it (an entry it would refuse is left out; an allow list left empty by
        that still allows nothing)."""
        def networks(side: str) -> tuple[Network, ...]:
            return tuple(ipaddress.ip_network(e, strict=False) for e in rule.get(side) or [] if _network_problem(str(e)) is None)
        allow = networks("allow")
        if rule.get("allow") and not allow:
            allow = (ipaddress.ip_network("0.0.0.0/32"),)  # nothing valid on the list: nobody is on it
        return cls(allow, networks("deny"))

    def admits(self, address: str) -> bool:
        ip = _address(address)
        if ip is None:
            return False  # not an address (a Unix socket, say): no rule can vouch for it
        if any(ip in n for n in self.deny):
            return False
        return not self.allow or any(ip in n for n in self.allow)
