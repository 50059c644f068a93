"""Request body schemas of alert rules (docs/alerts.md), merged into control.bodies.request_schemas.

Spans, ranges, channel counts and the SSRF check of webhook URLs are checked in
control/alerting/rules.py (check_rule): a schema cannot express them.
"""
from __future__ import annotations

import copy
from typing import Any

from control.alerting.rules import COMPARISONS, MAX_EMAILS, MAX_WEBHOOKS, METRICS
from control.bodies import EMAIL_PATTERN, NAME_PATTERN, TAGS

__all__ = ["alert_bodies"]

Schema = dict[str, Any]

_SPAN = "^[0-9]{1,6}(s|m|h)$"
_webhook: Schema = {"type": "string", "minLength": 1, "maxLength": 2048,
                    "description": "http or https URL; JSON POSTs signed with the rule's webhook_secret, through the SSRF guard"}
_email: Schema = {"type": "string", "pattern": EMAIL_PATTERN, "maxLength": 254}


def _channels(description: str) -> Schema:
    return {"webhooks": {"type": "array", "maxItems": MAX_WEBHOOKS, "items": _webhook},
            "emails": {"type": "array", "maxItems": MAX_EMAILS, "items": _email, "description": description}}


_props: Schema = {
    "name": {"type": "string", "pattern": NAME_PATTERN},
    "description": {"type": "string", "maxLength": 2000},
    "tags": TAGS,
    "enabled": {"type": "boolean", "description": "default true; a disabled rule is not evaluated"},
    "metric": {"type": "string", "enum": list(METRICS),
               "description": "error_rate is a fraction (0..1) of calls answered 4xx or 5xx; circuit_open counts "
                              "the breakers not closed of the connectors in scope"},
    "api": {"type": ["string", "null"], "pattern": NAME_PATTERN,
            "description": "only this API: its id, or in an organisation's rule its name (stored as the id); "
                           "null or absent: every API in scope"},
    "comparison": {"type": "string", "enum": list(COMPARISONS)},
    "threshold": {"type": "number"},
    "window": {"type": "string", "pattern": _SPAN, "description": "the span measured, 10s to 24h (default 5m)"},
    "duration": {"type": "string", "pattern": _SPAN,
                 "description": "how long the condition must hold before the alert fires (default 0s)"},
    "channels": {"type": "object", "additionalProperties": False, "properties": _channels("notified when it fires and resolves")},
    "escalation": {"type": ["object", "null"], "additionalProperties": False, "required": ["after"],
                   "description": "notified once when a firing alert is not acknowledged within after",
                   "properties": {"after": {"type": "string", "pattern": _SPAN}, **_channels("escalated to")}},
    "webhook_secret": {"type": "string", "minLength": 16, "maxLength": 256, "writeOnly": True,
                       "description": "HMAC-SHA256 key of the X-Junction-Signature header (secret: reads show "
                                      "webhook_secret_set; left out, the stored one stays)"},
    "webhook_secret_set": {"type": "boolean", "description": "read-only; ignored"},
}


def alert_bodies() -> dict[str, Schema]:
    props = copy.deepcopy(_props)
    create: Schema = {"type": "object", "additionalProperties": False, "properties": props,
                      "required": ["name", "metric", "comparison", "threshold"]}
    update: Schema = {"type": "object", "additionalProperties": False, "properties": copy.deepcopy(props)}
    return {"AlertRuleCreate": create, "AlertRuleUpdate": update}
