"""Control starts and serves its management API while the broker is down: changes go to the outbox, and
what needs the broker says so: a change is not relayed, and a wait for a reader answers 503, naming it."""
from __future__ import annotations

import uuid
from typing import Any

import aiohttp

from control.app import create_app
from core.http import listening
from core.settings import Settings
from junction.broker import free_port
from tests.control_support import ADMIN_EMAIL, ADMIN_PASSWORD


async def test_control_starts_and_serves_while_the_broker_is_down(control_settings: Settings, control: Any) -> None:
    # `control` made the admin in this run's database; nothing listens on the broker port given here.
    dead = control_settings.with_overrides(kafka_bootstrap_servers=f"127.0.0.1:{free_port()}",
                                           control_port=free_port())
    base = f"http://127.0.0.1:{dead.control_port}/api/v1"
    async with listening(create_app(dead, observe=False, sandbox=False), "127.0.0.1", dead.control_port), \
            aiohttp.ClientSession() as s:
        async with s.post(f"{base}/auth/login", json={"email": ADMIN_EMAIL, "password": ADMIN_PASSWORD}) as r:
            assert r.status == 200, await r.text()
            auth = {"Authorization": f"Bearer {(await r.json())['access_token']}"}
        slug = f"down-{uuid.uuid4().hex[:8]}"
        async with s.post(f"{base}/orgs", json={"slug": slug, "name": slug}, headers=auth) as r:
            assert r.status == 201, await r.text()  # kept in the outbox until the broker is back
        async with s.get(f"{base}/config/applied?wait=0.5", headers=auth) as r:
            answer = await r.json()  # said without the broker: the change is not relayed yet
            assert r.status == 200 and answer["applied"] is False and answer["relayed"] is False, answer
        for path in (f"/orgs/{slug}/dead-letters?wait=1", f"/orgs/{slug}/logs?wait=0"):
            async with s.get(base + path, headers=auth) as r:
                body = await r.json()
                assert r.status == 503 and body["code"] == "service_unavailable", (path, body)
                assert "broker" in body["message"], (path, body)
        async with s.get(f"{base}/orgs/{slug}/dead-letters", headers=auth) as r:
            assert r.status == 200 and (await r.json())["items"] == []
