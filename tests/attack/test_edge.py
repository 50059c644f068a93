"""The HTTP edge under hostile clients: ingress and the management API on real servers on loopback.

Each case sends what a hostile or broken client sends, over a raw socket, and checks the safe outcome:
a JSON error with a code, no echo of the input, one log line at INFO without a traceback; slow clients
answered 408 (or closed) within the configured timeouts; the connection cap holds and lifts; /metrics
only on its own listener; and a second `junction up` refusing a taken port by name.
"""
from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import socket
import subprocess
import sys
import tempfile
import time
from bench.procs import stop
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import pytest
import pytest_asyncio
from aiohttp import web

from control.app import create_app as control_app
from core.http import listening
from core.settings import Settings
from ingress.app import SNAPSHOT
from ingress.app import create_app as ingress_app
from junction.broker import free_port
from tests.support import Stage, wait_http_ok, wait_until

HEAD_MS = 600
BODY_MS = 800
SLACK_S = 5.0  # generous bound on top of the server's own timeouts
MARK = b"ECHOMARK"  # in every hostile input; must never come back


@dataclass
class Edge:
    service: str
    port: int
    settings: Settings
    app: web.Application
    metrics_port: int

    @property
    def probe(self) -> str:
        """A path that reaches the service's handlers."""
        return "/api/v1/openapi.json" if self.service == "control" else "/no-such-org/x"


@dataclass
class Answer:
    status: int
    headers: dict[str, str]
    body: bytes
    raw: bytes
    seconds: float
    json: Any = field(default=None)


def _parse(raw: bytes, seconds: float) -> Answer:
    head, _, body = raw.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1]) if lines and lines[0].startswith("HTTP/") else 0
    headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
    answer = Answer(status, headers, body, raw, seconds)
    if body and headers.get("content-type", "").startswith("application/json"):
        answer.json = json.loads(body)
    return answer


@contextlib.asynccontextmanager
async def _connection(port: int) -> AsyncIterator[tuple[asyncio.StreamReader, asyncio.StreamWriter]]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        yield reader, writer
    finally:
        writer.close()
        with contextlib.suppress(ConnectionError):
            await writer.wait_closed()


async def _exchange(port: int, data: bytes, timeout_s: float = 10.0) -> Answer:
    """Send ``data`` and read until the server closes the connection."""
    started = time.monotonic()
    async with _connection(port) as (reader, writer):
        writer.write(data)
        await writer.drain()
        raw = await asyncio.wait_for(reader.read(), timeout_s)
    return _parse(raw, time.monotonic() - started)


async def _trickle(writer: asyncio.StreamWriter, data: bytes, interval_s: float) -> None:
    """A slow client: one byte at a time."""
    with contextlib.suppress(ConnectionError):
        for byte in data:
            writer.write(bytes([byte]))
            await writer.drain()
            await asyncio.sleep(interval_s)


@contextlib.asynccontextmanager
async def _edge(settings: Settings, service: str, **overrides: Any) -> AsyncIterator[Edge]:
    metrics_port = free_port()
    s = settings.with_overrides(http_header_timeout_ms=HEAD_MS, http_body_timeout_ms=BODY_MS,
                                ingress_metrics_port=metrics_port, control_metrics_port=metrics_port, **overrides)
    app = ingress_app(s) if service == "ingress" else control_app(s, relay=False, sandbox=False)
    port = free_port()
    async with listening(app, "127.0.0.1", port):
        yield Edge(service, port, s, app, metrics_port)


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def ingress_edge(settings: Settings) -> AsyncIterator[Edge]:
    async with _edge(settings, "ingress") as edge:
        yield edge


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def control_edge(settings: Settings) -> AsyncIterator[Edge]:
    async with _edge(settings, "control") as edge:
        yield edge


@pytest.fixture(params=["ingress", "control"])
def edge(request: pytest.FixtureRequest) -> Edge:
    return request.getfixturevalue(f"{request.param}_edge")


