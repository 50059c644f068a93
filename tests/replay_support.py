"""Replay through the management API, for the pipeline tests: find an indexed dead letter, start a job,
follow it to its end, and an upstream that records what reaches it."""
from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from typing import Any

from aiohttp import web

from junction.broker import free_port

__all__ = ["RecordingUpstream", "indexed_letters", "new_org", "replay", "wait_job"]


class RecordingUpstream:
    """An upstream on a port of its own that can be down (nothing listens) and come back, recording each body."""

    def __init__(self) -> None:
        self.port = free_port()
        self.bodies: list[bytes] = []
        self._runner: web.AppRunner | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/in"

    async def up(self) -> None:
        async def record(request: web.Request) -> web.Response:
            self.bodies.append(await request.read())
            return web.json_response({"ok": True})

        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", record)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", self.port).start()

    async def down(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    @classmethod
    @contextlib.asynccontextmanager
    async def running(cls, *, up: bool = True) -> AsyncIterator[RecordingUpstream]:
        upstream = cls()
        if up:
            await upstream.up()
        try:
            yield upstream
        finally:
            await upstream.down()


async def new_org(control: Any) -> str:
    """An organisation of control's (so its dead letters are indexed under it), whose own config event is already
    out: a Stage's documents for the same slug, published after, are the ones the pipeline keeps."""
    org = await control.new_org("rp")
    await control.watch.wait_for(lambda: control.watch.document("org", org["id"]) is not None)
    return str(org["slug"])


async def staged_api(control: Any, stage: Any, upstream_url: str, *, org: str, **fields: Any) -> dict[str, Any]:
    """``stage.api`` for an organisation of control's, with its connector and API also in control's store, as
    every API of a running gateway is: a dead letter is its organisation's only if the API it names is one of
    the organisation's (control/store/dead_letters.py)."""
    staged = await stage.api(upstream_url, org=org, **fields)
    api, connector = staged["api"], staged["connector"]
    async with control.pool.acquire() as conn, conn.transaction():
        org_id = await conn.fetchval("SELECT id FROM organisations WHERE slug = $1", org)
        await conn.execute("INSERT INTO connectors (id, org_id, name, version, content) VALUES ($1, $2, $3, 1, $4::jsonb)",
                           connector["id"], org_id, f"staged-{connector['id']}", json.dumps(connector))
        await conn.execute("INSERT INTO apis (id, org_id, name, connector_id, version, content)"
                           " VALUES ($1, $2, $3, $4, 1, $5::jsonb)", api["id"], org_id, f"staged-{api['id']}",
                           connector["id"], json.dumps(api))
    return staged


async def indexed_letters(control: Any, org: str, correlation_ids: list[str], *, stage: str | None = None,
                          timeout_s: float = 20.0) -> list[dict[str, Any]]:
    """The indexed dead letters of these calls (one each, of ``stage`` if given), in the order named."""
    loop = asyncio.get_running_loop()
    until = loop.time() + timeout_s
    while True:
        found: dict[str, dict[str, Any]] = {}
        for cid in correlation_ids:
            query = f"?correlation_id={cid}" + (f"&stage={stage}" if stage else "")
            r = await control.call("GET", f"/api/v1/orgs/{org}/dead-letters{query}", control.admin_token)
            assert r.status == 200, r.body
            if r.body["items"]:
                found[cid] = min(r.body["items"], key=lambda letter: letter["attempt"])
        if len(found) == len(correlation_ids):
            return [found[c] for c in correlation_ids]
        if loop.time() > until:
            raise AssertionError(f"{len(found)} of {len(correlation_ids)} dead letters indexed")
        await asyncio.sleep(0.1)


async def replay(control: Any, org: str, body: dict[str, Any], token: str | None = None) -> Any:
    return await control.call("POST", f"/api/v1/orgs/{org}/replays", token or control.admin_token, body)


async def wait_job(control: Any, org: str, job_id: str, *, timeout_s: float = 30.0) -> dict[str, Any]:
    loop = asyncio.get_running_loop()
    until = loop.time() + timeout_s
    while True:
        r = await control.call("GET", f"/api/v1/orgs/{org}/replays/{job_id}", control.admin_token)
        assert r.status == 200, r.body
        if r.body["status"] == "done":
            return r.body
        if loop.time() > until:
            raise AssertionError(f"replay job still running: {r.body['progress']}")
        await asyncio.sleep(0.1)
