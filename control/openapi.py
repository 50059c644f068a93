"""The OpenAPI 3.1 document of the management API, as data.

Request bodies come from :mod:`control.bodies` — the very schemas the
validator enforces — so the document cannot promise what the code refuses.
A schemathesis test (tests/control/test_control_openapi.py) runs the live
server against it.
"""
from __future__ import annotations

import copy
from typing import Any

from control.bodies import request_schemas
from control.handlers.audit import RESOURCE_TYPES
from core.settings import Settings

__all__ = ["build_openapi"]

Schema = dict[str, Any]


def _ref(name: str) -> Schema:
    return {"$ref": f"#/components/schemas/{name}"}


def _obj(props: Schema, required: list[str] | None = None) -> Schema:
    return {"type": "object", "properties": props, "required": required if required is not None else list(props)}


_STR = {"type": "string"}
_STR_OR_NULL = {"type": ["string", "null"]}
_INT = {"type": "integer"}
_BOOL = {"type": "boolean"}
_TIME = {"type": "string", "format": "date-time"}

_ERROR_TEXT = {
    "400": "Malformed JSON body (code malformed_body).",
    "401": "Missing, expired or invalid bearer token; wrong login.",
    "403": "Your role may not do this (a viewer writing, an org admin doing a global admin's job), "
           "or over a quota (code quota_exceeded, with quota and limit).",
    "404": "No such resource, or it belongs to another organisation.",
    "409": "Conflict: name, slug or username taken, route clash (code route_clash), connector, consumer or API in use.",
    "412": "If-Match does not name the current version, or If-None-Match: * met an existing resource (code "
           "precondition_failed).",
    "413": "Request body larger than the limit (code body_too_large).",
    "422": "Invalid input: see fields[] for each field at fault.",
    "429": "Too many failed logins (code login_blocked) or requests (code rate_limited): wait Retry-After seconds.",
}