async def _staged_api(settings: Settings, edge: Edge) -> str:
    stage = Stage(settings)
    await stage.start()
    try:
        staged = await stage.api("http://127.0.0.1:9/unused", path="/upload")
    finally:
        await stage.stop()
    await wait_until(lambda: staged["api"]["id"] in edge.app[SNAPSHOT].apis)
    return f"/{staged['org']}/upload"


def _no_traceback_logged(caplog: pytest.LogCaptureFixture) -> None:
    noisy = [r for r in caplog.records if r.exc_info or r.levelno >= logging.ERROR]
    assert not noisy, [f"{r.name} {r.levelname} {r.getMessage()}" for r in noisy]


# 1. A header that is not UTF-8 ------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["X-Bad", "X-Request-Id"])
async def test_a_header_that_is_not_utf8_is_a_400_naming_it(
    edge: Edge, settings: Settings, name: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="aiohttp")
    # On ingress, a real API: the call would otherwise be encoded and produced (where it used to fail with a 500).
    path = await _staged_api(settings, edge) if edge.service == "ingress" else edge.probe
    answer = await _exchange(edge.port, f"GET {path} HTTP/1.1\r\nHost: a\r\n".encode()
                             + name.encode() + b": " + MARK + b"\xff\xfe\r\nConnection: close\r\n\r\n")
    assert answer.status == 400, answer.raw
    assert answer.json["code"] == "invalid_header"
    assert [f["field"].lower() for f in answer.json["fields"]] == [name.lower()]
    assert MARK not in answer.raw
    _no_traceback_logged(caplog)


# 2. What aiohttp's parser refuses ---------------------------------------------------------------------

MALFORMED = {
    "header too long": (b"GET /x HTTP/1.1\r\nHost: a\r\nX-Long: " + MARK + b"a" * 9000 + b"\r\n\r\n", 431, "header_too_large"),
    "too many headers": (b"GET /x HTTP/1.1\r\nHost: a\r\n" + b"".join(b"X-%d: %s\r\n" % (i, MARK) for i in range(200)) + b"\r\n",
                         431, "too_many_headers"),
    "bad character in the path": (b"GET /" + MARK + b"/\xff\"<x> HTTP/1.1\r\nHost: a\r\n\r\n", 400, "invalid_path"),
    "unknown method": (MARK + b" /x HTTP/1.1\r\nHost: a\r\n\r\n", 501, "method_not_implemented"),
    "malformed request line": (b"GET /" + MARK + b" HTTZ/1.1\r\nHost: a\r\n\r\n", 400, "bad_request"),
    "control character in a header": (b"GET /x HTTP/1.1\r\nHost: a\r\nX-A: " + MARK + b"\x01\r\n\r\n", 400, "invalid_header"),
    "not HTTP at all": (MARK + b"\r\n\r\n", 501, "method_not_implemented"),
    # Two framings of one body (found by the management API's fuzzer): a request-smuggling shape.
    "Content-Length and Transfer-Encoding": (b"POST /x HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: " + MARK
                                             + b"\r\nContent-Length: 15\r\n\r\n{\"version\": 79}", 400, "malformed_body"),
}


@pytest.mark.parametrize("case", list(MALFORMED))
async def test_malformed_http_gets_a_json_error_without_echo_logged_once_at_info(
    edge: Edge, case: str, caplog: pytest.LogCaptureFixture
) -> None:
    data, status, code = MALFORMED[case]
    caplog.set_level(logging.DEBUG, logger="aiohttp")
    caplog.set_level(logging.INFO, logger="core.http")
    answer = await _exchange(edge.port, data)
    assert answer.status == status, answer.raw
    assert answer.headers["content-type"].startswith("application/json")
    assert answer.json["code"] == code and answer.json["message"]
    assert answer.headers["x-content-type-options"] == "nosniff"  # the parser's errors carry the security headers too
    assert answer.headers["content-security-policy"].startswith("default-src 'none'")
    assert MARK not in answer.raw and MARK.lower() not in answer.raw.lower()
    mine = [r for r in caplog.records if r.name == "core.http" and code in r.getMessage()]
    assert len(mine) == 1 and mine[0].levelno == logging.INFO, [r.getMessage() for r in mine]
    assert MARK.decode() not in mine[0].getMessage()
    _no_traceback_logged(caplog)


