"""The embedded PostgreSQL and Redis launcher: real servers from the wheels, started and stopped here."""
from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import asyncpg
import pytest
import redis.asyncio as aioredis

from core.settings import load_settings
from junction.broker import PortTaken, free_port
from junction.embedded_stores import EmbeddedPostgres, EmbeddedStores, StoreStartError


@pytest.fixture
def data_dir() -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="junction-stores-test-"))
    os.chmod(path, 0o755)  # our own folder: PostgreSQL may run as nobody
    yield path
    shutil.rmtree(path, ignore_errors=True)


def _pid_alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


async def test_postgres_data_survives_a_restart_and_runs_unprivileged(data_dir: Path) -> None:
    pg = EmbeddedPostgres(data_dir / "pg" / "data", free_port(), durable=False)
    pg.start()
    try:
        await pg.wait_ready()
        assert pg.process is not None
        if os.geteuid() == 0:
            assert os.stat(f"/proc/{pg.process.pid}").st_uid != 0  # PostgreSQL refuses root; it runs as nobody
        conn = await asyncpg.connect(pg.url)
        await conn.execute("CREATE TABLE kept (v text); INSERT INTO kept VALUES ('still here')")
        await conn.close()
    finally:
        pg.stop()
    again = EmbeddedPostgres(data_dir / "pg" / "data", free_port(), durable=False)
    again.start()
    try:
        await again.wait_ready()
        conn = await asyncpg.connect(again.url)
        assert await conn.fetchval("SELECT v FROM kept") == "still here"
        await conn.close()
    finally:
        again.stop()


async def test_a_server_left_behind_is_found_by_its_pid_file_and_stopped(data_dir: Path) -> None:
    first = EmbeddedPostgres(data_dir / "pg" / "data", free_port(), durable=False)
    first.start()
    await first.wait_ready()
    assert first.process is not None
    left, left_pid = first.process, first.process.pid
    first.process = None  # as if its run had been killed outright: nobody stops it
    second = EmbeddedPostgres(data_dir / "pg" / "data", free_port(), durable=False)
    try:
        second.start()
        await second.wait_ready()
        assert left.wait(timeout=5) is not None  # stopped, not merely orphaned
        assert not _pid_alive(left_pid)
        conn = await asyncpg.connect(second.url)
        assert await conn.fetchval("SELECT 1") == 1
        await conn.close()
    finally:
        second.stop()
        if _pid_alive(left_pid):
            os.kill(left_pid, signal.SIGKILL)


