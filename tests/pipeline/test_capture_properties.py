"""Seed properties 3 (request capture and routing) and 5 (response capture and processing), through
the whole pipeline: ingress → broker → processors → egress → a recording upstream on loopback, and back.

Whatever a caller sends reaches the upstream of the API it matched, as sent: the method, the path
parameters in the target's URL, the query in order, the end-to-end headers and the body, byte for
byte. Whatever the upstream answers reaches the caller, as answered.
"""
from __future__ import annotations

import string
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote

import aiohttp
import pytest_asyncio
from aiohttp import web
from hypothesis import HealthCheck, given, settings as hsettings, strategies as st
from multidict import CIMultiDict

from core.headers import HOP_BY_HOP
from tests.support import IngressInstance, Stage, serving, wait_until

PROPS = hsettings(max_examples=30, deadline=None, database=None,
                  suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
CASE = "X-Case"


@dataclass
class Seen:
    method: str
    path: str
    query: list[tuple[str, str]]
    headers: CIMultiDict[str]
    body: bytes


@dataclass
class Recorder:
    url: str
    seen: dict[str, Seen]
    answers: dict[str, tuple[int, list[tuple[str, str]], bytes]]


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def recorder() -> AsyncIterator[Recorder]:
    seen: dict[str, Seen] = {}
    answers: dict[str, tuple[int, list[tuple[str, str]], bytes]] = {}

    async def record(request: web.Request) -> web.Response:
        case = request.headers.get(CASE, "")
        seen[case] = Seen(request.method, request.raw_path.split("?", 1)[0], list(request.query.items()),
                          CIMultiDict(request.headers), await request.read())
        status, headers, body = answers.get(case, (200, [], b""))
        return web.Response(status=status, headers=CIMultiDict(headers), body=body or None)

    app = web.Application(client_max_size=10 * 1024 * 1024)
    app.router.add_route("*", "/{tail:.*}", record)
    async with serving(app) as url:
        yield Recorder(url, seen, answers)


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def two_apis(stage: Stage, ingress: IngressInstance, recorder: Recorder) -> dict[str, Any]:
    """One organisation, two APIs on two connectors: a call must reach its own API's target."""
    org = f"cap{uuid.uuid4().hex[:8]}"
    items = await stage.api(recorder.url + "/in/items/{id}", org=org, path="/items/{id}")
    other = await stage.api(recorder.url + "/other", org=org, path="/other")
    await wait_until(lambda: {items["api"]["id"], other["api"]["id"]} <= set(ingress.snapshot.apis))
    return {"org": org}


SEGMENT = st.text(string.ascii_letters + string.digits + "-._~ äéß€:@!$&'()*+,;=", min_size=1, max_size=20) \
    .filter(lambda s: s.strip(".") != "")  # "." and ".." are refused as path climbing (tests/attack)
QUERY_TEXT = st.text(st.characters(codec="utf-8", exclude_categories=("Cs", "Cc")), max_size=12)
HEADER_VALUE = st.text(st.characters(min_codepoint=0x21, max_codepoint=0x7E), min_size=1, max_size=40)
HEADER_NAME = st.text(string.ascii_lowercase, min_size=1, max_size=8).map(lambda n: f"X-P-{n}")


@PROPS
@given(method=st.sampled_from(["GET", "POST", "PUT", "PATCH", "DELETE"]), item=SEGMENT,
       query=st.lists(st.tuples(QUERY_TEXT.filter(bool), QUERY_TEXT), max_size=4),
       headers=st.dictionaries(HEADER_NAME, HEADER_VALUE, max_size=4), body=st.binary(max_size=4096))
async def test_property_3_request_capture_and_routing(
    ingress: IngressInstance, recorder: Recorder, two_apis: dict[str, Any], method: str, item: str,
    query: list[tuple[str, str]], headers: dict[str, str], body: bytes
) -> None:
    case = uuid.uuid4().hex
    async with aiohttp.ClientSession() as s:
        async with s.request(method, f"{ingress.url}/{two_apis['org']}/items/{item}", params=query, data=body,
                             headers={**headers, CASE: case}) as r:
            assert r.status == 200, await r.text()
    got = recorder.seen[case]
    assert got.method == method
    assert unquote(got.path) == f"/in/items/{item}"  # the API's own connector, the parameter in its place
    assert got.query == query  # every pair, in order
    for name, value in headers.items():
        assert got.headers.getall(name) == [value]
    assert got.body == body


ANSWER_STATUS = st.sampled_from([200, 201, 202, 203, 204, 206, 301, 302, 307, 400, 403, 404, 409, 410, 418, 422])


@PROPS
@given(status=ANSWER_STATUS, headers=st.dictionaries(HEADER_NAME.map(lambda n: n.replace("X-P-", "X-R-")), HEADER_VALUE,
                                                     max_size=4),
       body=st.binary(max_size=4096), content_type=st.sampled_from([None, "application/json", "text/plain; charset=utf-8",
                                                                      "application/octet-stream"]))
async def test_property_5_response_capture_and_processing(
    ingress: IngressInstance, recorder: Recorder, two_apis: dict[str, Any], status: int, headers: dict[str, str],
    body: bytes, content_type: str | None
) -> None:
    case = uuid.uuid4().hex
    if status == 204:
        body = b""
    sent = [*headers.items(), *([("Content-Type", content_type)] if content_type else [])]
    recorder.answers[case] = (status, sent, body)
    async with aiohttp.ClientSession() as s:
        async with s.get(f"{ingress.url}/{two_apis['org']}/other", headers={CASE: case}, allow_redirects=False) as r:
            assert r.status == status
            assert await r.read() == body
            for name, value in sent:
                assert r.headers.getall(name) == [value]
            assert not any(name.lower() in HOP_BY_HOP - {"content-length"} for name in r.headers)
            assert len(r.headers.getall("X-Correlation-Id")) == 1
    assert case in recorder.seen and recorder.seen[case].path == "/other"  # the other API's own target
