"""Turn an InboundCall into an OutboundCall (or an error Reply).

The faust agent hands each record here; this module knows nothing of faust,
so its logic is the same whichever stream runtime feeds it.
"""
from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote, urlencode, urlsplit, urlunsplit

from core.errors import JunctionError, NotFound, ServiceUnavailable, TransformError
from core.messages import dead_letter, error_reply, now_ms, reply_target, strip_secrets
from core.metrics import DEAD_LETTERS, EXPIRED_DROPPED
from core.settings import Settings
from core.scripts import pairs_to_records, script_ctx, script_request
from core.snapshot import ConfigSnapshot, RouteMatch
from processors.request_log import RequestLog
from schemas import CodecError, decode, encode

__all__ = ["Outgoing", "Router"]

log = logging.getLogger(__name__)
SUPPORTED_AUTH_MODES = frozenset({"none"})
CATCH_UP_S = 2.0  # longest wait for this instance's config to reach the version ingress used
_PLACEHOLDER = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\+?\}")


@dataclass(frozen=True)
class Outgoing:
    topic: str
    key: bytes
    value: bytes
    partition: int | None = None


@dataclass
class Outcome:
    messages: list[Outgoing] = field(default_factory=list)
    dropped: str | None = None


def build_url(target_url: str, params: dict[str, str], query: list[dict[str, str]]) -> str:
    """The outbound URL: the target with ``{param}`` placeholders filled from
    the path, and the caller's query appended."""

    def fill(m: re.Match[str]) -> str:
        value = params.get(m.group(1), "")
        return quote(value, safe="/" if m.group(0).endswith("+}") else "")

    url = _PLACEHOLDER.sub(fill, target_url)
    if not query:
        return url
    parts = urlsplit(url)
    extra = urlencode([(q["name"], q["value"]) for q in query])
    return urlunsplit(parts._replace(query=f"{parts.query}&{extra}" if parts.query else extra))


