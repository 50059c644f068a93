"""Mode ``none``: every caller is let in, anonymously."""
from __future__ import annotations

from typing import Any

from core.callerauth.base import AuthEnv, Credential, Extracted, Pairs, Principal

__all__ = ["NAME", "SCHEME", "extract", "verify"]

NAME = "none"
SCHEME = ""


def extract(auth: dict[str, Any], headers: Pairs, query: Pairs) -> Extracted:
    return Extracted(None)


async def verify(credential: Credential, api: dict[str, Any], org: dict[str, Any], env: AuthEnv) -> Principal:
    return Principal(None)
