"""The pool of long-lived worker processes that run connector scripts.

The caller side is fully async: workers are driven through
``loop.subprocess_exec`` pipes with a small framing protocol, one call at a
time per worker. A worker that overruns its wall-clock timeout, dies, breaks
the protocol or runs out of memory is killed and replaced in the background
while the other workers keep serving.
"""
from __future__ import annotations

import asyncio
import itertools
import logging
import os
import re
import signal
import sys
import warnings
from collections import deque
from collections.abc import Awaitable, Collection, Iterator
from typing import TYPE_CHECKING, Any

from core.errors import (
    FieldError,
    JunctionError,
    ServiceUnavailable,
    TransformError,
    TransformMemory,
    TransformTimeout,
)
from core.messages import encodable
from core.redaction import scrub

from ._protocol import HEADER, MAX_FRAME, ProtocolError, dumps, loads_untrusted
from .contract import ScriptRef, TransformResult
from .errors import ScriptCompileError

if TYPE_CHECKING:
    from core.settings import Settings

__all__ = ["SandboxPool", "pool_for"]

log = logging.getLogger("junction.sandbox")

_SANDBOX_DIR = os.path.dirname(os.path.abspath(__file__))
# Registers a bare ``sandbox`` package so the worker never runs sandbox/__init__.py
# (and so never imports ``core``); the repository root is not on its sys.path.
_BOOT = (
    "import sys,types;p=types.ModuleType('sandbox');p.__path__=[sys.argv[1]];"
    "sys.modules['sandbox']=p;from sandbox._worker import main;main(sys.argv[2:])"
)
_CODE = re.compile(r"^[a-z][a-z0-9_.\-]{0,63}$")
_START_TIMEOUT = 30.0
_MAX_STDERR_LINE = 2000


class _WorkerDied(Exception):
    pass


def _worker_env() -> dict[str, str]:
    return {"PATH": "/usr/local/bin:/usr/bin:/bin", "LANG": "C.UTF-8"}


