"""Request body schemas, as JSON Schema data.

The same dicts drive request validation (:mod:`control.validation`) and the
OpenAPI document (:mod:`control.openapi`), so the two cannot drift apart.
Limits that come from settings are filled in by :func:`request_schemas`.
"""
from __future__ import annotations

import copy
from typing import Any

from core.routing import ANY_METHOD, HTTP_METHODS
from core.settings import Settings

__all__ = ["SLUG_PATTERN", "request_schemas"]

Schema = dict[str, Any]

SLUG_PATTERN = "^[a-z][a-z0-9-]{1,62}$"
NAME_PATTERN = "^[A-Za-z0-9][A-Za-z0-9 ._-]{0,99}$"
EMAIL_PATTERN = "^[^@\\s]{1,64}@[^@\\s]{1,189}$"
METHODS = sorted(HTTP_METHODS)
# "*" accepts any method: an API answering every method, a connector passing the caller's on.
ANY_METHODS = [ANY_METHOD, *METHODS]

_login: Schema = {
    "type": "object", "additionalProperties": False, "required": ["email", "password"],
    "properties": {
        "email": {"type": "string", "minLength": 1, "maxLength": 254},
        "password": {"type": "string", "minLength": 1, "maxLength": 72},
    },
}
_org_props: Schema = {
    "slug": {"type": "string", "pattern": SLUG_PATTERN, "description": "URL prefix on ingress: http://<ingress>/<slug>/..."},
    "name": {"type": "string", "minLength": 1, "maxLength": 200},
    "enabled": {"type": "boolean"},
}
_user_props: Schema = {
    "email": {"type": "string", "pattern": EMAIL_PATTERN, "maxLength": 254},
    "password": {"type": "string", "minLength": 8, "maxLength": 72},
    "role": {"type": "string", "enum": ["org_admin", "org_viewer"]},
}
_password: Schema = {"type": "string", "minLength": 8, "maxLength": 72}
# The management API's own accounts (control/handlers/auth.py, control/handlers/security.py).
_account_bodies: dict[str, Schema] = {
    "PasswordChange": {"type": "object", "additionalProperties": False,
                       "required": ["current_password", "new_password"],
                       "properties": {"current_password": {"type": "string", "minLength": 1, "maxLength": 72},
                                      "new_password": _password}},
    "AdminCreate": {"type": "object", "additionalProperties": False, "required": ["email"],
                    "properties": {"email": _user_props["email"],
                                   "password": {**_password, "description": "default: generated and returned once"}}},
    "AdminUpdate": {"type": "object", "additionalProperties": False, "required": ["enabled"],
                    "properties": {"enabled": {"type": "boolean"}}},
    "PasswordReset": {"type": "object", "additionalProperties": False,
                      "properties": {"password": {**_password, "description": "default: generated and returned once"}}},
}
_target: Schema = {
    "type": "object", "additionalProperties": False, "required": ["protocol", "url"],
    "properties": {
        "protocol": {"type": "string", "enum": ["rest", "soap"]},
        "url": {"type": "string", "minLength": 1, "maxLength": 2048, "description": "http or https URL"},
        "method": {"type": "string", "enum": ANY_METHODS},
        "headers": {"type": "object", "additionalProperties": {"type": "string", "maxLength": 4096}},
        "wsdl": {"type": "string", "maxLength": 2048},
        "operation": {"type": "string", "maxLength": 200},
        "binding": {"type": "string", "maxLength": 400,
                    "description": "soap: the WSDL binding to call (local name or {namespace}name); default: SOAP 1.1 if present, else 1.2"},
        "port": {"type": "string", "maxLength": 200, "description": "soap: the WSDL port to call (takes precedence over binding)"},
        "timeout_ms": {"type": "integer", "minimum": 1},
        "follow_redirects": {"type": "boolean", "description": "follow the upstream's redirects (each hop passes the SSRF guard); default false"},
    },
}
_connector_props: Schema = {
    "name": {"type": "string", "pattern": NAME_PATTERN},
    "description": {"type": "string", "maxLength": 2000},
    "target": _target,
    "retry": {"type": ["object", "null"], "additionalProperties": False,
              "description": "retries of transient failures (docs/resilience.md); each key omitted takes the "
                             "JUNCTION_RETRY_* default; null removes it",
              "properties": {"attempts": {"type": "integer", "minimum": 1, "maximum": 10,
                                          "description": "attempts, the first included (1: no retry)"},
                             "base_ms": {"type": "integer", "minimum": 0, "maximum": 60_000,
                                         "description": "backoff before the second attempt, doubling, with full jitter"},
                             "cap_ms": {"type": "integer", "minimum": 0, "maximum": 60_000,
                                        "description": "longest backoff between two attempts"}}},
    "script": {"type": ["string", "null"], "maxLength": 262144},
    "settings": {"type": "object"},
    "secret_fields": {"type": "array", "maxItems": 100, "uniqueItems": True,
                      "items": {"type": "string", "minLength": 1, "maxLength": 200},
                      "description": "keys of settings kept sealed and write-only: reads show ********, and "
                                     "sending ******** keeps the stored value"},
}
# An HTTP header name (RFC 9110 token), for the headers and parameters auth reads and sets.
TOKEN_PATTERN = "^[!#$%&'*+.^_`|~0-9A-Za-z-]{1,100}$"
SCOPE_PATTERN = "^[!#-\\[\\]-~]{1,200}$"  # RFC 6749 scope-token: printable ASCII but space, quote and backslash
JWT_ALGORITHMS = ["RS256", "RS384", "RS512", "ES256", "ES384", "PS256", "HS256", "HS384", "HS512"]
AUTH_MODES = ["none", "api_key", "basic", "jwt", "oauth2"]
_scopes: Schema = {"type": "array", "maxItems": 50, "uniqueItems": True,
                   "items": {"type": "string", "pattern": SCOPE_PATTERN}}