def _response_schemas() -> dict[str, Schema]:
    resource_common = {"id": _STR, "org": _STR, "org_id": _STR, "version": _INT,
                       "name": _STR, "tags": {"type": "array", "items": _STR}, "created_at": _TIME, "updated_at": _TIME}
    return {
        "Error": {
            "type": "object", "required": ["code", "message"],
            "properties": {
                "code": _STR, "message": _STR, "request_id": _STR,
                "fields": {"type": "array", "items": _obj({"field": _STR, "message": _STR})},
            },
        },
        "Token": _obj({"access_token": _STR, "token_type": {"type": "string", "enum": ["bearer"]}, "expires_in": _INT}),
        "Org": _obj({"id": _STR, "slug": _STR, "name": _STR, "enabled": _BOOL, "version": _INT,
                     "created_at": _TIME, "updated_at": _TIME, "quotas": {"type": "object"}},
                    ["id", "slug", "name", "enabled", "version", "created_at", "updated_at"]),
        "User": _obj({"id": _STR, "org_id": _STR_OR_NULL, "email": _STR,
                      "role": {"type": "string", "enum": ["global_admin", "org_admin", "org_viewer"]},
                      "enabled": _BOOL, "version": _INT, "created_at": _TIME, "updated_at": _TIME}),
        "Api": _obj({**resource_common, "protocol": _STR, "methods": {"type": "array", "items": _STR},
                     "path": _STR, "connector": _STR, "timeout_ms": _INT, "enabled": _BOOL},
                    [*resource_common, "protocol", "methods", "path", "connector", "timeout_ms", "auth", "enabled"]),
        "Connector": _obj({**resource_common, "script": _STR_OR_NULL, "settings": {"type": "object", "description":
                                                                "secret_fields show as ********"},
                           "secret_fields": {"type": "array", "items": _STR}},
                          [*resource_common, "target", "script", "settings"]),
        "Consumer": _obj({**resource_common, "enabled": _BOOL,
                          "keys": {"type": "array", "items": _obj({"id": _STR, "prefix": _STR, "expires_at": _STR_OR_NULL})},
                          "basic": {"type": ["object", "null"], "properties": {"username": _STR}},
                          "oauth_clients": {"type": "array", "items": _obj({"client_id": _STR,
                                                                             "scopes": {"type": "array", "items": _STR}})}}),
        "ApiKey": _obj({"id": _STR, "prefix": _STR, "expires_at": _STR_OR_NULL, "last_used_at": _STR_OR_NULL,
                        "created_at": _TIME}),
        "NewApiKey": _obj({"id": _STR, "key": {**_STR, "description": "shown this once; only its hash is kept"},
                           "prefix": _STR, "expires_at": _STR_OR_NULL, "created_at": _TIME}),
        "ConfigApplied": _obj({
            "applied": {**_BOOL, "description": "every change committed before the question is applied by every live "
                        "ingress, processors and egress instance, and each service has one"},
            "relayed": {**_BOOL, "description": "the outbox had relayed those changes to the config topic"},
            "config_offset": {"type": ["integer", "null"], "description": "the config topic's end after them"},
            "services": {"type": "object", "additionalProperties": _obj({
                "instances": _INT, "applied": _INT,
                "silent": {**_INT, "description": "of those not applied, how many have not reported for over 2 s "
                           "(stalled or killed; they leave the list 5 s after their last report)"}})},
            "missing": {"type": "array", "items": _STR, "description": "services with no live instance"},
            "waited_ms": _INT}, ["applied", "relayed", "config_offset", "services", "missing", "waited_ms"]),
        "Instance": _obj({"service": {"type": "string", "enum": ["ingress", "processors", "egress"]},
                          "instance": _STR, "host": _STR, "pid": _INT, "started_at": _TIME,
                          "config_offset": {**_INT, "description": "config topic position applied"},
                          "synced": _BOOL, "applied": _BOOL,
                          "last_seen_ms_ago": {**_INT, "description": "since its last report (every second); one "
                                               "silent past 2 s is stalled or killed, and leaves the list at 5 s"}},
                         ["service", "instance", "host", "pid", "started_at", "config_offset", "synced", "applied",
                          "last_seen_ms_ago"]),
        "InstanceList": _obj({"config_offset": _INT, "items": {"type": "array", "items": _ref("Instance")}},
                             ["config_offset", "items"]),
        "ProducerKey": _obj({
            "public_key": {**_STR, "description": "base64 of the installation's raw 32-byte X25519 public key; it "
                           "changes when JUNCTION_SEAL_KEY does"},
            "suite": {**_STR, "description": "how to seal to it: HPKE (RFC 9180) base mode, the context "
                      "'caller-credential:<correlation_id>' as info"},
            "version_byte": {**_INT, "description": "the first byte of sealed_credentials, before HPKE's enc and "
                             "ciphertext"}}, ["public_key", "suite", "version_byte"]),
        "Breaker": _obj({"connector": _STR, "origin": {**_STR, "description": "scheme://host:port: one breaker per upstream origin"},
                         "state": {"type": "string", "enum": ["closed", "open", "half_open"]},
                         "failures": {**_INT, "description": "consecutive failures counted across egress instances"},
                         "opened_at_ms": {"type": ["integer", "null"]},
                         "retry_after_ms": {**_INT, "description": "open: until a trial call may go through"},
                         "fail_max": _INT, "reset_ms": _INT,
                         "origins": {"type": "array", "description": "with target.origins: each one's breaker (the "
                                     "fields above are the first's)", "items": _obj({
                                         "origin": _STR, "state": {"type": "string", "enum": ["closed", "open", "half_open"]},
                                         "failures": _INT, "opened_at_ms": {"type": ["integer", "null"]},
                                         "retry_after_ms": _INT})}},
                        ["connector", "origin", "state", "failures", "opened_at_ms", "retry_after_ms"]),
        "OAuthClient": _obj({"client_id": _STR, "scopes": {"type": "array", "items": _STR}, "created_at": _TIME}),
        "NewOAuthClient": _obj({"client_id": _STR, "client_secret": {**_STR, "description": "shown this once"},
                                "scopes": {"type": "array", "items": _STR}, "created_at": _TIME}),
        "Version": _obj({"id": _STR, "version": _INT, "content": {"type": "object"},
                         "created_by": _STR_OR_NULL,
                         "created_by_email": {**_STR_OR_NULL, "description": "null once that user is deleted"},
                         "created_at": _TIME}),
        "Diff": _obj({"id": _STR, "from": _INT, "to": _INT, "changes": {"type": "array", "items": {
            "type": "object", "required": ["field", "before", "after"],
            "properties": {"field": _STR, "before": {}, "after": {}}}}}),
        "AuditEntry": _obj({"id": _INT, "at": _TIME, "actor_id": _STR_OR_NULL, "actor_email": _STR_OR_NULL,
                            "org_id": _STR_OR_NULL, "action": _STR, "resource_type": _STR, "resource_id": _STR,
                            "before": {"type": ["object", "null"]}, "after": {"type": ["object", "null"]},
                            "request_id": _STR_OR_NULL}),
        "AuditPage": _obj({"items": {"type": "array", "items": _ref("AuditEntry")},
                           "next_cursor": {"type": ["integer", "null"]}}),
        "DeadLetterSummary": _dead_letter_schema(full=False),
        "DeadLetter": _dead_letter_schema(full=True),
        "ConnectorTestResult": {
            "type": "object", "required": ["ran", "logs"],
            "properties": {
                "ran": {"type": "array", "items": {"type": "string", "enum": ["transform_request", "transform_response"]},
                        "description": "the script functions that ran"},
                "request": {"type": "object", "description": "the transformed request (method, path, path_params, "
                            "query and headers as [name, value] pairs, url); body as text, or base64 with body_base64 true"},
                "response": {"type": "object", "description": "the transformed response (status, headers, body), "
                             "or the sample unchanged when the script has no transform_response"},
                "error": _obj({"code": _STR, "message": _STR, "line": {"type": ["integer", "null"]},
                               "status": _INT, "stage": {"type": "string", "enum": ["request", "response"]}}),
                "logs": {"type": "array", "items": _STR},
            },
        },
    }


