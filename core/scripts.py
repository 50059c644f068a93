"""Between pipeline messages and the connector script contract.

The sandbox speaks plain dicts (``docs/connectors.md``): a request is
``{"method", "path", "path_params", "query", "headers", "body", "url"}`` with
``[name, value]`` pairs, a response ``{"status", "headers", "body"}``. Messages
carry ``{"name", "value"}`` records. These functions convert, so processors,
egress and the control plane's try-out endpoint shape calls the same way.
"""
from __future__ import annotations

from typing import Any

from core.connector_secrets import script_settings, secret_texts
from core.sealing import Sealer

__all__ = ["has_response_transform", "pairs_to_records", "records_to_pairs", "script_ctx", "script_request", "script_response",
           "script_secrets"]


def records_to_pairs(records: list[dict[str, str]]) -> list[list[str]]:
    return [[r["name"], r["value"]] for r in records]


def pairs_to_records(pairs: list[list[str]] | list[tuple[str, str]]) -> list[dict[str, str]]:
    return [{"name": str(n), "value": str(v)} for n, v in pairs]


def script_request(call: dict[str, Any], path_params: dict[str, str]) -> dict[str, Any]:
    return {
        "method": call["method"],
        "path": call["path"],
        "path_params": dict(path_params),
        "query": records_to_pairs(call["query"]),
        "headers": records_to_pairs(call["headers"]),
        "body": call["body"],
        "url": None,
    }


def script_response(status: int, headers: list[tuple[str, str]], body: bytes) -> dict[str, Any]:
    return {"status": status, "headers": [[k, v] for k, v in headers], "body": body}


def script_ctx(org: str, api: dict[str, Any] | None, connector: dict[str, Any],
               sealer: Sealer | None = None, *, consumer: str | None = None) -> dict[str, Any]:
    """The script's ``ctx``; with a ``sealer``, its settings include the secret ones. ``consumer``
    is the authenticated caller's consumer id (None for an anonymous call): never its credential."""
    return {
        "org": org,
        "consumer": consumer,
        "api": str((api or {}).get("name", "")),
        "api_id": str((api or {}).get("id", "")),
        "config_version": int((api or {}).get("version", 0)),
        "connector_version": int(connector.get("version", 0)),
        "settings": script_settings(connector, sealer),
    }


def script_secrets(connector: dict[str, Any], ctx: dict[str, Any]) -> tuple[str, ...]:
    """The secret setting values ``ctx`` (of :func:`script_ctx`) gave the script: the sandbox removes them
    from what the script's run reports (errors, reject messages, log lines)."""
    return secret_texts(connector, ctx.get("settings") or {})


def has_response_transform(connector: dict[str, Any] | None) -> bool:
    """Cheap pre-check that spares a sandbox round trip for scripts without one."""
    script = (connector or {}).get("script") or ""
    return "transform_response" in script
