"""Upstream credentials of a connector: the secrets of ``target.auth`` and
``target.tls`` are kept sealed (:mod:`core.sealing`), never in clear.

At rest and on the config topic each secret field of a connector's target
holds :data:`MASK`, and the values, sealed together, travel in
``target.secrets_sealed`` (bound to the connector's id, so one connector's blob
never opens as another's). People see the masks; a save that sends a mask back
keeps the stored value. Only egress opens the blob (:func:`open_target`), after
the connector script has run, so no script ever sees these values.
"""
from __future__ import annotations

from typing import Any

from core.connector_secrets import MASK
from core.errors import FieldError, InvalidInput
from core.sealing import Sealer, SealError

__all__ = ["AUTH_SECRETS", "MASK", "SEALED_KEY", "TLS_SECRETS", "has_secrets", "open_target", "seal_target",
           "secret_values", "shown_target", "unmask_target"]

SEALED_KEY = "secrets_sealed"
# The write-only fields of each auth type, and of tls.
AUTH_SECRETS: dict[str, tuple[str, ...]] = {
    "api_key": ("value",),
    "basic": ("password",),
    "bearer": ("token",),
    "oauth2_client_credentials": ("client_secret",),
}
TLS_SECRETS: tuple[str, ...] = ("client_key",)


def _context(connector_id: str) -> str:
    return f"connector-upstream-auth:{connector_id}"


def _secret_slots(target: dict[str, Any]) -> list[tuple[str, str]]:
    """``(section, field)`` of every secret this target's auth type and tls take."""
    slots: list[tuple[str, str]] = []
    auth = target.get("auth")
    if isinstance(auth, dict):
        slots += [("auth", name) for name in AUTH_SECRETS.get(str(auth.get("type")), ())]
    if isinstance(target.get("tls"), dict):
        slots += [("tls", name) for name in TLS_SECRETS]
    return slots


def has_secrets(target: dict[str, Any]) -> bool:
    return bool(_secret_slots(target))


def _open(connector_id: str, sealed: str | None, sealer: Sealer | None) -> dict[str, Any]:
    if not sealed or sealer is None:
        return {}
    values = sealer.open_json(sealed, _context(connector_id))
    if not isinstance(values, dict):
        raise SealError("sealed upstream credentials are not an object")
    return values


def unmask_target(target: dict[str, Any], connector_id: str, previous: str | None,
                  sealer: Sealer | None) -> dict[str, Any]:
    """``target`` with each secret in clear: a secret sent as ``MASK`` takes its
    value from ``previous`` (the blob stored so far); 422 naming the field when
    there is none to keep. No blob in the answer."""
    try:
        kept = _open(connector_id, previous, sealer)
    except SealError:
        kept = {}  # a blob of another key is as good as none: the values must be sent again
    out = {k: v for k, v in target.items() if k != SEALED_KEY}
    errors: list[FieldError] = []
    for section, name in _secret_slots(out):
        part = dict(out[section])
        if part.get(name) == MASK:
            if f"{section}.{name}" not in kept:
                errors.append(FieldError(f"target.{section}.{name}", "has no stored value to keep: send the value"))
                continue
            part[name] = kept[f"{section}.{name}"]
        out[section] = part
    if errors:
        raise InvalidInput(f"{errors[0].field}: {errors[0].message}", fields=errors)
    return out


def secret_values(target: dict[str, Any]) -> dict[str, Any]:
    """The secrets of a target in clear, keyed ``section.field`` (those present)."""
    return {f"{section}.{name}": target[section][name] for section, name in _secret_slots(target)
            if name in target[section]}


def seal_target(target: dict[str, Any], connector_id: str, previous: str | None, sealer: Sealer | None) -> dict[str, Any]:
    """A target with its secrets in clear as stored: each secret as ``MASK``, the
    values sealed in ``secrets_sealed``. Equal values keep the ``previous`` blob,
    so an unchanged save writes no new version."""
    out = {k: v for k, v in target.items() if k != SEALED_KEY}
    values = secret_values(out)
    if not values:
        return out
    if sealer is None:
        raise RuntimeError("upstream credentials need a seal key (JUNCTION_SEAL_KEY)")
    for key in values:
        section, name = key.split(".", 1)
        out[section] = {**out[section], name: MASK}
    try:
        kept = _open(connector_id, previous, sealer)
    except SealError:
        kept = {}
    out[SEALED_KEY] = previous if previous and kept == values else sealer.seal_json(values, _context(connector_id))
    return out


def shown_target(target: dict[str, Any]) -> dict[str, Any]:
    """What people may see of a stored target: the masks, no sealed blob."""
    if SEALED_KEY not in target:
        return target
    return {k: v for k, v in target.items() if k != SEALED_KEY}


def open_target(target: dict[str, Any], connector_id: str, sealer: Sealer | None) -> dict[str, Any]:
    """A stored target with its secrets opened (egress only, right before a call).
    A blob that does not open raises SealError: better no call than one without
    its credentials, or with the mask as one."""
    sealed = target.get(SEALED_KEY)
    if not sealed:
        return target
    if sealer is None:
        raise SealError("upstream credentials are sealed and this egress has no seal key")
    values = _open(connector_id, sealed, sealer)
    out = {k: v for k, v in target.items() if k != SEALED_KEY}
    for key, value in values.items():
        section, name = key.split(".", 1)
        if isinstance(out.get(section), dict) and name in out[section]:
            out[section] = {**out[section], name: value}
    return out
