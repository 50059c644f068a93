"""One installation per topic prefix (issue: two installations on one JUNCTION_TOPIC_PREFIX broke each other).

Each installation (its own database schema here) names itself on every config record it publishes. A second
installation pointed at a topic prefix the first uses is refused at start (in-process, `junction serve control`
and `junction up`) and publishes nothing; the first keeps serving. Records without the header (older versions)
are nobody's and accepted; records of an installation other than the topic's first are skipped by the stages.
Each test has its own topic prefix and schemas."""
from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import sys
import uuid
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import asyncpg
import pytest
import pytest_asyncio
from aiohttp import web

from control.admin import create_admin
from control.app import create_app
from control.outbox import publish_config_events
from core.config_feed import ConfigFollower
from core.consume import read_topic
from core.http import listening
from core.installation import ForeignInstallation, installation_of
from core.kafka import ensure_topics, make_producer
from core.settings import Settings
from core.snapshot import ConfigSnapshot
from egress.worker import EgressWorker
from junction.broker import free_port
from tests.support import IngressInstance, ProcessorsProcess, wait_until

ADMIN, PASSWORD = "inst@example.com", "inst-password-1"


async def _drop(settings: Settings, *schemas: str) -> None:
    conn = await asyncpg.connect(settings.database_dsn)
    try:
        for schema in schemas:
            await conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
    finally:
        await conn.close()


@pytest_asyncio.fixture(loop_scope="session")
async def own_prefix(control_settings: Settings) -> AsyncIterator[Settings]:
    """Installation A's settings: a topic and group prefix, a schema and ports of this test's own."""
    run = uuid.uuid4().hex[:8]
    s = control_settings.with_overrides(
        topic_prefix=f"inst{run}", group_prefix=f"inst{run}", database_schema=f"t_inst_a_{run}",
        control_port=free_port(), ingress_port=free_port(), processors_port=free_port(), egress_port=free_port())
    await ensure_topics(s)
    yield s
    await _drop(s, s.database_schema)


def _second(s: Settings) -> Settings:
    """Installation C: the same topic and group prefix, its own database schema (so its own id) and ports."""
    return s.with_overrides(database_schema=f"t_inst_c_{uuid.uuid4().hex[:8]}", control_port=free_port(),
                            ingress_port=free_port(), processors_port=free_port(), egress_port=free_port())


async def _installation_of_schema(s: Settings) -> str | None:
    conn = await asyncpg.connect(s.database_dsn, server_settings={"search_path": s.database_schema})
    try:
        with contextlib.suppress(asyncpg.UndefinedTableError):
            value = await conn.fetchval("SELECT id FROM installation")
            return str(value) if value else None
        return None
    finally:
        await conn.close()


async def _topic_installations(s: Settings) -> list[str | None]:
    return [installation_of(r) for r in await read_topic(s, s.topics.config)]


async def _call(session: aiohttp.ClientSession, method: str, url: str, token: str | None = None,
                body: Any = None) -> tuple[int, Any]:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    async with session.request(method, url, json=body, headers=headers) as r:
        return r.status, await r.json(content_type=None)


async def _status(url: str) -> int:
    async with aiohttp.ClientSession() as s, s.get(url) as r:
        return r.status


async def _run(env: dict[str, str], *argv: str) -> tuple[int, str]:
    proc = await asyncio.create_subprocess_exec(sys.executable, "-m", "junction", *argv, env=env,
                                                stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE,
                                                stderr=asyncio.subprocess.PIPE)
    out, err = await proc.communicate()
    return proc.returncode or 0, out.decode() + err.decode()