def test_a_taken_port_is_a_clear_error_naming_the_variable(data_dir: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        pg = EmbeddedPostgres(data_dir / "pg" / "data", port)
        with pytest.raises(PortTaken, match="JUNCTION_EMBEDDED_POSTGRES_PORT"):
            pg.start()
        settings = load_settings({}, data_dir=str(data_dir), embedded_redis_port=port,
                                 database_url="postgresql://unused@127.0.0.1:1/x")
        with pytest.raises(PortTaken, match="JUNCTION_EMBEDDED_REDIS_PORT"):
            asyncio.run(EmbeddedStores(settings).start())


def test_a_configured_url_always_wins() -> None:
    settings = load_settings({"JUNCTION_DATABASE_URL": "postgresql://u@db.example:5432/j",
                              "JUNCTION_REDIS_URL": "redis://cache.example:6379/0"})
    stores = EmbeddedStores(settings)
    assert not stores.needed
    assert stores.apply(settings).database_dsn == "postgresql://u@db.example:5432/j"
    assert stores.apply(settings).redis_dsn == "redis://cache.example:6379/0"
    only_redis = EmbeddedStores(load_settings({"JUNCTION_DATABASE_URL": "postgresql://u@db.example/j"}))
    assert only_redis.postgres is None and only_redis.redis is not None


async def test_a_second_instance_on_the_same_data_is_refused_and_the_first_keeps_serving(data_dir: Path) -> None:
    settings = load_settings({}, data_dir=str(data_dir), embedded_postgres_port=free_port(),
                             embedded_redis_port=free_port())
    first = EmbeddedStores(settings, durable=False)
    await first.start()
    try:
        second_settings = settings.with_overrides(embedded_postgres_port=free_port(), embedded_redis_port=free_port())
        with pytest.raises(StoreStartError, match=f"pid {os.getpid()}"):
            await EmbeddedStores(second_settings, durable=False).start()
        started = first.apply(settings)
        conn = await asyncpg.connect(started.database_dsn)
        assert await conn.fetchval("SELECT current_database()") == "junction"
        await conn.close()
        r = aioredis.from_url(started.redis_dsn)
        assert await r.ping() is True
        await r.aclose()
    finally:
        first.stop()
    assert first.postgres is not None and first.postgres.process is None


async def test_the_default_relative_data_dir_is_taken_from_the_working_directory(
    data_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`make run` keeps its data in `.junction`, relative to the clone; initdb and the server run from "/"."""
    monkeypatch.chdir(data_dir)
    settings = load_settings({}, data_dir=".junction", embedded_postgres_port=free_port(),
                             embedded_redis_port=free_port())
    stores = EmbeddedStores(settings, durable=False)
    await stores.start()
    try:
        conn = await asyncpg.connect(stores.apply(settings).database_dsn)
        assert await conn.fetchval("SELECT current_database()") == "junction"
        await conn.close()
    finally:
        stores.stop()
    assert (data_dir / ".junction" / "postgres" / "data" / "PG_VERSION").is_file()


def test_a_data_dir_nobody_cannot_reach_fails_with_what_to_do(data_dir: Path) -> None:
    if os.geteuid() != 0:
        pytest.skip("only root runs PostgreSQL as another user")
    closed = data_dir / "closed"
    closed.mkdir(mode=0o700)
    pg = EmbeddedPostgres(closed / "pg" / "data", free_port())
    with pytest.raises(StoreStartError, match="JUNCTION_DATA_DIR"):
        pg.start()
    assert oct(closed.stat().st_mode & 0o777) == "0o700"  # never chmod-ed


def test_redis_dies_with_its_parent(data_dir: Path) -> None:
    """A killed supervisor must not leave servers behind: the parent here is a Python that we SIGKILL."""
    port = free_port()
    code = (
        "import asyncio, sys; from pathlib import Path; from junction.embedded_stores import EmbeddedRedis\n"
        f"r = EmbeddedRedis(Path({str(data_dir)!r}) / 'redis', {port}); r.start(); asyncio.run(r.wait_ready())\n"
        "print(r.process.pid, flush=True); sys.stdin.read()\n"
    )
    parent = subprocess.Popen([sys.executable, "-c", code], stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    assert parent.stdout is not None
    server_pid = int(parent.stdout.readline())
    assert _pid_alive(server_pid)
    parent.kill()
    parent.communicate()
    for _ in range(100):
        if not _pid_alive(server_pid):
            break
        time.sleep(0.05)
    assert not _pid_alive(server_pid)


def test_admin_commands_work_with_the_gateway_down_and_leave_no_server(data_dir: Path) -> None:
    """`junction admin reset-password` is how a user regains the admin: it must not need `make run` up."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("JUNCTION_")}
    env.update(JUNCTION_DATA_DIR=str(data_dir), JUNCTION_EMBEDDED_POSTGRES_PORT=str(free_port()), JUNCTION_BCRYPT_ROUNDS="4")

    def junction(*args: str) -> dict:
        done = subprocess.run([sys.executable, "-m", "junction", *args], env=env, capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stderr[-2000:]
        return json.loads(done.stdout)

    assert junction("admin", "create", "ops@example.com", "--password", "first-password")["email"] == "ops@example.com"
    reset = junction("admin", "reset-password", "ops@example.com")
    assert reset["email"] == "ops@example.com" and len(reset["generated_password"]) >= 12
    pid_file = data_dir / "postgres" / "data" / "postmaster.pid"
    assert not pid_file.exists()  # the command's own PostgreSQL was stopped again
