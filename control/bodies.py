"""Request body schemas, as JSON Schema data.

The same dicts drive request validation (:mod:`control.validation`) and the
OpenAPI document (:mod:`control.openapi`), so the two cannot drift apart.
Limits that come from settings are filled in by :func:`request_schemas`.
"""
from __future__ import annotations

import copy
import re
from typing import Any

from core.routing import ANY_METHOD, HTTP_METHODS
from core.settings import Settings

__all__ = ["SLUG_PATTERN", "request_schemas"]

Schema = dict[str, Any]

SLUG_PATTERN = "^[a-z][a-z0-9-]{1,62}$"
NAME_PATTERN = "^[A-Za-z0-9][A-Za-z0-9 ._-]{0,99}$"
TAG_PATTERN = "^[A-Za-z0-9._~:-]{1,64}$"  # no comma or slash: they join tags in a list's ?tags= filter
MAX_ORIGINS = 16
TAG_RULE = "1 to 64 of A-Z a-z 0-9 . _ ~ : -"  # TAG_PATTERN, as the errors say it
MAX_TAGS = 20


def is_tag(value: object) -> bool:
    return isinstance(value, str) and re.fullmatch(TAG_PATTERN, value) is not None
TAGS: dict[str, object] = {
    "type": "array", "maxItems": MAX_TAGS, "uniqueItems": True, "items": {"type": "string", "pattern": TAG_PATTERN},
    "description": "labels to find it by (?tags= on its list) and to divide an organisation's declarative "
                   "configuration between teams; stored sorted, [] for none",
}
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
        "wsdl": {"type": "string", "minLength": 1, "maxLength": 524288,
                 "description": "soap: the WSDL document itself (XML text), used instead of fetching url; url "
                                "stays its location, against which relative imports resolve"},
        "documents": {"type": "object", "maxProperties": 50,
                      "additionalProperties": {"type": "string", "minLength": 1, "maxLength": 524288},
                      "description": "soap: the schemas and WSDLs the WSDL imports, keyed by their location (as "
                                     "written in the import, or absolute); an import not here is fetched"},
        "origins": {"type": "array", "minItems": 1, "maxItems": MAX_ORIGINS, "uniqueItems": True,
                    "items": {"type": "string", "minLength": 1, "maxLength": 300},
                    "description": "rest: the origins (scheme://host[:port]) that serve this upstream, instead of "
                                   "target.url's own: calls go round them, passing over one whose circuit is open "
                                   "or that cannot be connected to (docs/resilience.md#several-origins)"},
        "address": {"type": "string", "minLength": 1, "maxLength": 2048,
                    "description": "soap: http or https URL the envelopes are posted to, instead of the port's soap:address"},
        "operation": {"type": "string", "maxLength": 200},
        "binding": {"type": "string", "maxLength": 400,
                    "description": "soap: the WSDL binding to call (local name or {namespace}name); default: SOAP 1.1 if present, else 1.2"},
        "port": {"type": "string", "maxLength": 200, "description": "soap: the WSDL port to call (takes precedence over binding)"},
        "timeout_ms": {"type": "integer", "minimum": 1},
        "follow_redirects": {"type": "boolean", "description": "follow the upstream's redirects (each hop passes the SSRF guard); default false"},
        "auth": {
            "type": "object", "additionalProperties": False, "required": ["type"],
            "description": "rest: how egress authenticates to the upstream (docs/upstream-auth.md); which keys a "
                           "type takes is checked per type. Secrets are write-only: reads show ********, and "
                           "sending ******** keeps the stored value",
            "properties": {
                "type": {"type": "string", "enum": ["api_key", "basic", "bearer", "oauth2_client_credentials"]},
                "in": {"type": "string", "enum": ["header", "query"], "description": "api_key: default header"},
                "name": {"type": "string", "pattern": "^[!#$%&'*+.^_`|~0-9A-Za-z-]{1,100}$",
                         "description": "api_key: the header or query parameter"},
                "value": {"type": "string", "minLength": 1, "maxLength": 4096, "writeOnly": True,
                          "description": "api_key: the key (secret)"},
                "username": {"type": "string", "minLength": 1, "maxLength": 256, "description": "basic"},
                "password": {"type": "string", "minLength": 1, "maxLength": 1024, "writeOnly": True,
                             "description": "basic (secret)"},
                "token": {"type": "string", "minLength": 1, "maxLength": 8192, "writeOnly": True,
                          "description": "bearer (secret)"},
                "token_url": {"type": "string", "maxLength": 2048,
                              "description": "oauth2_client_credentials: https URL of the token endpoint"},
                "client_id": {"type": "string", "minLength": 1, "maxLength": 512, "description": "oauth2_client_credentials"},
                "client_secret": {"type": "string", "minLength": 1, "maxLength": 4096, "writeOnly": True,
                                  "description": "oauth2_client_credentials (secret)"},
                "client_auth": {"type": "string", "enum": ["basic", "post"],
                                "description": "oauth2_client_credentials: client_secret_basic (default) or client_secret_post"},
                "scopes": {"type": "array", "maxItems": 50, "uniqueItems": True,
                           "items": {"type": "string", "pattern": "^[!#-\\[\\]-~]{1,200}$"},
                           "description": "oauth2_client_credentials: scopes asked for"},
                "audience": {"type": "string", "minLength": 1, "maxLength": 2048,
                             "description": "oauth2_client_credentials: sent as the audience parameter"},
            },
        },
        "tls": {
            "type": "object", "additionalProperties": False,
            "description": "rest, https: client certificate (mutual TLS) and the CA bundle the upstream is verified "
                           "against (default: the system's); verification cannot be turned off",
            "properties": {
                "client_cert": {"type": "string", "minLength": 1, "maxLength": 65536,
                                "description": "PEM: the client certificate, then any intermediates"},
                "client_key": {"type": "string", "minLength": 1, "maxLength": 65536, "writeOnly": True,
                               "description": "PEM: the unencrypted private key of client_cert (secret)"},
                "ca_bundle": {"type": "string", "minLength": 1, "maxLength": 524288,
                              "description": "PEM: the CA certificates to trust instead of the system's"},
                "verify": {"type": "boolean", "description": "only true: give ca_bundle rather than turn it off"},
            },
        },
    },
}
_connector_props: Schema = {
    "name": {"type": "string", "pattern": NAME_PATTERN},
    "description": {"type": "string", "maxLength": 2000},
    "tags": TAGS,
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
_cache: Schema = {
    "type": ["object", "null"], "additionalProperties": False, "required": ["ttl_s"],
    "description": "rest: the upstream's answers kept and served by ingress with no upstream call "
                   "(docs/caching.md); null removes it",
    "properties": {
        "ttl_s": {"type": "integer", "minimum": 1, "maximum": 30 * 86_400,
                  "description": "longest time an answer is kept (the upstream's max-age may shorten it)"},
        "methods": {"type": "array", "minItems": 1, "uniqueItems": True, "items": {"type": "string", "enum": ["GET", "HEAD"]},
                    "description": "methods whose answers are cached (default GET and HEAD)"},
        "vary": {"type": "array", "maxItems": 20, "uniqueItems": True, "items": {"type": "string", "pattern": TOKEN_PATTERN},
                 "description": "request headers whose values are part of the cache key (as Accept-Language)"},
    },
}
_header_names: Schema = {"type": "array", "maxItems": 50, "uniqueItems": True,
                         "items": {"type": "string", "pattern": TOKEN_PATTERN}}
_cors: Schema = {
    "type": ["object", "null"], "additionalProperties": False, "required": ["origins"],
    "description": "pages of these origins may call the API from a browser (docs/cors.md): ingress answers their "
                   "preflights itself and sets the Access-Control-* headers of every answer; null removes it",
    "properties": {
        "origins": {"type": "array", "minItems": 1, "maxItems": 100, "uniqueItems": True,
                    "items": {"type": "string", "minLength": 1, "maxLength": 300},
                    "description": "origins as browsers send them (scheme://host[:port], lowercase, no path), "
                                   "https://*.example.com for every subdomain of example.com, or * for any page "
                                   "(not with credentials)"},
        "methods": {"type": "array", "minItems": 1, "uniqueItems": True, "items": {"type": "string", "enum": METHODS},
                    "description": "methods pages may use (default: the API's)"},
        "headers": {**_header_names, "description": "request headers pages may send besides the CORS-safelisted "
                                                    "ones (default: any a preflight asks for)"},
        "exposed_headers": {**_header_names, "description": "response headers pages may read besides the "
                                                            "CORS-safelisted ones (such as X-Correlation-Id)"},
        "credentials": {"type": "boolean", "description": "pages may send cookies and HTTP authentication "
                                                          "(credentials: 'include'); default false"},
        "max_age_s": {"type": "integer", "minimum": 0, "maximum": 86_400,
                      "description": "how long a browser may keep a preflight's answer (default: the browser's)"},
    },
}
_networks: Schema = {"type": "array", "maxItems": 1000, "uniqueItems": True,
                     "items": {"type": "string", "minLength": 1, "maxLength": 64}}
_ip_restriction: Schema = {
    "type": ["object", "null"], "additionalProperties": False,
    "description": "the callers' addresses this API admits (docs/auth.md): deny wins over allow, and with "
                   "allow only those may call (403 ip_not_allowed); behind a load balancer, set "
                   "JUNCTION_INGRESS_TRUSTED_PROXIES; null removes it",
    "properties": {
        "allow": {**_networks, "description": "addresses or networks (203.0.113.7, 10.0.0.0/8, 2001:db8::/32)"},
        "deny": {**_networks, "description": "addresses or networks refused, even when allow has them"},
    },
}
# The organisation's own: the same fields, for all of its APIs (docs/auth.md, docs/cors.md).
_org_ip_restriction: Schema = {
    **_ip_restriction,
    "description": "the callers' addresses every API of the organisation admits, besides each API's own "
                   "ip_restriction: a call must be admitted by both (403 ip_not_allowed, naming the level that "
                   "refused); null removes it",
}
_org_cors: Schema = {
    **_cors,
    "description": "the CORS policy of the organisation's APIs that have no cors of their own (an API's own "
                   "replaces it whole; docs/cors.md); its methods are checked against each API's when a page "
                   "asks; null removes it",
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
    "tags": TAGS,
    "rate_limit": {
        "type": ["object", "null"], "additionalProperties": False, "required": ["requests", "per_seconds"],
        "description": "this consumer's own allowance (docs/auth.md#a-consumers-own-limit): it replaces the numbers "
                       "of a limit by consumer on the APIs it calls, and elsewhere counts its calls across the "
                       "organisation; null removes it",
        "properties": {k: v for k, v in _rate_limit["properties"].items() if k != "by"},
    },
}
_key_create: Schema = {
    "expires_at": {"type": ["string", "null"], "format": "date-time", "maxLength": 64,
                   "description": "RFC 3339, in the future; none: the key does not expire"},
}
_basic_set: Schema = {
    "username": {"type": "string", "pattern": "^[A-Za-z0-9][A-Za-z0-9._@+-]{0,199}$"},
    "password": {"type": "string", "minLength": 8, "maxLength": 72},
}
def _soap_field(depth: int) -> Schema:
    """A code-first argument; objects nest up to ``depth`` more levels."""
    props: Schema = {
        "name": {"type": "string", "pattern": "^[A-Za-z_][A-Za-z0-9_.-]*$", "maxLength": 128,
                 "description": "the element's name (an XML NCName)"},
        "type": {"type": "string", "enum": ["string", "int", "long", "decimal", "double", "boolean", "dateTime",
                                            "date", "base64Binary", "object"]},
        "required": {"type": "boolean", "description": "default true (minOccurs 1)"},
        "repeated": {"type": "boolean", "description": "default false; true: a list (maxOccurs unbounded)"},
    }
    if depth > 0:
        props["fields"] = {"type": "array", "minItems": 1, "maxItems": 200, "items": _soap_field(depth - 1),
                           "description": "the fields of a type object"}
    return {"type": "object", "additionalProperties": False, "required": ["name", "type"], "properties": props}


_soap_operation: Schema = {
    "type": "object", "additionalProperties": False, "required": ["name"],
    "properties": {
        "name": {"type": "string", "pattern": "^[A-Za-z_][A-Za-z0-9_.-]*$", "maxLength": 128},
        "action": {"type": "string", "maxLength": 512, "description": "its soapAction (default <namespace>/<name>)"},
        "input": {"type": "array", "maxItems": 200, "items": _soap_field(7)},
        "output": {"type": "array", "maxItems": 200, "items": _soap_field(7)},
    },
}
_api_props: Schema = {
    "name": {"type": "string", "pattern": NAME_PATTERN},
    "description": {"type": "string", "maxLength": 2000},
    "tags": TAGS,
    "protocol": {"type": "string", "enum": ["rest", "soap"]},
    "methods": {"type": "array", "minItems": 1, "uniqueItems": True, "items": {"type": "string", "enum": ANY_METHODS}},
    "path": {"type": "string", "minLength": 1, "maxLength": 512, "description": "path template such as /orders/{id}"},
    "connector": {"type": "string",
                  "description": "a connector of the same organisation, by id or name (stored, and shown, as its id)"},
    "timeout_ms": {"type": "integer", "minimum": 1},
    "auth": _auth,
    "rate_limit": _rate_limit,
    "enabled": {"type": "boolean"},
    "async_fallback": {"type": "boolean",
                       "description": "rest: a caller still waiting at timeout_ms gets 202 and a Location for the "
                                      "result instead of 504; the call itself may take JUNCTION_ASYNC_TIMEOUT_MS"},
    "cache": _cache,
    "cors": _cors,
    "ip_restriction": _ip_restriction,
    "idempotency_ttl_s": {"type": ["integer", "null"], "minimum": 1, "maximum": 30 * 86_400,
                          "description": "how long an Idempotency-Key keeps its answer (default JUNCTION_IDEMPOTENCY_TTL_S)"},
    # protocol soap (docs/soap-to-rest.md): a WSDL (contract first) or operations (code first)
    "wsdl": {"type": "string", "minLength": 1, "maxLength": 524288,
             "description": "soap, contract first: the WSDL 1.1 document (XML text, document/literal, schemas inline)"},
    "operations": {"type": "array", "minItems": 1, "maxItems": 200, "items": _soap_operation,
                   "description": "soap, code first: Junction generates the WSDL (SOAP 1.1 and 1.2 bindings)"},
    "namespace": {"type": "string", "minLength": 1, "maxLength": 512,
                  "description": "soap, code first: target namespace of the generated WSDL (default urn:junction:api:<id>)"},
    "contract": {"type": ["object", "null"],
                 "description": "read-only: the contract Junction computed from wsdl or operations; ignored when sent"},
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
    from control.bodies_alerts import alert_bodies  # it imports this module's patterns

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
    api_required = ["name", "path", "connector"]  # methods too for rest (control/checks.py); soap: POST
    connector_required = ["name", "target"]
    return {
        "LoginRequest": copy.deepcopy(_login),
        "OrgCreate": _obj(_org_props, ["slug", "name"]),
        "OrgUpdate": _obj({**_org_props, "rate_limit": _rate_limit, "ip_restriction": _org_ip_restriction,
                           "cors": _org_cors, "quotas": _quotas}, []),
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
        "RollbackRequest": _obj({"version": {"type": "integer", "minimum": 1, "maximum": 2**31 - 1}}, ["version"]),
        "ConnectorTestRequest": _obj(_test_props, []),
        # A connector not saved yet: the script is the point.
        "ConnectorTryRequest": _obj({**_test_props, "script": {**_test_props["script"], "type": "string"}}, ["script"]),
        **alert_bodies(),
    }
