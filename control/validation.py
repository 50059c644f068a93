"""Request validation: JSON parsing, a small JSON Schema checker for the
schemas in :mod:`control.bodies`, and the checks a schema cannot express.

Every problem becomes one :class:`~core.errors.FieldError`; all of them are
reported together in a 422, malformed JSON in a 400.
"""
from __future__ import annotations

import json
import math
import re
import ssl
from typing import Any
from urllib.parse import urlsplit

from aiohttp import web
from aiohttp.web_protocol import RequestPayloadError

from core.errors import BodyTooLarge, FieldError, Forbidden, InvalidInput, MalformedBody
from core.nesting import MAX_JSON_DEPTH, depth_over
from core.headers import HEADER_NAME
from core.ids import is_uuid
from core.settings import Settings

__all__ = ["check_auth", "check_quota", "check_schema", "check_upstream_auth", "check_url", "is_uuid", "quota_limit",
           "read_json", "validate_body"]

_JSON_TYPES: dict[str, Any] = {
    "string": str, "object": dict, "array": list, "boolean": bool, "null": type(None),
}


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def _parse_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError("number out of range")
    return value


async def read_json(request: web.Request, max_bytes: int) -> Any:
    """The body as JSON, or MalformedBody / BodyTooLarge."""
    if request.content_length is not None and request.content_length > max_bytes:
        raise BodyTooLarge.over(max_bytes, "request body")
    try:
        raw = await request.read()
    except web.HTTPRequestEntityTooLarge:
        raise BodyTooLarge.over(max_bytes, "request body") from None
    except RequestPayloadError as exc:  # a Content-Encoding its bytes do not match, a broken chunked body
        # The rest of the stream cannot be trusted: answer, then close (error_middleware says so). aiohttp would
        # otherwise read on after the answer, meet the same error and log it as unhandled.
        if request.protocol is not None:
            request.protocol.close()
        request.content.feed_eof()
        cause = exc.__cause__
        raise _malformed(f"could not be read: {getattr(cause, 'message', None) or cause or exc}") from None
    if len(raw) > max_bytes:
        raise BodyTooLarge.over(max_bytes, "request body")
    if not raw.strip():
        raise _malformed("is empty; a JSON object is expected")
    try:
        value = json.loads(raw, parse_constant=_reject_constant, parse_float=_parse_float)
    except (ValueError, RecursionError) as exc:
        raise _malformed(f"is not valid JSON: {exc}") from None
    if depth_over(value, MAX_JSON_DEPTH):
        raise _malformed(f"is nested deeper than {MAX_JSON_DEPTH} levels")
    return value


def _malformed(problem: str) -> MalformedBody:
    # The field at fault is the body itself, named as the schema's own errors name it.
    return MalformedBody(f"request body {problem}", fields=[FieldError("(body)", problem)])


def _type_ok(value: Any, kind: str) -> bool:
    if kind == "integer":
        return isinstance(value, int) and not isinstance(value, bool)
    if kind == "number":
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    return isinstance(value, _JSON_TYPES[kind])


def _full_match(pattern: str, value: str) -> bool:
    # The schemas anchor with ^...$; Python's $ also matches before a final
    # newline, so match the whole string explicitly.
    core = pattern[1:] if pattern.startswith("^") else pattern
    core = core[:-1] if core.endswith("$") else core
    return re.fullmatch(core, value) is not None


