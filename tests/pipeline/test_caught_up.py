"""Listing what just happened instead of sleeping: with ``?wait=``, the dead-letter and request-log lists
first wait until control's reader has copied into PostgreSQL everything written to its topics before the
question (control/catch_up.py), and say whether it had (``caught_up``). ``junction dlq list --wait`` and
the SDKs' ``wait_s`` wrap it."""
from __future__ import annotations

import uuid
from typing import Any

import aiohttp
import pytest

from bench.broker_floor import new_topics
from control.catch_up import DEAD_LETTER_INDEXER, OBSERVE_STAGE, CatchUp
from control.observe import ObserveService
from control.state import STATE
from core.kafka import make_producer
from core.settings import Settings
from junction.sdk import JunctionClient
from tests.control_support import run_cli
from tests.dead_letter_support import inbound_call, letter_bytes
from tests.support import IngressInstance


async def _produce(settings: Settings, topic: str, *values: bytes) -> None:
    producer = make_producer(settings)
    await producer.start()
    try:
        for value in values:
            await producer.send_and_wait(topic, value)
    finally:
        await producer.stop()


async def test_a_dead_letter_written_a_moment_ago_is_listed_once_the_indexer_has_it(settings: Settings, control: Any) -> None:
    """With the indexer stopped, a new dead letter is not indexed: the wait runs out and says so (the
    CLI exits 1, not_indexed). Once the indexer runs again, the wait returns as soon as it has the letter."""
    org = (await control.new_org("caught"))["slug"]
    call = inbound_call(org)
    indexer = control.app[STATE].extras["dead_letter_indexer"]
    await indexer.stop()
    try:
        await _produce(settings, settings.topics.dlq, letter_bytes(org, call=call))
        query = f"/api/v1/orgs/{org}/dead-letters?correlation_id={call['correlation_id']}"
        r = await control.call("GET", query + "&wait=0.3", control.admin_token)
        assert r.status == 200, r.body
        assert r.body["caught_up"] is False and r.body["items"] == []
        code, out, err = await run_cli(control, "dlq", "list", "--url", control.base_url, "--org", org, "--wait", "0.3")
        assert code == 1 and '"not_indexed"' in err and out is None, (code, out, err)
        r = await control.call("GET", query, control.admin_token)  # no wait: no caught_up either
        assert r.status == 200 and "caught_up" not in r.body
    finally:
        indexer.start()
    async with JunctionClient(control.base_url, control.admin_token) as jc:
        page = await jc.list_dead_letters(org, correlation_id=call["correlation_id"], wait_s=20)
    assert page["caught_up"] is True
    assert [i["correlation_id"] for i in page["items"]] == [call["correlation_id"]]
    code, out, err = await run_cli(control, "dlq", "list", "--url", control.base_url, "--org", org, "--wait", "20")
    assert code == 0, err
    assert [i["correlation_id"] for i in out] == [call["correlation_id"]]


async def test_a_call_answered_a_moment_ago_is_in_the_request_log_after_waiting(
        control: Any, ingress: IngressInstance, upstream: str, observe: ObserveService) -> None:
    """The observe stage writes every 2 s; a list right after the call would miss it. With wait, the
    first look finds it, as an org viewer too."""
    org = (await control.new_org("logwait"))["slug"]
    conn = await control.new_connector(org, target={"protocol": "rest", "url": f"{upstream}/echo", "method": "GET"})
    api = await control.new_api(org, conn["id"], path="/now/{id}", methods=["GET"])
    async with JunctionClient(control.base_url, control.admin_token) as jc, aiohttp.ClientSession() as s:
        await jc.wait_applied(timeout_s=20)
        async with s.get(f"{ingress.url}/{org}/now/1") as r:
            assert r.status == 200, await r.text()
            cid = r.headers["X-Correlation-Id"]
        page = await jc.list_logs(org, correlation_id=cid, wait_s=20)
    assert page["caught_up"] is True
    assert [(i["correlation_id"], i["status"], i["api_id"]) for i in page["items"]] == [(cid, 200, api["id"])]
    _, viewer = await control.new_user(org, "org_viewer")
    r = await control.call("GET", f"/api/v1/orgs/{org}/logs?correlation_id={cid}&wait=5", viewer)
    assert r.status == 200 and r.body["caught_up"] is True and len(r.body["items"]) == 1


