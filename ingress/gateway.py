"""The inbound call handler: match, produce, wait for the correlated reply."""
from __future__ import annotations

import asyncio
import base64
import dataclasses
import re
import time
import uuid
from urllib.parse import unquote_to_bytes
from typing import Any

from aiohttp import web
from aiokafka import AIOKafkaProducer
from multidict import CIMultiDict

from core.errors import (ClientError, DeadlineExceeded, FieldError, JunctionError, MethodNotAllowed, NotFound,
                         ServiceUnavailable)
from core.headers import CORRELATION_ID, asking_identity, upstream_answer_headers
from core.http import json_response, store_unavailable
from core.metrics import INGRESS_LATENCY, INGRESS_REQUEST_BYTES, INGRESS_REQUESTS, INGRESS_RESPONSE_BYTES, NO_API
from core.settings import Settings
from core.snapshot import ConfigSnapshot, RouteMatch
from ingress.async_results import AsyncResults, Owner, location, parse_prefer, wait_seconds
from ingress.auth import Admission, EdgeAuth
from ingress.compression import compress_response, decoded_headers, read_body
from ingress.cors import POLICY_KEY, policy_of, preflight_method, preflight_response
from ingress.idempotency import KEY_HEADER, REPLAYED_HEADER, Claim, IdempotencyKeys, caller_scope, fingerprint
from ingress.refusal_log import RefusalLog
from ingress.replies import ReplyReader
from ingress.response_cache import ResponseCache
from ingress.soap_edge import (MEDIA_TYPE, OPERATION_HEADER, Contracts, address_of, answer, fault_response, guess_version,
                               is_wsdl_request, json_bytes, parse_call, reply_error, wsdl_response)
from schemas import encode

__all__ = ["Gateway", "CORRELATION_ID"]

# A SOAP call's own framing, replaced by the JSON call's: the upstream behind a SOAP API speaks JSON.
# What the SOAP caller said about its envelope, not about the REST call made for it. Accept-Encoding too: the JSON
# answer is read here to build the SOAP one, so it is asked for unencoded.
_SOAP_ONLY_HEADERS = frozenset({"content-type", "content-length", "soapaction", "accept", "accept-encoding",
                                OPERATION_HEADER.lower()})
_CORRELATION = re.compile(r"[0-9a-f]{32}")
_CONTROL_CHARACTER = re.compile(r"[\x00-\x1f\x7f]")
_INLINE_PARSE_BYTES = 64 * 1024  # larger envelopes are parsed in a thread, off the event loop


# Set on a request once its InboundCall was accepted by the broker: an error after that is the call's own,
# in the request log from the topics; one before it is a refusal (ingress/refusal_log.py).
ENTERED = web.RequestKey("junction_entered", str)
# The code of an error answered as a response rather than raised (a SOAP fault).
ANSWERED_ERROR = web.RequestKey("junction_answered_error", str)


def _now_ms() -> int:
    return int(time.time() * 1000)