async def test_a_second_installation_on_the_same_topic_prefix_is_refused_and_the_first_keeps_serving(
        own_prefix: Settings, upstream: str) -> None:
    a = own_prefix
    c = _second(a)
    processors = ProcessorsProcess(a)
    egress = EgressWorker(a)
    ingress = IngressInstance(a)
    try:
        async with listening(create_app(a, observe=False, sandbox=False), "127.0.0.1", a.control_port), \
                aiohttp.ClientSession() as session:
            base = f"http://127.0.0.1:{a.control_port}"
            await create_admin(a, ADMIN, PASSWORD)
            _, login = await _call(session, "POST", f"{base}/api/v1/auth/login", body={"email": ADMIN, "password": PASSWORD})
            token = login["access_token"]
            status, org = await _call(session, "POST", f"{base}/api/v1/orgs", token, {"slug": "demo", "name": "demo"})
            assert status == 201, org
            status, conn = await _call(session, "POST", f"{base}/api/v1/orgs/demo/connectors", token,
                                       {"name": "c", "target": {"protocol": "rest", "url": upstream + "/echo"}})
            assert status == 201, conn
            status, api = await _call(session, "POST", f"{base}/api/v1/orgs/demo/apis", token,
                                      {"name": "a", "methods": ["GET"], "path": "/e", "connector": conn["id"]})
            assert status == 201, api
            await processors.start()
            await egress.start()
            await egress.wait_assigned()
            await ingress.start()
            await wait_until(lambda: api["id"] in ingress.snapshot.apis)
            assert await _status(f"{ingress.url}/demo/e") == 200

            a_id = await _installation_of_schema(a)
            assert a_id is not None
            await wait_until(lambda: ingress.snapshot.version_of("api", api["id"]) == 1)
            assert set(await _topic_installations(a)) == {a_id}  # every record A published names A

            # C, in-process as control serves it: refused while it starts, naming the prefix, A and the fix.
            app_c = create_app(c, observe=False, sandbox=False)
            runner = web.AppRunner(app_c, handle_signals=False)
            with pytest.raises(ForeignInstallation) as refused:
                await runner.setup()
            await app_c.cleanup()  # what had started before the check (its pool, Redis)
            message = str(refused.value)
            assert repr(a.topic_prefix) in message and a_id in message, message
            assert "JUNCTION_TOPIC_PREFIX" in message and "JUNCTION_GROUP_PREFIX" in message, message
            c_id = await _installation_of_schema(c)
            assert c_id is not None and c_id != a_id and c_id in message

            # `junction serve control` alone refuses too, and `junction up` says it in one line and exits 1.
            env = {**os.environ, **c.to_env(), "JUNCTION_LOG_LEVEL": "WARNING"}
            code, output = await _run(env, "serve", "control")
            refusal = [line for line in output.splitlines() if line.startswith("junction serve control: ")]
            assert code == 1 and len(refusal) == 1 and a_id in refusal[0] and "Traceback" not in output, output
            code, output = await _run(env, "up")
            lines = [line for line in output.splitlines() if line.startswith("junction up: ")]
            assert code == 1 and len(lines) == 1, output
            assert a.topic_prefix in lines[0] and a_id in lines[0] and "JUNCTION_TOPIC_PREFIX" in lines[0], output
            assert "Global admin" not in output, output  # refused before an admin (and its password) was made

            # C published nothing, and A goes on serving and taking changes.
            assert set(await _topic_installations(a)) == {a_id}
            assert await _status(f"{base}/readyz") == 200
            assert await _status(f"{ingress.url}/demo/e") == 200
            status, api2 = await _call(session, "POST", f"{base}/api/v1/orgs/demo/apis", token,
                                       {"name": "a2", "methods": ["GET"], "path": "/f", "connector": conn["id"]})
            assert status == 201, api2
            await wait_until(lambda: api2["id"] in ingress.snapshot.apis)
            assert await _status(f"{ingress.url}/demo/f") == 200
            assert ingress.snapshot.orgs["demo"]["id"] == org["id"]
    finally:
        await ingress.stop()
        await egress.stop()
        processors.stop()
        await _drop(a, c.database_schema)