async def test_records_the_observe_stage_cannot_read_do_not_hold_it_back(
        settings: Settings, control: Any, observe: ObserveService) -> None:
    """A record that decodes to nothing still moves the stage on: its offset is committed, so a wait is not
    held until the next real call."""
    org = (await control.new_org("junk"))["slug"]
    await _produce(settings, settings.topics.replies, b"\x00not an avro reply", b"")
    r = await control.call("GET", f"/api/v1/orgs/{org}/logs?wait=20", control.admin_token)
    assert r.status == 200, r.body
    assert r.body["caught_up"] is True and r.body["items"] == []


async def test_a_results_topic_made_after_the_stage_started_is_read_and_waited_for(
        settings: Settings, control: Any, observe: ObserveService) -> None:
    """An async producer's new results topic matches the stage's pattern: the stage finds it within its
    metadata refresh, so a wait that counts it is answered, not held for the default 5 minutes."""
    org = (await control.new_org("newtopic"))["slug"]
    topic = f"{settings.topics.prefix}.results.late{uuid.uuid4().hex[:6]}"
    await new_topics(settings, [topic], 2)
    await _produce(settings, topic, b"\x00not a reply either")
    r = await control.call("GET", f"/api/v1/orgs/{org}/logs?wait=30", control.admin_token)
    assert r.status == 200 and r.body["caught_up"] is True, r.body


async def test_a_reader_that_commits_nothing_is_never_caught_up(settings: Settings, control: Any) -> None:
    """The rule on the real broker: a group with no committed offsets is behind every partition that holds
    a record, and a reader of no topic is caught up at once."""
    await _produce(settings, settings.topics.dlq, letter_bytes("nobody"))
    behind = CatchUp(settings, f"nobody-{uuid.uuid4().hex[:8]}", lambda t: t == settings.topics.dlq, "test reader")
    idle = CatchUp(settings, f"idle-{uuid.uuid4().hex[:8]}", lambda t: False, "idle reader")
    await behind.start()
    await idle.start()
    try:
        assert await behind.wait(0.3) is False
        assert await behind.wait(0) is False
        assert await idle.wait(0) is True
    finally:
        await behind.stop()
        await idle.stop()


@pytest.mark.parametrize("path", ["dead-letters", "logs"])
async def test_wait_is_checked_and_answers_in_the_error_model(control: Any, path: str) -> None:
    org = (await control.new_org("waitbad"))["slug"]
    for bad in ("-1", "61", "nan", "inf", "soon", "1" * 11):
        r = await control.call("GET", f"/api/v1/orgs/{org}/{path}?wait={bad}", control.admin_token)
        assert r.status == 422, (bad, r.body)
        assert r.body["code"] == "invalid_input" and [f["field"] for f in r.body["fields"]] == ["wait"]
    # An unknown organisation is a 404 at once, not after the wait.
    r = await control.call("GET", f"/api/v1/orgs/no-such-{uuid.uuid4().hex[:6]}/{path}?wait=60", control.admin_token)
    assert r.status == 404 and r.body["code"] == "org_not_found"
    r = await control.call("GET", f"/api/v1/orgs/{org}/{path}?wait=1")
    assert r.status == 401
    # A control instance without Kafka cannot see the readers' progress: 503, naming the reader.
    extras = control.app[STATE].extras
    name = DEAD_LETTER_INDEXER if path == "dead-letters" else OBSERVE_STAGE
    reader = extras.pop(name)
    try:
        r = await control.call("GET", f"/api/v1/orgs/{org}/{path}?wait=1", control.admin_token)
        assert r.status == 503 and r.body["code"] == "service_unavailable" and name in r.body["message"]
        r = await control.call("GET", f"/api/v1/orgs/{org}/{path}", control.admin_token)
        assert r.status == 200  # without wait, as before
    finally:
        extras[name] = reader
