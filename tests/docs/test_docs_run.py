"""The README and the docs run as written, in order, against a real `junction up --demo`.

The fenced code blocks of ``DOCS`` are extracted in order. ``sh`` blocks run in one bash session (``set -euo
pipefail``, cwd the repository root), so a variable one block sets, or a `. .venv/bin/activate`, is seen by
the blocks after it, as in the user's terminal. ``python`` blocks are written to a file and run from that
session with the Python of ``.venv``, as the README tells the user to. Every block must exit 0.

The session starts as a fresh terminal would: no ``JUNCTION_*`` variables but the gateway's
``JUNCTION_DATA_DIR`` (see :class:`Session`), and ``.venv/bin`` not on PATH (only a block that activates the
environment puts it there). The gateway is started by the test, as `make run` does (``junction up --demo``
with ``JUNCTION_ALLOW_PRIVATE_TARGETS=1``), on the default ports the docs name (the test is skipped, naming
the port, when one is taken), with its data in a temporary ``JUNCTION_DATA_DIR``; it is stopped with SIGINT
(Ctrl-C) at the end, and no process may be left behind. Files the commands write in ``/tmp`` are removed.

Markers, an HTML comment on the line(s) right before a fence:

- ``<!-- not run: why -->``: the block is not run (`make run` itself, which the test replaces, `make test`,
  `make kafka`, benchmarks); counted and reported.
- ``<!-- expect: text -->``: the block's standard output must contain ``text``.
- ``<!-- connector script -->``: a ``python`` block that is a connector script, not a program: it must
  compile under the sandbox rules (``sandbox.compile_check``).

Expected output written as comments is checked too: in a run block, a comment line starting with ``# {`` or
``# [`` holds one or more JSON values (``{...}``, ``[...]``, ``, ...`` and ``"…"`` elide) that must match,
in order, JSON values the block printed (objects match when they have at least the keys shown).
"""
from __future__ import annotations

import asyncio
import dataclasses
import json
import os
import queue
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tests.support import alive, descendants

REPO = Path(__file__).resolve().parents[2]
VENV_BIN = REPO / ".venv" / "bin"

# In the order a reader goes: the README first (it activates .venv and sets JUNCTION_ADMIN_PASSWORD), then the
# guides that build on it. Listed explicitly: a new doc's blocks must not run (say, a benchmark) unasked.
DOCS = (
    "README.md",
    "docs/control.md",
    "docs/declarative.md",  # its own organisation, shopfront
    "docs/replay.md",
    "docs/topics.md",
    "docs/connectors.md",
    "docs/brokers.md",
    "docs/configuration.md",
    "docs/architecture.md",
    "docs/sandbox.md",
    "docs/auth.md",  # caller authentication on acme (the README's), then its management side, then control's accounts
    "docs/consumers.md",
    "docs/security.md",
    "docs/upstream-auth.md",  # connectors of acme pointed at the demo's echo
    "docs/rest-to-soap.md",  # its own organisation, bridge
    "docs/soap-to-rest.md",  # its own organisation, soapgw
    "docs/async-producers.md",
    "docs/async.md",  # the demo's echo API: async calls and idempotency keys
    "docs/caching.md",  # the demo's echo API: a response cache (turned off again at the end), compression
    "docs/cors.md",  # the demo's echo API: a CORS policy (removed again at the end)
    "docs/observability.md",  # metrics and request logs of the demo organisation's calls
    "docs/alerts.md",  # an alert rule of demo, its webhook the demo upstream's echo
    "docs/console.md",  # build and test commands only: not run
    "docs/performance.md",  # benchmark commands only: not run
    "docs/kafka-security.md",
    "docs/resilience.md",
    "docs/upgrading.md",  # the drain check, migrate and topics against the running demo
)

# The README's default ports (its commands name them, so the test cannot move them): every port setting's
# default, read from core.settings, so a new listener of `junction up` is checked too.
README_PORTS = (8080, 8081, 8082, 8083, 8090, 9092, 15432, 16379)


