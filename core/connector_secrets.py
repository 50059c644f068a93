"""Secret connector settings: the keys of ``settings`` a connector names in
``secret_fields`` are kept sealed (:mod:`core.sealing`), never in clear.

At rest and on the config topic a connector carries its other settings in
``settings`` and the secret ones, sealed together, in ``secret_settings_sealed``
(bound to the connector's id, so one connector's blob never opens as
another's). People see ``MASK`` in their place. Only a script gets the values:
:func:`script_settings` opens them for its ``ctx.settings``.
"""
from __future__ import annotations

import json
from typing import Any

from core.errors import FieldError, InvalidInput
from core.sealing import Sealer, SealError

__all__ = ["MASK", "SEALED_KEY", "masked", "open_secret_settings", "script_settings", "seal_secret_settings", "secret_texts"]

MASK = "********"
SEALED_KEY = "secret_settings_sealed"


def _context(connector_id: str) -> str:
    return f"connector-secrets:{connector_id}"


def open_secret_settings(connector_id: str, sealed: str | None, sealer: Sealer) -> dict[str, Any]:
    """The secret values of a sealed blob (empty without one); SealError if it does not open."""
    if not sealed:
        return {}
    values = sealer.open_json(sealed, _context(connector_id))
    if not isinstance(values, dict):
        raise SealError("sealed connector settings are not an object")
    return values


def seal_secret_settings(content: dict[str, Any], connector_id: str, previous: str | None,
                         sealer: Sealer | None) -> dict[str, Any]:
    """``content`` as stored: secret values moved out of ``settings`` into the
    sealed blob. A secret sent as ``MASK``, or left out, keeps its value from
    ``previous`` (the blob stored so far); equal values keep the same blob, so
    an unchanged save writes no new version."""
    out = {k: v for k, v in content.items() if k != SEALED_KEY}
    names = list(out.get("secret_fields") or [])
    settings = dict(out.get("settings") or {})
    if not names:
        out.pop("secret_fields", None)
        out["settings"] = settings
        return out
    if sealer is None:
        raise RuntimeError("secret connector settings need a seal key (JUNCTION_SEAL_KEY)")
    try:
        kept = open_secret_settings(connector_id, previous, sealer)
    except SealError:
        kept = {}  # a blob of another key is as good as none: the values must be sent again
    values: dict[str, Any] = {}
    errors: list[FieldError] = []
    for i, name in enumerate(names):
        given = settings.pop(name, MASK)
        if given == MASK:
            if name not in kept:
                where = f"settings.{name}" if name in (content.get("settings") or {}) else f"secret_fields[{i}]"
                errors.append(FieldError(where, "has no stored value to keep: send the value"))
                continue
            given = kept[name]
        values[name] = given
    if errors:
        raise InvalidInput(f"{errors[0].field}: {errors[0].message}", fields=errors)
    out["settings"] = settings
    out[SEALED_KEY] = previous if previous and values == kept else sealer.seal_json(values, _context(connector_id))
    return out


def masked(content: dict[str, Any]) -> dict[str, Any]:
    """What people may see: each secret setting as ``MASK``, no sealed blob."""
    if SEALED_KEY not in content and not content.get("secret_fields"):
        return content
    out = {k: v for k, v in content.items() if k != SEALED_KEY}
    out["settings"] = {**(content.get("settings") or {}), **{n: MASK for n in content.get("secret_fields") or []}}
    return out


def script_settings(connector_doc: dict[str, Any], sealer: Sealer | None) -> dict[str, Any]:
    """The settings a connector's script sees: its plain settings, with the
    secret ones opened and merged in. Without a sealer (or a blob) only the
    plain ones; a blob that does not open raises SealError rather than run
    the script without its credentials."""
    settings = dict(connector_doc.get("settings") or {})
    sealed = connector_doc.get(SEALED_KEY)
    if sealer is None or not sealed:
        return settings
    return {**settings, **open_secret_settings(str(connector_doc["id"]), sealed, sealer)}


# Shorter values are not looked for: scrubbing a two-digit secret would blank every "42" in a message.
MIN_SCRUBBED = 4


def secret_texts(connector_doc: dict[str, Any], settings: dict[str, Any]) -> tuple[str, ...]:
    """The texts of the connector's secret settings, as ``settings`` (a script's, opened) holds them: what a
    script's error, reject message or log line must not carry out (the value, and its JSON and repr forms
    when it is not a string)."""
    texts: set[str] = set()
    for name in connector_doc.get("secret_fields") or ():
        if name not in settings:
            continue
        value = settings[name]
        forms = [value] if isinstance(value, str) else [str(value), repr(value), json.dumps(value, sort_keys=True)]
        texts.update(f for f in forms if len(f) >= MIN_SCRUBBED)
    return tuple(texts)
