"""Turn an InboundCall into an OutboundCall (or an error Reply).

The faust agent hands each record here; this module knows nothing of faust,
so its logic is the same whichever stream runtime feeds it.
"""
from __future__ import annotations

import asyncio
import logging
import re
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any
from urllib.parse import quote, unquote, urlencode, urlsplit, urlunsplit

import yarl

from core.callerauth import CallerAuth, Principal, consumer_header, consumer_headers, mode_of, without
from core.callerauth.base import INVALID
from core.errors import FieldError, JunctionError, Unauthorized, MethodNotAllowed, NotFound, ServiceUnavailable, TransformError
from core.headers import without_preferences
from core.kafka import Outgoing, topic_partitions
from core.messages import (INVALID_CALL, INVALID_REPLY_PARTITION, INVALID_REPLY_TOPIC, call_contract_error, correlation_id_error,
                           dead_letter, error_reply, expired, nobody_waits, now_ms, reply_route_error, reply_target,
                           strip_secrets, undecodable_call)
from core.metrics import DEAD_LETTERS, EXPIRED_DROPPED
from core.routing import ANY_METHOD, PathTemplate, parse_template, split_path
from core.sealing import sealer_for
from core.settings import Settings
from core.scripts import pairs_to_records, script_ctx, script_request, script_secrets
from core.snapshot import ConfigSnapshot, RouteMatch
from schemas import CodecError, decode, encode
from schemas.types import Header, OutboundCall

__all__ = ["InvalidPathParameter", "PartitionCounts", "Router", "build_url", "fill_target"]

log = logging.getLogger(__name__)
CATCH_UP_S = 2.0  # longest wait for this instance's config to reach the version ingress used
_PLACEHOLDER = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\+?\}")
_DOT_SEGMENTS = frozenset({".", ".."})
_SEPARATORS = re.compile(r"[/\\]")
# Errors that say the message itself may not run here, whoever sent it: always dead-lettered
# (with a reply too when the call names a usable one), never an upstream call.
ALWAYS_DEAD_LETTERED = frozenset({INVALID_CALL, "org_not_found", "route_not_found", "api_not_in_org", "api_disabled", "method_not_allowed"})


@dataclass(frozen=True)
class ScriptedRequest:
    """The call as the connector's transform_request left it (the call itself when there is no script)."""

    method: str
    method_set: bool  # the script chose the method: it wins over the target's
    query: list[Header]
    headers: list[Header]
    body: bytes
    url: str | None  # the script chose the whole address


@dataclass
class Outcome:
    messages: list[Outgoing] = field(default_factory=list)


class InvalidPathParameter(JunctionError):
    status = 400
    code = "invalid_path_parameter"


def _decoded(value: str) -> str:
    """``value`` percent-decoded until nothing changes (a double-encoded dot is still a dot)."""
    for _ in range(10):
        once = unquote(value)
        if once == value:
            break
        value = once
    return value


def _climbs(value: str) -> bool:
    """Whether ``value``, however often percent-decoded, has a ``.`` or ``..`` segment, splitting at
    ``/`` or ``\\`` and ignoring ``;`` parameters (``..;`` is ``..`` to some servers)."""
    return any(part.split(";", 1)[0] in _DOT_SEGMENTS for part in _SEPARATORS.split(_decoded(value)))


def _encode_param(value: str, greedy: bool) -> str:
    """A path parameter as it goes into a URL: percent-encoded, ``/`` kept only for ``{name+}``.
    A lone ``.`` or ``..`` is encoded too (``..`` -> ``%2E%2E``): it never reads as a dot segment."""
    if not greedy and value in _DOT_SEGMENTS:
        return "%2E" * len(value)
    return quote(value, safe="/" if greedy else "", errors="strict")


def fill_target(target_url: str, params: dict[str, str]) -> str:
    """The target with its ``{name}`` / ``{name+}`` placeholders filled, percent-encoded.

    Pure encoding: no value is refused here (see :func:`build_url`, which does refuse).
    """

    def fill(m: re.Match[str]) -> str:
        try:
            return _encode_param(params.get(m.group(1), ""), m.group(0).endswith("+}"))
        except UnicodeEncodeError:
            name = m.group(1)
            raise InvalidPathParameter(f"path parameter {name!r} is not valid text", extra={"parameter": name},
                                       fields=[FieldError(name, "is not valid text")]) from None

    return _PLACEHOLDER.sub(fill, target_url)