def default_ports() -> dict[int, str]:
    from core.settings import Settings

    defaults = Settings()
    ports = {getattr(defaults, f.name): f"JUNCTION_{f.name.upper()}" for f in dataclasses.fields(Settings)
             if f.name.endswith("_port") and isinstance(getattr(defaults, f.name), int)}
    return {port: name for port, name in sorted(ports.items()) if port > 0}


SHELL_LANGS = {"sh", "bash", "shell"}
# An unlabelled block that starts like one of these is a command someone forgot to label (and so to test).
COMMAND_WORDS = {"junction", "curl", "make", "python", "python3", "export", "docker", ".", "source", "cd"}

BLOCK_TIMEOUT_S = 120.0  # a block takes seconds; this is for a machine under heavy load
UP_TIMEOUT_S = 120.0
ANY = "\x00ANY"  # an elided value in an expected-output comment


# -- the blocks -----------------------------------------------------------------------------------------------
@dataclass
class Block:
    doc: str
    line: int  # of the opening fence, 1-based
    lang: str
    text: str
    markers: list[tuple[str, str]] = field(default_factory=list)

    @property
    def where(self) -> str:
        return f"{self.doc}:{self.line}"

    def marker(self, kind: str) -> list[str]:
        return [value for k, value in self.markers if k == kind]


_FENCE = re.compile(r"^(?P<indent> {0,3})(?P<fence>`{3,}|~{3,})\s*(?P<info>[^`\s]*)[^`]*$")
_COMMENT = re.compile(r"^\s*<!--(?P<body>.*?)-->\s*$")
_MARKER = re.compile(r"^\s*(?P<kind>not run|expect|connector script)\s*(?::\s*(?P<value>.*?))?\s*$", re.DOTALL)


def extract_blocks(doc: str, text: str) -> list[Block]:
    """The fenced code blocks of a Markdown text, in order, with the marker comments right above each."""
    lines = text.split("\n")
    blocks: list[Block] = []
    i = 0
    while i < len(lines):
        m = _FENCE.match(lines[i])
        if m is None:
            i += 1
            continue
        fence, indent = m["fence"], len(m["indent"])
        close = re.compile(rf"^ {{0,3}}{re.escape(fence[0])}{{{len(fence)},}}\s*$")
        body: list[str] = []
        j = i + 1
        while j < len(lines) and not close.match(lines[j]):
            line = lines[j]
            body.append(line[min(indent, len(line) - len(line.lstrip(" "))):])
            j += 1
        markers: list[tuple[str, str]] = []
        k = i - 1
        while k >= 0 and (c := _COMMENT.match(lines[k])):
            mk = _MARKER.match(c["body"])
            if mk is None:
                raise AssertionError(f"{doc}:{k + 1}: unknown marker comment before a code block: {lines[k].strip()}")
            markers.insert(0, (mk["kind"], (mk["value"] or "").strip()))
            k -= 1
        blocks.append(Block(doc, i + 1, m["info"].lower(), "\n".join(body) + "\n", markers))
        i = j + 1
    return blocks


# -- expected output ----------------------------------------------------------------------------------------
def _json_values(text: str, *, strict: bool) -> list[Any]:
    """JSON values in ``text``. Strict: the text is nothing but JSON values (else ValueError);
    lenient: every top-level JSON object or array found anywhere in it."""
    decoder = json.JSONDecoder()
    values: list[Any] = []
    i = 0
    while i < len(text):
        if text[i].isspace():
            i += 1
            continue
        if not strict and text[i] not in "{[":
            i += 1
            continue
        try:
            value, end = decoder.raw_decode(text, i)
        except json.JSONDecodeError:
            if strict:
                raise ValueError(f"not JSON at {text[i:i + 40]!r}") from None
            i += 1
            continue
        values.append(value)
        i = end
    return values