async def test_a_flood_of_bad_requests_logs_one_info_line_each_and_no_traceback(
    ingress_edge: Edge, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="aiohttp")
    caplog.set_level(logging.INFO, logger="core.http")
    data, status, code = MALFORMED["bad character in the path"]
    answers = await asyncio.gather(*(_exchange(ingress_edge.port, data) for _ in range(50)))
    assert {a.status for a in answers} == {status}
    assert len([r for r in caplog.records if r.name == "core.http" and code in r.getMessage()]) == 50
    _no_traceback_logged(caplog)


# 3. Slow clients and the connection cap ---------------------------------------------------------------


async def test_a_head_sent_one_byte_at_a_time_gets_408_within_the_header_timeout(
    edge: Edge, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="core.http")
    started = time.monotonic()
    async with _connection(edge.port) as (reader, writer):
        slow = asyncio.create_task(_trickle(writer, f"GET {edge.probe} HTTP/1.1\r\nHost: a\r\nX-Slow: ".encode() + MARK * 100, 0.05))
        try:
            raw = await asyncio.wait_for(reader.read(), HEAD_MS / 1000 + SLACK_S)
        finally:
            slow.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await slow
    answer = _parse(raw, time.monotonic() - started)
    assert answer.status == 408 and answer.json["code"] == "request_timeout", answer.raw
    assert answer.headers["x-content-type-options"] == "nosniff"
    assert MARK not in answer.raw
    assert any("request_timeout" in r.getMessage() and r.levelno == logging.INFO for r in caplog.records)
    _no_traceback_logged(caplog)


async def test_a_connection_that_sends_nothing_is_closed_after_the_header_timeout(edge: Edge) -> None:
    async with _connection(edge.port) as (reader, _):
        # The server closes it: reading ends (a connection held open would time this wait out).
        raw = await asyncio.wait_for(reader.read(), HEAD_MS / 1000 + SLACK_S)
    assert raw == b""  # no request, nothing to answer: closed


async def test_a_kept_alive_connection_may_idle_beyond_the_header_timeout(edge: Edge) -> None:
    """The header timeout runs from a request's first byte; between requests, the keep-alive timeout applies."""
    async with _connection(edge.port) as (reader, writer):
        for _ in range(2):
            writer.write(b"GET /healthz HTTP/1.1\r\nHost: a\r\n\r\n")
            await writer.drain()
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), SLACK_S)
            length = int(_parse(head, 0).headers["content-length"])
            assert head.startswith(b"HTTP/1.1 200") and await reader.readexactly(length)
            # Longer than the header timeout, measured by the server's own clock tick: a partial-head
            # connection opened now is closed first, while this idle one stays open.
            async with _connection(edge.port) as (probe, probe_writer):
                probe_writer.write(b"GET /healthz HTTP/1.1\r\n")
                await probe_writer.drain()
                assert (await asyncio.wait_for(probe.read(), HEAD_MS / 1000 + SLACK_S)).startswith(b"HTTP/1.1 408")
        assert not reader.at_eof()


async def test_a_body_sent_one_byte_at_a_time_gets_408_within_the_body_timeout(
    edge: Edge, settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="aiohttp")
    caplog.set_level(logging.INFO, logger="core.http")
    path = await _staged_api(settings, edge) if edge.service == "ingress" else "/api/v1/auth/login"
    head = f"POST {path} HTTP/1.1\r\nHost: a\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n".encode()
    started = time.monotonic()
    async with _connection(edge.port) as (reader, writer):
        writer.write(head)
        await writer.drain()
        slow = asyncio.create_task(_trickle(writer, b'{"email": "' + MARK * 120, 0.05))
        try:
            raw = await asyncio.wait_for(reader.read(), BODY_MS / 1000 + SLACK_S)
        finally:
            slow.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await slow
    answer = _parse(raw, time.monotonic() - started)
    assert answer.status == 408 and answer.json["code"] == "request_timeout", answer.raw
    assert MARK not in answer.raw
    _no_traceback_logged(caplog)