class Router:
    def __init__(self, settings: Settings, snapshot: ConfigSnapshot, *, sandbox: Any = None, request_log: RequestLog | None = None) -> None:
        """``sandbox`` is a started :class:`sandbox.SandboxPool` (None: scripts cannot run)."""
        self._settings = settings
        self._snapshot = snapshot
        self._sandbox = sandbox
        self._request_log = request_log or RequestLog(None)

    async def process(self, raw: bytes) -> Outcome:
        topics = self._settings.topics
        try:
            _, call = decode(raw, expected="InboundCall")
        except CodecError as exc:
            err = JunctionError(f"undecodable message: {exc}", code="undecodable", status=400)
            return Outcome([self._dlq({}, err, raw)])
        if call["deadline_ms"] <= now_ms():
            EXPIRED_DROPPED.labels("processors").inc()
            return Outcome(dropped="expired")
        match: RouteMatch | None = None
        try:
            match = await self._resolve(call)
            outbound = await self._outbound(call, match, raw)
        except JunctionError as err:
            out = self._reply(call, error_reply(call, err, stage="processors"))
            if not out and not isinstance(err, TransformError):
                # Nobody waits for a reply (an async producer's call): the dead letter is the only record.
                out.append(self._dlq(call, err, raw))
            if isinstance(err, TransformError):
                details = [*err.extra.get("traceback", []), *getattr(err, "script_logs", [])]
                out.append(self._dlq(call, err, raw, details))
                if match is not None:
                    await self._request_log.failure(org=match.org, api=match.api, call=call, status=err.status,
                                                    error_code=err.code, details=details)
            return Outcome(out)
        return Outcome([Outgoing(topics.calls, call["correlation_id"].encode(), encode("OutboundCall", outbound))])

    async def _resolve(self, call: dict[str, Any]) -> RouteMatch:
        if call.get("api_id") and call.get("config_version"):
            # Ingress matched this call on a version we may not have read yet.
            remaining_s = (call["deadline_ms"] - now_ms()) / 1000
            await self._snapshot.caught_up("api", call["api_id"], int(call["config_version"]), min(remaining_s, CATCH_UP_S))
        api = self._snapshot.api(call["api_id"]) if call.get("api_id") else None
        if api is None:
            # Async producers may name only org, method and path.
            return self._snapshot.resolve(call["org"], call["method"], call["path"])
        org = self._snapshot.orgs.get(call["org"])
        if org is None:
            raise NotFound(f"unknown organisation {call['org']!r}", code="org_not_found")
        return RouteMatch(org, api, self._snapshot.connector(api.get("connector", "")), call.get("path_params") or {})

    async def _transform(self, call: dict[str, Any], match: RouteMatch, connector: dict[str, Any], params: dict[str, str]) -> dict[str, Any]:
        """Run the connector's transform_request; returns the call with the script's changes."""
        from sandbox import ScriptRef

        if self._sandbox is None:
            raise ServiceUnavailable("connector scripts cannot run: no sandbox pool", code="sandbox_unavailable")
        ref = ScriptRef(call["org"], str(connector["id"]), int(connector.get("version", 0)), connector["script"])
        result = await self._sandbox.transform_request(ref, script_request(call, params), script_ctx(call["org"], match.api, connector))
        value = result.value or {}
        return {
            **call,
            "method": str(value.get("method", call["method"])).upper(),
            "query": pairs_to_records(value.get("query", [])),
            "headers": pairs_to_records(value.get("headers", [])),
            "body": value.get("body", b""),
            "_url": value.get("url"),
            "_method_set": str(value.get("method", call["method"])).upper() != call["method"],
        }

    async def _outbound(self, call: dict[str, Any], match: RouteMatch, raw: bytes) -> dict[str, Any]:
        mode = (match.api.get("auth") or {}).get("mode", "none")
        if mode not in SUPPORTED_AUTH_MODES:
            # Fail closed: an API configured for caller authentication this build cannot check is not served open.
            raise JunctionError(f"caller authentication {mode!r} is not available in this version", code="auth_unavailable", status=501)
        connector = match.connector
        if connector is None:
            raise ServiceUnavailable(f"API {match.api.get('id')} has no connector configured", code="connector_missing")
        target = connector.get("target") or {}
        params = {**(call.get("path_params") or {}), **match.path_params}
        if connector.get("script"):
            call = await self._transform(call, match, connector, params)
        method = str(target.get("method") or "*").upper()
        protocol = target.get("protocol", "rest")
        if call.get("_url"):
            url = str(call["_url"])  # the script chose the address itself
        elif protocol == "soap":
            url = str(target.get("url", ""))  # a SOAP target's URL is its WSDL: no query on it
        else:
            url = build_url(str(target.get("url", "")), params, call["query"])
        return {
            "correlation_id": call["correlation_id"],
            # Deterministic, so a call redelivered to processors is recognised by egress.
            "call_id": f"{call['correlation_id']}.{call.get('attempt', 1)}",
            "org": call["org"],
            "api_id": str(match.api.get("id", "")),
            "connector_id": str(connector.get("id", "")),
            "connector_version": int(connector.get("version", 0)),
            "config_version": int(match.api.get("version", 0)),
            "protocol": protocol,
            # The script's choice wins over the target's, which wins over the caller's.
            "method": call["method"] if method == "*" or call.get("_method_set") else method,
            "url": url,
            "soap_operation": target.get("operation"),
            "headers": call["headers"],
            "body": call["body"],
            "deadline_ms": call["deadline_ms"],
            "reply_topic": call.get("reply_topic"),
            "reply_partition": call.get("reply_partition", -1),
            "attempt": call.get("attempt", 1),
            "original": encode("InboundCall", strip_secrets(call)) if call.get("sealed_credentials") else raw,
        }

    def _reply(self, call: dict[str, Any], reply: dict[str, Any]) -> list[Outgoing]:
        target = reply_target(call)
        if target is None:
            return []
        topic, partition = target
        return [Outgoing(topic, call["correlation_id"].encode(), encode("Reply", reply), partition)]

    def _dlq(self, call: dict[str, Any], err: JunctionError, raw: bytes, details: list[str] | None = None) -> Outgoing:
        DEAD_LETTERS.labels("processors", err.code).inc()
        if call.get("sealed_credentials"):
            raw = encode("InboundCall", strip_secrets(call))
        record = dead_letter(call, err, stage="processors", original_topic=self._settings.topics.requests, original=raw, details=details)
        return Outgoing(self._settings.topics.dlq, (call.get("correlation_id") or "").encode(), encode("DeadLetter", record))
