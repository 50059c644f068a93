"""The OpenAPI paths and schemas of metrics and request logs (docs/observability.md),
merged into the document by control.openapi.build_openapi."""
from __future__ import annotations

import copy
from typing import Any

__all__ = ["observability_paths", "observability_schemas"]

Schema = dict[str, Any]

_NUM_OR_NULL = {"type": ["number", "null"]}
_LATENCY = {"type": "object", "required": ["p50", "p95", "p99", "mean"],
            "properties": {"p50": _NUM_OR_NULL, "p95": _NUM_OR_NULL, "p99": _NUM_OR_NULL, "mean": _NUM_OR_NULL},
            "description": "milliseconds; percentiles from a log-bucket histogram, within 4.4 % of the exact value "
                           "(null: no call measured)"}
_COUNT = {"type": "integer", "minimum": 0}


def observability_schemas() -> dict[str, Schema]:
    point = {
        "type": "object", "required": ["t", "calls", "errors", "status", "error_codes", "latency_ms", "upstream_ms",
                                       "bytes_in", "bytes_out"],
        "properties": {
            "t": {"type": "string", "format": "date-time", "description": "start of the window"},
            "calls": _COUNT, "errors": {**_COUNT, "description": "calls answered 4xx or 5xx"},
            "status": {"type": "object", "required": ["2xx", "3xx", "4xx", "5xx", "other"],
                       "properties": {k: _COUNT for k in ("2xx", "3xx", "4xx", "5xx", "other")}},
            "error_codes": {"type": "object", "additionalProperties": _COUNT,
                            "description": "calls answered 4xx or 5xx, by error code (http_<status> when none)"},
            "latency_ms": {**_LATENCY, "description": "end to end: " + _LATENCY["description"]},
            "upstream_ms": {**_LATENCY, "description": "the upstream's part: " + _LATENCY["description"]},
            "bytes_in": _COUNT, "bytes_out": _COUNT,
        },
    }
    window = {"step": {"type": "string", "enum": ["10s", "1m", "1h"]}, "from": {"type": "string", "format": "date-time"},
              "to": {"type": "string", "format": "date-time"}, "api": {"type": ["string", "null"]}}
    log = {
        "type": "object",
        "required": ["id", "correlation_id", "org_id", "api_id", "method", "path", "status", "error_code", "latency_ms",
                     "upstream_ms", "bytes_in", "bytes_out", "at"],
        "properties": {
            "id": {"type": "string"}, "correlation_id": {"type": "string"}, "org_id": {"type": ["string", "null"]},
            "api_id": {"type": ["string", "null"]}, "connector_id": {"type": ["string", "null"]},
            "connector_version": {"type": ["integer", "null"]}, "config_version": {"type": ["integer", "null"]},
            "method": {"type": ["string", "null"]}, "path": {"type": ["string", "null"]},
            "status": {"type": ["integer", "null"]}, "error_code": {"type": ["string", "null"]},
            "stage": {"type": ["string", "null"], "description": "where the answer was made: ingress (refused before the "
                      "call entered the pipeline; latency_ms is then the edge's own), processors or egress"},
            "latency_ms": {**_NUM_OR_NULL, "description": "end to end, from arrival on the requests topic to the reply"},
            "upstream_ms": _NUM_OR_NULL, "bytes_in": {"type": ["integer", "null"]}, "bytes_out": {"type": ["integer", "null"]},
            "details": {"type": ["array", "null"], "items": {"type": "string"},
                        "description": "a failed script's traceback and log lines; null for an org viewer (details_hidden)"},
            "details_hidden": {"type": "boolean"},
            "at": {"type": "string", "format": "date-time", "description": "when the call arrived"},
        },
    }
    return {
        "MetricPoint": point,
        "OrgMetrics": {"type": "object", "required": ["org", "org_id", "step", "from", "to", "points"],
                       "properties": {"org": {"type": "string"}, "org_id": {"type": "string"}, **window,
                                      "points": {"type": "array", "items": {"$ref": "#/components/schemas/MetricPoint"}}}},
        "AllMetrics": {"type": "object", "required": ["step", "from", "to", "series"],
                       "properties": {**window, "series": {"type": "array", "items": {
                           "type": "object", "required": ["org_id", "org", "points"],
                           "properties": {"org_id": {"type": "string"}, "org": {"type": ["string", "null"]},
                                          "points": {"type": "array", "items": {"$ref": "#/components/schemas/MetricPoint"}}}}}}},
        "RequestLog": log,
    }


