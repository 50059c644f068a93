"""Keyset pages: the one way the stores list ``limit`` rows after a position.

A position is the (time, id) of the previous page's last row (control/handlers/paging.py makes it an opaque
cursor). Rows after it are a range of the index on (time, id), so a page costs the same deep in a list as
at its start, and rows added or removed while a client pages through neither repeat nor skip others.
With no position, the condition is left out rather than written as ``$n IS NULL OR ...``: a generic plan
would have to serve both, and could not use the range.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

__all__ = ["Keyset", "Position"]

Position = tuple[datetime, str]


@dataclass(frozen=True)
class Keyset:
    """The order of a list: by ``at`` then ``id`` (columns, qualified if the query joins), oldest first or
    newest first."""

    at: str
    id: str = "id"
    newest_first: bool = False

    def after(self, position: Position | None, args: list[Any]) -> str:
        """The condition for the rows after ``position`` (its values appended to ``args``), ``TRUE`` if none."""
        if position is None:
            return "TRUE"
        args += [position[0], position[1]]
        return (f"({self.at}, {self.id}) {'<' if self.newest_first else '>'}"
                f" (${len(args) - 1}::timestamptz, ${len(args)}::uuid)")

    def order(self, limit: int, args: list[Any]) -> str:
        """``ORDER BY ... LIMIT`` of the page (``limit`` appended to ``args``)."""
        args.append(limit)
        way = " DESC" if self.newest_first else ""
        return f"ORDER BY {self.at}{way}, {self.id}{way} LIMIT ${len(args)}"
