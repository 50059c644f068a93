"""Settings of an API, or of an organisation, parsed once per version of it, not once per call."""
from __future__ import annotations

from collections.abc import Callable
from typing import Any, Generic, TypeVar

__all__ = ["PerVersion"]

T = TypeVar("T")
_MAX_KEPT = 10_000  # versions; past it, everything is parsed again (cheap) rather than kept forever


class PerVersion(Generic[T]):
    """``make(api[field])`` for an API (or organisation) whose ``field`` is set, else None. Keep one per kind
    of document: the cache is by id and version."""

    def __init__(self, field: str, make: Callable[[Any], T]) -> None:
        self._field = field
        self._make = make
        self._kept: dict[tuple[str, int], T] = {}

    def of(self, api: dict[str, Any]) -> T | None:
        config = api.get(self._field)
        if not config:
            return None
        key = (str(api.get("id", "")), int(api.get("version", 0)))
        value = self._kept.get(key)
        if value is None:
            if len(self._kept) >= _MAX_KEPT:
                self._kept.clear()
            value = self._kept[key] = self._make(config)
        return value