def observability_paths(*, op: Any, json: Any, errors: Any, org: Schema, page_params: list[Schema],
                        waited_page_of: Any, wait_param: Any) -> dict[str, Schema]:
    """The paths, built with control.openapi's own helpers (passed in: that module imports this one)."""
    def q(name: str, schema: Schema, description: str) -> Schema:
        return {"name": name, "in": "query", "required": False, "schema": schema, "description": description}

    api = q("api", {"type": "string", "minLength": 1, "maxLength": 100}, "only this API (its id or name)")
    window = [
        api,
        q("from", {"type": "string", "format": "date-time"}, "windows starting at or after (default: to - 1 h)"),
        q("to", {"type": "string", "format": "date-time"}, "windows starting at or before (default: now); "
                                                          "from after to answers 422"),
        q("step", {"type": "string", "enum": ["10s", "1m", "1h"]},
          "resolution; absent: 10s up to 1 h of range, 1m up to 2 days, else 1h. More than 10000 points answers 422"),
    ]
    return {
        "/api/v1/metrics": {
            "get": op("Metrics of every organisation, one series each (global admin)",
                      {"200": json({"$ref": "#/components/schemas/AllMetrics"}, "the series"),
                       **errors("401", "403", "422")}, tag="metrics",
                      params=[q("api", {"type": "string", "format": "uuid"}, "only this API (its id: names are "
                                "unique only within an organisation)"), *copy.deepcopy(window[1:])]),
        },
        "/api/v1/orgs/{org}/metrics": {
            "parameters": [org],
            "get": op("Metrics of an organisation (or one API): calls, errors, latency percentiles, bytes",
                      {"200": json({"$ref": "#/components/schemas/OrgMetrics"}, "the series"),
                       **errors("401", "404", "422")}, params=copy.deepcopy(window), tag="metrics"),
        },
        "/api/v1/orgs/{org}/metrics/stream": {
            "parameters": [org],
            "get": op("Live 10 s windows as Server-Sent Events (event: window, data: a MetricPoint)",
                      {"200": {"description": "an event stream; ends after an hour (clients reconnect)",
                               "content": {"text/event-stream": {"schema": {"type": "string"}}}},
                       "503": json({"$ref": "#/components/schemas/Error"}, "too many live streams (code too_many_streams)"),
                       **errors("401", "404", "422")}, params=[copy.deepcopy(api)], tag="metrics"),
        },
        "/api/v1/orgs/{org}/logs": {
            "parameters": [org],
            "get": op("Request log: one row per call, newest first, no bodies",
                      {"200": json(waited_page_of("RequestLog", "answered call"), "one page of the organisation's calls"),
                       **errors("401", "404", "422"), "503": json({"$ref": "#/components/schemas/Error"},
                                                                   "wait, on a control without Kafka")}, params=[
                          copy.deepcopy(api),
                          q("status", {"type": "string", "pattern": "^[1-5]([0-9][0-9]|xx)$"}, "a status (404) or class (5xx)"),
                          q("code", {"type": "string", "pattern": "^[a-z0-9_]{1,64}$"}, "error code"),
                          q("correlation_id", {"type": "string", "pattern": "^[\\x21-\\x7e]{1,200}$"}, "one call"),
                          q("from", {"type": "string", "format": "date-time"}, "arrived at or after"),
                          q("to", {"type": "string", "format": "date-time"}, "arrived at or before; not before from (422)"),
                          *copy.deepcopy(page_params), wait_param("answered call")], tag="logs"),
        },
    }