_auth: Schema = {
    "type": "object", "additionalProperties": False, "required": ["mode"],
    "description": "Caller authentication (docs/consumers.md); which keys a mode takes is checked per mode.",
    "properties": {
        "mode": {"type": "string", "enum": AUTH_MODES},
        "consumers": {"type": "array", "maxItems": 1000, "uniqueItems": True, "items": {"type": "string", "maxLength": 36},
                      "description": "ids of the consumers allowed (default: every consumer of the organisation)"},
        "consumer_header": {"type": "string", "pattern": TOKEN_PATTERN,
                            "description": "header carrying the consumer's id upstream (default X-Consumer-Id)"},
        "in": {"type": "string", "enum": ["header", "query"], "description": "api_key: where the key is (default header)"},
        "name": {"type": "string", "pattern": TOKEN_PATTERN, "description": "api_key: header or parameter (default X-API-Key)"},
        "jwks_url": {"type": "string", "maxLength": 2048, "description": "jwt: https URL of the issuer's keys"},
        "secret": {"type": "string", "minLength": 32, "maxLength": 4096, "writeOnly": True,
                   "description": "jwt: shared HMAC secret; stored sealed, never returned (reads show secret_set)"},
        "secret_set": {"type": "boolean", "description": "read-only: a jwt secret is stored (ignored on writes)"},
        "algorithms": {"type": "array", "minItems": 1, "uniqueItems": True,
                       "items": {"type": "string", "enum": JWT_ALGORITHMS}},
        "issuer": {"type": "string", "minLength": 1, "maxLength": 2048},
        "audience": {"type": "string", "minLength": 1, "maxLength": 2048},
        "scopes": {**_scopes, "description": "jwt, oauth2: scopes every token must hold"},
        "consumer_claim": {"type": "string", "minLength": 1, "maxLength": 200, "description": "jwt: default sub"},
        "leeway_s": {"type": "integer", "minimum": 0, "maximum": 600, "description": "jwt: clock skew allowed (default 30)"},
    },
}
RATE_LIMIT_BY = ["consumer", "api", "org", "ip"]
_rate_limit: Schema = {
    "type": ["object", "null"], "additionalProperties": False, "required": ["requests", "per_seconds", "by"],
    "description": "at most `requests` calls per `per_seconds` seconds for each `by`; null removes it",
    "properties": {
        "requests": {"type": "integer", "minimum": 1, "maximum": 1_000_000_000},
        "per_seconds": {"type": "number", "exclusiveMinimum": 0, "maximum": 31_536_000},
        "by": {"type": "string", "enum": RATE_LIMIT_BY},
    },
}
QUOTA_NAMES = ["apis", "connectors", "consumers", "script_bytes", "settings_bytes"]
_quotas: Schema = {
    "type": "object", "additionalProperties": False,
    "description": "overrides of the deployment's quotas (global admin only); null returns one to the default",
    "properties": {name: {"type": ["integer", "null"], "minimum": 0, "maximum": 2**31 - 1} for name in QUOTA_NAMES},
}
_consumer_props: Schema = {
    "name": {"type": "string", "pattern": NAME_PATTERN},
    "enabled": {"type": "boolean"},
}
_key_create: Schema = {
    "expires_at": {"type": ["string", "null"], "format": "date-time", "maxLength": 64,
                   "description": "RFC 3339, in the future; none: the key does not expire"},
}
_basic_set: Schema = {
    "username": {"type": "string", "pattern": "^[A-Za-z0-9][A-Za-z0-9._@+-]{0,199}$"},
    "password": {"type": "string", "minLength": 8, "maxLength": 72},
}
_api_props: Schema = {
    "name": {"type": "string", "pattern": NAME_PATTERN},
    "description": {"type": "string", "maxLength": 2000},
    "protocol": {"type": "string", "enum": ["rest", "soap"]},
    "methods": {"type": "array", "minItems": 1, "uniqueItems": True, "items": {"type": "string", "enum": ANY_METHODS}},
    "path": {"type": "string", "minLength": 1, "maxLength": 512, "description": "path template such as /orders/{id}"},
    "connector": {"type": "string", "description": "id of a connector in the same organisation"},
    "timeout_ms": {"type": "integer", "minimum": 1},
    "auth": _auth,
    "rate_limit": _rate_limit,
    "enabled": {"type": "boolean"},
}
_pairs: Schema = {"type": "object", "additionalProperties": {"type": "string", "maxLength": 8192}}
_sample_body: Schema = {
    "body": {"type": ["string", "null"], "maxLength": 524288,
             "description": "the body as text (UTF-8), or base64 with body_base64 true"},
    "body_base64": {"type": "boolean"},
    "json": {"description": "the body as JSON (instead of body); sets Content-Type: application/json unless given"},
}
_test_props: Schema = {
    "script": {"type": ["string", "null"], "maxLength": 262144,
               "description": "unsaved script to run instead of the saved one; compiled first (422 script_invalid)"},
    "settings": {"type": "object", "description": "ctx.settings for this try-out (default: the saved connector's)"},
    "request": {
        "type": "object", "additionalProperties": False,
        "description": "sample request for transform_request; default GET / when neither request nor response is given",
        "properties": {
            "method": {"type": "string", "enum": METHODS},
            "path": {"type": "string", "maxLength": 2048},
            "path_params": {**_pairs, "description": "route parameters, as the API's path template would give them"},
            "query": _pairs,
            "headers": _pairs,
            **_sample_body,
        },
    },
    "response": {
        "type": "object", "additionalProperties": False,
        "description": "sample upstream response for transform_response (a SOAP result is JSON)",
        "properties": {
            "status": {"type": "integer", "minimum": 100, "maximum": 599},
            "headers": _pairs,
            **_sample_body,
        },
    },
}


