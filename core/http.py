"""What every HTTP-serving process shares: the error middleware, health and
metrics endpoints, and the hardened server they run on.

Handlers raise :mod:`core.errors`; one middleware renders them once as
``{"code", "message", "fields"?}`` JSON. ``CancelledError`` is never swallowed.

Below the application, aiohttp's protocol layer answers what never reaches a
handler (a malformed request line, an oversized head, bytes that are not
HTTP). :func:`serve` runs every listener on :class:`_Protocol`, which answers
those in the same JSON error model, never echoes the input, and logs each once
at INFO without a traceback. It also bounds how long a client may take to send
its request head and body, and how many connections a listener holds.
"""
from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import resource
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from http import HTTPStatus
from typing import Any, cast

from aiohttp import StreamReader, http_exceptions, web

from core.errors import ClientError, FieldError, JunctionError, MethodNotAllowed, NotFound, ServiceUnavailable
from core.loop_lag import sample_loop_lag
from core.settings import InvalidConfiguration, Settings

__all__ = [
    "REQUEST_ID", "REQUEST_ID_KEY", "SERVE_OPTIONS", "HttpLimits", "ReadinessCheck", "ServeOptions",
    "error_middleware", "error_response", "health_routes", "json_response", "listening", "metrics_routes",
    "serve", "serve_options",
]

log = logging.getLogger(__name__)

REQUEST_ID = "X-Request-Id"
REQUEST_ID_KEY = web.RequestKey("request_id", str)
ReadinessCheck = Callable[[], Awaitable[None]]
_MAX_REQUEST_ID = 128


def json_response(data: Any, *, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    return web.Response(
        body=json.dumps(data, separators=(",", ":"), default=str).encode(),
        status=status,
        content_type="application/json",
        headers=headers,
    )


def error_response(err: JunctionError, *, request_id: str | None = None) -> web.Response:
    headers = dict(err.headers)
    if request_id:
        headers[REQUEST_ID] = request_id
    body = err.to_dict()
    if request_id:
        body.setdefault("request_id", request_id)
    return json_response(body, status=err.status, headers=headers)


def _request_id(request: web.Request) -> str:
    """The caller's request id when it is a short printable ASCII token (it is echoed), else a new one."""
    given = request.headers.get(REQUEST_ID, "")
    if given and len(given) <= _MAX_REQUEST_ID and given.isascii() and given.isprintable():
        return given
    return uuid.uuid4().hex


def _check_headers(request: web.Request) -> None:
    """Header values must be UTF-8: aiohttp hands undecodable bytes on as lone
    surrogates, which nothing downstream (Avro, JSON, a response header) can encode."""
    for name, value in request.headers.items():
        if value.isascii():
            continue
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            # Names are HTTP tokens (ASCII), checked by the parser, so naming one echoes nothing unsafe.
            raise ClientError(f"header {name} is not valid UTF-8", code="invalid_header",
                              fields=[FieldError(name, "is not valid UTF-8")]) from None


@web.middleware
async def error_middleware(request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]) -> web.StreamResponse:
    request_id = _request_id(request)
    request[REQUEST_ID_KEY] = request_id
    try:
        _check_headers(request)
        response = await handler(request)
    except JunctionError as err:
        response = error_response(err, request_id=request_id)
        if isinstance(request.protocol, _Protocol) and request.protocol.closing:
            # The connection closes after this answer (a body that timed out or could not be decoded): say so,
            # or a client that keeps connections alive sends its next request into a closed one.
            response.force_close()
        return response
    except web.HTTPNotFound:
        return error_response(NotFound(f"no route for {request.path}"), request_id=request_id)
    except web.HTTPMethodNotAllowed as exc:
        return error_response(
            MethodNotAllowed(f"{request.method} is not allowed here", headers={"Allow": ",".join(sorted(exc.allowed_methods))}),
            request_id=request_id,
        )
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        err = JunctionError(exc.reason, status=exc.status, code=exc.reason.lower().replace(" ", "_"))
        return error_response(err, request_id=request_id)
    except asyncio.CancelledError:
        raise
    except Exception as exc:
        unavailable = store_unavailable(exc)
        if unavailable is not None:
            log.warning("%s %s: %s (%s: %s)", request.method, request.path, unavailable.message, type(exc).__name__, exc)
            return error_response(unavailable, request_id=request_id)
        log.exception("unhandled error on %s %s", request.method, request.path)
        return error_response(JunctionError("internal error"), request_id=request_id)
    if not response.prepared:
        response.headers.setdefault(REQUEST_ID, request_id)
    return response


