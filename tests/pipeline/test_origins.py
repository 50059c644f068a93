"""A connector's ``target.origins``: one upstream served by several origins. Through control, ingress,
processors and egress: calls go round the origins (target.url's own origin is never called), keep their path
and query, pass over an origin that cannot be connected to even for a POST (nothing was sent), and that
origin's breaker opens and is shown per origin; control refuses what is not an origin, naming the item; and
the SSRF guard is asked for each origin: one it refuses is never connected to, and its call fails with
target_not_allowed and a dead letter (a misconfigured pool shows, it is not hidden)."""
from __future__ import annotations

import asyncio
import uuid
from collections import Counter
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest_asyncio
from aiohttp import web

from control.replay import read_dead_letters
from core.settings import Settings
from junction.broker import free_port
from tests.support import IngressInstance, serving, wait_until


class Origin:
    def __init__(self, name: str) -> None:
        self.name = name
        self.url = ""
        self.seen: list[str] = []  # method and path_qs of every call it got


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def two_origins() -> AsyncIterator[tuple[Origin, Origin]]:
    found = (Origin("a"), Origin("b"))

    def app_for(origin: Origin) -> web.Application:
        async def handle(request: web.Request) -> web.Response:
            origin.seen.append(f"{request.method} {request.path_qs}")
            return web.json_response({"served_by": origin.name, "path": request.path_qs})

        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", handle)
        return app

    async with serving(app_for(found[0])) as a, serving(app_for(found[1])) as b:
        found[0].url, found[1].url = a, b
        yield found


async def _api(control: Any, ingress: IngressInstance, egress: dict[str, Any], origins: list[str],
               method: str) -> tuple[str, str, dict[str, Any]]:
    org = (await control.new_org("orig"))["slug"]
    # target.url's own origin listens nowhere: with origins, it is never called.
    conn = await control.new_connector(org, target={"protocol": "rest", "url": f"http://127.0.0.1:{free_port()}/base/{{id}}",
                                                    "method": method, "origins": origins})
    api = await control.new_api(org, conn["id"], path="/items/{id}", methods=[method])
    worker = egress["worker"]
    await wait_until(lambda: (ingress.snapshot.version_of("api", api["id"]) or 0) >= api["version"]
                     and worker.snapshot.connector(conn["id"], conn["version"]) is not None)
    return org, f"{ingress.url}/{org}/items/7?q=1", conn


async def _calls(method: str, url: str, n: int) -> list[tuple[int, Any]]:
    out = []
    async with aiohttp.ClientSession() as s:
        for _ in range(n):
            async with s.request(method, url, json={"n": 1} if method == "POST" else None) as r:
                out.append((r.status, await r.json(content_type=None)))
    return out


async def test_calls_go_round_the_origins_with_their_path(control: Any, ingress: IngressInstance, egress: dict[str, Any],
                                                          two_origins: tuple[Origin, Origin]) -> None:
    a, b = two_origins
    before = len(a.seen), len(b.seen)
    _, url, _ = await _api(control, ingress, egress, [a.url, b.url + "/"], "GET")
    answers = await _calls("GET", url, 6)
    assert all(status == 200 for status, _ in answers), answers
    served = Counter(body["served_by"] for _, body in answers)
    # One egress instance goes round: each origin takes every other call.
    assert served == {"a": 3, "b": 3}, served
    assert {body["path"] for _, body in answers} == {"/base/7?q=1"}
    assert len(a.seen) - before[0] == 3 and len(b.seen) - before[1] == 3


async def test_an_origin_that_cannot_be_connected_to_is_passed_over_and_its_breaker_opens(
        control: Any, ingress: IngressInstance, egress: dict[str, Any], two_origins: tuple[Origin, Origin]) -> None:
    a, _ = two_origins
    dead = f"http://127.0.0.1:{free_port()}"  # its own: no other test's failures count on its breaker
    org, url, conn = await _api(control, ingress, egress, [dead, a.url], "POST")
    before = len(a.seen)
    fail_max = control.settings.breaker_fail_max
    # POSTs are never retried; each one the dead origin's turn goes to was never sent, so the next origin takes it.
    answers = await _calls("POST", url, 2 * fail_max + 2)
    assert all(status == 200 and body["served_by"] == "a" for status, body in answers), answers
    assert len(a.seen) - before == len(answers)
    r = await control.call("GET", f"/api/v1/orgs/{org}/connectors/{conn['id']}/breaker", control.admin_token)
    assert r.status == 200, r.body
    by_origin = {o["origin"]: o for o in r.body["origins"]}
    assert set(by_origin) == {dead, a.url.lower()}
    assert by_origin[dead]["state"] == "open" and by_origin[a.url.lower()]["state"] == "closed", r.body
    assert r.body["origin"] == dead  # the fields of the answer are the first origin's


async def test_control_refuses_what_is_not_an_origin(control: Any) -> None:
    org = (await control.new_org("orig"))["slug"]
    cases = [
        ({"protocol": "rest", "origins": ["http://a.example/x"]}, "target.origins[0]", "no path"),
        ({"protocol": "rest", "origins": ["http://a.example", "ftp://b.example"]}, "target.origins[1]", "http or https"),
        ({"protocol": "rest", "origins": ["http://u:p@a.example"]}, "target.origins[0]", "no user or password"),
        ({"protocol": "rest", "origins": ["http://a.example", "HTTP://A.example/"]}, "target.origins[1]", "twice"),
        ({"protocol": "rest", "origins": []}, "target.origins", ""),
        ({"protocol": "soap", "origins": ["http://a.example"]}, "target.origins", "rest targets only"),
    ]
    for target, field, words in cases:
        body = {"name": f"c-{uuid.uuid4().hex[:6]}", "target": {"url": "http://a.example/s", **target}}
        r = await control.call("POST", f"/api/v1/orgs/{org}/connectors", control.admin_token, body)
        assert r.status == 422, (target, r.body)
        problems = {f["field"]: f["message"] for f in r.body["fields"]}
        assert field in problems and words in problems[field], (target, problems)
    r = await control.call("GET", f"/api/v1/orgs/{org}/connectors", control.admin_token)
    assert r.body["items"] == [], "a refused connector was saved"


async def test_every_origin_passes_the_ssrf_guard(settings: Settings, control: Any, ingress: IngressInstance,
                                                  egress: dict[str, Any], two_origins: tuple[Origin, Origin],
                                                  guarded_egress: None, untrusted_victim: Any) -> None:
    a, _ = two_origins  # on 127.0.0.1, which the guard of guarded_egress trusts
    org, url, _ = await _api(control, ingress, egress, [untrusted_victim.url, a.url], "GET")
    answers = await _calls("GET", url, 4)
    assert untrusted_victim.reached == [], "the guard let a call reach an origin it refuses"
    # The refused origin's turns fail (its call is not quietly moved on); the trusted one's are served.
    assert [status for status, _ in answers] == [502, 200, 502, 200], answers
    refused = [body for status, body in answers if status == 502]
    assert all(b["code"] == "target_not_allowed" and "127.0.0.2" in b["message"] for b in refused), refused
    cids = {b["correlation_id"] for b in refused}
    for _ in range(100):  # written with the reply; read back from the topic
        letters = await read_dead_letters(settings, org=org, correlation_ids=cids)
        if len(letters) == 2:
            break
        await asyncio.sleep(0.1)
    assert {v.letter["error_code"] for v in letters} == {"target_not_allowed"} and len(letters) == 2, letters
