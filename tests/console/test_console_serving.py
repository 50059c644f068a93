"""The web console as the control service serves it (control/console.py): caching headers, the
not-built page, and the API's own answers left as they were."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from control.app import create_app
from control.console import CONSOLE_CSP, console_routes
from core.http import error_middleware, listening
from core.settings import Settings
from junction.broker import free_port


async def _client(dist: Path) -> TestClient:
    app = web.Application(middlewares=[error_middleware])
    app.add_routes(console_routes(dist))
    client = TestClient(TestServer(app))
    await client.start_server()
    return client


async def test_built_console_is_served_with_caching_headers(tmp_path: Path) -> None:
    (tmp_path / "assets").mkdir()
    (tmp_path / "index.html").write_text("<!doctype html><title>Junction console</title>")
    (tmp_path / "assets" / "index-AbC123.js").write_text("console.log(1)")
    client = await _client(tmp_path)
    try:
        for path in ("/", "/login", "/orgs/acme/apis", "/admin/orgs", "/account"):
            r = await client.get(path)
            assert r.status == 200, path
            assert "Junction console" in await r.text()
            assert r.headers["Cache-Control"] == "no-cache"
            assert r.headers["Content-Type"].startswith("text/html")
            assert r.headers["Content-Security-Policy"] == CONSOLE_CSP
        r = await client.get("/assets/index-AbC123.js")
        assert r.status == 200 and await r.text() == "console.log(1)"
        assert r.headers["Cache-Control"] == "public, max-age=31536000, immutable"
        assert (await client.head("/")).status == 200
        for path in ("/assets/nope.js", "/assets/..%2Findex.html", "/elsewhere"):
            r = await client.get(path)
            assert r.status == 404, path
            assert (await r.json())["code"] == "not_found"
        assert (await client.post("/")).status == 405
    finally:
        await client.close()


async def test_not_built_console_says_how_to_build_it(tmp_path: Path) -> None:
    client = await _client(tmp_path / "missing")
    try:
        r = await client.get("/orgs/acme/apis")
        text = await r.text()
        assert r.status == 503 and r.headers["Content-Type"].startswith("text/html")
        assert "The web console is not built" in text and "make console" in text and "npm ci" in text
        assert "JUNCTION_CONSOLE_DIR" in text  # for an installed Junction, which has no repository to build in
        assert r.headers["Cache-Control"] == "no-store"
    finally:
        await client.close()


async def test_control_service_keeps_api_answers(control: Any) -> None:
    r = await control.call("GET", "/api/v1/no-such-thing", control.admin_token)
    assert r.status == 404 and r.body["code"] == "not_found"
    r = await control.call("DELETE", "/api/v1/orgs", control.admin_token)
    assert r.status == 405
    r = await control.call("GET", "/")
    assert r.status in (200, 503) and r.headers["Content-Type"].startswith("text/html")
    r = await control.call("GET", "/api/v1/orgs")
    assert r.status == 401


async def test_control_serves_the_console_that_junction_console_dir_names(settings: Settings, tmp_path: Path) -> None:
    """How the container image serves the console it built (infra/Dockerfile): from JUNCTION_CONSOLE_DIR."""
    (tmp_path / "index.html").write_text("<!doctype html><title>The console built elsewhere</title>")
    port = free_port()
    app = create_app(settings.with_overrides(console_dir=str(tmp_path), control_metrics_port=0), relay=False, sandbox=False)
    async with listening(app, "127.0.0.1", port), aiohttp.ClientSession() as http:
        for path in ("/", "/orgs/acme/apis"):
            async with http.get(f"http://127.0.0.1:{port}{path}") as r:
                assert r.status == 200 and "The console built elsewhere" in await r.text(), path
        async with http.get(f"http://127.0.0.1:{port}/api/v1/orgs") as r:
            assert r.status == 401  # the API's routes still win