def expected_patterns(block: Block) -> list[tuple[str, Any]]:
    """(comment, pattern) for each expected-output comment line of a run block."""
    out: list[tuple[str, Any]] = []
    for line in block.text.split("\n"):
        stripped = line.strip()
        if not stripped.startswith(("# {", "# [")):
            continue
        comment = stripped[2:]
        text = re.sub(r"\{\s*(?:\.\.\.|…)\s*\}|\[\s*(?:\.\.\.|…)\s*\]", lambda _: json.dumps(ANY), comment)
        text = re.sub(r",\s*(?:\.\.\.|…)\s*(?=[}\]])", "", text)
        try:
            patterns = _json_values(text, strict=True)
        except ValueError as exc:
            raise AssertionError(f"{block.where}: the expected-output comment is not JSON ({exc}): {comment}") from None
        out.extend((comment, p) for p in patterns)
    return out


def matches(pattern: Any, actual: Any) -> bool:
    if pattern == ANY:
        return True
    if isinstance(pattern, dict):
        return isinstance(actual, dict) and all(k in actual and matches(v, actual[k]) for k, v in pattern.items())
    if isinstance(pattern, list):
        if not isinstance(actual, list):
            return False
        rest = iter(actual)
        return all(any(matches(p, a) for a in rest) for p in pattern)
    if isinstance(pattern, str):
        if not isinstance(actual, str):
            return False
        if pattern in ("…", "..."):
            return True
        parts = re.split(r"\.\.\.|…", pattern)
        return re.fullmatch(".*".join(map(re.escape, parts)), actual, re.DOTALL) is not None
    if isinstance(pattern, bool) or pattern is None:
        return actual is pattern
    return isinstance(actual, (int, float)) and not isinstance(actual, bool) and actual == pattern


def check_output(block: Block, stdout: str) -> list[str]:
    """What the block's output lacks, compared with what its doc says it prints."""
    problems = [f"output lacks {text!r}" for text in block.marker("expect") if text not in stdout]
    values = _json_values(stdout, strict=False)
    pos = 0
    for comment, pattern in expected_patterns(block):
        for n in range(pos, len(values)):
            if matches(pattern, values[n]):
                pos = n + 1
                break
        else:
            problems.append(f"no output (after the ones matched earlier) matches the documented # {comment}")
    return problems


# -- processes ----------------------------------------------------------------------------------------------
def _fresh_env() -> dict[str, str]:
    """A new terminal's environment: nothing of Junction's, and .venv/bin not on PATH."""
    drop = {"KAFKA_BOOTSTRAP_SERVERS", "VIRTUAL_ENV", "PYTHONPATH", "PYTHONHOME", "PYTHONSTARTUP"}
    env = {k: v for k, v in os.environ.items() if not k.startswith(("JUNCTION_", "PYTEST_")) and k not in drop}
    venv_bin = str(VENV_BIN.resolve())
    env["PATH"] = os.pathsep.join(p for p in env.get("PATH", "").split(os.pathsep)
                                  if p and os.path.realpath(p) != venv_bin)
    for name in ("no_proxy", "NO_PROXY"):  # the docs' curl calls go to loopback, never through a proxy
        env[name] = ",".join(filter(None, [env.get(name, ""), "127.0.0.1", "localhost"]))
    return env


def _tmp_files_written(blocks: list[Block]) -> set[Path]:
    """The files in /tmp the docs' commands write (`cat > /tmp/x`), to remove afterwards."""
    found: set[Path] = set()
    for block in blocks:
        if block.lang in SHELL_LANGS and not block.marker("not run"):
            found.update(Path(m) for m in re.findall(r">\s*(/tmp/[\w.-]+)", block.text))
    return found


def _taken_port() -> tuple[int, str] | None:
    for port, what in default_ports().items():
        with socket.socket() as s:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                return port, what
    return None


def _tail(path: Path, n: int = 4000) -> str:
    try:
        return path.read_text(errors="replace")[-n:]
    except OSError:
        return ""


