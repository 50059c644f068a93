"""The SDK and the CLI against the live control server."""
from __future__ import annotations

import asyncio
import json
import os
import sys
import uuid
from typing import Any

import pytest

from core.settings import load_settings
from junction.broker import free_port
from junction.sdk import JunctionAPIError, JunctionClient
from tests.control_support import run_cli


async def test_sdk_round_trip(control: Any) -> None:
    async with JunctionClient(control.base_url) as jc:
        with pytest.raises(JunctionAPIError) as info:
            await jc.list_orgs()
        assert info.value.status == 401
        await jc.login("root@example.com", "root-password-1")
        slug = f"sdk-{uuid.uuid4().hex[:8]}"
        org = await jc.create_org(slug, "SDK org")
        assert org["slug"] == slug
        conn = await jc.create_connector(slug, "backend", {"protocol": "rest", "url": "http://127.0.0.1:9/o/{id}"})
        api = await jc.create_api(slug, "orders", ["GET"], "/orders/{id}", conn["id"], timeout_ms=3000)
        assert api["version"] == 1
        api2 = await jc.update_api(slug, api["id"], if_version=1, timeout_ms=4000)
        assert api2["version"] == 2
        with pytest.raises(JunctionAPIError) as info:
            await jc.update_api(slug, api["id"], if_version=1, timeout_ms=1)
        assert info.value.status == 412 and info.value.code == "precondition_failed"
        with pytest.raises(JunctionAPIError) as info:
            await jc.create_api(slug, "bad", ["GET"], "/x", conn["id"], timeout_ms=0)
        assert info.value.status == 422 and info.value.fields[0].field == "timeout_ms"
        diff = await jc.diff(slug, "apis", api["id"], 1, 2)
        assert diff["changes"] == [{"field": "timeout_ms", "before": 3000, "after": 4000}]
        back = await jc.rollback(slug, "apis", api["id"], 1)
        assert back["version"] == 3 and back["timeout_ms"] == 3000
        assert [v["version"] for v in await jc.versions(slug, "apis", api["id"])] == [1, 2, 3]
        user = await jc.create_user(slug, f"v{uuid.uuid4().hex[:6]}@x.io", "password-1", "org_viewer")
        assert (await jc.get_user(slug, user["id"]))["role"] == "org_viewer"
        entries = [e async for e in jc.iter_audit(org=slug, limit=2)]
        assert {e["resource_type"] for e in entries} == {"org", "connector", "api", "user"}
        assert (await jc.openapi())["openapi"].startswith("3.1")
        await jc.delete_api(slug, api["id"])
        await jc.delete_connector(slug, conn["id"])
        await jc.delete_org(slug)


async def test_cli(control: Any) -> None:
    url = ["--url", control.base_url]
    rc, data, err = await run_cli(control, "migrate")
    assert rc == 0 and data["applied"] == [], err
    slug = f"cli-{uuid.uuid4().hex[:8]}"
    rc, data, err = await run_cli(control, "orgs", "create", slug, "CLI org", *url)
    assert rc == 0 and data["slug"] == slug, err
    rc, data, err = await run_cli(control, "connectors", "create", slug, "--name", "b", "--target-url",
                               "http://127.0.0.1:9/x", "--method", "get", *url)
    assert rc == 0, err
    conn_id = data["id"]
    rc, data, err = await run_cli(control, "apis", "create", slug, "--name", "a", "--methods", "GET,POST",
                               "--path", "/a/{id}", "--connector", conn_id, *url)
    assert rc == 0 and data["methods"] == ["GET", "POST"], err
    api_id = data["id"]
    rc, data, err = await run_cli(control, "apis", "update", slug, api_id, "--timeout-ms", "1500", *url)
    assert rc == 0 and data["version"] == 2, err
    rc, data, err = await run_cli(control, "versions", "apis", slug, api_id, "--diff", "1", "2", *url)
    assert rc == 0 and data["changes"][0]["field"] == "timeout_ms", err
    rc, data, err = await run_cli(control, "rollback", "apis", slug, api_id, "1", *url)
    assert rc == 0 and data["version"] == 3, err
    rc, data, err = await run_cli(control, "audit", "--org", slug, "--resource-type", "api", *url)
    assert rc == 0 and [e["action"] for e in data["items"]] == ["rollback", "update", "create"], err
    rc, data, err = await run_cli(control, "apis", "create", slug, "--name", "bad", "--methods", "GET",
                               "--path", "nope", "--connector", conn_id, *url)
    assert rc == 1 and json.loads(err)["code"] == "invalid_path"
    email = f"adm{uuid.uuid4().hex[:6]}@x.io"
    rc, data, err = await run_cli(control, "admin", "create", email)
    assert rc == 0 and data["role"] == "global_admin" and data["generated_password"], err
    await control.login(email, data["generated_password"])


async def test_cli_without_a_usable_token_says_how_to_get_one(control: Any) -> None:
    url = ["--url", control.base_url]
    for token, code in (("", "unauthorized"), ("not-a-token", "invalid_token")):
        rc, data, err = await run_cli(control, "orgs", "list", *url, token=token)
        shown = json.loads(err)
        assert rc == 1 and data is None and shown["status"] == 401 and shown["code"] == code, err
        assert "junction login" in shown["hint"] and "JUNCTION_TOKEN" in shown["hint"]
        assert shown["hint"].startswith("the token was refused") == bool(token)