READY_TIMEOUT_S = 2.0


def store_unavailable(exc: BaseException) -> JunctionError | None:
    """The 503 of a store that is down or stopped answering (JUNCTION_STORE_TIMEOUT_MS), or None: the
    caller may try again, and nothing about it is an internal error."""
    import asyncpg
    import redis.exceptions

    if isinstance(exc, (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError)):
        return ServiceUnavailable("Redis is not answering; try again shortly", code="redis_unavailable",
                                  headers={"Retry-After": "1"})
    if isinstance(exc, (asyncpg.PostgresConnectionError, asyncpg.exceptions.ConnectionDoesNotExistError,
                        asyncpg.exceptions.CannotConnectNowError, asyncpg.exceptions.TooManyConnectionsError)):
        return ServiceUnavailable("PostgreSQL is not answering; try again shortly", code="database_unavailable",
                                  headers={"Retry-After": "1"})
    return None


def _consume_outcome(task: "asyncio.Future[Any]") -> None:
    """Retrieve a readiness check's late outcome, so that it is never reported as an exception nobody read."""
    if not task.cancelled():
        task.exception()


def health_routes(checks: dict[str, ReadinessCheck]) -> list[web.RouteDef]:
    """``/healthz`` answers while the process lives; ``/readyz`` runs every check.

    ``/metrics`` is not among them: it is served on a listener of its own
    (:func:`metrics_routes`, :class:`ServeOptions`), on loopback by default.
    """

    async def healthz(request: web.Request) -> web.Response:
        return json_response({"status": "ok"})

    async def readyz(request: web.Request) -> web.Response:
        # All at once, and not waiting for a late check to finish cancelling: a client cancelled against a
        # frozen server can take as long to let go as it took to hang (asyncpg's does), and the probe must
        # answer within its bound whatever the dependency does.
        tasks = {name: asyncio.ensure_future(check()) for name, check in checks.items()}
        if tasks:
            await asyncio.wait(tasks.values(), timeout=READY_TIMEOUT_S)
        results: dict[str, str] = {}
        for name, task in tasks.items():
            if not task.done():
                task.cancel()
                task.add_done_callback(_consume_outcome)
                results[name] = f"TimeoutError: no answer within {READY_TIMEOUT_S:g} s"
            elif task.cancelled():
                results[name] = "cancelled"
            elif task.exception() is not None:  # a failing dependency is the answer, not an error
                exc = task.exception()
                results[name] = f"{type(exc).__name__}: {exc}"[:200]
            else:
                results[name] = "ok"
        ok = all(v == "ok" for v in results.values())
        return json_response({"status": "ok" if ok else "unavailable", "checks": results}, status=200 if ok else 503)

    return [web.get("/healthz", healthz), web.get("/readyz", readyz)]


def metrics_routes() -> list[web.RouteDef]:
    """``/metrics``: this process's registry in the Prometheus text format."""

    async def metrics(request: web.Request) -> web.Response:
        from core.metrics import CONTENT_TYPE_LATEST, render

        return web.Response(body=render(), headers={"Content-Type": CONTENT_TYPE_LATEST})

    return [web.get("/metrics", metrics)]