class Gateway:
    def __init__(self, settings: Settings, snapshot: ConfigSnapshot, producer: AIOKafkaProducer, replies: ReplyReader,
                 auth: EdgeAuth, results: AsyncResults, keys: IdempotencyKeys, *, cache: ResponseCache,
                 refusals: RefusalLog | None = None) -> None:
        self._settings = settings
        self._refusals = refusals
        self._cache = cache
        self._results = results
        self._keys = keys
        self._snapshot = snapshot
        self._producer = producer
        self._replies = replies
        self._auth = auth
        self._contracts = Contracts()

    async def handle(self, request: web.Request) -> web.StreamResponse:
        started = time.perf_counter()
        received_ms = _now_ms()
        org = request.match_info["org"]
        path = "/" + request.match_info.get("path", "")
        status = 500
        api_id = NO_API
        received: int | None = None  # the decoded body's size, once read
        sent = 0
        try:
            if _CONTROL_CHARACTER.search(path) or _CONTROL_CHARACTER.search(org):
                # Decoded from %00, %0A...: no route or upstream path holds one, and a connector script may
                # not send one on (a 502 for the caller's mistake).
                raise ClientError("the path holds a control character (such as %00 or %0A)", code="invalid_path",
                                  fields=[FieldError("(path)", "must not hold control characters")])
            if "%" in request.raw_path:
                _refuse_undecodable(request.raw_path)
            asked = preflight_method(request)
            match = self._snapshot.resolve(org, request.method, path) if asked is None else self._preflight_match(org, asked, path)
            api_id = str(match.api.get("id") or NO_API)
            policy = policy_of(match.api, match.org)
            if policy is not None and asked is None:
                request[POLICY_KEY] = policy  # a preflight's answer is made whole by preflight_response
            if asked is not None and policy is not None:
                response = preflight_response(request, policy, list(match.api.get("methods") or ()), asked)
            # A soap API saved before inbound SOAP has no contract: it is served as REST, as it was.
            elif match.api.get("protocol") == "soap" and match.api.get("contract"):
                response = await self._soap(request, org, path, match)
            else:
                admission = await self._auth.admit(request, match)
                body = await self._read_body(request)
                received = len(body)
                admission = dataclasses.replace(admission, headers=decoded_headers(admission.headers))
                response = await self._rest(request, org, path, match, body, admission)
                response.headers.update(admission.response_headers)
            response = await compress_response(request, response, self._settings)
            status = response.status
            sent = 0 if request.method == "HEAD" else response.content_length or 0  # a HEAD's length is a GET's body
            if ANSWERED_ERROR in request:
                told = self._refused(request, org, path, api_id, status, request[ANSWERED_ERROR], received, received_ms)
                if told is not None:
                    response.headers.setdefault(CORRELATION_ID, told)
            return response
        except Exception as exc:
            unavailable = store_unavailable(exc)
            status = getattr(exc, "status", None) or (503 if unavailable is not None else 500)
            code = getattr(exc, "code", None) or (unavailable.code if unavailable is not None else "internal_error")
            told = self._refused(request, org, path, api_id, status, str(code), received, received_ms)
            if told is not None and isinstance(exc, JunctionError):
                exc.headers.setdefault(CORRELATION_ID, told)  # the row's id, as a call's answer names its own
            raise
        finally:
            # Labels only from the configuration: a caller's made-up path or organisation adds no series.
            org_label = org if org in self._snapshot.orgs else "_unknown"
            INGRESS_REQUESTS.labels(org_label, api_id, f"{status // 100}xx").inc()
            INGRESS_LATENCY.labels(org_label, api_id).observe(time.perf_counter() - started)
            INGRESS_REQUEST_BYTES.labels(org_label, api_id).inc(received if received is not None else request.content_length or 0)
            INGRESS_RESPONSE_BYTES.labels(org_label, api_id).inc(sent)

    def _refused(self, request: web.Request, org: str, path: str, api_id: str, status: int, code: str,
                 received: int | None, received_ms: int) -> str | None:
        """Tell the request log of an error answered before the call entered the pipeline; the row's id."""
        if self._refusals is None or ENTERED in request or org not in self._snapshot.orgs:
            return None
        return self._refusals.tell(org=org, api_id="" if api_id == NO_API else api_id, method=request.method, path=path,
                                   status=status, error_code=code, received_at_ms=received_ms,
                                   bytes_in=received if received is not None else request.content_length or 0)

    def _preflight_match(self, org: str, asked: str, path: str) -> RouteMatch:
        """The API a browser's preflight asks about, when it has a CORS policy; else the API of an OPTIONS
        call, which is then one like any other."""
        try:
            match = self._snapshot.resolve(org, asked, path)
        except MethodNotAllowed:
            pass
        else:
            if policy_of(match.api, match.org) is not None:
                return match
        return self._snapshot.resolve(org, "OPTIONS", path)

    async def _rest(self, request: web.Request, org: str, path: str, match: RouteMatch, body: bytes,
                    admission: Admission) -> web.StreamResponse:
        """A REST call, answered when its reply comes, at once (``Prefer: respond-async``: 202 and a
        ``Location``), or from an earlier call with the same ``Idempotency-Key``."""
        api = match.api
        prefer = parse_prefer(request.headers.getall("Prefer", []))
        respond_async = "respond-async" in prefer
        correlation_id = uuid.uuid4().hex
        owner = Owner(org, str(api.get("id", "")), admission.principal.consumer_id)
        key = request.headers.get(KEY_HEADER)
        # A repeated Idempotency-Key is answered by its first call, an async call by its Location: never
        # from the cache, and their answers are not stored in it either.
        plan = None if respond_async or key is not None else self._cache.plan(
            request, path, match, admission, authenticated=self._auth.caller_auth.requires_credential(api))
        if plan is not None:
            hit = await self._cache.lookup(plan)
            if hit is not None:
                return hit  # no call: nothing on the broker, nothing upstream
            admission = dataclasses.replace(admission, headers=asking_identity(admission.headers))
        claim: tuple[str, str, int] | None = None
        if key is not None:
            redis_key = self._keys.redis_key(org, owner.api_id, caller_scope(owner.consumer, request.headers.items()), key)
            fp = fingerprint(request.method, path, admission.query, body)
            ttl_s = int(api.get("idempotency_ttl_s") or self._settings.idempotency_ttl_s)
            held = await self._keys.claim(redis_key, fp, correlation_id, ttl_s)
            if held is not None:
                return await self._repeat(held, fp, ttl_s)
            claim = (redis_key, fp, ttl_s)
        timeout_ms = self._timeout_ms(match)
        # Nobody waits for an async call: it may take longer than a caller would.
        deadline_ms = max(timeout_ms, self._settings.async_timeout_ms) if respond_async or api.get("async_fallback") \
            else timeout_ms
        try:
            if respond_async:
                await self._results.register(correlation_id, owner)  # before the reply can come
                await self._call(request, org, path, api, match.path_params, body, timeout_ms, admission,
                                 correlation_id=correlation_id, deadline_ms=deadline_ms, wait=False, respond_async=True)
                return self._accepted(correlation_id, {"Preference-Applied": "respond-async"})
            reply = await self._call(request, org, path, api, match.path_params, body, timeout_ms, admission,
                                     correlation_id=correlation_id, deadline_ms=deadline_ms,
                                     respond_async=bool(api.get("async_fallback")))
        except DeadlineExceeded as exc:
            # The call goes on: its reply is kept for this Location (ingress/async_results.py).
            await self._results.register(correlation_id, owner)
            if api.get("async_fallback"):
                return self._accepted(correlation_id, {})
            raise DeadlineExceeded(exc.message, code=exc.code, headers={**exc.headers, "Location": location(correlation_id)},
                                   extra={**exc.extra, "correlation_id": correlation_id,
                                          "location": location(correlation_id)}) from None
        except JunctionError:
            if claim is not None:  # never produced: the key is free for a new attempt
                await self._keys.release(claim[0], correlation_id)
            raise
        if claim is not None:
            await self._keys.settle(claim[0], claim[1], correlation_id, reply, claim[2])
        response = self._response(reply, head=request.method == "HEAD")
        if plan is not None:
            await self._cache.store(plan, reply)
            self._cache.mark(plan, response)
        return response

    async def _repeat(self, held: Claim, fp: str, ttl_s: int) -> web.StreamResponse:
        """The answer to a repeated Idempotency-Key: the first call's, or 409 while it is in flight."""
        response = self._response(await self._first_reply(held, fp, ttl_s))
        response.headers[REPLAYED_HEADER] = "true"
        return response

    async def _first_reply(self, held: Claim, fp: str, ttl_s: int) -> dict[str, Any]:
        """The reply of the first call with a repeated Idempotency-Key (422 for another request, 409 while
        the first is in flight), from its stored answer or, once there, its result."""
        self._keys.check(held, fp)
        if held.answer is None:
            reply = await self._results.result(held.correlation_id)
            if reply is None or reply["status"] >= 500:
                raise self._keys.in_flight(held, location(held.correlation_id))
            await self._keys.complete(held.redis_key, held.fingerprint, held.correlation_id, reply, ttl_s)
            return reply
        answer = held.answer
        return {"correlation_id": held.correlation_id, "status": int(answer["status"]),
                "headers": [{"name": str(k), "value": str(v)} for k, v in answer["headers"]],
                "body": base64.b64decode(answer["body"])}

    def _accepted(self, correlation_id: str, headers: dict[str, str]) -> web.Response:
        where = location(correlation_id)
        return json_response({"correlation_id": correlation_id, "location": where, "status": "pending"}, status=202,
                             headers={"Location": where, CORRELATION_ID: correlation_id, "Retry-After": "1", **headers})

    async def result(self, request: web.Request) -> web.StreamResponse:
        """``GET /_async/<correlation id>``: the call's answer once it is there, else 202 (``Prefer: wait=N``
        waits for it). Only its caller may read it: the same consumer, when its API authenticates callers."""
        correlation_id = request.match_info["correlation_id"]
        gone = NotFound("no result at this location: unknown, expired, or not yours", code="result_not_found")
        owner = await self._owner(correlation_id)
        if owner is None:
            raise gone
        api = self._snapshot.api(owner.api_id)
        org = self._org_of(owner, api)
        policy = policy_of(api, org) if api is not None else None
        if policy is not None:
            request[POLICY_KEY] = policy  # the page that made the call may read its result
        if owner.consumer is not None:
            if api is None or org is None:
                raise gone
            admission = await self._auth.admit(request, RouteMatch(org=org, api=api, connector=None, path_params={}))
            if admission.principal.consumer_id != owner.consumer:
                raise gone
        else:
            # The result is the API's answer: an address that may not call the API may not read it either.
            self._auth.check_address(request, org, api)
        wait_s = wait_seconds(parse_prefer(request.headers.getall("Prefer", [])), self._settings.async_max_wait_s)
        reply = await self._results.wait(correlation_id, wait_s)
        if reply is None:
            return self._accepted(correlation_id, {})
        return await compress_response(request, self._response(reply), self._settings)

    async def result_preflight(self, request: web.Request) -> web.StreamResponse:
        """A browser's preflight for a result's location (to send ``Prefer: wait=N``, say): answered by the
        CORS policy of the API that made the call."""
        owner = await self._owner(request.match_info["correlation_id"])
        api = self._snapshot.api(owner.api_id) if owner is not None else None
        if owner is None or api is None:
            raise NotFound("no result at this location: unknown, expired, or not yours", code="result_not_found")
        policy, asked = policy_of(api, self._org_of(owner, api)), preflight_method(request)
        if policy is None or asked is None:
            raise MethodNotAllowed("a result's location takes GET", headers={"Allow": "GET"})
        return preflight_response(request, policy, ["GET"], asked)

    def _org_of(self, owner: Owner, api: dict[str, Any] | None) -> dict[str, Any] | None:
        """The organisation of a result's call: its API's (by the slug it has now, should it have changed since),
        else the one the call was made in."""
        slug = str(api.get("org") or owner.org) if api is not None else owner.org
        return self._snapshot.orgs.get(slug)

    async def _owner(self, correlation_id: str) -> Owner | None:
        """Who may read the result at this location (None: no such location; a malformed id is never looked up)."""
        return await self._results.owner(correlation_id) if _CORRELATION.fullmatch(correlation_id) else None

    def _timeout_ms(self, match: RouteMatch) -> int:
        return min(int(match.api.get("timeout_ms") or self._settings.default_timeout_ms), self._settings.max_timeout_ms)

    async def _soap(self, request: web.Request, org: str, path: str, match: RouteMatch) -> web.StreamResponse:
        """A SOAP API: ``GET ?wsdl`` serves its WSDL; a POSTed envelope becomes a JSON call, and the
        upstream's JSON answer the response envelope. Every error of a POST is a fault."""
        contract = self._contracts.of(match.api)
        if request.method in ("GET", "HEAD"):
            if not is_wsdl_request(request):
                raise MethodNotAllowed("a SOAP API takes POST; GET with ?wsdl serves its WSDL",
                                       headers={"Allow": "GET, POST"})
            await self._auth.admit(request, match)  # the WSDL is the API's: the same callers may read it
            return wsdl_response(contract, address_of(request, self._settings.public_base_url, org, path))
        version = guess_version(request.headers.get("Content-Type"))
        extra: dict[str, str] = {}
        try:
            admission = await self._auth.admit(request, match)
            extra = dict(admission.response_headers)
            body = await self._read_body(request)
            args = (body, request.headers.get("Content-Type"), request.headers.get("SOAPAction"), contract)
            call = await asyncio.to_thread(parse_call, *args) if len(body) > _INLINE_PARSE_BYTES else parse_call(*args)
            version = call.version
            headers = [(k, v) for k, v in decoded_headers(admission.headers) if k.lower() not in _SOAP_ONLY_HEADERS]
            headers += [("Content-Type", "application/json"), ("Accept", "application/json"),
                        ("Accept-Encoding", "identity"), (OPERATION_HEADER, call.operation.name)]
            arguments = json_bytes(call.arguments)
            reply = await self._soap_call(request, org, path, match, arguments, call.operation.name,
                                          dataclasses.replace(admission, headers=headers), extra)
            extra[CORRELATION_ID] = reply["correlation_id"]
            if reply["status"] >= 400:
                raise reply_error(reply)
            if call.operation.output is None:  # one-way: accepted, nothing to answer (WS-I Basic Profile)
                return web.Response(status=202, headers=extra)
            return web.Response(body=answer(version, call.operation, reply["body"]), headers=extra,
                                content_type=MEDIA_TYPE[version], charset="utf-8")
        except JunctionError as err:
            request[ANSWERED_ERROR] = err.code
            return fault_response(version, err, correlation_id=extra.get(CORRELATION_ID) or err.headers.get(CORRELATION_ID),
                                  headers=extra)

    async def _soap_call(self, request: web.Request, org: str, path: str, match: RouteMatch, arguments: bytes,
                         operation: str, admission: Admission, extra: dict[str, str]) -> dict[str, Any]:
        """The JSON call a SOAP request makes, once per Idempotency-Key, as a REST call's (the key's request is
        the operation and its arguments, not the envelope's wording); a repeat's reply is the first call's."""
        key = request.headers.get(KEY_HEADER)
        if key is None:
            return await self._call(request, org, path, match.api, match.path_params, arguments, self._timeout_ms(match),
                                    admission)
        correlation_id = uuid.uuid4().hex
        scope = caller_scope(admission.principal.consumer_id, request.headers.items())
        redis_key = self._keys.redis_key(org, str(match.api.get("id", "")), scope, key)
        fp = fingerprint("POST", path, [(OPERATION_HEADER, operation)], arguments)
        ttl_s = int(match.api.get("idempotency_ttl_s") or self._settings.idempotency_ttl_s)
        held = await self._keys.claim(redis_key, fp, correlation_id, ttl_s)
        if held is not None:
            reply = await self._first_reply(held, fp, ttl_s)
            extra[REPLAYED_HEADER] = "true"
            return reply
        try:
            reply = await self._call(request, org, path, match.api, match.path_params, arguments, self._timeout_ms(match),
                                     admission, correlation_id=correlation_id)
        except DeadlineExceeded:
            raise  # produced: the call may still finish, and its key stays held by it
        except JunctionError:
            await self._keys.release(redis_key, correlation_id)  # never produced: the key is free for a new attempt
            raise
        await self._keys.settle(redis_key, fp, correlation_id, reply, ttl_s)
        return reply

    async def _read_body(self, request: web.Request) -> bytes:
        """The body, decoded if the caller encoded it (its Content-Encoding then goes no further)."""
        return await read_body(request, self._settings.max_body_bytes)

    async def _call(
        self, request: web.Request, org: str, path: str, api: dict[str, Any], params: dict[str, str], body: bytes, timeout_ms: int,
        admission: Admission, *, correlation_id: str | None = None, deadline_ms: int | None = None, wait: bool = True,
        respond_async: bool = False,
    ) -> dict[str, Any]:
        """Produce the call and wait ``timeout_ms`` for its reply (unless ``wait`` is false). The call's own
        deadline is ``deadline_ms`` from now, by default the same."""
        received = _now_ms()
        wait_until = received + timeout_ms
        deadline = received + (deadline_ms or timeout_ms)
        correlation_id = correlation_id or uuid.uuid4().hex
        call = {
            "correlation_id": correlation_id,
            "org": org,
            "api_id": str(api.get("id", "")),
            "config_version": int(api.get("version", 0)),
            "method": request.method,
            "path": path,
            "path_params": params,
            "query": [{"name": k, "value": v} for k, v in admission.query],  # less the caller's credential
            "headers": [{"name": k, "value": v} for k, v in admission.headers],  # filtered once, in egress (core/headers.py)
            # Sealed for this correlation id only: it opens for processors, and for no other call.
            "sealed_credentials": self._auth.caller_auth.seal(admission.credential, correlation_id),
            "body": body,
            "received_at_ms": received,
            "deadline_ms": deadline,
            "reply_topic": self._settings.topics.replies,
            "reply_partition": self._replies.tp.partition,
            "attempt": 1,
            "idempotency_key": request.headers.get("Idempotency-Key"),
            "respond_async": respond_async,
        }
        waiter = self._replies.expect(correlation_id) if wait else None
        try:
            try:
                # asyncio.timeout, not wait_for: no task of its own for every call.
                async with asyncio.timeout(timeout_ms / 1000):
                    await self._producer.send_and_wait(self._settings.topics.requests, key=correlation_id.encode(),
                                                       value=encode("InboundCall", call))
            except TimeoutError:
                raise ServiceUnavailable("the broker did not accept the call in time", code="broker_unavailable") from None
            request[ENTERED] = correlation_id
            if waiter is None:
                return call
            remaining = (wait_until - _now_ms()) / 1000
            try:
                async with asyncio.timeout(max(remaining, 0.001)):
                    return await waiter
            except TimeoutError:
                raise DeadlineExceeded(
                    f"no reply within {timeout_ms} ms", headers={CORRELATION_ID: correlation_id}, extra={"timeout_ms": timeout_ms}
                ) from None
        finally:
            self._replies.forget(correlation_id)

    def _response(self, reply: dict[str, Any], *, head: bool = False) -> web.Response:
        """The Reply as the caller's answer. To a HEAD, the upstream's Content-Length is kept, the size a GET's
        body would have (RFC 9110 §9.3.2): elsewhere it is the framing of the body sent, which aiohttp sets."""
        filtered: CIMultiDict[str] = CIMultiDict(upstream_answer_headers((h["name"], h["value"]) for h in reply["headers"]))
        filtered[CORRELATION_ID] = reply["correlation_id"]
        length = _head_length(reply) if head else None
        if length is not None:
            filtered["Content-Length"] = length
        return web.Response(status=reply["status"], body=reply["body"], headers=filtered)