async def test_cli_refuses_a_body_or_file_it_cannot_use_naming_the_option(control: Any, tmp_path: Any) -> None:
    """Bad --json, --file or --script-file is an error in the API's shape, not a traceback, and nothing is sent."""
    url = ["--url", control.base_url]
    slug = f"cli-{uuid.uuid4().hex[:8]}"
    rc, _, err = await run_cli(control, "orgs", "create", slug, "CLI input org", *url)
    assert rc == 0, err
    binary = tmp_path / "script.bin"
    binary.write_bytes(b"\xff\xfe\x00not text")
    cases = [
        (["apis", "create", slug, "--json", "{bad"], "--json", "not valid JSON"),
        (["apis", "create", slug, "--json", "[1, 2]"], "--json", "must be a JSON object"),
        (["connectors", "create", slug, "--file", str(tmp_path / "missing.json")], "--file", "cannot read"),
        (["connectors", "create", slug, "--name", "c", "--target-url", "http://127.0.0.1:9/x",
          "--script-file", str(binary)], "--script-file", "cannot read"),
    ]
    for argv, option, words in cases:
        rc, data, err = await run_cli(control, *argv, *url)
        assert rc == 2 and data is None and "Traceback" not in err, err
        shown = json.loads(err)
        assert shown["code"] == "invalid_input" and shown["fields"][0]["field"] == option, err
        assert words in shown["message"], err
    rc, data, err = await run_cli(control, "connectors", "list", slug, *url)
    assert rc == 0 and data == [], err


async def test_the_cli_finds_the_management_api_where_the_settings_put_it(control: Any) -> None:
    """Without --url, the CLI talks to JUNCTION_CONTROL_HOST:JUNCTION_CONTROL_PORT, as the service listens (a
    moved port must not send every documented command to whatever else answers on 8081)."""
    org = await control.new_org("cliurl")
    assert control.settings.control_port != 8081
    rc, data, err = await run_cli(control, "orgs", "get", org["slug"])  # run_cli passes the control's settings
    assert rc == 0 and data["slug"] == org["slug"], err
    port = free_port()
    env = {**os.environ, **control.settings.to_env(), "JUNCTION_TOKEN": control.admin_token,
           "JUNCTION_CONTROL_PORT": str(port)}
    proc = await asyncio.create_subprocess_exec(sys.executable, "-m", "junction", "orgs", "get", org["slug"], env=env,
                                                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    _, err_bytes = await proc.communicate()
    failure = json.loads(err_bytes)
    assert proc.returncode == 2 and failure["code"] == "unreachable", failure
    assert failure["message"].startswith(f"http://127.0.0.1:{port}"), failure


@pytest.mark.parametrize("host, url", [("127.0.0.1", "http://127.0.0.1:9"), ("0.0.0.0", "http://127.0.0.1:9"),
                                       ("::", "http://[::1]:9"), ("::1", "http://[::1]:9"),
                                       ("control.internal", "http://control.internal:9")])
def test_the_control_url_of_a_listening_address(host: str, url: str) -> None:
    assert load_settings({"JUNCTION_CONTROL_HOST": host, "JUNCTION_CONTROL_PORT": "9"}).control_url == url


async def test_the_sdk_sends_if_match_wherever_the_api_takes_it_and_names_an_unreachable_server(control: Any) -> None:
    """A stale ``if_version`` is refused (412) and changes nothing; the current one goes through. No answer at
    all is the SDK's own error type too (code unreachable), not a library's."""
    org = (await control.new_org("ifm"))["slug"]
    async with JunctionClient(control.base_url, control.admin_token) as jc:
        conn = await jc.create_connector(org, "c1", {"protocol": "rest", "url": "https://example.com/x"})
        api = await jc.create_api(org, "a1", ["GET"], "/a1", conn["id"])
        await jc.update_api(org, api["id"], timeout_ms=1234)  # version 2
        user = await jc.create_user(org, f"u{uuid.uuid4().hex[:6]}@x.io", "password-1")
        consumer = await jc.create_consumer(org, "shop")
        stale: list[tuple[str, Any]] = [
            ("rollback", lambda v: jc.rollback(org, "apis", api["id"], 1, if_version=v)),
            ("delete_api", lambda v: jc.delete_api(org, api["id"], if_version=v)),
            ("update_user", lambda v: jc.update_user(org, user["id"], role="org_admin", if_version=v)),
            ("delete_user", lambda v: jc.delete_user(org, user["id"], if_version=v)),
            ("delete_consumer", lambda v: jc.delete_consumer(org, consumer["id"], if_version=v)),
            ("delete_connector", lambda v: jc.delete_connector(org, conn["id"], if_version=v)),
        ]
        for name, call in stale:
            with pytest.raises(JunctionAPIError) as refused:
                await call(99)
            assert refused.value.status == 412, (name, refused.value)
        assert (await jc.get_api(org, api["id"]))["version"] == 2  # nothing changed
        rolled = await jc.rollback(org, "apis", api["id"], 1, if_version=2)
        assert rolled["version"] == 3
        await jc.delete_api(org, api["id"], if_version=3)
        user_now = await jc.get_user(org, user["id"])
        await jc.update_user(org, user["id"], role="org_admin", if_version=user_now["version"])
        await jc.delete_connector(org, conn["id"], if_version=1)
        page = await jc.list_logs(org, limit=1)
        assert [row async for row in jc.iter_logs(org, cursor=page["next_cursor"])] == []  # no TypeError
    async with JunctionClient(f"http://127.0.0.1:{free_port()}", "t") as dead:
        with pytest.raises(JunctionAPIError) as nobody:
            await dead.list_orgs()
    assert nobody.value.status == 0 and nobody.value.code == "unreachable" and "127.0.0.1" in nobody.value.message