@pytest.mark.parametrize("service", ["ingress", "control"])
async def test_half_written_connections_are_capped_then_timed_out_and_service_resumes(
    settings: Settings, service: str, caplog: pytest.LogCaptureFixture
) -> None:
    cap, extra = 20, 40
    caplog.set_level(logging.INFO, logger="core.http")
    async with _edge(settings, service, http_max_connections=cap) as edge, contextlib.AsyncExitStack() as stack:
        held = []
        for _ in range(cap):
            reader, writer = await stack.enter_async_context(_connection(edge.port))
            writer.write(b"GET /healthz HTTP/1.1\r\nHost: a\r\n")  # a head that never completes
            held.append(reader)
        # Over the cap: answered 503 at once, before the held ones time out.
        refused = await asyncio.gather(*(_exchange(edge.port, b"", timeout_s=HEAD_MS / 1000 + SLACK_S) for _ in range(extra)))
        assert {a.status for a in refused} == {503}
        assert {a.json["code"] for a in refused} == {"too_many_connections"}
        assert any("cap" in r.getMessage() and r.levelno == logging.WARNING for r in caplog.records)
        # The held ones are answered 408 and closed within the header timeout.
        closed = await asyncio.gather(*(asyncio.wait_for(r.read(), HEAD_MS / 1000 + SLACK_S) for r in held))
        assert all(raw.startswith(b"HTTP/1.1 408") for raw in closed)

        # Below the cap again: served.
        deadline = time.monotonic() + SLACK_S
        while True:
            answer = await _exchange(edge.port, b"GET /healthz HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
            if answer.status == 200 or time.monotonic() > deadline:
                break
            await asyncio.sleep(0.05)
        assert answer.status == 200 and answer.json == {"status": "ok"}


# 4. /metrics on its own listener ----------------------------------------------------------------------


async def test_metrics_are_on_their_own_loopback_listener_not_the_service_port(edge: Edge) -> None:
    public = await _exchange(edge.port, b"GET /metrics HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
    assert public.status == 404 and public.json["code"] == "not_found", public.raw
    assert b"junction_" not in public.body
    health = await _exchange(edge.port, b"GET /healthz HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
    assert health.status == 200  # health stays where it was

    assert edge.settings.metrics_host == "127.0.0.1"
    metrics = await _exchange(edge.metrics_port, b"GET /metrics HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
    assert metrics.status == 200 and metrics.headers["content-type"].startswith("text/plain")
    assert b"junction_ingress_requests_total" in metrics.body
    other = await _exchange(edge.metrics_port, b"GET /readyz HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
    assert other.status == 404 and other.json["code"] == "not_found"


async def test_the_ingress_process_as_junction_serves_it_holds_the_same_line(settings: Settings) -> None:
    """`junction serve ingress` (uvloop, settings from the environment): JSON refusals without a traceback in
    its log, the cap, the header timeout, and /metrics only on the metrics port."""
    port, metrics_port = free_port(), free_port()
    s = settings.with_overrides(ingress_port=port, ingress_metrics_port=metrics_port, http_header_timeout_ms=HEAD_MS,
                                http_body_timeout_ms=BODY_MS, http_max_connections=3)
    log_file = tempfile.NamedTemporaryFile(prefix="junction-edge-ingress-", suffix=".log", delete=False)
    proc = subprocess.Popen([sys.executable, "-m", "junction", "serve", "ingress"],
                            env={**os.environ, **s.to_env(), "JUNCTION_LOG_LEVEL": "INFO"},
                            stdin=subprocess.DEVNULL, stdout=log_file, stderr=subprocess.STDOUT)
    try:
        await wait_http_ok(f"http://127.0.0.1:{port}/readyz", proc=proc)
        data, status, code = MALFORMED["unknown method"]
        answer = await _exchange(port, data)
        assert answer.status == status and answer.json["code"] == code and MARK not in answer.raw

        async with contextlib.AsyncExitStack() as stack:
            held = []
            for _ in range(3):
                reader, writer = await stack.enter_async_context(_connection(port))
                writer.write(b"GET /healthz HTTP/1.1\r\n")
                held.append(reader)
            refused = await _exchange(port, b"", timeout_s=HEAD_MS / 1000 + SLACK_S)
            assert refused.status == 503 and refused.json["code"] == "too_many_connections"
            closed = await asyncio.gather(*(asyncio.wait_for(r.read(), HEAD_MS / 1000 + SLACK_S) for r in held))
            assert all(raw.startswith(b"HTTP/1.1 408") for raw in closed)
        await wait_http_ok(f"http://127.0.0.1:{port}/healthz", timeout_s=SLACK_S, proc=proc)

        public = await _exchange(port, b"GET /metrics HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
        assert public.status == 404 and public.json["code"] == "not_found"
        metrics = await _exchange(metrics_port, b"GET /metrics HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
        assert metrics.status == 200 and b"junction_ingress_requests_total" in metrics.body
    finally:
        stop([proc])
        log_file.close()
        with open(log_file.name, encoding="utf-8", errors="replace") as f:
            output = f.read()
        os.unlink(log_file.name)
    assert "Traceback" not in output, output[-3000:]
    assert f"{code} (BadHttpMethod)" in output and "request_timeout" in output, output[-3000:]
    assert MARK.decode() not in output


# 5. A second `junction up` ----------------------------------------------------------------------------


def _up_env(ports: dict[str, int], data_dir: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("JUNCTION_") and k != "KAFKA_BOOTSTRAP_SERVERS"}
    env.update({f"JUNCTION_{name}_PORT": str(port) for name, port in ports.items()})
    env.update({"JUNCTION_DATA_DIR": data_dir, "JUNCTION_LOG_LEVEL": "WARNING"})
    return env


UP_PORTS = ("INGRESS", "CONTROL", "PROCESSORS", "EGRESS", "DEMO_UPSTREAM", "EMBEDDED_BROKER", "EMBEDDED_POSTGRES",
            "EMBEDDED_REDIS", "INGRESS_METRICS", "CONTROL_METRICS", "PROCESSORS_METRICS", "EGRESS_METRICS")


@pytest.mark.parametrize("taken", ["INGRESS", "EGRESS_METRICS", "EMBEDDED_BROKER", "DEMO_UPSTREAM"])
async def test_junction_up_refuses_a_taken_port_naming_it_before_starting_anything(taken: str) -> None:
    ports = {name: free_port() for name in UP_PORTS}
    data_dir = tempfile.mkdtemp(prefix="junction-edge-up-")
    with socket.socket() as holder:  # what a first `junction up` holds
        holder.bind(("127.0.0.1", ports[taken]))
        holder.listen()
        proc = subprocess.Popen([sys.executable, "-m", "junction", "up", "--demo"], env=_up_env(ports, data_dir),
                                stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        try:
            output, _ = await asyncio.to_thread(proc.communicate, timeout=60)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    text = output.decode(errors="replace")
    assert proc.returncode != 0, text
    assert f"JUNCTION_{taken}_PORT" in text and str(ports[taken]) in text, text
    assert "Junction is up" not in text
    assert not os.listdir(data_dir), "something was started before the check"
    os.rmdir(data_dir)


async def test_junction_up_refuses_one_port_given_to_two_services() -> None:
    ports = {name: free_port() for name in UP_PORTS}
    ports["CONTROL_METRICS"] = ports["CONTROL"]
    data_dir = tempfile.mkdtemp(prefix="junction-edge-up-")
    proc = await asyncio.to_thread(subprocess.run, [sys.executable, "-m", "junction", "up"], env=_up_env(ports, data_dir),
                                   stdin=subprocess.DEVNULL, capture_output=True, timeout=60)
    text = (proc.stdout + proc.stderr).decode(errors="replace")
    assert proc.returncode != 0
    assert "JUNCTION_CONTROL_PORT" in text and "JUNCTION_CONTROL_METRICS_PORT" in text, text
    os.rmdir(data_dir)