def check_schema(value: Any, schema: dict[str, Any], path: str = "") -> list[FieldError]:
    """Errors of ``value`` against the subset of JSON Schema the bodies use."""
    where = path or "(body)"
    kinds = schema.get("type")
    if kinds is not None:
        kinds_list = kinds if isinstance(kinds, list) else [kinds]
        if not any(_type_ok(value, k) for k in kinds_list):
            return [FieldError(where, f"must be of type {' or '.join(kinds_list)}")]
    errors: list[FieldError] = []
    if isinstance(value, str):
        errors.extend(_unstorable(value, where))
        if len(value) < schema.get("minLength", 0):
            least = schema["minLength"]
            errors.append(FieldError(where, "must not be empty" if least == 1 else f"must be at least {least} characters"))
        if "maxLength" in schema and len(value) > schema["maxLength"]:
            errors.append(FieldError(where, f"must be at most {schema['maxLength']} characters"))
        if "pattern" in schema and not _full_match(schema["pattern"], value):
            errors.append(FieldError(where, f"must match {schema['pattern']}"))
    if "enum" in schema and value not in schema["enum"]:
        errors.append(FieldError(where, f"must be one of {', '.join(map(str, schema['enum']))}"))
    if _type_ok(value, "number"):
        if "minimum" in schema and value < schema["minimum"]:
            errors.append(FieldError(where, f"must be at least {schema['minimum']}"))
        if "maximum" in schema and value > schema["maximum"]:
            errors.append(FieldError(where, f"must be at most {schema['maximum']}"))
        if "exclusiveMinimum" in schema and value <= schema["exclusiveMinimum"]:
            errors.append(FieldError(where, f"must be greater than {schema['exclusiveMinimum']}"))
    if isinstance(value, list):
        if len(value) < schema.get("minItems", 0):
            errors.append(FieldError(where, f"must have at least {schema['minItems']} items"))
        if "maxItems" in schema and len(value) > schema["maxItems"]:
            errors.append(FieldError(where, f"must have at most {schema['maxItems']} items"))
            return errors  # and not one error per item past the limit
        if schema.get("uniqueItems") and len({json.dumps(v, sort_keys=True) for v in value}) != len(value):
            errors.append(FieldError(where, "must not repeat items"))
        if "items" in schema:
            for i, item in enumerate(value):
                errors.extend(check_schema(item, schema["items"], f"{path}[{i}]"))
    if isinstance(value, dict):
        if "maxProperties" in schema and len(value) > schema["maxProperties"]:
            errors.append(FieldError(where, f"must have at most {schema['maxProperties']} keys"))
        props = schema.get("properties", {})
        for name in schema.get("required", []):
            if name not in value:
                errors.append(FieldError(_join(path, name), "is required"))
        extra = schema.get("additionalProperties", True)
        for name, item in value.items():
            bad_key = _unstorable(name, where)
            if bad_key:
                errors.extend(FieldError(where, f"keys {e.message}") for e in bad_key)
            elif name in props:
                errors.extend(check_schema(item, props[name], _join(path, name)))
            elif extra is False:
                errors.append(FieldError(_join(path, name), "unknown field"))
            elif isinstance(extra, dict):
                errors.extend(check_schema(item, extra, _join(path, name)))
            else:
                errors.extend(_no_nul(item, _join(path, name)))
    return errors


# JSON may escape any UTF-16 code unit, but a lone surrogate is no character: UTF-8 cannot encode it, and
# neither can PostgreSQL's text and jsonb (nor can they hold NUL).
_LONE_SURROGATE = re.compile("[\ud800-\udfff]")


def _unstorable(value: str, where: str) -> list[FieldError]:
    errors = [FieldError(where, "must not contain NUL characters")] if "\x00" in value else []
    if _LONE_SURROGATE.search(value):
        errors.append(FieldError(where, "must not contain unpaired surrogates (\\ud800-\\udfff escapes)"))
    return errors


def _no_nul(value: Any, path: str) -> list[FieldError]:
    # Free-form JSON lands in jsonb.
    if isinstance(value, str):
        return _unstorable(value, path)
    if isinstance(value, dict):
        return [e for k, v in value.items() for e in (_no_nul(k, path) + _no_nul(v, _join(path, str(k))))]
    if isinstance(value, list):
        return [e for i, v in enumerate(value) for e in _no_nul(v, f"{path}[{i}]")]
    return []


def _join(path: str, name: str) -> str:
    return f"{path}.{name}" if path else name


