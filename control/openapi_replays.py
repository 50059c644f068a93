"""The OpenAPI paths and schemas of replay jobs (docs/replay.md), merged into the document by
control.openapi.build_openapi."""
from __future__ import annotations

import copy
from typing import Any

from control.handlers.replays import REPLAY_CREATE

__all__ = ["replays_paths"]

Schema = dict[str, Any]

_STR = {"type": "string"}
_STR_OR_NULL = {"type": ["string", "null"]}
_INT_OR_NULL = {"type": ["integer", "null"]}
_COUNT = {"type": "integer", "minimum": 0}
_TIME_OR_NULL = {"type": ["string", "null"], "format": "date-time"}
OUTCOMES = ["pending", "sending", "sent", "succeeded", "failed", "unanswered", "skipped_already_done", "not_replayable"]


def _obj(props: Schema, required: list[str] | None = None) -> Schema:
    return {"type": "object", "properties": props, "required": required if required is not None else list(props)}


def _schemas() -> dict[str, Schema]:
    # Inline rather than components: the paths alone merge into the document.
    progress = _obj({
        "total": _COUNT, "pending": {**_COUNT, "description": "not sent yet"},
        "sent": {**_COUNT, "description": "sent (answered or not)"},
        "answered": {**_COUNT, "description": "a Reply or a new dead letter arrived"},
        "succeeded": {**_COUNT, "description": "answered 1xx to 3xx"},
        "failed": {**_COUNT, "description": "answered 4xx or 5xx, dead-lettered again, unanswered, or not replayable"},
        "skipped": {**_COUNT, "description": "skipped_already_done: a later attempt already went through"},
        "finished": {**_COUNT, "description": "with a final outcome; the job is done when finished = total"},
    })
    item = _obj({
        "dead_letter_id": _STR, "correlation_id": _STR,
        "letter": _obj({"attempt": {"type": "integer"}, "stage": _STR, "error_code": _STR}),
        "outcome": {"type": "string", "enum": OUTCOMES},
        "attempt": {**_INT_OR_NULL, "description": "the replay's attempt number"},
        "config": {"type": ["string", "null"], "enum": ["current", "original", None],
                   "description": "the configuration it ran with"},
        "topic": _STR_OR_NULL, "status": {**_INT_OR_NULL, "description": "the Reply's status"},
        "code": {**_STR_OR_NULL, "description": "error code of the Reply or the new dead letter"},
        "message": _STR_OR_NULL, "new_dead_letter_id": _STR_OR_NULL, "sent_at": _TIME_OR_NULL,
        "answered_at": _TIME_OR_NULL,
    })
    common = {
        "id": _STR, "org": _STR, "org_id": _STR, "status": {"type": "string", "enum": ["running", "done"]},
        "filter": {"type": "object"}, "ids": {"type": "array", "items": _STR},
        "config": {"type": "string", "enum": ["current", "original"]}, "rate_per_second": {"type": "integer"},
        "force": {"type": "boolean"}, "created_by": _STR_OR_NULL, "created_at": {"type": "string", "format": "date-time"},
        "finished_at": _TIME_OR_NULL, "progress": progress,
    }
    required = ["id", "org", "org_id", "status", "config", "rate_per_second", "force", "created_by", "created_at",
                "finished_at", "progress"]
    return {
        "ReplayCreate": copy.deepcopy(REPLAY_CREATE),
        "ReplayProgress": progress,
        "ReplayItem": item,
        "ReplayJobSummary": _obj(common, required),
        "ReplayJob": _obj({**common, "items": {"type": "array", "items": item,
                                               "description": "each message's outcome (empty in the answer to POST)"}},
                          [*required, "items"]),
        "ReplayDryRun": _obj({"dry_run": {"type": "boolean", "enum": [True]}, "count": _COUNT,
                              "ids": {"type": "array", "items": _STR},
                              "already_done": {"type": "array", "items": _STR,
                                               "description": "of ids, those a replay already delivered (skipped unless force)"}}),
    }


def replays_paths(*, op: Any, json: Any, errors: Any, org: Schema, page_params: list[Schema]) -> dict[str, Schema]:
    """The paths, built with control.openapi's own helpers (passed in: that module imports this one)."""
    base = "/api/v1/orgs/{org}/replays"
    schemas = _schemas()
    create = op("Replay dead letters (org admin or global admin): a job sent in the background at rate_per_second",
                {"201": json(schemas["ReplayJob"], "the job, running (or done at once when nothing matched)"),
                 "200": json(schemas["ReplayDryRun"], "dry run: what would be replayed"),
                 **errors("400", "401", "403", "404", "413", "422")}, tag="replay")
    create["requestBody"] = {"required": True, "content": {"application/json": {"schema": schemas["ReplayCreate"]}}}
    return {
        base: {
            "parameters": [org],
            "post": create,
            "get": op("List replay jobs, newest first, with their progress",
                      {"200": json(_obj({"items": {"type": "array", "items": schemas["ReplayJobSummary"]},
                                         "next_cursor": {"type": ["string", "null"], "description":
                                                         "pass as cursor for the next page; null on the last page"}}),
                                   "one page of the organisation's replay jobs"),
                       **errors("401", "404", "422")}, params=copy.deepcopy(page_params), tag="replay"),
        },
        base + "/{id}": {
            "parameters": [org, {"name": "id", "in": "path", "required": True, "schema": _STR,
                                 "description": "replay job id"}],
            "get": op("One replay job: its progress and each message's outcome",
                      {"200": json(schemas["ReplayJob"], "the job"), **errors("401", "404")}, tag="replay"),
        },
    }
