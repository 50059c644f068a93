"""Text as PostgreSQL can store it. A NUL is the one character its text and jsonb refuse, and a record written
straight onto a topic (a producer's path, a script's log line) may hold one: one such value made the database
refuse a whole batch of rows. It is stored as U+FFFD."""
from __future__ import annotations

from typing import Any

__all__ = ["storable"]


def storable(value: Any) -> Any:
    """``value`` with every NUL replaced by U+FFFD when it is text; anything else as it is."""
    return value.replace("\x00", "\ufffd") if isinstance(value, str) and "\x00" in value else value