# --- serving -------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class HttpLimits:
    """What one listener allows a client (JUNCTION_HTTP_*)."""

    header_timeout_s: float
    body_timeout_s: float
    keepalive_timeout_s: float
    max_connections: int

    @classmethod
    def from_settings(cls, settings: Settings) -> "HttpLimits":
        for name in ("http_header_timeout_ms", "http_body_timeout_ms", "http_keepalive_timeout_ms", "http_max_connections"):
            if getattr(settings, name) < 1:
                raise InvalidConfiguration(f"JUNCTION_{name.upper()} must be positive")
        return cls(settings.http_header_timeout_ms / 1000, settings.http_body_timeout_ms / 1000,
                   settings.http_keepalive_timeout_ms / 1000, settings.http_max_connections)


@dataclass(frozen=True)
class ServeOptions:
    """How :func:`serve` runs an application: its limits, and where its ``/metrics`` listener goes."""

    limits: HttpLimits
    metrics_host: str = "127.0.0.1"
    metrics_port: int = 0  # 0: no metrics listener
    # Hand request bodies to the handler as sent, Content-Encoding undone by nobody: ingress decodes them
    # itself, under its body limit (ingress/compression.py). Others let aiohttp decode them.
    raw_bodies: bool = False
    loop_lag_interval_s: float = 0.5  # with a metrics listener: how often the event-loop lag is sampled (0: never)


SERVE_OPTIONS = web.AppKey("serve_options", ServeOptions)


def serve_options(settings: Settings, *, metrics_port: int) -> ServeOptions:
    """The options of a service whose metrics listener is ``metrics_port`` (one of the *_metrics_port settings)."""
    return ServeOptions(HttpLimits.from_settings(settings), settings.metrics_host, metrics_port,
                        loop_lag_interval_s=settings.loop_lag_interval_ms / 1000)


# JSON is never a document to render: nothing may load from it, nothing may frame it. Every error the
# protocol layer answers carries them; control adds them to all its responses (control/middleware.py).
SECURITY_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "Content-Security-Policy": "default-src 'none'; frame-ancestors 'none'",
    "Referrer-Policy": "no-referrer",
}


def _raw_error(err: JunctionError) -> bytes:
    """A whole HTTP/1.1 error response for the protocol layer, where no request object exists."""
    body = json.dumps(err.to_dict(), separators=(",", ":")).encode()
    head = (f"HTTP/1.1 {err.status} {HTTPStatus(err.status).phrase}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\nConnection: close\r\n")
    head += "".join(f"{k}: {v}\r\n" for k, v in {**SECURITY_HEADERS, **err.headers}.items())
    return head.encode("ascii") + b"\r\n" + body


def _bad_input(exc: BaseException | None, listener: "_Listener") -> JunctionError:
    """The client-visible error for what aiohttp's parser refused. Messages are ours: the
    parser's own quote the input."""
    if isinstance(exc, http_exceptions.LineTooLong):
        return ClientError("a line of the request head is longer than the server accepts", status=431,
                           code="header_too_large", extra={"limit_bytes": listener.max_line_size})
    if isinstance(exc, http_exceptions.BadHttpMessage) and exc.message == "Too many headers received":
        return ClientError("the request has more header fields than the server accepts", status=431,
                           code="too_many_headers", extra={"limit": listener.max_headers})
    if isinstance(exc, http_exceptions.BadHttpMethod):
        if exc.message == "Received HTTPS traffic on an HTTP port":
            return ClientError("TLS was sent to a plain-HTTP port", code="bad_request")
        return ClientError("the request method is not one this server implements", status=501,
                           code="method_not_implemented")
    if isinstance(exc, http_exceptions.InvalidURLError):
        return ClientError("the request target has characters that are not allowed", code="invalid_path")
    if isinstance(exc, http_exceptions.BadStatusLine):
        return ClientError("the request line is malformed", code="bad_request")
    message = exc.message if isinstance(exc, http_exceptions.HttpProcessingError) else ""
    if isinstance(exc, http_exceptions.InvalidHeader) or message.startswith(
        ("Invalid header", "Invalid character in Content-Length", "Duplicate", "Missing 'Host'")
    ):
        return ClientError("a header field is malformed", code="invalid_header")
    if message.startswith(("Content-Length can't be present with Transfer-Encoding", "Transfer-Encoding can't be present")):
        return ClientError("the request frames its body twice (Content-Length and Transfer-Encoding); send one",
                           code="malformed_body")
    if isinstance(exc, http_exceptions.PayloadEncodingError) or message.startswith(("Invalid character in chunk", "Invalid chunk")):
        return ClientError("the request body is not framed as its headers say", code="malformed_body")
    return ClientError("the request is not valid HTTP/1.1", code="bad_request")


