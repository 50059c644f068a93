"""The objects a connector script sees: request, response, headers, query, ctx.

Runs inside the worker only. Every call builds fresh objects from the plain
dicts sent by the pool, and :func:`export_request` / :func:`export_response`
turn them back into plain dicts, validating what the script left behind.
No ``core`` imports here.
"""
from __future__ import annotations

import json
import re
import types
import xml.etree.ElementTree as _ET
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

from defusedxml import DefusedXmlException
from defusedxml.ElementTree import fromstring as _defused_fromstring

__all__ = [
    "Ctx", "Headers", "Query", "Reject", "Request", "Response", "ScriptOutputError",
    "export_request", "export_response", "freeze", "safe_xml_fromstring",
]

MAX_XML_BYTES = 5 * 1024 * 1024
MAX_LOG_LINES = 200
MAX_LOG_CHARS = 2000
_TOKEN = re.compile(r"^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$")
_BAD_VALUE = re.compile(r"[\r\n\x00]")
_DTD = re.compile(rb"<!\s*(DOCTYPE|ENTITY)", re.I)


class ScriptOutputError(Exception):
    """What the script returned or left behind is not a valid request/response."""


class Reject(Exception):
    """Raised by ``reject(status, message, code)``: answer the caller with an error."""

    def __init__(self, status: int = 400, message: str = "rejected by connector script", code: str = "rejected") -> None:
        super().__init__(status, message, code)
        self.status = status
        self.message = message
        self.code = code


def reject(status: int, message: str, code: str = "rejected") -> None:
    raise Reject(status, message, code)


# ---------------------------------------------------------------- XML


def safe_xml_fromstring(data: bytes | str) -> _ET.Element:
    """Parse XML with no DTD, no entities, no external references, bounded size."""
    raw = data.encode("utf-8") if isinstance(data, str) else bytes(data)
    if len(raw) > MAX_XML_BYTES:
        raise ValueError(f"XML document larger than {MAX_XML_BYTES} bytes")
    if _DTD.search(raw):
        raise ValueError("XML with a DOCTYPE or ENTITY declaration is not allowed")
    try:
        return _defused_fromstring(raw, forbid_dtd=True, forbid_entities=True, forbid_external=True)
    except DefusedXmlException as exc:
        raise ValueError(f"unsafe XML refused: {exc}") from None
    except _ET.ParseError as exc:
        raise ValueError(f"malformed XML: {exc}") from None


# ---------------------------------------------------------------- multi-value mappings


def _as_str(value: Any, what: str) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return str(value)
    raise TypeError(f"{what} must be a string, got {type(value).__name__}")


