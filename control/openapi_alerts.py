"""The OpenAPI paths and schemas of alert rules and alerts (docs/alerts.md), merged into the document by
control.openapi.build_openapi."""
from __future__ import annotations

import copy
from typing import Any

__all__ = ["alert_paths", "alert_schemas"]

Schema = dict[str, Any]

_STR = {"type": "string"}
_NULLABLE_STR = {"type": ["string", "null"]}
_TIME = {"type": "string", "format": "date-time"}
_NULLABLE_TIME = {"type": ["string", "null"], "format": "date-time"}
_CHANNELS = {"type": "object", "properties": {"webhooks": {"type": "array", "items": _STR},
                                             "emails": {"type": "array", "items": _STR}}}


def alert_schemas() -> dict[str, Schema]:
    rule_props: Schema = {
        "id": _STR, "org": _NULLABLE_STR, "org_id": {**_NULLABLE_STR, "description": "null: a global rule"},
        "version": {"type": "integer"}, "name": _STR, "description": _STR, "enabled": {"type": "boolean"},
        "tags": {"type": "array", "items": _STR},
        "metric": _STR, "api": _NULLABLE_STR, "comparison": _STR, "threshold": {"type": "number"}, "window": _STR,
        "duration": _STR, "channels": _CHANNELS,
        "escalation": {"type": ["object", "null"], "properties": {"after": _STR, **_CHANNELS["properties"]}},
        "webhook_secret_set": {"type": "boolean", "description": "whether a webhook signing secret is stored (never shown)"},
        "created_at": _TIME, "updated_at": _TIME,
    }
    notification = {"type": "object", "required": ["event", "channel", "status", "attempts"], "properties": {
        "event": {"type": "string", "enum": ["fired", "resolved", "escalated", "acknowledged"]},
        "channel": {"type": "string", "enum": ["topic", "webhook", "email"]}, "target": _NULLABLE_STR,
        "status": {"type": "string", "enum": ["pending", "sent", "failed"]}, "attempts": {"type": "integer"},
        "error": _NULLABLE_STR, "created_at": _TIME, "done_at": _NULLABLE_TIME}}
    alert_props: Schema = {
        "id": _STR, "rule_id": _STR, "rule_name": _STR, "rule_version": {"type": "integer"}, "org": _NULLABLE_STR,
        "org_id": _NULLABLE_STR, "api": _NULLABLE_STR, "metric": _STR, "comparison": _STR,
        "threshold": {"type": "number"}, "value": {"type": ["number", "null"]},
        "state": {"type": "string", "enum": ["firing", "resolved"]}, "started_at": _TIME,
        "resolved_at": _NULLABLE_TIME, "acked_at": _NULLABLE_TIME, "acked_by": _NULLABLE_STR,
        "escalated_at": _NULLABLE_TIME,
        "notifications": {"type": "array", "items": notification, "description": "what was sent where, and how it went"},
    }
    return {
        "AlertRule": {"type": "object", "properties": rule_props,
                      "required": ["id", "org_id", "version", "name", "enabled", "metric", "api", "comparison",
                                   "threshold", "window", "duration", "channels", "webhook_secret_set"]},
        "Alert": {"type": "object", "properties": alert_props,
                  "required": ["id", "rule_id", "rule_name", "state", "started_at", "resolved_at", "acked_at"]},
        "AlertPage": {"type": "object", "required": ["items", "next_cursor"], "properties": {
            "items": {"type": "array", "items": {"$ref": "#/components/schemas/Alert"}},
            "next_cursor": {"type": ["string", "null"], "description": "pass as cursor for the next page"}}},
    }


def _global(paths: dict[str, Schema], errors: Any) -> dict[str, Schema]:
    """The org paths of the versioned rules, moved to /api/v1/alert-rules: no org parameter, and a 403
    for anyone but a global admin."""
    out: dict[str, Schema] = {}
    for path, item in copy.deepcopy(paths).items():
        item["parameters"] = [p for p in item.get("parameters", []) if p.get("name") != "org"]
        for op in item.values():
            if isinstance(op, dict) and "responses" in op:
                op["responses"].update(errors("403"))
                op["summary"] = op["summary"].replace("alert rule", "global alert rule")
                op["tags"] = ["alert rule"]
        out[path.replace("/api/v1/orgs/{org}/alert-rules", "/api/v1/alert-rules")] = item
    return out


def alert_paths(*, op: Any, json: Any, errors: Any, versioned: Any, org: Schema, id_: Schema,
                page_params: list[Schema]) -> dict[str, Schema]:
    """The paths, built with control.openapi's own helpers (passed in: that module imports this one)."""
    rules = versioned("alert-rules", "AlertRule", "AlertRuleCreate", "AlertRuleUpdate", "alert rule")

    def q(name: str, schema: Schema, description: str) -> Schema:
        return {"name": name, "in": "query", "required": False, "schema": schema, "description": description}

    filters = [q("state", {"type": "string", "enum": ["firing", "resolved"]}, "only alerts in this state"),
               q("rule", {"type": "string", "format": "uuid"}, "only this rule's alerts"), *copy.deepcopy(page_params)]
    alert_ref = {"$ref": "#/components/schemas/Alert"}

    def history(base: str, params: list[Schema], who: str, codes: tuple[str, ...]) -> dict[str, Schema]:
        return {
            base: {**({"parameters": copy.deepcopy(params)} if params else {}),
                   "get": op(f"Alert history of {who}, newest first", {
                       "200": json({"$ref": "#/components/schemas/AlertPage"}, "one page"),
                       **errors("401", *codes, "404", "422")}, params=copy.deepcopy(filters), tag="alert")},
            base + "/{id}": {"parameters": [*copy.deepcopy(params), copy.deepcopy(id_)],
                             "get": op("Get an alert, with its notifications",
                                       {"200": json(alert_ref, "the alert"), **errors("401", *codes, "404")}, tag="alert")},
            base + "/{id}/ack": {"parameters": [*copy.deepcopy(params), copy.deepcopy(id_)],
                                 "post": op("Acknowledge an alert: no escalation after this (the first acknowledgement stands)",
                                            {"200": json(alert_ref, "the alert"), **errors("401", "403", "404")},
                                            tag="alert")},
        }

    return {**rules, **_global(rules, errors),
            **history("/api/v1/orgs/{org}/alerts", [org], "an organisation's rules", ()),
            **history("/api/v1/alerts", [], "the global rules (global admin)", ("403",))}