def raise_if(errors: list[FieldError]) -> None:
    if errors:
        first = errors[0]
        raise InvalidInput(f"{first.field}: {first.message}", fields=errors)


async def validate_body(request: web.Request, schema: dict[str, Any], max_bytes: int) -> dict[str, Any]:
    body = await read_json(request, max_bytes)
    raise_if(check_schema(body, schema))
    return body


def check_url(url: str, field: str) -> list[FieldError]:
    """Outbound targets are absolute http(s) URLs with a host."""
    try:
        parts = urlsplit(url)
        _ = parts.port
    except ValueError:
        return [FieldError(field, "is not a valid URL")]
    if parts.scheme not in ("http", "https"):
        return [FieldError(field, "must be an http or https URL")]
    if not parts.hostname or any(c.isspace() for c in url):
        return [FieldError(field, "must be an absolute URL with a host")]
    return []


# What each auth mode takes besides mode, consumers and consumer_header.
# secret_sealed is the stored form of a jwt secret (never accepted from a client: the body schema refuses it).
AUTH_SETTINGS: dict[str, frozenset[str]] = {
    "none": frozenset(),
    "api_key": frozenset({"in", "name"}),
    "basic": frozenset(),
    "jwt": frozenset({"jwks_url", "secret", "secret_set", "secret_sealed", "algorithms", "issuer", "audience",
                      "scopes", "consumer_claim", "leeway_s"}),
    "oauth2": frozenset({"scopes"}),
}
_AUTH_COMMON = frozenset({"mode", "consumers", "consumer_header"})
HMAC_ALGORITHMS = frozenset({"HS256", "HS384", "HS512"})


def check_auth(auth: dict[str, Any], rate_limit: dict[str, Any] | None) -> list[FieldError]:
    """The checks of an API's ``auth`` (and how ``rate_limit`` counts) that a
    schema cannot express: the keys each mode takes, one key source for jwt,
    algorithms that fit it, and consumer ids that are ids."""
    mode = auth.get("mode", "none")
    errors: list[FieldError] = []
    for key in sorted(set(auth) - _AUTH_COMMON - AUTH_SETTINGS.get(mode, frozenset())):
        errors.append(FieldError(f"auth.{key}", f"is not a setting of mode {mode}"))
    for i, ref in enumerate(auth.get("consumers") or []):
        if not is_uuid(ref):
            errors.append(FieldError(f"auth.consumers[{i}]", "is not a consumer id"))
    if mode == "jwt":
        errors += _check_jwt(auth)
    if rate_limit and rate_limit.get("by") == "consumer" and mode == "none":
        errors.append(FieldError("rate_limit.by", "consumer needs an auth mode that identifies the caller "
                                                  "(auth.mode is none)"))
    return errors


def _check_jwt(auth: dict[str, Any]) -> list[FieldError]:
    errors: list[FieldError] = []
    has_url, has_secret = "jwks_url" in auth, "secret" in auth or "secret_sealed" in auth
    if has_url and has_secret:
        errors.append(FieldError("auth.secret", "give jwks_url or secret, not both"))
    elif not has_url and not has_secret:
        errors.append(FieldError("auth.jwks_url", "jwks_url or secret is required for mode jwt"))
    if has_url:
        url_errors = check_url(auth["jwks_url"], "auth.jwks_url")
        if not url_errors and urlsplit(auth["jwks_url"]).scheme != "https":
            url_errors = [FieldError("auth.jwks_url", "must be an https URL")]
        errors += url_errors
    if "algorithms" not in auth:
        errors.append(FieldError("auth.algorithms", "is required for mode jwt"))
    elif has_url != has_secret:
        for i, alg in enumerate(auth["algorithms"]):
            if (alg in HMAC_ALGORITHMS) != has_secret:
                kind = "an HMAC algorithm (HS256, HS384, HS512) with secret" if has_secret \
                    else "an asymmetric algorithm (RS*, ES*, PS256) with jwks_url"
                errors.append(FieldError(f"auth.algorithms[{i}]", f"must be {kind}"))
    return errors


