"""The filters the lists share, parsed one way: dead letters, request logs, metrics and replay
selections all take an API id, an error code, a correlation id and a ``from``/``to`` time range, and
each bad value is a :class:`~core.errors.FieldError` naming its parameter (``prefix`` names the object
they sit in, such as ``filter.``). The lists add their own (a stage, a status) beside these."""
from __future__ import annotations

import re
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timezone

from control.bodies import MAX_TAGS, NAME_PATTERN, TAG_RULE, is_tag
from control.validation import is_uuid
from core.errors import FieldError

__all__ = ["CODE", "Common", "TagFilter", "api_ref", "common", "param_errors", "parse_time", "tag_filter"]

CODE = re.compile(r"[a-z0-9_]{1,64}")
API_NAME = re.compile(NAME_PATTERN)
CORRELATION_ID = re.compile(r"[\x21-\x7e]{1,200}")


@dataclass(frozen=True)
class TagFilter:
    """``?tags=a,b`` (every one of them) or ``?tags=a/b`` (any of them), as Kong's lists take them."""

    tags: tuple[str, ...]
    every: bool


def tag_filter(raw: str | None, errors: list[FieldError]) -> TagFilter | None:
    if raw is None:
        return None
    if "," in raw and "/" in raw:
        errors.append(FieldError("tags", "join tags with , (every one) or / (any one), not both"))
        return None
    every = "/" not in raw
    tags = tuple(raw.split("," if every else "/"))
    if len(tags) > MAX_TAGS or not all(is_tag(t) for t in tags):
        errors.append(FieldError("tags", f"must be 1 to {MAX_TAGS} tags ({TAG_RULE}) joined by , or /"))
        return None
    return TagFilter(tags, every)


def parse_time(raw: str, name: str, errors: list[FieldError]) -> datetime | None:
    """An ISO 8601 date-time in UTC (UTC when it names no offset), or a FieldError for ``name``."""
    try:
        value = datetime.fromisoformat(raw.replace("Z", "+00:00")) if len(raw) <= 64 else None
        # In UTC, so an instant outside years 1 to 9999 (0001-01-01T00:00+23:59) is refused here, not by PostgreSQL.
        value = value.replace(tzinfo=value.tzinfo or timezone.utc).astimezone(timezone.utc) if value else None
    except (ValueError, OverflowError):
        value = None
    if value is None:
        errors.append(FieldError(name, "must be an ISO 8601 date-time between years 1 and 9999"))
    return value


def param_errors(query: Mapping[str, str], allowed: Iterable[str]) -> list[FieldError]:
    """A parameter the endpoint does not take (the message names those it does: ``since`` on a list that
    takes ``from`` is then a one-look fix), and NUL characters in those it does."""
    known = tuple(allowed)
    takes = f"unknown query parameter (this endpoint takes {', '.join(known)})" if known else \
        "unknown query parameter (this endpoint takes none)"
    errors = [FieldError(name, takes) for name in query if name not in known]
    return errors + [FieldError(name, "must not contain NUL characters") for name in known if "\x00" in query.get(name, "")]


def api_ref(raw: str | None, name: str, errors: list[FieldError]) -> tuple[str | None, str | None]:
    """``?api=`` as an (id, name) pair, one of them set: an API is named by its id or by its name, as a path
    names it (Kong's ``{name or id}``). A name is looked up in the organisation by the handler
    (:func:`control.handlers.common.api_named`); an id is taken as is, so a deleted API's calls stay findable."""
    if raw is None:
        return None, None
    if is_uuid(raw):
        return str(uuid.UUID(raw)), None
    if API_NAME.fullmatch(raw):
        return None, raw
    errors.append(FieldError(name, "must be an API id or name"))
    return None, None


@dataclass(frozen=True)
class Common:
    api_id: str | None
    api_name: str | None  # set instead of api_id when ``api`` names the API: the handler resolves it
    error_code: str | None
    correlation_id: str | None
    since: datetime | None
    until: datetime | None


def common(values: Mapping[str, str], errors: list[FieldError], *, prefix: str = "") -> Common:
    """The shared filters of ``values``; each bad one appends its error (raise them with the list's own)."""
    api_id, api_name = api_ref(values.get("api"), f"{prefix}api", errors)
    code, cid = values.get("code"), values.get("correlation_id")
    if code is not None and not CODE.fullmatch(code):
        errors.append(FieldError(f"{prefix}code", "must be an error code: 1 to 64 of a-z, 0-9 and _"))
    if cid is not None and not CORRELATION_ID.fullmatch(cid):
        errors.append(FieldError(f"{prefix}correlation_id", "must be 1 to 200 printable characters without spaces"))
    since = parse_time(values["from"], f"{prefix}from", errors) if "from" in values else None
    until = parse_time(values["to"], f"{prefix}to", errors) if "to" in values else None
    if since is not None and until is not None and since > until:
        errors.append(FieldError(f"{prefix}to", "must not be before from"))
    return Common(api_id, api_name, code, cid, since, until)
