"""Keeping a client library's repeated complaints from flooding the log.

With the broker away, aiokafka logs the same connection error for every request it retries: a 30 s outage
wrote about 17,000 ERROR lines. The first line of a kind in a window is kept; the others are counted, and the
first line of the next window says how many were left out. Only the named libraries' records are thinned:
Junction's own lines are never dropped."""
from __future__ import annotations

import logging
import time
from collections.abc import Callable

__all__ = ["RepeatFilter", "install"]

LIBRARIES = ("aiokafka", "kafka")
WINDOW_S = 10.0


class RepeatFilter(logging.Filter):
    def __init__(self, prefixes: tuple[str, ...] = LIBRARIES, window_s: float = WINDOW_S,
                 clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__()
        self._prefixes = prefixes
        self._window_s = window_s
        self._clock = clock
        # (logger, level, message template) -> (start of its window, lines left out in it)
        self._seen: dict[tuple[str, int, str], tuple[float, int]] = {}

    def filter(self, record: logging.LogRecord) -> bool:
        if not record.name.startswith(self._prefixes):
            return True
        key = (record.name, record.levelno, str(record.msg))
        now = self._clock()
        started, dropped = self._seen.get(key, (None, 0))
        if started is not None and now - started < self._window_s:
            self._seen[key] = (started, dropped + 1)
            return False
        if len(self._seen) > 1000:  # templates are few; this bounds a pathological library
            self._seen.clear()
        self._seen[key] = (now, 0)
        if dropped:
            record.msg = f"{record.msg} (and {dropped} more like it in the {self._window_s:g} s before)"
        return True


def install(handlers: list[logging.Handler] | None = None) -> None:
    """Thin the libraries' repeats on ``handlers`` (the root logger's, by default)."""
    for handler in handlers if handlers is not None else logging.getLogger().handlers:
        if not any(isinstance(f, RepeatFilter) for f in handler.filters):
            handler.addFilter(RepeatFilter())
