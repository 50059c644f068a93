"""The sandbox worker process: reads calls from the pool, runs scripts, replies.

Started by :class:`sandbox.pool.SandboxPool` as ``python -I -B -c BOOT`` with an
empty environment (PATH only), no inherited file descriptors beyond the three
pipes, in its own session. ``BOOT`` registers a bare ``sandbox`` package
pointing at this folder, so the worker never executes ``sandbox/__init__.py``
and never imports ``core`` (settings, secrets) at all.

Setup order: import everything a script can reach, then set the rlimits, then
drop root to ``nobody`` where possible, then ``RLIMIT_NPROC=0``, then report
ready. Every call gets fresh globals, fresh request/response/ctx objects and a
re-armed CPU limit.
"""
from __future__ import annotations

import os
import pickle
import resource
import signal
import sys
import time
from collections import OrderedDict
from types import CodeType
from typing import Any

from ._compiler import compile_script, script_filename
from ._objects import Ctx, Reject, Request, Response, ScriptOutputError, export_request, export_response
from ._policy import STATE, base_globals, begin_call, end_call
from ._protocol import HEADER, MAX_FRAME, dumps

CACHE_SIZE = 256
NOBODY = 65534
MAX_TRACEBACK = 20
MAX_MESSAGE = 2000


class CpuLimitExceeded(BaseException):
    """Raised by the SIGXCPU handler while a script runs."""


def _on_sigxcpu(signum: int, frame: Any) -> None:
    if STATE.in_script:
        raise CpuLimitExceeded()