# A resource's answer is its stored content, which is the validated body: each field a body takes is
# documented in the answer with the body's own schema, so the two cannot drift. The answer's own schema wins
# where it shows a field differently (a sealed secret as secret_set, a masked setting); write-only fields are
# never answered.
ECHOED_FIELDS: tuple[tuple[str, tuple[str, ...], tuple[str, ...]], ...] = (
    ("Org", ("OrgCreate", "OrgUpdate"), ()),
    ("User", ("UserCreate", "UserUpdate"), ("password",)),
    ("Api", ("ApiCreate",), ("auth.secret",)),  # a jwt secret shows as secret_set: true, never itself
    ("Connector", ("ConnectorCreate",), ()),
    ("Consumer", ("ConsumerCreate",), ()),
    ("AlertRule", ("AlertRuleCreate",), ("webhook_secret",)),
)


def _echoing(answer: Schema, bodies: list[Schema], write_only: tuple[str, ...]) -> Schema:
    """``write_only``: field names, or ``field.key`` for a key of an object field."""
    echoed: Schema = {}
    for body in bodies:
        for name, prop in body.get("properties", {}).items():
            if name not in write_only:
                echoed.setdefault(name, copy.deepcopy(prop))
    for path in write_only:
        field, _, key = path.partition(".")
        if key and field in echoed:
            echoed[field]["properties"].pop(key, None)
    return {**answer, "properties": {**echoed, **answer["properties"]}}


def _dead_letter_schema(*, full: bool) -> Schema:
    props: Schema = {
        "id": _STR, "org": _STR, "correlation_id": _STR,
        "stage": {"type": "string", "enum": ["processors", "egress"]}, "error_code": _STR, "error_message": _STR,
        "attempt": _INT, "api_id": _STR, "connector_id": _STR, "connector_version": _INT, "config_version": _INT,
        "original_topic": _STR, "original_bytes": {**_INT, "description": "size of the (redacted) original"},
        "inbound_partition": _INT, "inbound_offset": _INT,
        "partition": {**_INT, "description": "where the letter was on the dead-letter topic"}, "offset": _INT,
        "failed_at": _TIME,
    }
    if not full:
        return _obj(props)
    props.update({
        "details": {"type": ["array", "null"], "items": _STR,
                    "description": "traceback and log lines; null for an org viewer (details_hidden)"},
        "original": {"type": ["object", "null"], "description":
                     "the original call without caller credentials: {type, record} with bytes as {encoding: text|base64, "
                     "value}, or {type: null, undecodable, base64}; null for an org viewer (original_hidden)"},
        "original_hidden": _BOOL, "details_hidden": _BOOL,
    })
    return _obj(props)


def _dead_letters() -> dict[str, Schema]:
    base = "/api/v1/orgs/{org}/dead-letters"
    query = [
        {"name": "api", "in": "query", "required": False, "schema": {"type": "string", "minLength": 1, "maxLength": 100},
         "description": "an API id or name"},
        {"name": "stage", "in": "query", "required": False, "schema": {"type": "string", "enum": ["processors", "egress"]}},
        {"name": "code", "in": "query", "required": False, "schema": {"type": "string", "pattern": "^[a-z0-9_]{1,64}$"},
         "description": "error code"},
        {"name": "correlation_id", "in": "query", "required": False,
         "schema": {"type": "string", "pattern": "^[\\x21-\\x7e]{1,200}$"}},
        {"name": "from", "in": "query", "required": False, "schema": _TIME, "description": "failed at or after"},
        {"name": "to", "in": "query", "required": False, "schema": _TIME,
         "description": "failed before; not before from (422)"},
    ]
    return {
        base: {
            "parameters": [ORG],
            "get": _op("List dead letters, newest first, without originals (docs/replay.md)",
                       {"200": _json(_waited_page_of("DeadLetterSummary", "dead letter"),
                                     "one page of the organisation's dead letters"),
                        **_errors("401", "404", "422"), "503": _json(_ref("Error"), "wait, on a control without Kafka")},
                       params=[*query, *copy.deepcopy(_PAGE_PARAMS), _wait_param("dead letter")], tag="dead letter"),
        },
        base + "/{id}": {
            "parameters": [ORG, _path_param("id", "dead letter id")],
            "get": _op("One dead letter; its details and original (credentials removed) for org admins and global admins",
                       {"200": _json(_ref("DeadLetter"), "the dead letter"), **_errors("401", "404")}, tag="dead letter"),
        },
        # Letters no organisation can be trusted to own: undecodable bytes, a producer naming another
        # organisation's API, an API deleted meanwhile (docs/replay.md).
        "/api/v1/dead-letters": {
            "get": _op("List the dead letters of no organisation, newest first, without originals (global admin)",
                       {"200": _json(_waited_page_of("DeadLetterSummary", "dead letter"),
                                     "one page of the dead letters no organisation owns"),
                        **_errors("401", "403", "422"), "503": _json(_ref("Error"), "wait, on a control without Kafka")},
                       params=[*copy.deepcopy(query), *copy.deepcopy(_PAGE_PARAMS), _wait_param("dead letter")],
                       tag="dead letter"),
        },
        "/api/v1/dead-letters/{id}": {
            "parameters": [_path_param("id", "dead letter id")],
            "get": _op("One dead letter of no organisation, with its details and original (global admin)",
                       {"200": _json(_ref("DeadLetter"), "the dead letter"), **_errors("401", "403", "404")},
                       tag="dead letter"),
        },
    }