class _MultiDict:
    """Ordered (name, value) pairs with dict-style access to the first value."""

    __slots__ = ("_items",)
    _what = "value"

    def __init__(self, pairs: Iterable[Any] = ()) -> None:
        self._items: list[list[str]] = []
        if isinstance(pairs, _MultiDict):
            self._items = [[k, v] for k, v in pairs._items]
        elif isinstance(pairs, Mapping):
            for k, v in pairs.items():
                self._items.append([_as_str(k, "name"), _as_str(v, self._what)])
        else:
            for pair in pairs:
                k, v = pair
                self._items.append([_as_str(k, "name"), _as_str(v, self._what)])

    def _eq(self, a: str, b: str) -> bool:
        return a == b

    def _find(self, name: str) -> list[int]:
        return [i for i, (k, _) in enumerate(self._items) if self._eq(k, name)]

    def __getitem__(self, name: str) -> str:
        for k, v in self._items:
            if self._eq(k, name):
                return v
        raise KeyError(name)

    def get(self, name: str, default: Any = None) -> Any:
        for k, v in self._items:
            if self._eq(k, name):
                return v
        return default

    def get_all(self, name: str) -> list[str]:
        return [v for k, v in self._items if self._eq(k, name)]

    def __setitem__(self, name: str, value: Any) -> None:
        name = _as_str(name, "name")
        value = _as_str(value, self._what)
        found = self._find(name)
        if not found:
            self._items.append([name, value])
            return
        self._items[found[0]] = [name, value]
        for i in reversed(found[1:]):
            del self._items[i]

    def set(self, name: str, value: Any) -> None:
        self[name] = value

    def add(self, name: str, value: Any) -> None:
        self._items.append([_as_str(name, "name"), _as_str(value, self._what)])

    def __delitem__(self, name: str) -> None:
        found = self._find(name)
        if not found:
            raise KeyError(name)
        for i in reversed(found):
            del self._items[i]

    def pop(self, name: str, *default: Any) -> Any:
        found = self._find(name)
        if not found:
            if default:
                return default[0]
            raise KeyError(name)
        value = self._items[found[0]][1]
        for i in reversed(found):
            del self._items[i]
        return value

    def remove(self, name: str) -> None:
        """Delete every entry called ``name``; no error if there is none."""
        for i in reversed(self._find(name)):
            del self._items[i]

    def rename(self, old: str, new: str) -> None:
        """Rename every entry called ``old`` to ``new``, keeping order and values."""
        new = _as_str(new, "name")
        for item in self._items:
            if self._eq(item[0], old):
                item[0] = new

    def setdefault(self, name: str, default: Any = "") -> str:
        if name not in self:
            self.add(name, default)
        return self[name]

    def update(self, other: Any = (), **kw: Any) -> None:
        pairs = other.items() if isinstance(other, (Mapping, _MultiDict)) else other
        for k, v in pairs:
            self[k] = v
        for k, v in kw.items():
            self[k] = v

    def clear(self) -> None:
        self._items.clear()

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and any(self._eq(k, name) for k, _ in self._items)

    def keys(self) -> list[str]:
        seen: list[str] = []
        for k, _ in self._items:
            if not any(self._eq(k, s) for s in seen):
                seen.append(k)
        return seen

    def __iter__(self) -> Iterator[str]:
        return iter(self.keys())

    def values(self) -> list[str]:
        return [v for _, v in self._items]

    def items(self) -> list[tuple[str, str]]:
        return [(k, v) for k, v in self._items]

    def to_dict(self) -> dict[str, str]:
        out: dict[str, str] = {}
        for k, v in self._items:
            if k not in out:
                out[k] = v
        return out

    def __len__(self) -> int:
        return len(self._items)

    def __eq__(self, other: object) -> bool:
        if isinstance(other, _MultiDict):
            return self._items == other._items
        if isinstance(other, Mapping):
            return self.to_dict() == dict(other)
        return NotImplemented

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.items()!r})"

    def _export(self, kind: str) -> list[list[str]]:
        out = []
        for k, v in self._items:
            if not isinstance(k, str) or not isinstance(v, str):
                raise ScriptOutputError(f"{kind} names and values must be strings")
            out.append([k, v])
        return out


class Headers(_MultiDict):
    """Case-insensitive multi-valued headers; keeps order and the original case."""

    __slots__ = ()
    _what = "header value"

    def _eq(self, a: str, b: str) -> bool:
        return a.lower() == b.lower()

    def _export(self, kind: str = "header") -> list[list[str]]:
        out = super()._export(kind)
        for k, v in out:
            if not _TOKEN.match(k):
                raise ScriptOutputError(f"invalid header name {k!r}")
            if _BAD_VALUE.search(v):
                raise ScriptOutputError(f"header {k!r} contains a line break or NUL")
        return out


class Query(_MultiDict):
    """Multi-valued query parameters. ``query[k]`` is the first value; setting replaces all."""

    __slots__ = ()
    _what = "query value"


def _coerce_pairs(value: Any, cls: type[_MultiDict], what: str) -> _MultiDict:
    if isinstance(value, cls):
        return value
    if isinstance(value, (Mapping, list, tuple, _MultiDict)):
        try:
            return cls(value)
        except (TypeError, ValueError) as exc:
            raise TypeError(f"{what} must be a mapping or a list of [name, value] pairs: {exc}") from None
    raise TypeError(f"{what} must be a mapping or a list of [name, value] pairs, got {type(value).__name__}")


# ---------------------------------------------------------------- request / response