class _Listener:
    """State one listening socket shares between its connections: the limits and the open count."""

    max_line_size = 8190
    max_field_size = 8190
    max_headers = 128

    def __init__(self, name: str, limits: HttpLimits, *, raw_bodies: bool = False) -> None:
        self.name = name
        self.limits = limits
        self.raw_bodies = raw_bodies
        self.open = 0
        self.saturated = False

    def opened(self) -> bool:
        """Count a new connection in; False when the cap is reached (the caller refuses it)."""
        if self.open >= self.limits.max_connections:
            if not self.saturated:
                self.saturated = True
                log.warning("%s: %d connections open, the JUNCTION_HTTP_MAX_CONNECTIONS cap; refusing new ones",
                            self.name, self.open)
            return False
        self.open += 1
        return True

    def closed(self) -> None:
        self.open -= 1
        if self.saturated and self.open < self.limits.max_connections:
            self.saturated = False
            log.info("%s: below the connection cap again (%d open)", self.name, self.open)


class _Refused(asyncio.Protocol):
    """A connection over the cap: one 503 JSON answer, then closed, before anything is read."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        transport = cast(asyncio.Transport, transport)  # uvloop's is not an asyncio.Transport subclass
        err = JunctionError("too many open connections; retry shortly", status=503, code="too_many_connections",
                            headers={"Retry-After": "1"})
        transport.write(_raw_error(err))
        transport.close()


LINGER_S = 1.0  # how long a connection answered with an error still reads (and drops) what its peer sends


class _Protocol(web.RequestHandler):
    """aiohttp's request handler with JSON protocol errors and head/body deadlines.

    - Head: a new connection must deliver a complete request head within the
      header timeout; on a kept-alive connection the clock starts at the next
      request's first byte (idle time is bounded by the keep-alive timeout, as
      is a partial head that came in the same packet as the end of the request
      before it). When it expires with part of a head received, the client gets
      408 ``request_timeout`` and the connection closes; with nothing received
      it just closes (there is no request to answer).
    - Body: the whole body must arrive within the body timeout from the end of
      the head. When it expires the handler's read raises 408
      ``request_timeout`` (rendered by :func:`error_middleware`) and the
      connection closes after that answer.
    """

    __slots__ = ("_listener", "_timer", "_head_bytes", "_body", "_counted", "_lingering")

    def __init__(self, manager: web.Server, *, loop: asyncio.AbstractEventLoop, listener: _Listener) -> None:
        super().__init__(
            manager, loop=loop, access_log=None, keepalive_timeout=listener.limits.keepalive_timeout_s,
            max_line_size=listener.max_line_size, max_field_size=listener.max_field_size, max_headers=listener.max_headers,
            auto_decompress=not listener.raw_bodies,
        )
        self._listener = listener
        self._timer: asyncio.TimerHandle | None = None
        self._head_bytes = 0  # bytes of a request head received so far; -1 while no head is awaited
        self._body: StreamReader | None = None  # the body still arriving, if any
        self._counted = True
        self._lingering = False  # answered and half-closed: what the peer still sends is dropped

    @property
    def closing(self) -> bool:
        """Whether the connection closes once the current request is answered."""
        return self._close or self._force_close

    # -- connection -----------------------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        self._head_bytes = 0
        self._arm(self._listener.limits.header_timeout_s, self._head_timeout)

    def connection_lost(self, exc: BaseException | None) -> None:
        self._disarm()
        if self._counted:
            self._counted = False
            self._listener.closed()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self._lingering:
            return
        if self._close or self._force_close or self._upgraded:
            super().data_received(data)
            return
        if data and self._body is None and self._timer is None:
            # Between requests on a kept-alive connection: this is the next head's first byte.
            self._head_bytes = 0
            self._arm(self._listener.limits.header_timeout_s, self._head_timeout)
        queued = len(self._messages)
        super().data_received(data)
        if len(self._messages) > queued:
            # Heads are complete (or refused by the parser); only the last can still have a body arriving.
            self._disarm()
            self._head_bytes = -1
            self._body = None
            payload = self._messages[-1][1]
            if not payload.is_eof():
                self._body = payload
                self._arm(self._listener.limits.body_timeout_s, self._body_timeout)
                payload.on_eof(lambda: self._body_complete(payload))
        elif self._body is None and self._head_bytes >= 0:
            self._head_bytes += len(data)

    # -- deadlines ------------------------------------------------------------------------------------

    def _arm(self, seconds: float, callback: Callable[[], None]) -> None:
        self._disarm()
        self._timer = self._loop.call_later(seconds, callback)

    def _disarm(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _body_complete(self, payload: StreamReader) -> None:
        if self._body is payload:
            self._disarm()
            self._body = None

    def _head_timeout(self) -> None:
        self._timer = None
        if self.transport is None or self._force_close:
            return
        ms = round(self._listener.limits.header_timeout_s * 1000)
        if self._messages or self._current_request is not None:
            # A pipelined head stalled behind a request still being answered: let that answer go out, then close.
            log.info("%s: pipelined request head from %s incomplete after %d ms (request_timeout); closing after "
                     "the current answer", self._listener.name, self._peer(), ms)
            self.close()
            return
        if self._head_bytes > 0:
            log.info("%s: request head from %s incomplete after %d ms (request_timeout); answered 408 and closed",
                     self._listener.name, self._peer(), ms)
            self.transport.write(_raw_error(ClientError(f"the request head did not arrive within {ms} ms",
                                                        status=408, code="request_timeout")))
            self._linger()
            return
        log.info("%s: no request from %s within %d ms (request_timeout); closed", self._listener.name, self._peer(), ms)
        self.force_close()

    def _linger(self) -> None:
        """Close after an answer the peer may still be talking over (RFC 9112 §9.6): half-close, drop what it
        still sends, and close for good after ``LINGER_S``. Closing at once, with its bytes unread, makes the
        kernel reset the connection, and a reset can discard the 408 before the peer has read it."""
        self._disarm()
        self._lingering = True
        transport = self.transport
        if transport is not None and transport.can_write_eof():
            transport.write_eof()
        asyncio.get_running_loop().call_later(LINGER_S, self.force_close)

    def _body_timeout(self) -> None:
        self._timer = None
        payload, self._body = self._body, None
        if payload is None or payload.is_eof() or self.transport is None:
            return
        ms = round(self._listener.limits.body_timeout_s * 1000)
        log.info("%s: request body from %s incomplete after %d ms (request_timeout)", self._listener.name, self._peer(), ms)
        current = self._current_request
        unanswered = (current is not None and current.content is payload) or any(p is payload for _, p in self._messages)
        if not unanswered:
            # Its handler has answered already; aiohttp is only draining the rest. Nothing more to say.
            self.force_close()
            return
        # Stop reading, fail the handler's read (error_middleware answers 408), then close.
        self.close()
        payload.set_exception(ClientError(f"the request body did not arrive within {ms} ms", status=408,
                                          code="request_timeout"))
        payload.feed_eof()

    def _peer(self) -> str:
        peer = self.peername
        return f"{peer[0]}:{peer[1]}" if isinstance(peer, tuple) else str(peer)

    # -- errors the parser and aiohttp raise ----------------------------------------------------------

    def handle_error(self, request: web.BaseRequest, status: int = 500, exc: BaseException | None = None,
                     message: str | None = None) -> web.StreamResponse:
        if status == 500:
            log.error("%s: unhandled error answering %s", self._listener.name, self._peer(), exc_info=exc)
            err: JunctionError = JunctionError("internal error")
        elif status == 504:
            err = JunctionError("the handler timed out", status=504, code="deadline_exceeded")
        else:
            err = _bad_input(exc, self._listener)
            log.info("%s: refused a malformed request from %s: %d %s (%s)", self._listener.name, self._peer(),
                     err.status, err.code, type(exc).__name__ if exc is not None else "-")
        if request.writer.output_size > 0:
            raise ConnectionError("Response is sent already, cannot send another response with the error message")
        response = json_response(err.to_dict(), status=err.status, headers={**SECURITY_HEADERS, **err.headers})
        response.force_close()
        return response


class _Site(web.BaseSite):
    """A TCP listener whose connections run on :class:`_Protocol`, up to the connection cap."""

    __slots__ = ("_host", "_port", "_listener")

    def __init__(self, runner: web.AppRunner, host: str, port: int, listener: _Listener) -> None:
        super().__init__(runner, backlog=1024)
        self._host = host
        self._port = port
        self._listener = listener

    @property
    def name(self) -> str:
        return f"http://{self._host}:{self._port}"

    async def start(self) -> None:
        await super().start()
        loop = asyncio.get_running_loop()
        server = self._runner.server
        assert server is not None
        listener = self._listener

        def connection() -> asyncio.Protocol:
            if not listener.opened():
                return _Refused()
            return _Protocol(server, loop=loop, listener=listener)

        self._server = await loop.create_server(connection, self._host, self._port, backlog=self._backlog,
                                                reuse_address=True)


def _raise_open_files(max_connections: int) -> None:
    """Each connection is a file descriptor: lift the soft limit (where the hard one allows) so that the
    cap, not EMFILE at accept, is what refuses connections."""
    wanted = max_connections + 1024  # headroom for the broker, database and Redis clients, and the metrics listener
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY or soft >= wanted:
        return
    target = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
    if target > soft:
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            soft = target
    if soft < max_connections:
        log.warning("the open-file limit (%d) is below JUNCTION_HTTP_MAX_CONNECTIONS (%d): connections beyond it "
                    "fail at accept instead of being answered 503", soft, max_connections)


@contextlib.asynccontextmanager
async def listening(app: web.Application, host: str, port: int) -> AsyncIterator[None]:
    """Serve ``app`` on ``host:port`` (and its metrics listener, if its :data:`SERVE_OPTIONS` name one)
    for the block, then shut down gracefully."""
    options = app.get(SERVE_OPTIONS) or ServeOptions(HttpLimits.from_settings(Settings()))
    _raise_open_files(options.limits.max_connections)
    async with contextlib.AsyncExitStack() as stack:
        runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await runner.setup()
        stack.push_async_callback(runner.cleanup)
        await _Site(runner, host, port, _Listener(f"{host}:{port}", options.limits, raw_bodies=options.raw_bodies)).start()
        log.info("listening on http://%s:%s", host, port)
        if options.metrics_port:
            metrics = web.Application(middlewares=[error_middleware])
            metrics.add_routes(metrics_routes())
            metrics_runner = web.AppRunner(metrics, access_log=None, handle_signals=False)
            await metrics_runner.setup()
            stack.push_async_callback(metrics_runner.cleanup)
            where = f"{options.metrics_host}:{options.metrics_port}"
            await _Site(metrics_runner, options.metrics_host, options.metrics_port, _Listener(where, options.limits)).start()
            log.info("metrics on http://%s/metrics", where)
            await stack.enter_async_context(sample_loop_lag(options.loop_lag_interval_s))
        yield


async def serve(app: web.Application, host: str, port: int, stop: asyncio.Event) -> None:
    """Run ``app`` until ``stop`` is set, then shut down gracefully."""
    async with listening(app, host, port):
        await stop.wait()