def _list_of(name: str) -> Schema:
    return _obj({"items": {"type": "array", "items": _ref(name)}})


def _page_of(name: str) -> Schema:
    return _obj({"items": {"type": "array", "items": _ref(name)},
                 "next_cursor": {"type": ["string", "null"],
                                 "description": "pass as cursor for the next page; null on the last page"}})


def _waited_page_of(name: str, what: str) -> Schema:
    """A page of a list that a control reader fills from a topic, which ``wait`` can wait for."""
    page = _page_of(name)
    page["properties"]["caught_up"] = {**_BOOL, "description": f"only with wait: whether every {what} written "
                                       "before the question was indexed, so is listed if it matches"}
    return page


def _wait_param(what: str) -> Schema:
    return {"name": "wait", "in": "query", "required": False,
            "schema": {"type": "number", "minimum": 0, "maximum": 60, "default": 0},
            "description": f"seconds to wait first until every {what} written before the question is indexed "
                           "(docs/replay.md, docs/observability.md); the page's caught_up says whether it was"}


_PAGE_PARAMS = [
    {"name": "limit", "in": "query", "required": False, "schema": {"type": "integer", "minimum": 1, "maximum": 1000},
     "description": "items per page (default 100)"},
    {"name": "cursor", "in": "query", "required": False, "schema": _STR,
     "description": "the next_cursor of the previous page (opaque); a bad one answers 422"},
]


def _json(schema: Schema, description: str, etag: bool = False) -> Schema:
    out: Schema = {"description": description, "content": {"application/json": {"schema": schema}}}
    if etag:
        out["headers"] = {"ETag": {"description": 'W/"<version>"', "schema": _STR}}
    return out


def _errors(*codes: str) -> dict[str, Schema]:
    return {c: _json(_ref("Error"), _ERROR_TEXT[c]) for c in codes}


_IF_MATCH = {"name": "If-Match", "in": "header", "required": False, "schema": _STR,
             "description": 'ETag of the version you read (W/"<n>"); a mismatch answers 412.'}


def _path_param(name: str, description: str, schema: Schema | None = None) -> Schema:
    return {"name": name, "in": "path", "required": True, "schema": schema or _STR, "description": description}


ORG = _path_param("org", "organisation slug or id")
ID = _path_param("id", "resource id")
REF = _path_param("id", "the resource's id, or its name (names are unique in the organisation)")
_TAGS_PARAM = {"name": "tags", "in": "query", "required": False, "schema": _STR,
               "description": "only those with every one of these tags (a,b), or with any one of them (a/b)"}
_IF_NONE_MATCH = {"name": "If-None-Match", "in": "header", "required": False, "schema": {"type": "string", "enum": ["*"]},
                  "description": "`*`: create only; when the name is taken, 412 and nothing changes."}
USER = _path_param("user", "user id")


def _op(summary: str, responses: dict[str, Schema], *, body: str | None = None, params: list[Schema] | None = None,
        public: bool = False, tag: str = "", body_required: bool = True) -> Schema:
    op: Schema = {"summary": summary, "operationId": "", "responses": responses}
    if tag:
        op["tags"] = [tag]
    if params:
        op["parameters"] = params
    if body:
        op["requestBody"] = {"required": body_required, "content": {"application/json": {"schema": _ref(body)}}}
    if public:
        op["security"] = []
    return op