def quota_limit(settings: Settings, overrides: dict[str, Any] | None, name: str) -> int:
    """An organisation's limit: its own override, else the deployment's ``quota_<name>``."""
    own = (overrides or {}).get(name)
    return int(own) if own is not None else int(getattr(settings, f"quota_{name}"))


def check_quota(name: str, field: str, used: int, limit: int, what: str) -> None:
    """403 ``quota_exceeded`` naming the field and the limit when ``used`` passes ``limit``."""
    if used > limit:
        raise Forbidden(f"{what}: over the organisation's quota of {limit}", code="quota_exceeded",
                        fields=[FieldError(field, f"over the quota of {limit} ({name})")],
                        extra={"quota": name, "limit": limit})


# What each upstream auth type takes besides ``type`` (target.auth, docs/upstream-auth.md).
UPSTREAM_AUTH_SETTINGS: dict[str, tuple[frozenset[str], frozenset[str]]] = {  # (required, optional)
    "api_key": (frozenset({"name", "value"}), frozenset({"in"})),
    "basic": (frozenset({"username", "password"}), frozenset()),
    "bearer": (frozenset({"token"}), frozenset()),
    "oauth2_client_credentials": (frozenset({"token_url", "client_id", "client_secret"}),
                                  frozenset({"scopes", "audience", "client_auth"})),
}
_CONTROL_CHARS = re.compile(r"[\x00-\x1f\x7f]")


def check_upstream_auth(target: dict[str, Any], *, allow_private: bool) -> list[FieldError]:
    """The checks of a connector's ``target.auth``, ``target.tls`` and
    ``target.headers`` (their secrets in clear) that a schema cannot express:
    the keys of each auth type, values that fit in a header, an https token_url,
    PEMs that parse and a client key that matches its certificate."""
    errors: list[FieldError] = []
    auth, tls = target.get("auth"), target.get("tls")
    if target.get("protocol") == "soap":
        errors += [FieldError(f"target.{key}", "is supported on rest targets only")
                   for key in ("auth", "tls") if target.get(key) is not None]
        auth = tls = None
    taken: set[str] = set()  # header names auth sets: target.headers may not set them too
    if isinstance(auth, dict):
        errors += _check_upstream_auth(auth, allow_private)
        if auth.get("type") == "api_key" and auth.get("in", "header") == "header":
            taken.add(str(auth.get("name", "")).lower())
        elif auth.get("type") in ("basic", "bearer", "oauth2_client_credentials"):
            taken.add("authorization")
    seen: dict[str, str] = {}
    for name, value in (target.get("headers") or {}).items():
        if not HEADER_NAME.fullmatch(name):
            errors.append(FieldError(f"target.headers.{name}", "is not a valid header name"))
        elif _CONTROL_CHARS.search(value):
            errors.append(FieldError(f"target.headers.{name}", "must not contain control characters"))
        elif name.lower() in taken:
            errors.append(FieldError(f"target.headers.{name}", "is set by target.auth"))
        elif name.lower() in seen:
            # Header names are case-insensitive: which of the two would be sent is no choice to leave to chance.
            errors.append(FieldError(f"target.headers.{name}", f"repeats the header {seen[name.lower()]}"))
        seen.setdefault(name.lower(), name)
    if isinstance(tls, dict):
        errors += _check_tls(tls, str(target.get("url", "")))
    return errors


