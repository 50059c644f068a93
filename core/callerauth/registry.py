"""Which module checks which ``auth.mode``: the folder listing is the feature, this is its index."""
from __future__ import annotations

from types import ModuleType
from typing import Any

from core.callerauth import api_key, basic, jwt, none, oauth2
from core.errors import JunctionError

__all__ = ["MODES", "mode_of"]

MODES: dict[str, ModuleType] = {m.NAME: m for m in (none, api_key, basic, jwt, oauth2)}


def mode_of(api: dict[str, Any]) -> ModuleType:
    """The mode module of an API; an unknown mode fails closed (never served open)."""
    name = str((api.get("auth") or {}).get("mode") or "none")
    module = MODES.get(name)
    if module is None:
        raise JunctionError(f"caller authentication {name!r} is not known", code="auth_unavailable", status=501)
    return module
