"""How deep a JSON value nests, measured without recursion: what a body may hold before any code that walks
it recursively (a schema check, zeep) is handed it."""
from __future__ import annotations

from typing import Any

__all__ = ["MAX_JSON_DEPTH", "depth_over"]

# Deeper than any configuration or call needs, and what the checks that walk a body (recursively) can take.
MAX_JSON_DEPTH = 64


def depth_over(value: Any, limit: int = MAX_JSON_DEPTH) -> bool:
    """Whether ``value`` nests objects and arrays deeper than ``limit``."""
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        children = item.values() if isinstance(item, dict) else item if isinstance(item, list) else None
        if children is None:
            continue
        if depth > limit:
            return True
        stack.extend((child, depth + 1) for child in children)
    return False