def _check_upstream_auth(auth: dict[str, Any], allow_private: bool) -> list[FieldError]:
    kind = str(auth.get("type"))
    if kind not in UPSTREAM_AUTH_SETTINGS:
        return []  # the schema's enum said so already
    required, optional = UPSTREAM_AUTH_SETTINGS[kind]
    errors = [FieldError(f"target.auth.{key}", f"is not a setting of type {kind}")
              for key in sorted(set(auth) - {"type"} - required - optional)]
    errors += [FieldError(f"target.auth.{key}", f"is required for type {kind}") for key in sorted(required - set(auth))]
    for key, value in sorted(auth.items()):
        if isinstance(value, str) and any("\ud800" <= c <= "\udfff" for c in value):
            errors.append(FieldError(f"target.auth.{key}", "is not valid Unicode text"))
    in_header = kind != "api_key" or auth.get("in", "header") == "header"
    for key in ("value", "password", "token", "client_id", "client_secret", "username"):
        value = auth.get(key)
        if isinstance(value, str) and in_header and _CONTROL_CHARS.search(value):
            errors.append(FieldError(f"target.auth.{key}", "must not contain control characters"))
    if kind == "basic" and ":" in str(auth.get("username", "")):
        errors.append(FieldError("target.auth.username", "must not contain ':' (RFC 7617)"))
    if kind == "oauth2_client_credentials" and isinstance(auth.get("token_url"), str):
        url_errors = check_url(auth["token_url"], "target.auth.token_url")
        if not url_errors and urlsplit(auth["token_url"]).scheme != "https" and not allow_private:
            # Plain http is for local upstreams only, as JUNCTION_ALLOW_PRIVATE_TARGETS is.
            url_errors = [FieldError("target.auth.token_url", "must be an https URL")]
        errors += url_errors
    return errors


def _check_tls(tls: dict[str, Any], url: str) -> list[FieldError]:
    errors: list[FieldError] = []
    if tls.get("verify") is False:
        errors.append(FieldError("target.tls.verify", "cannot be false: give the upstream's CA in ca_bundle instead"))
    if urlsplit(url).scheme != "https":
        errors.append(FieldError("target.tls", "needs an https target.url"))
    has_cert, has_key = "client_cert" in tls, "client_key" in tls
    if has_cert != has_key:
        missing = "client_key" if has_cert else "client_cert"
        errors.append(FieldError(f"target.tls.{missing}", "is required with " + ("client_cert" if has_cert else "client_key")))
    if not has_cert and not has_key and "ca_bundle" not in tls:
        errors.append(FieldError("target.tls", "give client_cert and client_key, ca_bundle, or both"))
    certs = _pem_certificates(tls["client_cert"], "target.tls.client_cert", errors) if has_cert else None
    key = _pem_private_key(tls["client_key"], errors) if has_key else None
    if "ca_bundle" in tls and _pem_certificates(tls["ca_bundle"], "target.tls.ca_bundle", errors):
        try:
            ssl.create_default_context(cadata=tls["ca_bundle"])
        except (ssl.SSLError, ValueError) as exc:
            errors.append(FieldError("target.tls.ca_bundle", f"is not usable as trust anchors: {exc}"))
    if certs and key is not None and _spki(certs[0].public_key()) != _spki(key.public_key()):
        errors.append(FieldError("target.tls.client_key", "does not match the first certificate of client_cert"))
    return errors


def _pem_certificates(pem: str, field: str, errors: list[FieldError]) -> list[Any]:
    from cryptography import x509

    try:
        certs = x509.load_pem_x509_certificates(pem.encode()) if pem.isascii() else []
    except ValueError:
        certs = []
    if not certs:
        errors.append(FieldError(field, "is not PEM certificates (-----BEGIN CERTIFICATE-----)"))
    return certs


def _pem_private_key(pem: str, errors: list[FieldError]) -> Any:
    from cryptography.exceptions import UnsupportedAlgorithm
    from cryptography.hazmat.primitives.serialization import load_pem_private_key

    try:
        if pem.isascii():
            return load_pem_private_key(pem.encode(), password=None)
    except TypeError:
        errors.append(FieldError("target.tls.client_key", "must not be encrypted (no passphrase can be given)"))
        return None
    except (ValueError, UnsupportedAlgorithm):
        pass
    errors.append(FieldError("target.tls.client_key", "is not a PEM private key"))
    return None


def _spki(public_key: Any) -> bytes:
    from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

    return bytes(public_key.public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo))