def _path_prefix(target_url: str) -> str:
    """The part of the target's path no parameter can change: up to the last ``/`` before the
    first placeholder (all of it when it has none)."""
    path = urlsplit(target_url).path
    cut = path.find("{")
    if cut < 0:
        return path
    return path[: path.rfind("/", 0, cut) + 1]


def _sent_paths(url: str, target_url: str) -> list[tuple[str, str]]:
    """(path, prefix) as aiohttp would put them on the request line, for both ways a URL can be
    handed to it: already encoded (``yarl.URL(url, encoded=True)``) and as a plain string
    (``yarl.URL(url)``, which decodes ``%2E`` and resolves dot segments)."""
    prefix = _path_prefix(target_url) or "/"
    out = []
    for encoded in (True, False):
        try:
            sent = yarl.URL(url, encoded=encoded).raw_path
            base = yarl.URL("http://prefix.invalid" + prefix, encoded=encoded).raw_path
        except (ValueError, TypeError) as exc:
            raise JunctionError(f"the outbound URL is not valid: {exc}", code="invalid_upstream_url", status=502) from None
        out.append((sent, base))
    return out


def _check_within(url: str, target_url: str) -> None:
    """Refuse a filled-in URL that would leave the target's path prefix or carries a dot segment,
    whichever way aiohttp is handed it."""
    for sent, base in _sent_paths(url, target_url):
        if not sent.startswith(base):
            raise InvalidPathParameter(f"the path parameters would take the call outside {base}",
                                       fields=_param_fields(target_url, f"takes the call outside {base}"))
        if any(_climbs(segment) for segment in sent[len(base):].split("/")):
            raise InvalidPathParameter("the path parameters would put a '.' or '..' segment in the outbound path",
                                       fields=_param_fields(target_url, "puts a '.' or '..' segment in the outbound path"))


def _param_fields(target_url: str, message: str) -> list[FieldError]:
    """One field per path parameter the target takes: which of them, together, went wrong is not known
    here, but the caller learns what to look at."""
    return [FieldError(name, message) for name in dict.fromkeys(m.group(1) for m in _PLACEHOLDER.finditer(target_url))]


def build_url(target_url: str, params: dict[str, str], query: list[dict[str, str]]) -> str:
    """The outbound URL: the target with ``{param}`` placeholders filled from
    the path, and the caller's query appended.

    A ``{name}`` value is percent-encoded whole (``/`` too); a ``{name+}`` value keeps its ``/``. A value
    with a ``.`` or ``..`` segment, even percent-encoded (once or more) or behind ``%2F``, is refused with
    :class:`InvalidPathParameter`; so is anything that would make the URL leave the target's path prefix,
    as aiohttp would send it (encoded or not).
    """
    for name in dict.fromkeys(m.group(1) for m in _PLACEHOLDER.finditer(target_url)):
        value = params.get(name, "")
        if _climbs(value):
            raise InvalidPathParameter(f"path parameter {name!r} has a '.' or '..' segment (percent-encoded or not)",
                                       extra={"parameter": name},
                                       fields=[FieldError(name, "has a '.' or '..' segment (percent-encoded or not), "
                                                                "which could take the call outside the target's path")])
    url = fill_target(target_url, params)
    _check_within(url, target_url)
    if not query:
        return url
    parts = urlsplit(url)
    extra = urlencode([(q["name"], q["value"]) for q in query])
    return urlunsplit(parts._replace(query=f"{parts.query}&{extra}" if parts.query else extra))