class Gateway:
    """`make run`'s `junction up --demo`, on the default ports, with its data in ``data_dir``."""

    def __init__(self, data_dir: Path, log: Path) -> None:
        self.log = log
        env = _fresh_env()
        env.update(JUNCTION_DATA_DIR=str(data_dir), JUNCTION_ALLOW_PRIVATE_TARGETS="1")  # as `make run` sets it
        self._log_file = open(log, "wb")  # noqa: SIM115 (closed in stop())
        self.proc = subprocess.Popen([str(VENV_BIN / "junction"), "up", "--demo"], cwd=REPO, env=env,
                                     stdin=subprocess.DEVNULL, stdout=self._log_file, stderr=subprocess.STDOUT,
                                     start_new_session=True)

    def wait_serving(self) -> None:
        """Until the banner is printed and the demo answers: when a reader would start typing."""
        until = time.monotonic() + UP_TIMEOUT_S
        last = "no answer"
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # loopback: never through a proxy
        while time.monotonic() < until:
            if self.proc.poll() is not None:
                raise AssertionError(f"junction up exited with {self.proc.returncode}:\n{_tail(self.log)}")
            if b"Junction is up." in self.log.read_bytes():
                try:
                    with opener.open("http://127.0.0.1:8080/demo/echo", timeout=2) as resp:
                        if resp.status == 200:
                            return
                except urllib.error.HTTPError as exc:
                    last = f"{exc.code} {exc.read()[:300]!r}"
                except (urllib.error.URLError, OSError) as exc:
                    last = repr(exc)
            time.sleep(0.2)
        raise AssertionError(f"junction up did not serve the demo within {UP_TIMEOUT_S}s (last answer of "
                             f"/demo/echo: {last}):\n{_tail(self.log)}")

    def stop(self) -> list[int]:
        """Ctrl-C, as a user stops `make run`; the pids still alive afterwards (killed, then reported)."""
        started = descendants(self.proc.pid)
        try:
            if self.proc.poll() is None:
                self.proc.send_signal(signal.SIGINT)
                try:
                    self.proc.wait(timeout=60)
                except subprocess.TimeoutExpired:
                    os.killpg(self.proc.pid, signal.SIGKILL)
                    self.proc.wait(timeout=10)
                    raise AssertionError(f"junction up did not stop within 60s of SIGINT:\n{_tail(self.log)}")
            until = time.monotonic() + 15
            while time.monotonic() < until and any(alive(p) for p in started):
                time.sleep(0.1)
            left = [p for p in started if alive(p)]
            for pid in left:
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            return left
        finally:
            self._log_file.close()


class Session:
    """One bash session for every block, like the reader's second terminal.

    Its one addition to a fresh terminal is ``JUNCTION_DATA_DIR``, the gateway's: the reader's `make run`
    and terminal share the default ``.junction/`` of the clone, through which `junction admin` and
    `junction migrate` find the running PostgreSQL (and the test must not touch the clone's own)."""

    def __init__(self, workdir: Path, data_dir: Path) -> None:
        self.workdir = workdir
        self._err = open(workdir / "shell.err", "wb")  # noqa: SIM115 (closed in close())
        env = {**_fresh_env(), "JUNCTION_DATA_DIR": str(data_dir)}
        self.proc = subprocess.Popen(["bash", "--noprofile", "--norc"], cwd=REPO, env=env,
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self._err, text=True,
                                     start_new_session=True)
        self._lines: queue.Queue[str | None] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()
        self._send(f"set -euo pipefail\ncd {_q(REPO)}\n")

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self._lines.put(line)
        self._lines.put(None)

    def _send(self, text: str) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(text)
        self.proc.stdin.flush()

    def run(self, n: int, block: Block) -> tuple[int | None, str, str]:
        """Run one block; (exit status, stdout, stderr). None: it did not finish in time."""
        out, err = self.workdir / f"{n:02d}.out", self.workdir / f"{n:02d}.err"
        if block.lang == "python":
            script = self.workdir / f"{n:02d}_{Path(block.doc).stem}.py"
            script.write_text(block.text)
            command = f"{_q(VENV_BIN / 'python')} {_q(script)}"
        else:
            script = self.workdir / f"{n:02d}.sh"
            script.write_text(block.text)
            command = f"source {_q(script)}"
        self._send(f"{{ {command}; }} >{_q(out)} 2>{_q(err)} </dev/null\nprintf '__DONE__ %s\\n' {n}\n")
        until = time.monotonic() + BLOCK_TIMEOUT_S
        status: int | None = None
        while True:
            try:
                line = self._lines.get(timeout=max(0.0, until - time.monotonic()))
            except queue.Empty:
                break
            if line is None:  # the shell exited: `set -e` saw a command fail
                status = self.proc.wait()
                break
            if line.strip() == f"__DONE__ {n}":
                status = 0
                break
        return status, _tail(out, 10**6), _tail(err, 10**6)

    @property
    def alive(self) -> bool:
        return self.proc.poll() is None

    def close(self) -> None:
        try:
            if self.proc.poll() is None:
                assert self.proc.stdin is not None
                self.proc.stdin.close()
                try:
                    self.proc.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    os.killpg(self.proc.pid, signal.SIGKILL)
                    self.proc.wait(timeout=10)
        finally:
            self._err.close()
            for stream in (self.proc.stdin, self.proc.stdout):
                if stream is not None and not stream.closed:
                    try:
                        stream.close()
                    except OSError:
                        pass