def _versioned(plural: str, schema: str, create: str, update: str, label: str) -> dict[str, Schema]:
    base = f"/api/v1/orgs/{{org}}/{plural}"
    one = base + "/{id}"
    read_err = _errors("401", "404")
    write_err = _errors("400", "401", "403", "404", "409", "413", "422")
    upd_err = _errors("400", "401", "403", "404", "409", "412", "413", "422")
    n_schema = {"type": "integer", "minimum": 1}
    return {
        base: {
            "parameters": [ORG],
            "get": _op(f"List {label}s, a page at a time (oldest first)",
                       {"200": _json(_page_of(schema), f"one page of the organisation's {label}s"),
                        **_errors("401", "404", "422")}, params=[*copy.deepcopy(_PAGE_PARAMS), _TAGS_PARAM], tag=label),
            "post": _op(f"Create a {label} (version 1)", {"201": _json(_ref(schema), "created", True), **write_err},
                        body=create, tag=label),
        },
        one: {
            "parameters": [ORG, REF],
            "get": _op(f"Get a {label}", {"200": _json(_ref(schema), "current version", True), **read_err}, tag=label),
            "put": _op(f"Replace a {label} (next version); given a name nothing has, create it (version 1). "
                       "Put to a name, the body's name must be that name (to rename, use the id)",
                       {"200": _json(_ref(schema), "updated (or unchanged: no new version)", True),
                        "201": _json(_ref(schema), "created under the name in the path", True), **upd_err},
                       body=create, params=[_IF_MATCH, _IF_NONE_MATCH], tag=label),
            "patch": _op(f"Change some fields of a {label} (next version)",
                         {"200": _json(_ref(schema), "updated", True), **upd_err}, body=update, params=[_IF_MATCH], tag=label),
            "delete": _op(f"Delete a {label}", {"204": {"description": "deleted"},
                                               **_errors("401", "403", "404", "409", "412")}, params=[_IF_MATCH], tag=label),
        },
        one + "/versions": {
            "parameters": [ORG, REF],
            "get": _op("List versions", {"200": _json(_list_of("Version"), "every version, oldest first"), **read_err}, tag=label),
        },
        one + "/versions/{n}": {
            "parameters": [ORG, REF, _path_param("n", "version number", n_schema)],
            "get": _op("Get one version", {"200": _json(_ref("Version"), "that version"), **_errors("401", "404", "422")}, tag=label),
        },
        one + "/versions/{a}/diff/{b}": {
            "parameters": [ORG, REF, _path_param("a", "from version", n_schema), _path_param("b", "to version", n_schema)],
            "get": _op("Diff two versions", {"200": _json(_ref("Diff"), "changed fields"), **_errors("401", "404", "422")}, tag=label),
        },
        one + "/diff": {
            "parameters": [ORG, REF,
                           {"name": "from", "in": "query", "required": True, "schema": n_schema},
                           {"name": "to", "in": "query", "required": True, "schema": n_schema}],
            "get": _op("Diff two versions (query form)", {"200": _json(_ref("Diff"), "changed fields"),
                                                          **_errors("401", "404", "422")}, tag=label),
        },
        one + "/rollback": {
            "parameters": [ORG, REF],
            "post": _op("Create a new version equal to an old one",
                        {"200": _json(_ref(schema), "the new version", True), **upd_err},
                        body="RollbackRequest", params=[_IF_MATCH], tag=label),
        },
    }


def _consumers() -> dict[str, Schema]:
    base = "/api/v1/orgs/{org}/consumers"
    one = base + "/{id}"
    tag = "consumer"
    read_err = _errors("401", "403", "404")
    write_err = _errors("400", "401", "403", "404", "409", "412", "413", "422")
    n_schema = {"type": "integer", "minimum": 1}
    key = _path_param("key_id", "API key id")
    client = _path_param("client_id", "OAuth client id")
    return {
        base: {
            "parameters": [ORG],
            "get": _op("List consumers, a page at a time (oldest first)",
                       {"200": _json(_page_of("Consumer"), "one page of the organisation's consumers"),
                        **_errors("401", "403", "404", "422")}, params=[*copy.deepcopy(_PAGE_PARAMS), _TAGS_PARAM],
                       tag=tag),
            "post": _op("Create a consumer (version 1)", {"201": _json(_ref("Consumer"), "created", True),
                                                          **_errors("400", "401", "403", "404", "409", "413", "422")},
                        body="ConsumerCreate", tag=tag),
        },
        one: {
            "parameters": [ORG, REF],
            "get": _op("Get a consumer", {"200": _json(_ref("Consumer"), "current version", True), **read_err}, tag=tag),
            "put": _op("Set a consumer's name and enabled (next version); given a name nothing has, create it "
                       "(version 1). Put to a name, the body's name must be that name. Credentials stay as they are",
                       {"200": _json(_ref("Consumer"), "updated (or unchanged: no new version)", True),
                        "201": _json(_ref("Consumer"), "created under the name in the path", True), **write_err},
                       body="ConsumerCreate", params=[_IF_MATCH, _IF_NONE_MATCH], tag=tag),
            "patch": _op("Rename, disable or enable a consumer (next version)",
                         {"200": _json(_ref("Consumer"), "updated", True), **write_err},
                         body="ConsumerUpdate", params=[_IF_MATCH], tag=tag),
            "delete": _op("Delete a consumer with its credentials",
                          {"204": {"description": "deleted"}, **_errors("401", "403", "404", "409", "412")},
                          params=[_IF_MATCH], tag=tag),
        },
        one + "/versions": {
            "parameters": [ORG, REF],
            "get": _op("List versions", {"200": _json(_list_of("Version"), "every version, oldest first"), **read_err},
                       tag=tag),
        },
        one + "/versions/{n}": {
            "parameters": [ORG, REF, _path_param("n", "version number", n_schema)],
            "get": _op("Get one version", {"200": _json(_ref("Version"), "that version"),
                                           **_errors("401", "403", "404", "422")}, tag=tag),
        },
        one + "/versions/{a}/diff/{b}": {
            "parameters": [ORG, REF, _path_param("a", "from version", n_schema), _path_param("b", "to version", n_schema)],
            "get": _op("Diff two versions", {"200": _json(_ref("Diff"), "changed fields"),
                                             **_errors("401", "403", "404", "422")}, tag=tag),
        },
        one + "/keys": {
            "parameters": [ORG, REF],
            "get": _op("List the consumer's API keys (never the keys)", {"200": _json(_list_of("ApiKey"), "keys"),
                                                                         **read_err}, tag=tag),
            "post": _op("Create an API key: the key is in this answer only (the body may be left out)",
                        {"201": _json(_ref("NewApiKey"), "created", True), **write_err},
                        body="KeyCreate", params=[_IF_MATCH], tag=tag, body_required=False),
        },
        one + "/keys/{key_id}": {
            "parameters": [ORG, REF, key],
            "delete": _op("Revoke an API key", {"204": {"description": "revoked"},
                                                **_errors("401", "403", "404", "412")}, params=[_IF_MATCH], tag=tag),
        },
        one + "/basic": {
            "parameters": [ORG, REF],
            "post": _op("Set or replace the consumer's username and password (bcrypt)",
                        {"200": _json(_ref("Consumer"), "updated", True), **write_err},
                        body="BasicSet", params=[_IF_MATCH], tag=tag),
            "delete": _op("Remove the consumer's username and password", {"204": {"description": "removed"},
                          **_errors("401", "403", "404", "412")}, params=[_IF_MATCH], tag=tag),
        },
        one + "/oauth-clients": {
            "parameters": [ORG, REF],
            "get": _op("List the consumer's OAuth clients (never the secrets)",
                       {"200": _json(_list_of("OAuthClient"), "clients"), **read_err}, tag=tag),
            "post": _op("Create an OAuth client: the secret is in this answer only",
                        {"201": _json(_ref("NewOAuthClient"), "created", True), **write_err},
                        body="OAuthClientCreate", params=[_IF_MATCH], tag=tag),
        },
        one + "/oauth-clients/{client_id}": {
            "parameters": [ORG, REF, client],
            "delete": _op("Delete an OAuth client", {"204": {"description": "deleted"},
                                                     **_errors("401", "403", "404", "412")}, params=[_IF_MATCH], tag=tag),
        },
    }


