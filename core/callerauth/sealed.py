"""A caller's credential on its way from ingress to processors: sealed for one call only.

The context names the correlation id, so a sealed credential copied onto another call (another
correlation id) does not open: it cannot lend one caller's identity to someone else's message.

Two kinds travel in ``sealed_credentials``. Ingress seals the credential it extracted, with the seal
key. An async producer, which has no seal key, seals the headers and query parameters that carry its
caller's credential, as an HTTP caller would send them, to the installation's producer public key
(``core.sealing``): ``{"headers": [{"name", "value"}], "query": [{"name", "value"}]}`` as JSON.
Processors then extract the credential from them as ingress would from a request.
"""
from __future__ import annotations

import json
from typing import Any

from core.callerauth.base import Credential, Pairs
from core.sealing import PRODUCER_VERSION, SealError, Sealer

__all__ = ["SealError", "context", "is_from_producer", "open_credential", "open_producer_credential",
           "seal_credential"]

MAX_PRODUCER_PAIRS = 32  # headers and query parameters together: a credential needs one or two


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


def is_from_producer(sealed: bytes) -> bool:
    return sealed[:1] == bytes([PRODUCER_VERSION])


def _pairs(items: Any) -> Pairs:
    if not isinstance(items, list):
        raise SealError("the producer's sealed credential is not one: headers and query must be lists")
    out: Pairs = []
    for item in items:
        if not (isinstance(item, dict) and isinstance(item.get("name"), str) and isinstance(item.get("value"), str)):
            raise SealError("the producer's sealed credential is not one: each header is {name, value} of strings")
        out.append((item["name"], item["value"]))
    return out


def open_producer_credential(sealer: Sealer, sealed: bytes, correlation_id: str) -> tuple[Pairs, Pairs]:
    """The headers and query parameters a producer sealed for this call; :class:`SealError` otherwise."""
    try:
        data = json.loads(sealer.open_from_producer(sealed, context(correlation_id)))
    except ValueError:
        raise SealError("the producer's sealed credential is not JSON") from None
    if not isinstance(data, dict):
        raise SealError("the producer's sealed credential is not one: a JSON object is expected")
    headers, query = _pairs(data.get("headers", [])), _pairs(data.get("query", []))
    if len(headers) + len(query) > MAX_PRODUCER_PAIRS:
        raise SealError(f"the producer's sealed credential has more than {MAX_PRODUCER_PAIRS} headers and parameters")
    return headers, query
