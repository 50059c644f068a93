"""Header rules shared by the edge and the outbound caller."""
from __future__ import annotations

from collections.abc import Iterable

__all__ = ["HOP_BY_HOP", "end_to_end"]

# RFC 9110 §7.6.1 connection-specific fields, plus the framing fields that the
# HTTP library recomputes for each hop.
HOP_BY_HOP = frozenset({
    "connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "proxy-connection",
    "te", "trailer", "transfer-encoding", "upgrade", "content-length", "host",
})


def end_to_end(headers: Iterable[tuple[str, str]]) -> list[tuple[str, str]]:
    """Drop hop-by-hop headers, including any that ``Connection`` names."""
    pairs = list(headers)
    named = {
        token.strip().lower()
        for name, value in pairs
        if name.lower() == "connection"
        for token in value.split(",")
    }
    return [(n, v) for n, v in pairs if n.lower() not in HOP_BY_HOP and n.lower() not in named]