def _accounts() -> dict[str, Schema]:
    """Sessions, global admins, security events and usage (docs/security.md)."""
    admin = _path_param("id", "global admin's user id")
    counts = {"type": "array", "items": _obj({"requests": _INT}, ["requests"])}
    day = [{"name": "day", "in": "query", "required": False, "schema": {"type": "string", "format": "date"},
            "description": "UTC day, YYYY-MM-DD (default today)"}]
    event = _obj({"id": _STR, "at_ms": _INT, "kind": _STR, "org": _STR_OR_NULL, "source": _STR_OR_NULL,
                  "subject": _STR_OR_NULL, "detail": {"type": "object"}})
    with_password = {"allOf": [_ref("User"), {"type": "object", "properties": {"generated_password": {
        **_STR, "description": "only when no password was given: shown this once"}}}]}
    return {
        "/api/v1/auth/logout": {"post": _op("Revoke the token this request carries", {
            "204": {"description": "revoked"}, **_errors("401")}, tag="auth")},
        "/api/v1/me/password": {"post": _op(
            "Change your own password: every earlier token is revoked; the answer is a new one",
            {"200": _json(_ref("Token"), "a new token"), **_errors("400", "401", "403", "413", "422", "429")},
            body="PasswordChange", tag="auth")},
        "/api/v1/security-events": {"get": _op("Security events, newest first (global admin)", {
            "200": _json({"type": "object", "required": ["items", "next_cursor"], "properties": {
                "items": {"type": "array", "items": event}, "next_cursor": _STR_OR_NULL}}, "one page"),
            **_errors("401", "403", "422")}, params=[
                {"name": "org", "in": "query", "schema": _STR, "description": "slug or id"},
                {"name": "kind", "in": "query", "schema": _STR, "description": "such as login_failure, login_blocked, access_denied"},
                *copy.deepcopy(_PAGE_PARAMS)], tag="security")},
        "/api/v1/admins": {
            "get": _op("List global admins, a page at a time (global admin)", {
                "200": _json(_page_of("User"), "one page"), **_errors("401", "403", "422")},
                params=copy.deepcopy(_PAGE_PARAMS), tag="security"),
            "post": _op("Create a global admin (global admin)", {
                "201": _json(with_password, "created", True), **_errors("400", "401", "403", "409", "413", "422")},
                body="AdminCreate", tag="security"),
        },
        "/api/v1/admins/{id}": {
            "parameters": [admin],
            "patch": _op("Disable or enable a global admin (not yourself, not the last enabled one)", {
                "200": _json(_ref("User"), "updated", True),
                **_errors("400", "401", "403", "404", "409", "412", "413", "422")},
                body="AdminUpdate", params=[_IF_MATCH], tag="security"),
        },
        "/api/v1/admins/{id}/password": {
            "parameters": [admin],
            "post": _op("Reset another global admin's password; their tokens are revoked", {
                "200": _json(with_password, "updated", True), **_errors("400", "401", "403", "404", "413", "422")},
                body="PasswordReset", tag="security"),
        },
        "/api/v1/usage": {"get": _op("Management API requests per organisation and user on a day (global admin)", {
            "200": _json(_obj({"day": _STR, "orgs": counts, "users": counts}), "counts, largest first"),
            **_errors("401", "403", "422")}, params=day, tag="security")},
        "/api/v1/orgs/{org}/usage": {
            "parameters": [ORG],
            "get": _op("Management API requests of an organisation and its users on a day (its admins)", {
                "200": _json(_obj({"day": _STR, "org_id": _STR, "requests": _INT, "users": counts}), "counts"),
                **_errors("401", "403", "404", "422")}, params=day, tag="security"),
        },
    }