class _Protocol(asyncio.SubprocessProtocol):
    """Frames from the worker's stdout; stderr goes to the log."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.buf = bytearray()
        self.frames: deque[bytes] = deque()
        self.waiter: asyncio.Future[bytes] | None = None
        self.failure: BaseException | None = None
        self.exited: asyncio.Future[None] = loop.create_future()
        self.err = bytearray()
        self.pid: int | None = None

    def pipe_data_received(self, fd: int, data: bytes) -> None:
        if fd == 1:
            self.buf += data
            self._parse()
        else:
            self.err += data
            while b"\n" in self.err:
                line, _, rest = bytes(self.err).partition(b"\n")
                self.err = bytearray(rest)
                self._log_stderr(line)
            if len(self.err) > _MAX_STDERR_LINE:
                self._log_stderr(bytes(self.err))
                self.err.clear()

    def _log_stderr(self, line: bytes) -> None:
        text = line[:_MAX_STDERR_LINE].decode("utf-8", "replace").rstrip()
        if text:
            log.warning("sandbox worker %s: %s", self.pid, text)

    def _parse(self) -> None:
        buf = self.buf
        while len(buf) >= HEADER.size:
            (size,) = HEADER.unpack_from(buf)
            if size > MAX_FRAME:
                self._fail(ProtocolError(f"worker frame of {size} bytes exceeds the limit"))
                return
            end = HEADER.size + size
            if len(buf) < end:
                return
            frame = bytes(buf[HEADER.size:end])
            del buf[:end]
            waiter = self.waiter
            if waiter is not None and not waiter.done():
                self.waiter = None
                waiter.set_result(frame)
            else:
                self.frames.append(frame)

    def _fail(self, exc: BaseException) -> None:
        if self.failure is None:
            self.failure = exc
        waiter = self.waiter
        if waiter is not None and not waiter.done():
            self.waiter = None
            waiter.set_exception(exc)

    def pipe_connection_lost(self, fd: int, exc: Exception | None) -> None:
        if fd == 1:
            self._fail(_WorkerDied("worker closed its output"))
        elif fd == 2 and self.err:
            self._log_stderr(bytes(self.err))
            self.err.clear()

    def process_exited(self) -> None:
        self._fail(_WorkerDied("worker exited"))
        if not self.exited.done():
            self.exited.set_result(None)

    def next_frame(self) -> asyncio.Future[bytes]:
        fut = self.loop.create_future()
        if self.frames:
            fut.set_result(self.frames.popleft())
        elif self.failure is not None:
            fut.set_exception(self.failure)
        else:
            self.waiter = fut
        return fut


class _Worker:
    __slots__ = ("transport", "proto", "stdin", "pid", "info", "dead")

    def __init__(self, transport: asyncio.SubprocessTransport, proto: _Protocol) -> None:
        self.transport = transport
        self.proto = proto
        self.stdin = transport.get_pipe_transport(0)
        self.pid = transport.get_pid()
        proto.pid = self.pid
        self.info: dict[str, Any] = {}
        self.dead = False

    def kill(self) -> None:
        self.dead = True
        try:
            self.transport.kill()
        except (ProcessLookupError, OSError):
            pass
        self.transport.close()

    async def wait_exit(self, timeout: float) -> int | None:
        try:
            async with asyncio.timeout(timeout):
                await asyncio.shield(self.proto.exited)
        except TimeoutError:
            pass
        return self.transport.get_returncode()


def pool_for(settings: Settings) -> SandboxPool:
    """The pool every service runs: its size and limits from settings, set in this one place."""
    return SandboxPool(workers=settings.sandbox_workers, cpu_ms=settings.sandbox_cpu_ms,
                       timeout_ms=settings.sandbox_timeout_ms, memory_mb=settings.sandbox_memory_mb)


class SandboxPool:
    """Runs connector scripts in ``workers`` long-lived, rlimited worker processes."""

    def __init__(self, *, workers: int = 2, cpu_ms: int = 1000, timeout_ms: int = 2000, memory_mb: int = 256) -> None:
        for name, value, low in (("workers", workers, 1), ("cpu_ms", cpu_ms, 1), ("timeout_ms", timeout_ms, 1),
                                 ("memory_mb", memory_mb, 64)):
            if type(value) is not int or value < low:
                raise ValueError(f"{name} must be an int >= {low}, got {value!r}")
        self._size = workers
        self._cpu_ms = cpu_ms
        self._timeout_ms = timeout_ms
        self._memory_mb = memory_mb
        self._loop: asyncio.AbstractEventLoop | None = None
        self._idle: asyncio.Queue[_Worker | None] | None = None
        self._workers: set[_Worker] = set()
        self._tasks: set[asyncio.Task[Any]] = set()
        self._seq = itertools.count(1)
        self._state = "new"
        self.replaced = 0  # workers replaced since start (for metrics and tests)

    # ------------------------------------------------------------ lifecycle

    @property
    def running(self) -> bool:
        return self._state == "running"

    async def check(self) -> None:
        """Readiness check: raise unless the pool takes calls."""
        if not self.running:
            raise RuntimeError(f"sandbox pool is {self._state}")

    async def start(self) -> None:
        if self._state == "running":
            return
        if self._state == "stopped":
            raise RuntimeError("a stopped SandboxPool cannot be restarted")
        self._loop = asyncio.get_running_loop()
        self._idle = asyncio.Queue()
        self._state = "running"
        results = await asyncio.gather(*(self._spawn() for _ in range(self._size)), return_exceptions=True)
        failures = [r for r in results if isinstance(r, BaseException)]
        for r in results:
            if isinstance(r, _Worker):
                self._idle.put_nowait(r)
        if failures:
            await self.stop()
            raise failures[0]

    async def stop(self) -> None:
        if self._state != "running":
            self._state = "stopped"
            return
        self._state = "stopped"
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        assert self._idle is not None
        self._idle.put_nowait(None)  # wakes every waiter in turn: the pool is gone
        workers = list(self._workers)
        self._workers.clear()
        for w in workers:
            w.dead = True
            w.stdin.close()  # EOF: the worker exits on its own
        for w in workers:
            rc = await w.wait_exit(1.0)
            if rc is None:
                w.kill()
                await w.wait_exit(1.0)
            w.transport.close()

    def __del__(self, _warn: Any = warnings.warn) -> None:
        if getattr(self, "_state", None) == "running":
            _warn(f"SandboxPool was never stopped ({len(self._workers)} workers)", ResourceWarning, source=self)
            for w in list(self._workers):
                try:
                    w.kill()
                except Exception:  # noqa: BLE001 - best effort at interpreter teardown
                    pass

    async def __aenter__(self) -> SandboxPool:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    # ------------------------------------------------------------ workers

    async def _spawn(self) -> _Worker:
        loop = asyncio.get_running_loop()
        transport, proto = await loop.subprocess_exec(
            lambda: _Protocol(loop),
            sys.executable, "-I", "-B", "-c", _BOOT, _SANDBOX_DIR, str(self._memory_mb), str(self._cpu_ms),
            stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
            env=_worker_env(), cwd="/", start_new_session=True, close_fds=True,
        )
        w = _Worker(transport, proto)  # type: ignore[arg-type]
        try:
            async with asyncio.timeout(_START_TIMEOUT):
                reply = loads_untrusted(await proto.next_frame())
            if not (isinstance(reply, tuple) and len(reply) == 3 and reply[1] == "ready"):
                raise ProtocolError(f"unexpected first frame from worker: {reply!r}")
            w.info = dict(reply[2])
            if w.info.get("core_loaded"):
                raise ProtocolError("sandbox worker imported the gateway's core package")
        except BaseException as exc:
            w.kill()
            await w.wait_exit(1.0)
            if isinstance(exc, (asyncio.CancelledError, KeyboardInterrupt)):
                raise
            raise ServiceUnavailable(f"sandbox worker failed to start: {exc}") from exc
        self._workers.add(w)
        return w

    def _retire(self, w: _Worker) -> None:
        """Kill ``w`` and start a replacement in the background."""
        if w in self._workers:
            self._workers.discard(w)
        w.kill()
        if self._state == "running":
            self.replaced += 1
            task = asyncio.get_running_loop().create_task(self._replace(w))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _replace(self, old: _Worker) -> None:
        await old.wait_exit(2.0)
        old.transport.close()
        delay = 0.05
        while self._state == "running":
            try:
                w = await self._spawn()
            except ServiceUnavailable as exc:
                log.error("cannot replace sandbox worker: %s (retrying in %.1fs)", exc, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)
                continue
            if self._state != "running":
                w.kill()
                return
            assert self._idle is not None
            self._idle.put_nowait(w)
            return

    # ------------------------------------------------------------ calls

    async def transform_request(self, script: ScriptRef, request: dict, ctx: dict, *,
                                secrets: Collection[str] = ()) -> TransformResult:
        """Run ``transform_request(request, ctx)`` of ``script`` on ``request``. ``secrets`` (the secret
        settings in ``ctx``) are replaced by ``[removed]`` in the error, reject message and log lines the
        run reports: those reach the caller, dead letters and request logs."""
        _check_input(request, _REQUEST_TYPES, "request")
        return await self._scrubbed(self._call("request", script, request, ctx), secrets)

    async def transform_response(self, script: ScriptRef, response: dict, ctx: dict, *,
                                 secrets: Collection[str] = ()) -> TransformResult:
        """Run ``transform_response(response, ctx)``; ``value`` is None if the script has none."""
        _check_input(response, _RESPONSE_TYPES, "response")
        return await self._scrubbed(self._call("response", script, response, ctx), secrets)

    @staticmethod
    async def _scrubbed(run: Awaitable[TransformResult], secrets: Collection[str]) -> TransformResult:
        if not secrets:
            return await run
        try:
            result = await run
        except JunctionError as err:
            err.message = scrub(err.message, secrets)
            err.args = (err.message,)
            err.extra["traceback"] = [scrub(line, secrets) for line in err.extra.get("traceback") or []]
            if hasattr(err, "script_logs"):
                err.script_logs = [scrub(line, secrets) for line in err.script_logs]
            err.fields = [FieldError(f.field, scrub(f.message, secrets)) for f in err.fields]
            raise
        return TransformResult(value=result.value, logs=[scrub(line, secrets) for line in result.logs])

    async def _call(self, kind: str, script: ScriptRef, payload: dict, ctx: dict) -> TransformResult:
        if not isinstance(script, ScriptRef):
            raise TypeError("script must be a ScriptRef")
        if self._state != "running" or self._idle is None:
            raise ServiceUnavailable("the sandbox pool is not running")
        seq = next(self._seq)
        frame = dumps((seq, kind, script.org, script.connector_id, script.version, script.source, payload,
                       _plain_ctx(ctx)))
        w = await self._idle.get()
        if w is None:
            self._idle.put_nowait(None)
            raise ServiceUnavailable("the sandbox pool is stopping")
        loop = asyncio.get_running_loop()
        started = loop.time()
        try:
            fut = w.proto.next_frame()
            w.stdin.write(frame)
            async with asyncio.timeout(self._timeout_ms / 1000.0):
                data = await fut
            reply = loads_untrusted(data)
        except TimeoutError:
            self._retire(w)
            raise TransformTimeout(
                f"connector script ran longer than {self._timeout_ms} ms; its worker was replaced",
                extra={"line": None, "traceback": []}) from None
        except (_WorkerDied, ProtocolError, ConnectionError) as exc:
            self._retire(w)
            rc = await w.wait_exit(1.0)
            raise self._death_error(exc, rc, (loop.time() - started) * 1000) from None
        except BaseException:
            self._retire(w)  # cancelled mid-call: the worker's state is unknown
            raise
        if not (isinstance(reply, tuple) and len(reply) == 3 and reply[0] == seq and isinstance(reply[2], tuple)):
            self._retire(w)
            raise TransformError("sandbox worker sent an out-of-order reply; it was replaced",
                                 extra={"line": None, "traceback": []})
        status = reply[1]
        if status == "memory":
            self._retire(w)  # a worker that hit its memory limit is not trusted to be healthy
        else:
            self._idle.put_nowait(w)
        return self._decode(kind, status, reply[2])

    def _death_error(self, exc: BaseException, rc: int | None, elapsed_ms: float) -> JunctionError:
        extra = {"line": None, "traceback": []}
        if isinstance(exc, ProtocolError):
            return TransformError(f"sandbox worker broke the protocol ({exc}); it was replaced", extra=extra)
        if rc == -signal.SIGXCPU:
            return TransformTimeout(f"connector script exceeded its CPU limit of {self._cpu_ms} ms", extra=extra)
        if rc is not None and (rc in (-signal.SIGKILL, -signal.SIGSEGV, -signal.SIGABRT, -signal.SIGBUS) or rc == 1):
            return TransformMemory(
                f"sandbox worker died (exit status {rc}), most likely out of memory "
                f"(limit {self._memory_mb} MB); it was replaced", extra=extra)
        return TransformError(f"sandbox worker exited unexpectedly (exit status {rc}); it was replaced", extra=extra)

    def _decode(self, kind: str, status: Any, data: tuple) -> TransformResult:
        if status == "ok" and len(data) == 2:
            value, logs = data
            if value is not None or kind == "request":
                _check_output(value, _REQUEST_TYPES if kind == "request" else _RESPONSE_TYPES, kind)
                _check_text(value, kind)
            return TransformResult(value=value, logs=_str_list(logs))
        if status == "error" and len(data) == 5:
            etype, message, line, tb, logs = data
            line = line if type(line) is int else None
            where = f" (script line {line})" if line is not None else ""
            # The script's own text (an exception's message) goes into the Reply and the dead letter.
            err = TransformError(encodable(f"connector script failed: {message}{where}"),
                                 extra={"line": line, "traceback": _str_list(tb)})
            err.script_logs = _str_list(logs)  # type: ignore[attr-defined]
            return _raise(err)
        if status == "reject" and len(data) == 4:
            code_status, message, code, logs = data
            if type(code_status) is not int or not 400 <= code_status <= 599:
                return _raise(TransformError(
                    f"connector script rejected the call with an invalid status {code_status!r} (must be 400..599)",
                    extra={"line": None, "traceback": []}))
            if type(code) is not str or not _CODE.match(code):
                return _raise(TransformError(
                    f"connector script rejected the call with an invalid code {code!r} "
                    "(lowercase letters, digits, '_', '.', '-'; at most 64)",
                    extra={"line": None, "traceback": []}))
            if type(message) is not str or not message:
                message = "rejected by connector script"
            err = JunctionError(encodable(message), code=code, status=code_status)
            err.script_logs = _str_list(logs)  # type: ignore[attr-defined]
            return _raise(err)
        if status == "cpu":
            return _raise(TransformTimeout(f"connector script exceeded its CPU limit of {self._cpu_ms} ms",
                                           extra={"line": None, "traceback": []}))
        if status == "memory" and len(data) == 2:
            line = data[0] if type(data[0]) is int else None
            return _raise(TransformMemory(
                f"connector script ran out of memory (limit {self._memory_mb} MB)",
                extra={"line": line, "traceback": []}))
        if status == "compile" and len(data) == 2 and type(data[0]) is int and type(data[1]) is str:
            raise ScriptCompileError(data[0], data[1])
        raise TransformError(f"sandbox worker sent an unknown reply {status!r}", extra={"line": None, "traceback": []})


def _raise(err: JunctionError) -> TransformResult:
    raise err


def _str_list(value: Any) -> list[str]:
    """The strings of a worker's list (log lines, traceback lines), each made encodable: they are
    written into dead letters and request logs."""
    if not isinstance(value, list):
        return []
    return [encodable(v) for v in value if type(v) is str]


_REQUEST_TYPES = {"method": str, "path": str, "path_params": dict, "query": list, "headers": list,
                  "body": bytes, "url": (str, type(None))}
_RESPONSE_TYPES = {"status": int, "headers": list, "body": bytes}


def _check_input(value: Any, types_: dict[str, Any], what: str) -> None:
    if not isinstance(value, dict):
        raise TypeError(f"{what} must be a dict")
    missing = [k for k in types_ if k not in value and k != "url"]
    if missing:
        raise TypeError(f"{what} is missing {', '.join(missing)}")


def _pairs_ok(value: Any) -> bool:
    return all(type(p) in (list, tuple) and len(p) == 2 and type(p[0]) is str and type(p[1]) is str for p in value)


def _check_output(value: Any, types_: dict[str, Any], what: str) -> None:
    """The worker is not trusted: check the shape of what it sent back."""
    ok = isinstance(value, dict) and set(value) == set(types_) and all(
        isinstance(value[k], t) for k, t in types_.items())
    if ok:
        ok = _pairs_ok(value["headers"]) and (what != "request" or (
            _pairs_ok(value["query"]) and all(type(k) is str and type(v) is str
                                              for k, v in value["path_params"].items())))
    if not ok:
        raise TransformError(f"sandbox worker returned a malformed {what}", extra={"line": None, "traceback": []})


def _valid_text(text: str) -> bool:
    """Whether UTF-8 can carry ``text``: a lone surrogate (``chr(0xdce9)``) cannot, so no message holding
    it could be written onto a topic. ASCII, nearly every header and parameter, is decided without encoding."""
    if text.isascii():
        return True
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _text_fields(value: dict, what: str) -> Iterator[tuple[str, str | None, str]]:
    """(kind, name or None, text) for every string of a request or response that travels on as it is; the
    place is worded only for one that fails (this runs on every transformed call)."""
    for name, header in value["headers"]:
        yield "header", name, name
        yield "header", name, header
    if what != "request":
        return
    for field_ in ("method", "path", "url"):
        if value[field_] is not None:
            yield f"request.{field_}", None, value[field_]
    for name, param in value["query"]:
        yield "query parameter", name, name
        yield "query parameter", name, param
    for name, param in value["path_params"].items():
        yield "path parameter", name, name
        yield "path parameter", name, param


def _check_text(value: dict, what: str) -> None:
    """Refuse a request or response holding text no message can carry: the script's bad output
    (``transform_failed``), not a failure of the stage that would write it."""
    for kind, name, text in _text_fields(value, what):
        if not _valid_text(text):
            where = kind if name is None else f"{kind} {encodable(name)!r}"
            raise TransformError(f"connector script output is not valid text: {where} holds a lone surrogate "
                                 "(a code point between U+D800 and U+DFFF)", extra={"line": None, "traceback": []})


def _plain_ctx(ctx: dict) -> dict:
    if not isinstance(ctx, dict):
        raise TypeError("ctx must be a dict")
    return {
        "org": ctx.get("org"),
        "consumer": ctx.get("consumer"),
        "api": ctx.get("api"),
        "api_id": ctx.get("api_id"),
        "config_version": ctx.get("config_version"),
        "connector_version": ctx.get("connector_version"),
        "settings": ctx.get("settings") or {},
    }