def _vm_kb() -> int:
    try:
        with open("/proc/self/status", "rb") as fh:
            for line in fh:
                if line.startswith(b"VmSize:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


_PRELOAD = (
    # Imported lazily by allowed modules; loaded now because after dropping to
    # ``nobody`` the Python installation may not be readable any more.
    "encodings.ascii", "encodings.latin_1", "encodings.utf_8", "encodings.utf_8_sig", "encodings.utf_16",
    "encodings.utf_16_le", "encodings.utf_16_be", "encodings.utf_32", "encodings.cp1252", "encodings.iso8859_1",
    "encodings.iso8859_15", "encodings.idna", "encodings.punycode", "encodings.raw_unicode_escape",
    "encodings.unicode_escape", "encodings.hex_codec", "encodings.base64_codec", "_strptime",
)


def _preload() -> None:
    import datetime
    import importlib
    import zoneinfo

    for name in _PRELOAD:
        try:
            importlib.import_module(name)
        except ImportError:  # pragma: no cover - optional codec
            pass
    datetime.datetime.strptime("2020-01-02", "%Y-%m-%d")
    time.strptime("2020", "%Y")
    try:
        zoneinfo.ZoneInfo("UTC")
        zoneinfo.ZoneInfo("Europe/Amsterdam")
    except Exception:  # noqa: BLE001 - no tz database on this host
        pass


def _setlimit(which: int, soft: int, hard: int | None = None) -> None:
    try:
        cur_soft, cur_hard = resource.getrlimit(which)
        if hard is None:
            hard = soft if cur_hard == resource.RLIM_INFINITY or soft <= cur_hard else cur_hard
        resource.setrlimit(which, (soft, hard))
    except (ValueError, OSError) as exc:
        print(f"sandbox worker: cannot set rlimit {which}: {exc}", file=sys.stderr)


def _apply_limits(memory_mb: int) -> dict[str, Any]:
    info: dict[str, Any] = {}
    _setlimit(resource.RLIMIT_CORE, 0)
    _setlimit(resource.RLIMIT_FSIZE, 0)
    _setlimit(resource.RLIMIT_NOFILE, 16)
    if memory_mb > 0:
        _setlimit(resource.RLIMIT_AS, memory_mb * 1024 * 1024)
    # Drop root: with a non-root uid RLIMIT_NPROC is enforced and file
    # permissions apply. Root ignores RLIMIT_NPROC.
    if os.geteuid() == 0:
        try:
            os.setgroups([])
            os.setgid(NOBODY)
            os.setuid(NOBODY)
        except OSError as exc:
            print(f"sandbox worker: cannot drop root privileges: {exc}", file=sys.stderr)
    _setlimit(resource.RLIMIT_NPROC, 0, 0)
    info["uid"] = os.geteuid()
    return info


class _Cpu:
    """Per-call CPU budget on top of a cumulative RLIMIT_CPU (1 s granularity)."""

    def __init__(self, cpu_ms: int) -> None:
        self.budget = max(cpu_ms, 1) / 1000.0
        self.last = -1

    def arm(self) -> None:
        soft = int(time.process_time() + self.budget) + 1
        if soft != self.last:
            hard = resource.getrlimit(resource.RLIMIT_CPU)[1]
            if hard != resource.RLIM_INFINITY and soft > hard:
                soft = hard
            resource.setrlimit(resource.RLIMIT_CPU, (soft, hard))
            self.last = soft


class _Entry:
    __slots__ = ("source", "code", "lines", "filename")

    def __init__(self, source: str, code: CodeType, filename: str) -> None:
        self.source = source
        self.code = code
        self.lines = source.splitlines()
        self.filename = filename


def _script_traceback(exc: BaseException, entry: _Entry) -> tuple[int | None, list[str]]:
    frames = []
    tb = exc.__traceback__
    while tb is not None:
        code = tb.tb_frame.f_code
        if code.co_filename == entry.filename:
            frames.append((tb.tb_lineno, code.co_name))
        tb = tb.tb_next
    out = []
    for lineno, name in frames[-MAX_TRACEBACK:]:
        text = entry.lines[lineno - 1].strip() if 0 < lineno <= len(entry.lines) else ""
        where = "<module>" if name == "<module>" else name
        out.append(f"line {lineno}, in {where}: {text}" if text else f"line {lineno}, in {where}")
    line = frames[-1][0] if frames else None
    return line, out


def _describe(exc: BaseException) -> str:
    try:
        text = str(exc)
    except BaseException:  # noqa: BLE001 - a script's __str__ may raise anything
        text = "<unprintable>"
    name = type(exc).__name__
    message = f"{name}: {text}" if text else name
    return message if len(message) <= MAX_MESSAGE else message[:MAX_MESSAGE] + "…"


class Worker:
    def __init__(self, cpu_ms: int) -> None:
        self.cache: OrderedDict[tuple, _Entry] = OrderedDict()
        self.base = base_globals()
        self.cpu = _Cpu(cpu_ms)

    def _entry(self, org: str, connector_id: str, version: int, source: str) -> _Entry | tuple[int, str]:
        key = (org, connector_id, version)
        entry = self.cache.get(key)
        if entry is not None and entry.source == source:
            self.cache.move_to_end(key)
            return entry
        filename = script_filename(org, connector_id, version)
        code, line, message = compile_script(source, filename)
        if code is None:
            return line, message
        entry = _Entry(source, code, filename)
        self.cache[key] = entry
        if len(self.cache) > CACHE_SIZE:
            self.cache.popitem(last=False)
        return entry

    def handle(self, msg: tuple) -> tuple:
        seq, kind, org, connector_id, version, source, payload, ctx = msg
        entry = self._entry(org, connector_id, version, source)
        if not isinstance(entry, _Entry):
            return (seq, "compile", entry)
        logs = begin_call()
        g = dict(self.base)
        try:
            self.cpu.arm()
            STATE.in_script = True
            exec(entry.code, g)
            if kind == "request":
                fn = g.get("transform_request")
                obj: Any = Request(payload)
            else:
                fn = g.get("transform_response")
                if fn is None:
                    STATE.in_script = False
                    return (seq, "ok", (None, logs.export()))
                obj = Response(payload)
            if not callable(fn):
                STATE.in_script = False
                return (seq, "error", ("TypeError", f"transform_{kind} is not a function", None, [], logs.export()))
            returned = fn(obj, Ctx(ctx, logs))
            STATE.in_script = False
            value = export_request(obj, returned) if kind == "request" else export_response(obj, returned)
            return (seq, "ok", (value, logs.export()))
        except Reject as exc:
            STATE.in_script = False
            return (seq, "reject", (_plain(exc.status), _plain(exc.message), _plain(exc.code), logs.export()))
        except CpuLimitExceeded:
            STATE.in_script = False
            return (seq, "cpu", (logs.export(),))
        except MemoryError as exc:
            STATE.in_script = False
            line, tb = _script_traceback(exc, entry)
            return (seq, "memory", (line, logs.export()))
        except ScriptOutputError as exc:
            STATE.in_script = False
            return (seq, "error", ("ScriptOutputError", str(exc), None, [], logs.export()))
        except BaseException as exc:  # noqa: BLE001 - anything a script raises is its error
            STATE.in_script = False
            line, tb = _script_traceback(exc, entry)
            return (seq, "error", (type(exc).__name__[:200], _describe(exc), line, tb, logs.export()))
        finally:
            STATE.in_script = False
            end_call()
            g.clear()


def _plain(value: Any) -> Any:
    """Only plain built-in values leave the worker; anything else becomes its repr-free type name."""
    if value is None or type(value) in (bool, int, float):
        return value
    if type(value) is str:
        return value[:MAX_MESSAGE]
    return f"<{type(value).__name__}>"


def _read_exact(fh: Any, n: int) -> bytes | None:
    data = fh.read(n)
    if data is None or len(data) < n:
        return None
    return data


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        view = view[written:]


def main(argv: list[str]) -> None:
    memory_mb, cpu_ms = int(argv[0]), int(argv[1])
    in_fd, out_fd = os.dup(0), os.dup(1)
    null = os.open(os.devnull, os.O_RDWR)
    os.dup2(null, 0)
    os.dup2(2, 1)  # stray output goes to stderr, never into the protocol pipe
    os.close(null)
    for fd in (in_fd, out_fd):
        os.set_inheritable(fd, False)
    signal.signal(signal.SIGXCPU, _on_sigxcpu)
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    worker = Worker(cpu_ms)
    _preload()
    vm_before = _vm_kb()
    info = _apply_limits(memory_mb)
    info.update(pid=os.getpid(), vm_kb=vm_before, core_loaded=any(m == "core" or m.startswith("core.") for m in sys.modules))
    inp = open(in_fd, "rb", buffering=1 << 16)
    _write_all(out_fd, dumps((0, "ready", info)))
    while True:
        header = _read_exact(inp, HEADER.size)
        if header is None:
            return
        (size,) = HEADER.unpack(header)
        data = _read_exact(inp, size)
        if data is None:
            return
        reply = worker.handle(pickle.loads(data))
        try:
            frame = dumps(reply)
        except MemoryError:
            frame = dumps((reply[0], "memory", (None, [])))
        except Exception as exc:  # noqa: BLE001 - e.g. a script-defined str subclass in the output
            frame = dumps((reply[0], "error", ("ScriptOutputError",
                                               f"the transform produced a value that cannot be returned: {exc}",
                                               None, [], [])))
        if len(frame) > MAX_FRAME:
            frame = dumps((reply[0], "error", ("ScriptOutputError",
                                               f"the transform result is larger than {MAX_FRAME} bytes", None, [], [])))
        _write_all(out_fd, frame)