def build_openapi(settings: Settings) -> Schema:
    from control.openapi_alerts import alert_paths, alert_schemas
    from control.openapi_observability import observability_paths, observability_schemas
    from control.openapi_replays import replays_paths

    schemas = {**copy.deepcopy(request_schemas(settings)), **_response_schemas(), **observability_schemas(),
               **alert_schemas()}
    for resource, bodies, write_only in ECHOED_FIELDS:
        schemas[resource] = _echoing(schemas[resource], [schemas[b] for b in bodies], write_only)
    ok_only = {"200": _json({"type": "object"}, "ok")}
    paths: dict[str, Schema] = {
        "/healthz": {"get": _op("Liveness", ok_only, public=True, tag="health")},
        "/readyz": {"get": _op("Readiness: database, Redis, Kafka producer", {
            **ok_only, "503": _json({"type": "object"}, "a dependency is down")}, public=True, tag="health")},
        "/api/v1/openapi.json": {"get": _op("This document", {"200": _json({"type": "object"}, "OpenAPI 3.1")},
                                            public=True, tag="meta")},
        "/api/v1/auth/login": {"post": _op("Exchange email and password for a bearer token", {
            "200": _json(_ref("Token"), "token"), **_errors("400", "401", "413", "422", "429")},
            body="LoginRequest", public=True, tag="auth")},
        "/api/v1/orgs": {
            "get": _op("List organisations (a global admin sees all, others their own), oldest first",
                       {"200": _json(_page_of("Org"), "one page of organisations"), **_errors("401", "422")},
                       params=copy.deepcopy(_PAGE_PARAMS), tag="orgs"),
            "post": _op("Create an organisation (global admin)", {"201": _json(_ref("Org"), "created", True),
                                                                  **_errors("400", "401", "403", "409", "413", "422")},
                        body="OrgCreate", tag="orgs"),
        },
        "/api/v1/orgs/{org}": {
            "parameters": [ORG],
            "get": _op("Get an organisation", {"200": _json(_ref("Org"), "organisation", True), **_errors("401", "404")}, tag="orgs"),
            "patch": _op("Change an organisation (slug, enabled and quotas: global admin only); its APIs' rate_limit, "
                         "ip_restriction and cors: its org admins too",
                         {"200": _json(_ref("Org"), "updated", True),
                          **_errors("400", "401", "403", "404", "409", "412", "413", "422")},
                         body="OrgUpdate", params=[_IF_MATCH], tag="orgs"),
            "delete": _op("Delete an organisation with everything in it (global admin); 409 api_in_use while a "
                          "global alert rule watches one of its APIs",
                          {"204": {"description": "deleted"}, **_errors("401", "403", "404", "409", "412")},
                          params=[_IF_MATCH], tag="orgs"),
        },
        "/api/v1/orgs/{org}/users": {
            "parameters": [ORG],
            "get": _op("List users, oldest first", {"200": _json(_page_of("User"), "one page of users"),
                                                    **_errors("401", "404", "422")},
                       params=copy.deepcopy(_PAGE_PARAMS), tag="users"),
            "post": _op("Create a user", {"201": _json(_ref("User"), "created", True),
                                          **_errors("400", "401", "403", "404", "409", "413", "422")},
                        body="UserCreate", tag="users"),
        },
        "/api/v1/orgs/{org}/users/{user}": {
            "parameters": [ORG, USER],
            "get": _op("Get a user", {"200": _json(_ref("User"), "user", True), **_errors("401", "404")}, tag="users"),
            "patch": _op("Change a user's role or password", {"200": _json(_ref("User"), "updated", True),
                                                              **_errors("400", "401", "403", "404", "412", "413", "422")},
                         body="UserUpdate", params=[_IF_MATCH], tag="users"),
            "delete": _op("Delete a user", {"204": {"description": "deleted"}, **_errors("401", "403", "404", "412")},
                          params=[_IF_MATCH], tag="users"),
        },
        **_versioned("connectors", "Connector", "ConnectorCreate", "ConnectorUpdate", "connector"),
        "/api/v1/orgs/{org}/connectors/{id}/test": {
            "parameters": [ORG, REF],
            "post": _op("Try the connector's script (or an unsaved one) on a sample request and/or response",
                        {"200": _json(_ref("ConnectorTestResult"), "the transformed request and response, or the script's error"),
                         **_errors("400", "401", "403", "404", "413", "422"),
                         "503": _json(_ref("Error"), "the sandbox is not available")},
                        body="ConnectorTestRequest", tag="connector"),
        },
        "/api/v1/config/applied": {
            "get": _op("Whether every running instance has applied every configuration change made so far; with wait, "
                       "wait up to that many seconds for it (docs/control.md#waiting-for-a-change)",
                       {"200": _json(_ref("ConfigApplied"), "the answer, applied or not"), **_errors("401", "422"),
                        "503": _json(_ref("Error"), "this control instance runs without Kafka")},
                       params=[{"name": "wait", "in": "query",
                                "schema": {"type": "number", "minimum": 0, "maximum": 60, "default": 0},
                                "description": "seconds to wait until applied"}], tag="instances"),
        },
        "/api/v1/producer-key": {
            "get": _op("The public key async producers seal their callers' credentials to, for an API that "
                       "authenticates its callers (docs/async-producers.md)",
                       {"200": _json(_ref("ProducerKey"), "the key and how to seal to it"), **_errors("401")},
                       tag="security"),
        },
        "/api/v1/instances": {
            "get": _op("The running ingress, processors and egress instances, and how far each has applied the "
                       "configuration (global admins)",
                       {"200": _json(_ref("InstanceList"), "live instances"), **_errors("401", "403"),
                        "503": _json(_ref("Error"), "this control instance runs without Kafka")}, tag="instances"),
        },
        "/api/v1/orgs/{org}/connectors/{id}/breaker": {
            "parameters": [ORG, REF],
            "get": _op("The circuit breaker of the connector's upstream, as every egress instance shares it (docs/resilience.md)",
                       {"200": _json(_ref("Breaker"), "its state"), **_errors("401", "404")}, tag="connector"),
        },
        "/api/v1/orgs/{org}/connectors/test": {
            "parameters": [ORG],
            "post": _op("Try a script for a connector not saved yet on a sample request and/or response",
                        {"200": _json(_ref("ConnectorTestResult"), "the transformed request and response, or the script's error"),
                         **_errors("400", "401", "403", "404", "413", "422"),
                         "503": _json(_ref("Error"), "the sandbox is not available")},
                        body="ConnectorTryRequest", tag="connector"),
        },
        **_versioned("apis", "Api", "ApiCreate", "ApiUpdate", "API"),
        **_consumers(),
        **_accounts(),
        **_dead_letters(),
        **observability_paths(op=_op, json=_json, errors=_errors, org=ORG, page_params=_PAGE_PARAMS,
                               waited_page_of=_waited_page_of, wait_param=_wait_param),
        **alert_paths(op=_op, json=_json, errors=_errors, versioned=_versioned, org=ORG, id_=ID, page_params=_PAGE_PARAMS),
        **replays_paths(op=_op, json=_json, errors=_errors, org=ORG, page_params=_PAGE_PARAMS),
        "/api/v1/audit": {"get": _op("Audit trail, newest first", {
            "200": _json(_ref("AuditPage"), "one page; pass next_cursor as cursor for the next"),
            **_errors("401", "404", "422")}, params=[
                {"name": "org", "in": "query", "schema": _STR,
                 "description": "slug or id of an organisation the caller can see (else 404); a global admin may "
                                "name a deleted organisation by its id"},
                {"name": "actor", "in": "query", "schema": _STR, "description": "user id or email"},
                {"name": "resource_type", "in": "query", "schema": {"type": "string", "enum": list(RESOURCE_TYPES)}},
                {"name": "resource_id", "in": "query", "schema": _STR},
                {"name": "since", "in": "query", "schema": _TIME},
                {"name": "until", "in": "query", "schema": _TIME},
                {"name": "limit", "in": "query", "schema": {"type": "integer", "minimum": 1, "maximum": 500}},
                {"name": "cursor", "in": "query", "schema": {"type": "integer", "minimum": 1}},
            ], tag="audit")},
    }
    for path, item in paths.items():
        for method, op in item.items():
            if isinstance(op, dict) and "responses" in op:
                op["operationId"] = method + "".join(
                    p.strip("{}").title() for p in path.replace("/api/v1", "").split("/") if p)
    return {
        "openapi": "3.1.0",
        "info": {"title": "Junction management API", "version": "1",
                 "description": "Organisations, users, connectors, APIs, consumers, versions and audit. "
                                "See docs/control.md and docs/consumers.md."},
        "servers": [{"url": "/"}],
        "security": [{"bearerAuth": []}],
        "paths": paths,
        "components": {
            "schemas": schemas,
            "securitySchemes": {"bearerAuth": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"}},
        },
    }
