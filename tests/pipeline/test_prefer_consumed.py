"""The preferences Junction applies itself (``respond-async``, ``wait``) are not asked of the upstream again
(F-ASYNC-1); the caller's other preferences still reach it as written."""
from __future__ import annotations

import asyncio
from typing import Any

import aiohttp
import pytest

from core.headers import without_preferences
from tests.support import IngressInstance, Stage, wait_until


@pytest.mark.parametrize(("sent", "kept"), [
    (["respond-async"], []),
    (["respond-async, wait=10"], []),
    (["Respond-Async ; x=1,WAIT = 5"], []),
    (["return=minimal"], ["return=minimal"]),
    (["respond-async, return=minimal; foo=\"a,wait=1\", handling=strict"], ["return=minimal; foo=\"a,wait=1\", handling=strict"]),
    (["wait=3", "return=representation"], ["return=representation"]),
    (["respond-async-ish"], ["respond-async-ish"]),
])
def test_only_the_consumed_preferences_are_taken_out(sent: list[str], kept: list[str]) -> None:
    headers = [("X-Other", "1"), *(("Prefer", value) for value in sent)]
    assert without_preferences(headers) == [("X-Other", "1"), *(("Prefer", value) for value in kept)]


async def _echo(ingress: IngressInstance, stage: Stage, upstream: str, script: str | None = None) -> str:
    staged = await stage.api(upstream + "/echo", script=script)
    await wait_until(lambda: staged["api"]["id"] in ingress.snapshot.apis)
    return f"{ingress.url}/{staged['org']}/echo"


async def test_a_sync_call_keeps_other_preferences_and_loses_wait(ingress: IngressInstance, stage: Stage, upstream: str) -> None:
    url = await _echo(ingress, stage, upstream)
    async with aiohttp.ClientSession() as s:
        async with s.post(url, data="x", headers={"Prefer": "return=minimal, wait=5"}) as r:
            assert r.status == 200
            seen = (await r.json())["headers"]
        async with s.post(url, data="x", headers={"Prefer": "wait=5"}) as r:
            assert r.status == 200
            alone = (await r.json())["headers"]
    assert seen.get("Prefer") == "return=minimal"
    assert "Prefer" not in alone, "a Prefer left with nothing is dropped"


async def _result(s: aiohttp.ClientSession, ingress: IngressInstance, location: str) -> dict[str, Any]:
    for _ in range(100):
        async with s.get(ingress.url + location, headers={"Prefer": "wait=5"}) as r:
            if r.status == 200:
                return await r.json()
            assert r.status == 202, await r.text()
        await asyncio.sleep(0.05)
    raise AssertionError(f"no result at {location}")


async def test_an_async_call_does_not_ask_the_upstream_for_async_again(
        ingress: IngressInstance, stage: Stage, upstream: str) -> None:
    url = await _echo(ingress, stage, upstream)
    async with aiohttp.ClientSession() as s:
        async with s.post(url, data="later", headers={"Prefer": "respond-async, wait=1, return=minimal"}) as r:
            assert r.status == 202, await r.text()
            assert r.headers["Preference-Applied"] == "respond-async"
            location = r.headers["Location"]
        answer = await _result(s, ingress, location)
    assert answer["body"] == "later"
    assert answer["headers"].get("Prefer") == "return=minimal"


async def test_a_script_may_still_ask_its_upstream_for_async(ingress: IngressInstance, stage: Stage, upstream: str) -> None:
    script = ("def transform_request(request, ctx):\n"
              "    request.headers['Prefer'] = 'respond-async'\n")
    url = await _echo(ingress, stage, upstream, script)
    async with aiohttp.ClientSession() as s, s.post(url, data="x", headers={"Prefer": "respond-async"}) as r:
        assert r.status == 202
        answer = await _result(s, ingress, r.headers["Location"])
    assert answer["headers"].get("Prefer") == "respond-async", "the script's own header is its choice"