class PartitionCounts:
    """How many partitions a topic has, asked of the broker and kept.

    Partitions are never removed from a topic, so a known count stays a lower bound: a partition
    below it is answered from memory; one at or above it asks the broker again (at most every
    ``recheck_s`` per topic: the topic may have grown). A topic that does not exist is remembered
    as such for ``recheck_s``. Concurrent questions about one topic share one broker request.
    """

    MAX_TOPICS = 1024

    def __init__(self, settings: Settings, lookup: Callable[[Settings, str], Awaitable[list[Any]]] = topic_partitions,
                 *, recheck_s: float = 5.0) -> None:
        self._settings = settings
        self._lookup = lookup
        self._recheck_s = recheck_s
        self._known: dict[str, tuple[int, float]] = {}
        self._pending: dict[str, asyncio.Future[int]] = {}

    async def count(self, topic: str, partition: int = 0) -> int:
        known = self._known.get(topic)
        if known is not None:
            n, at = known
            if partition < n or time.monotonic() - at < self._recheck_s:
                return n
        fut = self._pending.get(topic)
        if fut is None:
            fut = self._pending[topic] = asyncio.ensure_future(self._fetch(topic))
            fut.add_done_callback(lambda _: self._pending.pop(topic, None))
        return await asyncio.shield(fut)

    async def _fetch(self, topic: str) -> int:
        n = len(await self._lookup(self._settings, topic))
        if topic not in self._known and len(self._known) >= self.MAX_TOPICS:
            self._known.pop(next(iter(self._known)))
        self._known[topic] = (n, time.monotonic())
        return n


SOAP_OPERATION_HEADER = "X-Soap-Operation"


def soap_operation(target: dict[str, Any], headers: list[Header]) -> str:
    """The operation a SOAP target calls: its own ``operation``, else the one the SOAP caller
    called (ingress names it in ``X-Soap-Operation``), so one connector can pass a whole
    service through."""
    chosen = target.get("operation") or next(
        (h["value"] for h in headers if h["name"].lower() == SOAP_OPERATION_HEADER.lower()), "")
    if not chosen:
        raise JunctionError("the SOAP target names no operation and the call carries no X-Soap-Operation",
                            code="soap_operation_missing", status=422)
    return str(chosen)


def records_to_tuples(records: list[dict[str, str]]) -> list[tuple[str, str]]:
    return [(r["name"], r["value"]) for r in records]


@lru_cache(maxsize=4096)
def _template(path: str) -> PathTemplate:
    return parse_template(path)


def _allows(api: dict[str, Any], method: str) -> bool:
    methods = {str(m).upper() for m in (api.get("methods") or [ANY_METHOD])}
    return ANY_METHOD in methods or method in methods or (method == "HEAD" and "GET" in methods)


def _owned_by(api: dict[str, Any], org: dict[str, Any], slug: str) -> bool:
    """Whether the API belongs to the organisation: by id when both documents carry one, else by slug."""
    if api.get("org_id") and org.get("id"):
        return str(api["org_id"]) == str(org["id"])
    return bool(api.get("org")) and api.get("org") in (slug, org.get("id"))