class _Message:
    __slots__ = ("_headers", "body")

    @property
    def headers(self) -> Headers:
        return self._headers

    @headers.setter
    def headers(self, value: Any) -> None:
        self._headers = _coerce_pairs(value, Headers, "headers")  # type: ignore[assignment]

    def _charset(self) -> str:
        ctype = self._headers.get("content-type") or ""
        match = re.search(r"charset=\"?([A-Za-z0-9._-]+)", ctype)
        return match.group(1) if match else "utf-8"

    def text(self) -> str:
        """The body decoded with the Content-Type charset (UTF-8 if none)."""
        body = self.body
        if isinstance(body, str):
            return body
        try:
            return bytes(body).decode(self._charset())
        except LookupError:
            return bytes(body).decode("utf-8")

    def set_text(self, text: str, content_type: str | None = None) -> None:
        if not isinstance(text, str):
            raise TypeError("set_text() needs a str")
        self.body = text.encode("utf-8")
        if content_type is not None:
            self._headers["Content-Type"] = content_type

    def json(self) -> Any:
        """The body parsed as JSON (``ValueError`` if it is not JSON)."""
        body = self.body
        if isinstance(body, (bytes, bytearray)) and not body:
            raise ValueError("the body is empty, not JSON")
        return json.loads(body)

    def set_json(self, obj: Any) -> None:
        """Replace the body with ``obj`` as compact UTF-8 JSON; sets Content-Type."""
        self.body = json.dumps(obj, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
        self._headers["Content-Type"] = "application/json"

    def xml(self) -> _ET.Element:
        """The body parsed as XML (no DTD, no entities, at most 5 MB)."""
        return safe_xml_fromstring(self.body)

    def set_xml(self, element: _ET.Element, content_type: str = "application/xml") -> None:
        if not _ET.iselement(element):
            raise TypeError("set_xml() needs an xml.etree.ElementTree.Element")
        self.body = _ET.tostring(element, encoding="utf-8")
        self._headers["Content-Type"] = content_type


class Request(_Message):
    __slots__ = ("method", "path", "path_params", "_query", "url")

    def __init__(self, data: dict) -> None:
        self.method = data["method"]
        self.path = data["path"]
        self.path_params = dict(data.get("path_params") or {})
        self._query = Query(data.get("query") or ())
        self._headers = Headers(data.get("headers") or ())
        self.body = data.get("body", b"")
        self.url = data.get("url")

    @property
    def query(self) -> Query:
        return self._query

    @query.setter
    def query(self, value: Any) -> None:
        self._query = _coerce_pairs(value, Query, "query")  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"<Request {self.method} {self.path}>"


class Response(_Message):
    __slots__ = ("status",)

    def __init__(self, data: dict) -> None:
        self.status = data["status"]
        self._headers = Headers(data.get("headers") or ())
        self.body = data.get("body", b"")

    def __repr__(self) -> str:
        return f"<Response {self.status}>"


REQUEST_KEYS = ("method", "path", "path_params", "query", "headers", "body", "url")
RESPONSE_KEYS = ("status", "headers", "body")


def _body(value: Any) -> bytes:
    if isinstance(value, bytes):
        return value
    if isinstance(value, bytearray):
        return bytes(value)
    if isinstance(value, str):
        return value.encode("utf-8")
    if value is None:
        return b""
    raise ScriptOutputError(f"body must be bytes or str, got {type(value).__name__}")


def _apply_dict(target: _Message, data: Any, keys: tuple[str, ...], what: str) -> None:
    for key, value in data.items():
        if key not in keys:
            raise ScriptOutputError(f"unknown {what} field {key!r} (allowed: {', '.join(keys)})")
        try:
            setattr(target, key, value)
        except TypeError as exc:
            raise ScriptOutputError(str(exc)) from None


def export_request(req: Request, returned: Any) -> dict:
    if returned is not None and returned is not req:
        if isinstance(returned, Request):
            req = returned
        elif isinstance(returned, dict):
            _apply_dict(req, returned, REQUEST_KEYS, "request")
        else:
            raise ScriptOutputError(
                f"transform_request must return None, the request or a dict, not {type(returned).__name__}")
    method, path, url = req.method, req.path, req.url
    if not isinstance(method, str) or not _TOKEN.match(method):
        raise ScriptOutputError(f"request.method must be an HTTP method token, got {method!r}")
    if not isinstance(path, str) or _BAD_VALUE.search(path):
        raise ScriptOutputError("request.path must be a string without line breaks")
    if url is not None and (not isinstance(url, str) or _BAD_VALUE.search(url)):
        raise ScriptOutputError("request.url must be None or a string without line breaks")
    params = req.path_params
    if not isinstance(params, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in params.items()):
        raise ScriptOutputError("request.path_params must be a dict of str to str")
    return {
        "method": method,
        "path": path,
        "path_params": dict(params),
        "query": req.query._export("query"),
        "headers": req.headers._export(),
        "body": _body(req.body),
        "url": url,
    }


def export_response(resp: Response, returned: Any) -> dict:
    if returned is not None and returned is not resp:
        if isinstance(returned, Response):
            resp = returned
        elif isinstance(returned, dict):
            _apply_dict(resp, returned, RESPONSE_KEYS, "response")
        else:
            raise ScriptOutputError(
                f"transform_response must return None, the response or a dict, not {type(returned).__name__}")
    status = resp.status
    if type(status) is not int or not 100 <= status <= 599:
        raise ScriptOutputError(f"response.status must be an int between 100 and 599, got {status!r}")
    return {"status": status, "headers": resp.headers._export(), "body": _body(resp.body)}


# ---------------------------------------------------------------- ctx


def freeze(value: Any) -> Any:
    """Deep read-only copy: dicts become mapping proxies, lists become tuples."""
    if isinstance(value, dict):
        return types.MappingProxyType({k: freeze(v) for k, v in value.items()})
    if isinstance(value, (list, tuple)):
        return tuple(freeze(v) for v in value)
    if isinstance(value, (set, frozenset)):
        return frozenset(freeze(v) for v in value)
    if isinstance(value, bytearray):
        return bytes(value)
    return value


class _Logs:
    __slots__ = ("lines", "dropped")

    def __init__(self) -> None:
        self.lines: list[str] = []
        self.dropped = 0

    def add(self, level: str, msg: Any, args: tuple = ()) -> None:
        if len(self.lines) >= MAX_LOG_LINES:
            self.dropped += 1
            return
        try:
            text = str(msg)
            if args:
                text = text % args
        except Exception as exc:  # a bad format string is the script's problem, not ours
            text = f"{msg!s} (log formatting failed: {type(exc).__name__})"
        if len(text) > MAX_LOG_CHARS:
            text = text[:MAX_LOG_CHARS] + "…"
        self.lines.append(f"{level} {text}")

    def export(self) -> list[str]:
        if self.dropped:
            return [*self.lines, f"WARNING {self.dropped} more log lines dropped"]
        return list(self.lines)


class Logger:
    __slots__ = ("_logs",)

    def __init__(self, logs: _Logs) -> None:
        self._logs = logs

    def debug(self, msg: Any, *args: Any) -> None:
        self._logs.add("DEBUG", msg, args)

    def info(self, msg: Any, *args: Any) -> None:
        self._logs.add("INFO", msg, args)

    def warning(self, msg: Any, *args: Any) -> None:
        self._logs.add("WARNING", msg, args)

    warn = warning

    def error(self, msg: Any, *args: Any) -> None:
        self._logs.add("ERROR", msg, args)


class Ctx:
    """Read-only call context: org, consumer (the authenticated caller's id, or None), api, api_id,
    config_version, connector_version, settings, logger."""

    __slots__ = ("org", "consumer", "api", "api_id", "config_version", "connector_version", "settings", "logger")

    def __init__(self, data: dict, logs: _Logs) -> None:
        set_ = object.__setattr__
        set_(self, "org", data.get("org"))
        set_(self, "consumer", data.get("consumer"))
        set_(self, "api", data.get("api"))
        set_(self, "api_id", data.get("api_id"))
        set_(self, "config_version", data.get("config_version"))
        set_(self, "connector_version", data.get("connector_version"))
        set_(self, "settings", freeze(dict(data.get("settings") or {})))
        set_(self, "logger", Logger(logs))

    def log(self, msg: Any, *args: Any) -> None:
        self.logger.info(msg, *args)

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError("ctx is read-only")

    def __delattr__(self, name: str) -> None:
        raise AttributeError("ctx is read-only")

    def __repr__(self) -> str:
        return f"<ctx org={self.org!r} api={self.api!r} config_version={self.config_version}>"
