"""A caller's credential on its way from ingress to processors: sealed for one call only.

The context names the correlation id, so a sealed credential copied onto another call (another
correlation id) does not open: it cannot lend one caller's identity to someone else's message.
"""
from __future__ import annotations

import json

from core.callerauth.base import Credential
from core.sealing import SealError, Sealer

__all__ = ["SealError", "context", "open_credential", "seal_credential"]


def context(correlation_id: str) -> str:
    return f"caller-credential:{correlation_id}"


def seal_credential(sealer: Sealer, credential: Credential, correlation_id: str) -> bytes:
    plain = json.dumps({"mode": credential.mode, "value": credential.value, "subject": credential.subject}).encode()
    return sealer.seal(plain, context(correlation_id))


def open_credential(sealer: Sealer, sealed: bytes, correlation_id: str) -> Credential:
    """Raises :class:`SealError` for another call's credential, a tampered one, or garbage."""
    try:
        data = json.loads(sealer.open(sealed, context(correlation_id)))
        return Credential(str(data["mode"]), str(data["value"]), str(data["subject"]))
    except (ValueError, KeyError, TypeError):
        raise SealError("the sealed credential is not one") from None