class Router:
    def __init__(self, settings: Settings, snapshot: ConfigSnapshot, *, sandbox: Any = None,
                 caller_auth: CallerAuth | None = None,
                 config_caught_up: Callable[[float], Awaitable[None]] | None = None) -> None:
        """``sandbox`` is a started :class:`sandbox.SandboxPool` (None: scripts cannot run)."""
        self._settings = settings
        self._snapshot = snapshot
        self._sandbox = sandbox
        # The authority on callers: every message's sealed credential is checked here, whoever sent it.
        self._caller_auth = caller_auth or CallerAuth(settings, snapshot, sealer_for(settings) if settings.seal_key else None)
        self._config_caught_up = config_caught_up
        self._partitions = PartitionCounts(settings)

    async def process(self, raw: bytes, *, inbound: tuple[int, int] = (-1, -1), key: bytes | None = None) -> Outcome:
        """The messages one InboundCall turns into; never raises for a bad message.

        ``inbound`` is where ``raw`` sits on the requests topic (partition, offset): an OutboundCall
        carries that pointer instead of a copy of the InboundCall, for dead letters and replay. ``key``, the
        record's, names the dead letter of a record that cannot be decoded.
        """
        try:
            return await self._process(raw, inbound, key)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001 - one bad message must not fail its batch
            log.exception("processors failed on a message")
            try:
                _, call = decode(raw, expected="InboundCall")
            except CodecError:
                call = {}
            err = JunctionError("processors failed on this call", code="internal_error", status=500)
            out = self._reply(call, error_reply(call, err, stage="processors")) if call else []
            return Outcome([*out, self._dlq(call, err, raw, [repr(exc)], inbound)])

    async def _process(self, raw: bytes, inbound: tuple[int, int], key: bytes | None = None) -> Outcome:
        topics = self._settings.topics
        try:
            _, call = decode(raw, expected="InboundCall")
        except CodecError as exc:
            err = JunctionError(f"undecodable message: {exc}", code="undecodable", status=400)
            return Outcome([self._dlq(undecodable_call(key), err, raw, inbound=inbound)])
        bad_id = correlation_id_error(call)
        if bad_id is not None:  # nothing can be answered or called under it: the dead letter is the only record
            return Outcome([self._dlq(call, bad_id, raw, inbound=inbound)])
        late = call["deadline_ms"] <= now_ms()
        if late and not nobody_waits(call, self._settings):
            EXPIRED_DROPPED.labels("processors").inc()  # its caller had its 504 from ingress
            return Outcome()
        try:
            await self._check_reply_route(call)
        except JunctionError as err:
            # The reply cannot be routed: the dead letter is the only record, and nothing is called.
            return Outcome([self._dlq(call, err, raw, inbound=inbound)])
        if late:
            EXPIRED_DROPPED.labels("processors").inc()
            err = expired()
            return Outcome([*self._reply(call, error_reply(call, err, stage="processors")),
                            self._dlq(call, err, raw, inbound=inbound)])
        match: RouteMatch | None = None
        try:
            match = await self._resolve(call)
            outbound = await self._outbound(call, match, raw)
        except JunctionError as err:
            out = self._reply(call, error_reply(call, err, stage="processors"))
            if isinstance(err, TransformError):
                details = [*err.extra.get("traceback", []), *getattr(err, "script_logs", [])]
                # The request log takes these lines from the dead letter (control/observe).
                out.append(self._dlq(call, err, raw, details, inbound))
            elif not out or err.code in ALWAYS_DEAD_LETTERED:
                # Nobody waits for a reply (an async producer's call), or the message was not allowed
                # to run at all: the dead letter records it.
                out.append(self._dlq(call, err, raw, inbound=inbound))
            return Outcome(out)
        outbound.update(inbound_partition=inbound[0], inbound_offset=inbound[1])
        return Outcome([Outgoing(topics.calls, call["correlation_id"].encode(), encode("OutboundCall", outbound))])

    async def _check_reply_route(self, call: dict[str, Any]) -> None:
        """The reply routing names a results topic and one of its partitions (or nothing)."""
        err = reply_route_error(call, self._settings)
        if err is not None:
            raise err
        topic = call.get("reply_topic")
        if not topic:
            return
        partition = int(call["reply_partition"])
        try:
            count = await self._partitions.count(topic, partition)
        except Exception as exc:  # noqa: BLE001 - the broker could not say; a replay can retry the call
            if topic == self._settings.topics.replies:
                count = self._settings.reply_partitions  # created with this many; good enough while the broker is away
            else:
                raise ServiceUnavailable(f"could not learn the partitions of {topic}: {exc}", code="broker_unavailable") from None
        if count == 0:
            raise JunctionError(f"reply_topic {topic} does not exist: create it first", code=INVALID_REPLY_TOPIC, status=400)
        if partition >= count:
            raise JunctionError(f"reply_partition {partition} is not a partition of {topic} (it has {count})",
                                code=INVALID_REPLY_PARTITION, status=400)

    async def _resolve(self, call: dict[str, Any]) -> RouteMatch:
        outside = call_contract_error(call)
        if outside is not None:
            raise outside
        if call.get("api_id") and call.get("config_version"):
            # Ingress matched this call on a version we may not have read yet.
            remaining_s = (call["deadline_ms"] - now_ms()) / 1000
            await self._snapshot.caught_up("api", call["api_id"], int(call["config_version"]), min(remaining_s, CATCH_UP_S))
        if not call.get("api_id"):
            # Async producers may name only org, method and path; resolving checks everything below.
            return self._snapshot.resolve(call["org"], call["method"], call["path"])
        api = self._snapshot.api(call["api_id"])
        if api is None:  # a mistyped id, or an API deleted since ingress matched it: never another API in its place
            raise NotFound(f"no API {call['api_id'][:64]!r} in {call['org']}", code="route_not_found")
        # The message names its API: check it as resolving would, whoever sent it.
        org = self._snapshot.orgs.get(call["org"])
        if org is None or org.get("enabled") is False:
            raise NotFound(f"unknown organisation {call['org']!r}", code="org_not_found")
        if not _owned_by(api, org, call["org"]):
            raise NotFound(f"API {call['api_id']} is not an API of {call['org']}", code="api_not_in_org")
        if api.get("enabled") is False:
            raise NotFound(f"API {call['api_id']} is disabled", code="api_disabled")
        if not _allows(api, call["method"]):
            allowed = sorted({str(m).upper() for m in api.get("methods") or []})
            raise MethodNotAllowed(f"{call['method']} is not allowed on {call['path']}", headers={"Allow": ",".join(allowed)})
        try:
            params = _template(str(api.get("path", ""))).match(split_path(call["path"]))
        except JunctionError:
            params = None
        if params is None:
            raise NotFound(f"no API at {call['path']}", code="route_not_found")
        # The parameters come from the path, not from the message.
        return RouteMatch(org, api, self._snapshot.connector(api.get("connector", "")), params)

    async def close(self) -> None:
        await self._caller_auth.close()

    async def _authenticate(self, call: dict[str, Any], match: RouteMatch) -> tuple[dict[str, Any], Principal]:
        """The caller of ``call`` (Unauthorized / Forbidden otherwise), and the call without its
        credential and with the consumer header only this check may set."""
        api = match.api
        sealed, cid = call.get("sealed_credentials"), call["correlation_id"]
        try:
            principal = await self._caller_auth.authenticate_sealed(api, match.org, sealed, cid)
        except Unauthorized as err:
            if err.code != INVALID or self._config_caught_up is None:
                raise
            # A key or consumer made a moment ago may have reached ingress before this instance: once the
            # config written so far is applied here, the credential is checked again (only on failure).
            await self._config_caught_up(CATCH_UP_S)
            principal = await self._caller_auth.authenticate_sealed(api, match.org, sealed, cid)
        headers, query = records_to_tuples(call["headers"]), records_to_tuples(call["query"])
        # Only Junction says who called, on every API: a caller's (or producer's) consumer header goes,
        # anonymous calls included, before the script could read it as Junction's.
        not_believed = consumer_headers(api.get("auth") or {})
        if mode_of(api).NAME == "none":
            if not any(k.lower() in not_believed for k, _ in headers):  # nearly every call: nothing to take out
                return call, principal
            return {**call, "headers": [{"name": k, "value": v} for k, v in without(headers, not_believed)]}, principal
        # A producer may have put the credential in the clear, too: it never goes further.
        found = self._caller_auth.extract(api, headers, query)
        strip = found.strip_headers | not_believed
        return {**call, "sealed_credentials": None,
                "headers": [{"name": k, "value": v} for k, v in without(headers, strip)],
                "query": [{"name": k, "value": v} for k, v in without(query, found.strip_query)]}, principal

    async def _transform(self, call: dict[str, Any], match: RouteMatch, connector: dict[str, Any], params: dict[str, str],
                         consumer: str | None = None) -> ScriptedRequest:
        """Run the connector's transform_request; what the script made of the call."""
        from sandbox import ScriptRef

        if self._sandbox is None:
            raise ServiceUnavailable("connector scripts cannot run: no sandbox pool", code="sandbox_unavailable")
        ref = ScriptRef(call["org"], str(connector["id"]), int(connector.get("version", 0)), connector["script"])
        ctx = script_ctx(call["org"], match.api, connector, self._caller_auth.env.sealer, consumer=consumer)
        result = await self._sandbox.transform_request(ref, script_request(call, params), ctx,
                                                       secrets=script_secrets(connector, ctx))
        value = result.value or {}
        method = str(value.get("method", call["method"])).upper()
        return ScriptedRequest(method=method, method_set=method != call["method"],
                               query=pairs_to_records(value.get("query", [])),
                               headers=pairs_to_records(value.get("headers", [])),
                               body=value.get("body", b""), url=value.get("url"))

    async def _outbound(self, call: dict[str, Any], match: RouteMatch, raw: bytes) -> OutboundCall:
        call, principal = await self._authenticate(call, match)
        # Junction applied these preferences itself (a 202 and a Location, a long poll): the upstream is not
        # asked again. Before the script, which sees the call as it would go and may still ask for them.
        if any(h["name"].lower() == "prefer" for h in call["headers"]):
            call = {**call, "headers": pairs_to_records(without_preferences(records_to_tuples(call["headers"])))}
        connector = match.connector
        if connector is None:
            raise ServiceUnavailable(f"API {match.api.get('id')} has no connector configured", code="connector_missing")
        target = connector.get("target") or {}
        params = dict(match.path_params)  # what the API's template took from the path: the message's own are not trusted
        scripted = ScriptedRequest(call["method"], False, call["query"], call["headers"], call["body"], None)
        if connector.get("script"):
            scripted = await self._transform(call, match, connector, params, principal.consumer_id)
        headers = scripted.headers
        if principal.consumer_id is not None:
            # After the script: the upstream learns who called from Junction, never from the caller or a script.
            name = consumer_header(match.api.get("auth") or {})
            headers = [h for h in headers if h["name"].lower() != name.lower()] + [{"name": name, "value": principal.consumer_id}]
        key = call.get("idempotency_key")
        if key and not any(h["name"].lower() == "idempotency-key" for h in headers):
            # An async producer's key travels as the header an HTTP caller sends: egress retries a
            # non-idempotent call only with one, and the upstream can de-duplicate on it.
            headers = [*headers, {"name": "Idempotency-Key", "value": str(key)}]
        method = str(target.get("method") or "*").upper()
        protocol = target.get("protocol", "rest")
        if scripted.url:
            url = str(scripted.url)  # the script chose the address itself
        elif protocol == "soap":
            url = str(target.get("url", ""))  # a SOAP target's URL is its WSDL: no query on it
        else:
            url = build_url(str(target.get("url", "")), params, scripted.query)
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
            "method": scripted.method if method == "*" or scripted.method_set else method,
            "url": url,
            "soap_operation": soap_operation(target, headers) if protocol == "soap" else None,
            "headers": headers,
            "body": scripted.body,
            "deadline_ms": call["deadline_ms"],
            "reply_topic": call.get("reply_topic"),
            "reply_partition": call.get("reply_partition", -1),
            "attempt": call.get("attempt", 1),
            "respond_async": bool(call.get("respond_async")),
        }

    def _reply(self, call: dict[str, Any], reply: dict[str, Any]) -> list[Outgoing]:
        target = reply_target(call, self._settings)
        if target is None:
            return []
        topic, partition = target
        return [Outgoing(topic, call["correlation_id"].encode(), encode("Reply", reply), partition)]

    def _caller_auth_config(self, call: dict[str, Any]) -> dict[str, Any] | None:
        """The caller auth of the call's API, found as routing would find it: its api-key header or
        parameter, whatever its name, is then removed from the dead letter too."""
        api = self._snapshot.api(str(call.get("api_id") or ""))
        if api is None and call.get("org") and call.get("path"):
            try:
                api = self._snapshot.resolve(str(call["org"]), str(call.get("method") or "GET"), str(call["path"])).api
            except JunctionError:
                api = None
        return (api or {}).get("auth")

    def _dlq(self, call: dict[str, Any], err: JunctionError, raw: bytes, details: list[str] | None = None,
             inbound: tuple[int, int] = (-1, -1)) -> Outgoing:
        DEAD_LETTERS.labels("processors", err.code).inc()
        if call.get("sealed_credentials"):
            raw = encode("InboundCall", strip_secrets(call))
        record = dead_letter(call, err, stage="processors", original_topic=self._settings.topics.requests, original=raw,
                             details=details, auth=self._caller_auth_config(call))
        # Where the call itself sits: a replay re-reads it from there, sealed credential included.
        record.update(inbound_partition=inbound[0], inbound_offset=inbound[1])
        return Outgoing(self._settings.topics.dlq, (call.get("correlation_id") or "").encode(), encode("DeadLetter", record))
