"""The ConfigEvent documents the request path reads (see core/snapshot.py)."""
from __future__ import annotations

from typing import Any

from control.store.outbox import OutboxEvent

__all__ = ["api_event", "connector_event", "org_event"]


def org_event(org: dict[str, Any], op: str = "upsert") -> OutboxEvent:
    doc = None if op == "delete" else {k: org[k] for k in ("id", "slug", "name", "enabled")}
    return OutboxEvent("org", org["id"], org["slug"], org["version"], op, doc)


def api_event(api: dict[str, Any], op: str = "upsert") -> OutboxEvent:
    doc = None
    if op != "delete":
        doc = {"id": api["id"], "org": api["org"], "org_id": api["org_id"], "name": api["name"],
               "protocol": api.get("protocol", "rest"), "methods": api["methods"], "path": api["path"],
               "connector": api["connector"], "timeout_ms": api["timeout_ms"], "auth": api["auth"],
               "version": api["version"], "enabled": api.get("enabled", True)}
    return OutboxEvent("api", api["id"], api["org"], api["version"], op, doc)


def connector_event(conn: dict[str, Any], op: str = "upsert") -> OutboxEvent:
    doc = None
    if op != "delete":
        doc = {"id": conn["id"], "org": conn["org"], "org_id": conn["org_id"], "name": conn["name"],
               "target": conn["target"], "script": conn.get("script"), "settings": conn.get("settings") or {},
               "version": conn["version"]}
    return OutboxEvent("connector", conn["id"], conn["org"], conn["version"], op, doc)