def _q(value: object) -> str:
    return "'" + str(value).replace("'", "'\\''") + "'"


def _report(block: Block, what: str, stdout: str = "", stderr: str = "", log: Path | None = None) -> str:
    text = (f"{block.where} ({block.lang} block): {what}\n--- block ---\n{block.text}"
            f"--- stdout ---\n{stdout[-3000:]}\n--- stderr ---\n{stderr[-3000:]}")
    if log is not None:
        text += f"\n--- junction up's log (end) ---\n{_tail(log, 3000)}"
    return text


def _all_blocks() -> Iterator[Block]:
    for doc in DOCS:
        yield from extract_blocks(doc, (REPO / doc).read_text())


# -- the test -----------------------------------------------------------------------------------------------
@pytest.fixture()
def _drop_schema_at_end() -> Iterator[None]:
    """Replaces the suite's session fixture of that name: this test brings its own gateway and stores,
    so the suite's broker, PostgreSQL and Redis are not started for it."""
    yield


def test_the_markers_and_expected_output_parse() -> None:
    """Fast checks of the docs' shape (no gateway): markers known, outputs JSON, commands labelled."""
    blocks = list(_all_blocks())
    for block in blocks:
        if block.lang in SHELL_LANGS | {"python"} and not block.marker("not run"):
            expected_patterns(block)  # raises on a comment that is not JSON
        if block.lang == "":
            first = block.text.strip().split(maxsplit=1)[0] if block.text.strip() else ""
            assert first not in COMMAND_WORDS, f"{block.where}: a command in an unlabelled block: label it ```sh"
        if block.marker("connector script"):
            assert block.lang == "python", f"{block.where}: a connector script is a python block"
    assert any(b.lang in SHELL_LANGS and not b.marker("not run") for b in blocks if b.doc == "README.md")
    assert set(README_PORTS) <= set(default_ports()), "the README's ports are no longer the defaults"
    readme = (REPO / "README.md").read_text()
    assert all(f"`{port}`" in readme for port in README_PORTS), "the README's quick start lists the ports"


def test_matching_of_documented_output() -> None:
    block = Block("x.md", 1, "sh", '# {"id": "A-42", "headers": {...}, "n": 1, ...}\n# [{"s": "re…ed"}]\n')
    assert check_output(block, 'noise {"id": "A-42", "headers": {"a": 1}, "n": 1, "x": 2}\n[{"s": "replayed"}]') == []
    assert check_output(block, '{"id": "A-43", "headers": {}, "n": 1}[{"s": "replayed"}]')
    assert check_output(block, '[{"s": "replayed"}] {"id": "A-42", "headers": {}, "n": 1}')  # order counts
    assert check_output(Block("x.md", 1, "sh", "# {\"n\": 1}\n"), '{"n": true}')


