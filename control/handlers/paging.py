"""Keyset pages of a list: ``limit`` items after the position an opaque ``cursor`` names.

A cursor is the (time, id) of the previous page's last row, so a page is an index range scan, and
changes while a client pages through neither repeat nor skip what was there (tests/control/test_pagination.py).
"""
from __future__ import annotations

import base64
import binascii
import json
import uuid
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any, TypeVar

from aiohttp import web

from control.filters import TagFilter, param_errors, tag_filter
from control.store.keyset import Position
from control.validation import raise_if
from core.errors import FieldError

__all__ = ["DEFAULT_PAGE", "MAX_PAGE", "decode_cursor", "encode_cursor", "one_page", "page_query", "tagged_page_query"]

DEFAULT_PAGE = 100
MAX_PAGE = 1000
MAX_CURSOR_LEN = 200

Row = TypeVar("Row", bound=Mapping[str, Any])


def encode_cursor(at: datetime, id_: str) -> str:
    """The position after a row, opaque to clients."""
    raw = json.dumps([at.isoformat(), str(id_)], separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> Position | None:
    """The ``(time, id)`` a cursor names, or None if it is not one we made."""
    if not cursor or len(cursor) > MAX_CURSOR_LEN:
        return None
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        at, id_ = json.loads(raw)
        if not (isinstance(at, str) and isinstance(id_, str)):
            return None
        position = (datetime.fromisoformat(at), str(uuid.UUID(id_)))
    except (ValueError, TypeError, binascii.Error, UnicodeDecodeError):
        return None
    if position[0].tzinfo is None or encode_cursor(*position) != cursor:
        return None
    return position


def tagged_page_query(request: web.Request) -> tuple[int, Position | None, TagFilter | None]:
    """A list of tagged resources: ``limit``, ``cursor`` and ``tags``, and no other parameter; 422 naming
    each bad one."""
    errors = param_errors(request.query, ("limit", "cursor", "tags"))
    tags = tag_filter(request.query.get("tags"), errors)
    raise_if(errors)
    limit, after = page_query(request)
    return limit, after, tags


def page_query(request: web.Request) -> tuple[int, Position | None]:
    """``limit`` and the position ``cursor`` names; 422 naming each bad one."""
    errors: list[FieldError] = []
    limit, after = DEFAULT_PAGE, None
    raw_limit = request.query.get("limit")
    if raw_limit is not None:
        if not raw_limit.isascii() or not raw_limit.isdigit() or len(raw_limit) > 4 or not 1 <= int(raw_limit) <= MAX_PAGE:
            errors.append(FieldError("limit", f"must be an integer from 1 to {MAX_PAGE}"))
        else:
            limit = int(raw_limit)
    raw_cursor = request.query.get("cursor")
    if raw_cursor is not None:
        after = decode_cursor(raw_cursor)
        if after is None:
            errors.append(FieldError("cursor", "is not a next_cursor this list gave"))
    raise_if(errors)
    return limit, after


def one_page(rows: Sequence[Row], limit: int, at: str = "created_at") -> tuple[Sequence[Row], str | None]:
    """The page of ``rows`` (fetched as ``limit + 1``, to tell whether more follow) and the cursor to the
    next page, None on the last; ``at`` names the time column the list is ordered by, before ``id``."""
    if len(rows) <= limit:
        return rows, None
    page = rows[:limit]
    return page, encode_cursor(page[-1][at], str(page[-1]["id"]))
