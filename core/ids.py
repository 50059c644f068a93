"""Ids as Junction writes them: canonical uuids."""
from __future__ import annotations

import uuid

__all__ = ["is_uuid"]


def is_uuid(value: str) -> bool:
    """A uuid in its canonical form: ``uuid.UUID`` also takes ``urn:uuid:…``, braces and no hyphens,
    which PostgreSQL's uuid type refuses (a 500 where a 404 or 422 is due)."""
    try:
        return str(uuid.UUID(value)) == value.lower()
    except (ValueError, TypeError, AttributeError):
        return False