def _obj(props: Schema, required: list[str]) -> Schema:
    out: Schema = {"type": "object", "additionalProperties": False, "properties": copy.deepcopy(props)}
    if required:
        out["required"] = required
    return out


def request_schemas(settings: Settings) -> dict[str, Schema]:
    """Every request body schema, by OpenAPI component name."""
    api_props = copy.deepcopy(_api_props)
    api_props["timeout_ms"]["maximum"] = settings.max_timeout_ms
    connector_props = copy.deepcopy(_connector_props)
    connector_props["target"]["properties"]["timeout_ms"]["maximum"] = settings.max_timeout_ms
    # PATCH merges a connector's target key by key: every key is optional, and
    # null removes an optional one (protocol and url stay).
    update_target = copy.deepcopy(connector_props["target"])
    update_target.pop("required")
    update_target["description"] = ("merged into the current target: the keys given replace those keys, "
                                    "null removes one")
    for key, prop in update_target["properties"].items():
        if key not in ("protocol", "url"):
            prop["type"] = [prop["type"], "null"]
            if "enum" in prop:
                prop["enum"] = [*prop["enum"], None]
    connector_update_props = {**connector_props, "target": update_target}
    api_required = ["name", "methods", "path", "connector"]
    connector_required = ["name", "target"]
    return {
        "LoginRequest": copy.deepcopy(_login),
        "OrgCreate": _obj(_org_props, ["slug", "name"]),
        "OrgUpdate": _obj({**_org_props, "rate_limit": _rate_limit, "quotas": _quotas}, []),
        "UserCreate": _obj(_user_props, ["email", "password", "role"]),
        "UserUpdate": _obj({**{k: v for k, v in _user_props.items() if k != "email"}, "enabled": {"type": "boolean"}}, []),
        **copy.deepcopy(_account_bodies),
        "ConnectorCreate": _obj(connector_props, connector_required),
        "ConnectorUpdate": _obj(connector_update_props, []),
        "ApiCreate": _obj(api_props, api_required),
        "ApiUpdate": _obj(api_props, []),
        "ConsumerCreate": _obj(_consumer_props, ["name"]),
        "ConsumerUpdate": _obj(_consumer_props, []),
        "KeyCreate": _obj(_key_create, []),
        "BasicSet": _obj(_basic_set, ["username", "password"]),
        "OAuthClientCreate": _obj({"scopes": _scopes}, []),
        "RollbackRequest": _obj({"version": {"type": "integer", "minimum": 1}}, ["version"]),
        "ConnectorTestRequest": _obj(_test_props, []),
        # A connector not saved yet: the script is the point.
        "ConnectorTryRequest": _obj({**_test_props, "script": {**_test_props["script"], "type": "string"}}, ["script"]),
    }
