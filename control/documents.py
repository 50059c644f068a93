"""The ConfigEvent documents the request path reads (see core/snapshot.py)."""
from __future__ import annotations

from typing import Any

from control.soap_api import routed_methods
from control.store.orgs import CALLER_POLICIES
from control.store.outbox import OutboxEvent
from core.connector_secrets import SEALED_KEY

__all__ = ["api_event", "connector_event", "consumer_event", "org_event"]


def org_event(org: dict[str, Any], op: str = "upsert") -> OutboxEvent:
    doc = None
    if op != "delete":
        doc = {**{k: org[k] for k in ("id", "slug", "name", "enabled", "version")},
               **{k: org.get(k) for k in CALLER_POLICIES}}
    return OutboxEvent("org", org["id"], org["slug"], org["version"], op, doc)


def api_event(api: dict[str, Any], op: str = "upsert") -> OutboxEvent:
    doc = None
    if op != "delete":
        doc = {"id": api["id"], "org": api["org"], "org_id": api["org_id"], "name": api["name"],
               "protocol": api.get("protocol", "rest"), "methods": api["methods"], "path": api["path"],
               "connector": api["connector"], "timeout_ms": api["timeout_ms"], "auth": api.get("auth"),
               "rate_limit": api.get("rate_limit"), "version": api["version"], "enabled": api.get("enabled", True),
               "async_fallback": api.get("async_fallback", False), "idempotency_ttl_s": api.get("idempotency_ttl_s"),
               "cache": api.get("cache"), "cors": api.get("cors"),
               "ip_restriction": api.get("ip_restriction")}
        if doc["protocol"] == "soap":
            # Routed for GET too (its ?wsdl); the contract spares ingress any WSDL work (core/soap_contract.py).
            doc["methods"] = routed_methods(api)
            doc["contract"] = api.get("contract")
    return OutboxEvent("api", api["id"], api["org"], api["version"], op, doc)


def connector_event(conn: dict[str, Any], op: str = "upsert") -> OutboxEvent:
    doc = None
    if op != "delete":
        doc = {"id": conn["id"], "org": conn["org"], "org_id": conn["org_id"], "name": conn["name"],
               "target": conn["target"], "script": conn.get("script"), "settings": conn.get("settings") or {},
               "version": conn["version"]}
        if conn.get(SEALED_KEY):  # secret settings travel sealed, apart from the plain ones
            doc[SEALED_KEY] = conn[SEALED_KEY]
    return OutboxEvent("connector", conn["id"], conn["org"], conn["version"], op, doc)


def consumer_event(consumer: dict[str, Any], credentials: dict[str, Any] | None, op: str = "upsert") -> OutboxEvent:
    """``credentials`` is :func:`control.store.consumers.credential_hashes` of this consumer."""
    doc = None
    if op != "delete":
        creds = credentials or {}
        doc = {"id": consumer["id"], "org": consumer["org"], "org_id": consumer["org_id"], "name": consumer["name"],
               "enabled": consumer.get("enabled", True), "version": consumer["version"],
               "rate_limit": consumer.get("rate_limit"),
               "keys": creds.get("keys", []), "basic": creds.get("basic"),
               "oauth_clients": creds.get("oauth_clients", [])}
    return OutboxEvent("consumer", consumer["id"], consumer["org"], consumer["version"], op, doc)