def _refuse_undecodable(raw_target: str) -> None:
    """400 for percent-escapes that are no UTF-8 text (``caf%E9``, ``%FF``), in the path or in a query name or
    value: the path and the query are matched and passed on as text, so such bytes would silently become
    others (U+FFFD, or an escaped ``%``), and two different requests one."""
    raw_path, _, raw_query = raw_target.partition("?")
    try:
        unquote_to_bytes(raw_path).decode("utf-8")
    except UnicodeDecodeError:
        raise ClientError("the path holds percent-escapes that are not UTF-8 text", code="invalid_path",
                          fields=[FieldError("(path)", "must be UTF-8 text once percent-decoded")]) from None
    for item in raw_query.split("&"):
        name, _, value = item.partition("=")
        for part, what in ((name, "name"), (value, "value")):
            try:
                unquote_to_bytes(part.replace("+", " ")).decode("utf-8")
            except UnicodeDecodeError:
                shown = unquote_to_bytes(name).decode("utf-8", "replace")[:64]
                raise ClientError(f"the query parameter {shown!r} has a {what} whose percent-escapes are not UTF-8 "
                                  "text", code="invalid_query",
                                  fields=[FieldError(f"query.{shown}", "must be UTF-8 text once percent-decoded")]) from None


def _head_length(reply: dict[str, Any]) -> str | None:
    """The Content-Length an answer to a HEAD came with, when it has no body and one valid length."""
    lengths = [h["value"].strip() for h in reply["headers"] if h["name"].lower() == "content-length"]
    if reply["body"] or len(set(lengths)) != 1 or not (lengths[0].isascii() and lengths[0].isdigit()):
        return None
    return lengths[0]
