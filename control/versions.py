"""Version helpers: field-level diff and ETag / If-Match handling."""
from __future__ import annotations

from typing import Any

from core.errors import PreconditionFailed

__all__ = ["check_if_match", "diff", "etag"]

_MISSING = object()


def diff(before: dict[str, Any], after: dict[str, Any], prefix: str = "") -> list[dict[str, Any]]:
    """Changed fields as ``{"field", "before", "after"}``; nested objects are
    walked so a change reads ``target.url``, lists compare whole."""
    out: list[dict[str, Any]] = []
    for key in sorted(set(before) | set(after)):
        a, b = before.get(key, _MISSING), after.get(key, _MISSING)
        name = f"{prefix}{key}"
        if isinstance(a, dict) and isinstance(b, dict):
            out.extend(diff(a, b, name + "."))
        elif a != b or type(a) is not type(b):
            out.append({"field": name, "before": None if a is _MISSING else a, "after": None if b is _MISSING else b})
    return out


def etag(version: int) -> str:
    return f'W/"{version}"'


def check_if_match(header: str | None, version: int) -> None:
    """Refuse with 412 when ``If-Match`` names no tag equal to the current version."""
    if header is None:
        return
    tags = [t.strip() for t in header.split(",") if t.strip()]
    if "*" in tags:
        return
    for tag in tags:
        bare = tag[2:] if tag.startswith("W/") else tag
        if bare.strip('"') == str(version):
            return
    raise PreconditionFailed(f"If-Match does not match the current version {version}",
                             extra={"current_version": version}, headers={"ETag": etag(version)})