async def test_records_without_an_installation_are_accepted(own_prefix: Settings) -> None:
    """Records an older version wrote (no header) are nobody's: control starts on them, stages apply them."""
    s = own_prefix
    legacy_id = str(uuid.uuid4())
    producer = make_producer(s)
    await producer.start()
    try:
        await publish_config_events(producer, s, [{
            "event_id": 1, "kind": "org", "id": legacy_id, "org": "legacy", "version": 1, "op": "upsert",
            "document": json.dumps({"id": legacy_id, "slug": "legacy", "name": "legacy"})}])
    finally:
        await producer.stop()
    assert await _topic_installations(s) == [None]

    async with listening(create_app(s, observe=False, sandbox=False), "127.0.0.1", s.control_port), \
            aiohttp.ClientSession() as session:
        base = f"http://127.0.0.1:{s.control_port}"
        await create_admin(s, ADMIN, PASSWORD)
        _, login = await _call(session, "POST", f"{base}/api/v1/auth/login", body={"email": ADMIN, "password": PASSWORD})
        status, mine = await _call(session, "POST", f"{base}/api/v1/orgs", login["access_token"],
                                   {"slug": "mine", "name": "mine"})
        assert status == 201, mine
        own = await _installation_of_schema(s)
        follower = ConfigFollower(s, ConfigSnapshot())
        await follower.start()
        try:
            await follower.wait_synced()
            await wait_until(lambda: "mine" in follower.snapshot.orgs)
            assert follower.snapshot.orgs["legacy"]["id"] == legacy_id
            assert follower.owner == own and follower.foreign == set()
        finally:
            await follower.stop()
        assert await _status(f"{base}/readyz") == 200
    found = await _topic_installations(s)
    assert found[0] is None and own in found and set(found) == {None, own}, found


async def test_stages_skip_records_of_an_installation_other_than_the_first(
        own_prefix: Settings, caplog: pytest.LogCaptureFixture) -> None:
    s = own_prefix
    first, other = str(uuid.uuid4()), str(uuid.uuid4())
    first_org, other_org, legacy_org = str(uuid.uuid4()), str(uuid.uuid4()), str(uuid.uuid4())

    def org(id_: str, slug: str, n: int) -> dict[str, Any]:
        return {"event_id": n, "kind": "org", "id": id_, "org": slug, "version": 1, "op": "upsert",
                "document": json.dumps({"id": id_, "slug": slug, "name": slug})}

    producer = make_producer(s)
    await producer.start()
    try:
        await publish_config_events(producer, s, [org(first_org, "demo", 1)], installation=first)
        # Another installation's organisation of the same slug, as a racing start would have left it.
        await publish_config_events(producer, s, [org(other_org, "demo", 2), org(str(uuid.uuid4()), "theirs", 3)],
                                    installation=other)
        await publish_config_events(producer, s, [org(legacy_org, "legacy", 4)])
    finally:
        await producer.stop()

    caplog.set_level(logging.ERROR, logger="core.config_feed")
    follower = ConfigFollower(s, ConfigSnapshot())
    await follower.start()
    try:
        await follower.wait_synced()
        assert follower.snapshot.orgs["demo"]["id"] == first_org  # not taken over by the other installation
        assert "theirs" not in follower.snapshot.orgs
        assert follower.snapshot.orgs["legacy"]["id"] == legacy_org  # nobody's: applied
        assert follower.owner == first and follower.foreign == {other}
        errors = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR and other in r.getMessage()]
        assert len(errors) == 1 and first in errors[0] and s.topic_prefix in errors[0], errors  # once, not per record
        await follower.ready()  # what it serves is the owner's configuration, whole
    finally:
        await follower.stop()

    # Control agrees on the owner: the other installation is refused, the first is not.
    from control.installation import check_topic_prefix

    await check_topic_prefix(s, first)
    with pytest.raises(ForeignInstallation, match=first):
        await check_topic_prefix(s, other)