@pytest.mark.timeout(600)
async def test_every_block_of_the_docs_runs_as_written(capsys: pytest.CaptureFixture[str]) -> None:
    # In a thread: the suite's event loop goes on meanwhile. Blocked for the run's 100 s, it let the fetches
    # of session fixtures' Kafka consumers (started by earlier tests) pass their 40 s request timeout, and
    # their failure surfaced as an error of this test.
    run = await asyncio.to_thread(_run_every_block)
    assert run.ran, "no block of the docs ran: the extraction found none to run"
    assert not run.left, f"processes left running after Ctrl-C of junction up: {run.left}"
    assert run.returncode == 0, f"junction up exited with {run.returncode} on SIGINT"
    with capsys.disabled():
        print(f"\ndocs: ran {len(run.ran)} blocks, compiled {len(run.checked)} connector scripts, skipped "
              f"{len(run.skipped)} marked not run, in {run.took_s:.0f}s (junction up ready after {run.up_s:.0f}s)")
        for line in run.ran:
            print(f"  ran: {line}")
        for line in run.skipped:
            print(f"  not run: {line}")


@dataclass
class DocsRun:
    ran: list[str]
    checked: list[str]
    skipped: list[str]
    left: list[int]  # processes of junction up still alive after Ctrl-C
    returncode: int | None
    took_s: float
    up_s: float


def _run_every_block() -> DocsRun:
    """Every block of the docs, in order, against a `junction up` of the run's own (pytest.fail at the first
    that fails, naming it); what ran, and how junction up stopped."""
    if not (VENV_BIN / "junction").exists():
        pytest.skip(f"{VENV_BIN / 'junction'} is missing: run `make install` first")
    if shutil.which("bash") is None or shutil.which("curl") is None:
        pytest.skip("the docs' commands need bash and curl")
    taken = _taken_port()
    if taken is not None:
        pytest.skip(f"port {taken[0]} (the default of {taken[1]}) is taken: the docs' commands use the default ports; "
                    f"stop whatever listens on 127.0.0.1:{taken[0]} (a `make run`?) and run this again")

    blocks = list(_all_blocks())
    work = Path(tempfile.mkdtemp(prefix="junction-docs-"))
    data_dir = work / "data"
    data_dir.mkdir()
    os.chmod(work, 0o755)  # our own folders: the embedded PostgreSQL runs as nobody under root
    os.chmod(data_dir, 0o755)
    ran: list[str] = []
    checked: list[str] = []
    skipped: list[str] = []
    t0, t_start = time.monotonic(), time.time()
    gateway = Gateway(data_dir, work / "junction-up.log")
    session: Session | None = None
    try:
        gateway.wait_serving()
        t_up = time.monotonic() - t0
        session = Session(work, data_dir)
        for n, block in enumerate(blocks):
            reasons = block.marker("not run")
            if reasons:
                skipped.append(f"{block.where} ({reasons[0] or 'no reason given'})")
                continue
            if block.marker("connector script"):
                from sandbox import ScriptCompileError, compile_check

                try:
                    compile_check(block.text)
                except ScriptCompileError as exc:
                    pytest.fail(_report(block, f"the connector script does not compile in the sandbox: {exc}"))
                checked.append(block.where)
                continue
            if block.lang not in SHELL_LANGS | {"python"}:
                continue
            t_block = time.monotonic()
            status, stdout, stderr = session.run(n, block)
            if status is None:
                pytest.fail(_report(block, f"did not finish within {BLOCK_TIMEOUT_S}s", stdout, stderr, gateway.log))
            if status != 0:
                pytest.fail(_report(block, f"exit status {status}", stdout, stderr, gateway.log))
            problems = check_output(block, stdout)
            if problems:
                pytest.fail(_report(block, "; ".join(problems), stdout, stderr, gateway.log))
            ran.append(f"{block.where} ({block.lang}, {time.monotonic() - t_block:.1f}s)")
    finally:
        if session is not None:
            session.close()
        left = gateway.stop()
        shutil.rmtree(work, ignore_errors=True)
        for path in _tmp_files_written(blocks):
            try:
                if path.stat().st_mtime >= t_start:
                    path.unlink()
            except OSError:
                pass
    return DocsRun(ran, checked, skipped, left, gateway.proc.returncode, time.monotonic() - t0, t_up)
