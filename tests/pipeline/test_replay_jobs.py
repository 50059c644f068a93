"""Replay jobs through the management API, on the real pipeline: each kind of dead letter replayed once its
fault is fixed, answered exactly once, its outcome in the job; at most once per job and across jobs asked
at once; dry runs; ``force``; a control restart in the middle of a job."""
from __future__ import annotations

import asyncio
import json
import os
import sys
import uuid
from typing import Any

import aiohttp
import pytest
from aiokafka.structs import TopicPartition

from control.replay import InboundReader
from control.state import STATE
from core.kafka import make_producer, start_client
from core.settings import Settings
from schemas import encode
from tests.dead_letter_support import inbound_call
from tests.replay_support import RecordingUpstream, indexed_letters, new_org, replay, staged_api, wait_job
from tests.support import IngressInstance, Stage, post_raw, wait_until

# A call to a dead upstream is never sent, so it would be retried even as a POST, and its failures would open
# the upstream's breaker before the replays: one attempt each keeps these tests about replay.
ONE_ATTEMPT = {"attempts": 1}


async def _fail_calls(ingress: IngressInstance, org: str, payloads: list[bytes], status: int = 502) -> list[str]:
    cids = []
    async with aiohttp.ClientSession() as s:
        for payload in payloads:
            async with s.post(f"{ingress.url}/{org}/echo", data=payload) as r:
                assert r.status == status, await r.text()
                cids.append((await r.json())["correlation_id"])
    return cids


async def _until_served(url: str) -> None:
    """Processors and egress route with the configuration published so far: a live call goes through."""
    async with aiohttp.ClientSession() as s:
        for _ in range(200):
            async with s.post(url, data=b"probe") as r:
                if r.status == 200:
                    return
            await asyncio.sleep(0.05)
    raise AssertionError(f"{url} was not served")


def _outcomes(job: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {item["dead_letter_id"]: item for item in job["items"]}


async def test_a_dead_upstream_that_comes_back_gets_each_call_once_with_current_or_original_config(
    control: Any, ingress: IngressInstance, stage: Stage
) -> None:
    org = await new_org(control)
    async with RecordingUpstream.running(up=False) as upstream:
        staged = await staged_api(control, stage, upstream.url, org=org, target_method="POST", retry=ONE_ATTEMPT)
        await wait_until(lambda: staged["api"]["id"] in ingress.snapshot.apis)
        payloads = [f"order-{n}-{uuid.uuid4().hex}".encode() for n in range(2)]
        cids = await _fail_calls(ingress, org, payloads)
        letters = await indexed_letters(control, org, cids)
        assert {(x["stage"], x["error_code"]) for x in letters} == {("egress", "upstream_unreachable")}

        await upstream.up()  # the fix: the upstream is back
        jobs = []
        for letter, config in zip(letters, ("current", "original")):
            r = await replay(control, org, {"ids": [letter["id"]], "config": config})
            assert r.status == 201, r.body
            assert r.body["status"] == "running" and r.body["progress"]["total"] == 1
            jobs.append(r.body["id"])
        done = [await wait_job(control, org, job_id) for job_id in jobs]
        for job, letter, config in zip(done, letters, ("current", "original")):
            item = job["items"][0]
            assert item["dead_letter_id"] == letter["id"] and item["correlation_id"] == letter["correlation_id"]
            assert (item["outcome"], item["status"], item["attempt"]) == ("succeeded", 200, 2), item
            # current: through processors again from its InboundCall; original: egress again, as processors made it.
            assert item["config"] == config
            assert item["topic"] == (control.settings.topics.requests if config == "current" else control.settings.topics.calls)
            assert job["progress"] == {"total": 1, "pending": 0, "sent": 1, "answered": 1, "succeeded": 1, "failed": 0,
                                       "skipped": 0, "finished": 1}
        assert sorted(upstream.bodies) == sorted(payloads)  # each exactly once


async def test_a_failed_script_fixed_by_a_new_connector_version_is_replayed_with_it(
    control: Any, ingress: IngressInstance, stage: Stage
) -> None:
    org = await new_org(control)
    script = "def transform_request(request, ctx):\n    raise ValueError('not ready yet')\n"
    async with RecordingUpstream.running() as target:
        staged = await staged_api(control, stage, target.url, org=org, target_method="POST", script=script)
        await wait_until(lambda: staged["api"]["id"] in ingress.snapshot.apis)
        payload = f"scripted-{uuid.uuid4().hex}".encode()
        [cid] = await _fail_calls(ingress, org, [payload])
        [letter] = await indexed_letters(control, org, [cid])
        assert (letter["stage"], letter["error_code"]) == ("processors", "transform_failed")

        await stage.publish("connector", {**staged["connector"], "version": 2, "script": None}, org)
        await _until_served(f"{ingress.url}/{org}/echo")
        target.bodies.clear()
        # "original" cannot bring back version 1 for a call that failed in processors: they route on the current
        # version, and the job says so.
        r = await replay(control, org, {"ids": [letter["id"]], "config": "original"})
        assert r.status == 201, r.body
        job = await wait_job(control, org, r.body["id"])
        item = job["items"][0]
        assert (item["outcome"], item["status"], item["config"]) == ("succeeded", 200, "current"), item
        assert target.bodies == [payload]


async def test_an_unknown_route_fixed_by_creating_the_api_is_replayed(
    settings: Settings, control: Any, ingress: IngressInstance, stage: Stage
) -> None:
    org = await new_org(control)
    async with RecordingUpstream.running() as target:
        # The organisation, as processors know it.
        first = await staged_api(control, stage, target.url, org=org, target_method="POST")
        await wait_until(lambda: first["api"]["id"] in ingress.snapshot.apis)
        payload = f"late-{uuid.uuid4().hex}".encode()
        # An async producer's call (nobody waits) to a route that does not exist yet: a dead letter.
        cid = await post_raw(settings, inbound_call(org, path="/late", body=payload))
        [letter] = await indexed_letters(control, org, [cid])
        assert (letter["stage"], letter["error_code"]) == ("processors", "route_not_found")

        await staged_api(control, stage, target.url, org=org, path="/late", target_method="POST")
        await _until_served(f"{ingress.url}/{org}/late")
        target.bodies.clear()
        r = await replay(control, org, {"filter": {"code": "route_not_found"}})
        assert r.status == 201 and r.body["progress"]["total"] == 1, r.body
        job = await wait_job(control, org, r.body["id"])
        assert [(i["correlation_id"], i["outcome"], i["status"]) for i in job["items"]] == [(cid, "succeeded", 200)]
        assert target.bodies == [payload]


async def test_a_call_that_fails_again_is_recorded_with_its_new_dead_letter(
    control: Any, ingress: IngressInstance, stage: Stage
) -> None:
    org = await new_org(control)
    async with RecordingUpstream.running(up=False) as upstream:
        staged = await staged_api(control, stage, upstream.url, org=org, target_method="POST", retry=ONE_ATTEMPT)
        await wait_until(lambda: staged["api"]["id"] in ingress.snapshot.apis)
        [cid] = await _fail_calls(ingress, org, [b"still-down"])
        [letter] = await indexed_letters(control, org, [cid])
        r = await replay(control, org, {"ids": [letter["id"]]})  # not fixed yet
        assert r.status == 201, r.body
        job = await wait_job(control, org, r.body["id"])
        # The Reply (502) ends the job; the new dead letter of attempt 2 joins the item once indexed.
        for _ in range(200):
            item = (await wait_job(control, org, r.body["id"]))["items"][0]
            if item["new_dead_letter_id"]:
                break
            await asyncio.sleep(0.1)
        assert (item["outcome"], item["attempt"], item["code"]) == ("failed", 2, "upstream_unreachable"), item
        again = await control.call("GET", f"/api/v1/orgs/{org}/dead-letters/{item['new_dead_letter_id']}", control.admin_token)
        assert again.status == 200 and again.body["attempt"] == 2 and again.body["correlation_id"] == cid
        assert job["progress"]["failed"] == 1


async def test_two_jobs_asked_at_once_send_the_message_once_and_force_sends_it_again(
    control: Any, ingress: IngressInstance, stage: Stage
) -> None:
    org = await new_org(control)
    async with RecordingUpstream.running(up=False) as upstream:
        staged = await staged_api(control, stage, upstream.url, org=org, target_method="POST", retry=ONE_ATTEMPT)
        await wait_until(lambda: staged["api"]["id"] in ingress.snapshot.apis)
        payload = f"twice-{uuid.uuid4().hex}".encode()
        [cid] = await _fail_calls(ingress, org, [payload])
        [letter] = await indexed_letters(control, org, [cid])
        await upstream.up()

        dry = await replay(control, org, {"ids": [letter["id"]], "dry_run": True})
        assert dry.status == 200 and dry.body == {"dry_run": True, "count": 1, "ids": [letter["id"]], "already_done": []}
        listed = await control.call("GET", f"/api/v1/orgs/{org}/replays", control.admin_token)
        assert listed.body["items"] == []  # a dry run makes no job

        first, second = await asyncio.gather(replay(control, org, {"ids": [letter["id"]]}),
                                             replay(control, org, {"ids": [letter["id"]]}))
        assert first.status == second.status == 201
        jobs = [await wait_job(control, org, j.body["id"]) for j in (first, second)]
        outcomes = sorted(job["items"][0]["outcome"] for job in jobs)
        assert outcomes == ["skipped_already_done", "succeeded"], jobs
        assert upstream.bodies == [payload]

        dry = await replay(control, org, {"ids": [letter["id"]], "dry_run": True})
        assert dry.body["already_done"] == [letter["id"]]
        again = await wait_job(control, org, (await replay(control, org, {"ids": [letter["id"]]})).body["id"])
        assert again["items"][0]["outcome"] == "skipped_already_done" and again["progress"]["skipped"] == 1
        forced = await wait_job(control, org, (await replay(control, org, {"ids": [letter["id"]], "force": True})).body["id"])
        assert (forced["items"][0]["outcome"], forced["items"][0]["attempt"]) == ("succeeded", 3)
        assert upstream.bodies == [payload, payload]
        listed = await control.call("GET", f"/api/v1/orgs/{org}/replays?limit=2", control.admin_token)
        assert len(listed.body["items"]) == 2 and listed.body["next_cursor"]
        rest = await control.call("GET", f"/api/v1/orgs/{org}/replays?cursor={listed.body['next_cursor']}", control.admin_token)
        assert len(rest.body["items"]) == 2 and rest.body["next_cursor"] is None


async def test_a_control_restart_mid_job_resumes_without_resending(
    control: Any, ingress: IngressInstance, stage: Stage
) -> None:
    org = await new_org(control)
    async with RecordingUpstream.running(up=False) as upstream:
        staged = await staged_api(control, stage, upstream.url, org=org, target_method="POST", retry=ONE_ATTEMPT)
        await wait_until(lambda: staged["api"]["id"] in ingress.snapshot.apis)
        payloads = [f"paced-{n}-{uuid.uuid4().hex}".encode() for n in range(4)]
        cids = await _fail_calls(ingress, org, payloads)
        letters = await indexed_letters(control, org, cids)
        await upstream.up()
        r = await replay(control, org, {"ids": [x["id"] for x in letters], "rate_per_second": 2})
        assert r.status == 201, r.body
        job_id = r.body["id"]

        async def sent() -> int:
            got = await control.call("GET", f"/api/v1/orgs/{org}/replays/{job_id}", control.admin_token)
            return int(got.body["progress"]["sent"])

        for _ in range(100):
            if await sent() >= 1:
                break
            await asyncio.sleep(0.05)
        jobs = control.app[STATE].extras["replay_jobs"]
        await jobs.stop()  # control goes away in the middle of the job
        stopped_at = await sent()
        assert 1 <= stopped_at < len(payloads)
        jobs.start()  # and comes back: the job goes on from its rows
        job = await wait_job(control, org, job_id, timeout_s=60)
        assert [i["outcome"] for i in job["items"]] == ["succeeded"] * len(payloads), job["items"]
        assert sorted(upstream.bodies) == sorted(payloads)


async def test_a_stop_between_a_claim_and_its_send_gives_the_claim_back(
    control: Any, ingress: IngressInstance, stage: Stage, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The window the test above can only hit by chance, held open: the job has claimed its message and is
    reading it back from the requests topic when control stops. Nothing reached the producer, so the claim
    goes back to pending and the restarted job sends the message, once."""
    org = await new_org(control)
    async with RecordingUpstream.running(up=False) as upstream:
        staged = await staged_api(control, stage, upstream.url, org=org, target_method="POST", retry=ONE_ATTEMPT)
        await wait_until(lambda: staged["api"]["id"] in ingress.snapshot.apis)
        payloads = [f"held-{uuid.uuid4().hex}".encode()]
        [letter] = await indexed_letters(control, org, await _fail_calls(ingress, org, payloads))
        await upstream.up()
        reading, never = asyncio.Event(), asyncio.Event()
        read = InboundReader.read

        async def held(self: InboundReader, partition: int, offset: int) -> bytes | None:
            reading.set()
            await never.wait()  # the stop comes first
            return await read(self, partition, offset)

        monkeypatch.setattr(InboundReader, "read", held)
        r = await replay(control, org, {"ids": [letter["id"]]})
        assert r.status == 201, r.body
        job_id = r.body["id"]

        async def outcome() -> str:
            got = await control.call("GET", f"/api/v1/orgs/{org}/replays/{job_id}", control.admin_token)
            return str(got.body["items"][0]["outcome"])

        await asyncio.wait_for(reading.wait(), 30)
        assert await outcome() == "sending"  # claimed
        jobs = control.app[STATE].extras["replay_jobs"]
        await jobs.stop()
        assert await outcome() == "pending"  # given back
        monkeypatch.setattr(InboundReader, "read", read)
        jobs.start()
        job = await wait_job(control, org, job_id, timeout_s=60)
        assert [i["outcome"] for i in job["items"]] == ["succeeded"], job["items"]
        assert upstream.bodies == payloads


async def _cli(control: Any, *argv: str) -> tuple[int, Any, str]:
    env = {**os.environ, **control.settings.to_env(), "JUNCTION_TOKEN": control.admin_token}
    proc = await asyncio.create_subprocess_exec(sys.executable, "-m", "junction", *argv, "--url", control.base_url, env=env,
                                                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await proc.communicate()
    return int(proc.returncode or 0), json.loads(out) if out.strip() else None, err.decode()


async def test_the_cli_replays_through_the_api_and_shows_progress(
    control: Any, ingress: IngressInstance, stage: Stage
) -> None:
    org = await new_org(control)
    async with RecordingUpstream.running(up=False) as upstream:
        staged = await staged_api(control, stage, upstream.url, org=org, target_method="POST", retry=ONE_ATTEMPT)
        await wait_until(lambda: staged["api"]["id"] in ingress.snapshot.apis)
        payloads = [f"cli-{n}-{uuid.uuid4().hex}".encode() for n in range(2)]
        letters = await indexed_letters(control, org, await _fail_calls(ingress, org, payloads))
        await upstream.up()

        code, dry, _ = await _cli(control, "dlq", "replay", "--org", org, "--all", "--stage", "egress", "--dry-run")
        assert code == 0 and dry["count"] == 2 and sorted(dry["ids"]) == sorted(x["id"] for x in letters)
        code, _, err = await _cli(control, "dlq", "replay", "--org", org, "--all", letters[0]["id"])
        assert code != 0 and "--all" in err  # ids or --all, not both
        code, job, err = await _cli(control, "dlq", "replay", "--org", org, "--all")
        assert code == 0, err
        assert job["status"] == "done" and [i["outcome"] for i in job["items"]] == ["succeeded", "succeeded"]
        assert f"replay {job['id'][:8]} [" in err and "2/2 sent" in err and err.endswith("(done)\n")
        assert sorted(upstream.bodies) == sorted(payloads)


async def test_an_original_replay_of_a_deleted_api_calls_nothing(control: Any, ingress: IngressInstance,
                                                                 stage: Stage) -> None:
    """Egress makes an original call as it was, asking nothing: the replay job is where a deleted (or disabled)
    API stops it, as processors stop a current one."""
    org = await new_org(control)
    async with RecordingUpstream.running(up=False) as upstream:
        staged = await staged_api(control, stage, upstream.url, org=org, target_method="POST", retry=ONE_ATTEMPT)
        await wait_until(lambda: staged["api"]["id"] in ingress.snapshot.apis)
        cids = await _fail_calls(ingress, org, [f"order-{uuid.uuid4().hex}".encode()])
        (letter,) = await indexed_letters(control, org, cids)
        await upstream.up()
        await control.pool.execute("UPDATE apis SET content = content || '{\"enabled\": false}'::jsonb WHERE id = $1",
                                   staged["api"]["id"])  # disabled in control's store (deleted: the same answer)
        r = await replay(control, org, {"ids": [letter["id"]], "config": "original"})
        assert r.status == 201, r.body
        job = await wait_job(control, org, r.body["id"])
        (item,) = job["items"]
        assert item["outcome"] == "not_replayable" and "API is deleted or disabled" in item["message"], item
        assert upstream.bodies == []


async def test_the_inbound_reader_stops_fetching_once_it_has_read(settings: Settings, ingress: IngressInstance) -> None:
    """A replay reads single records of the requests topic: between reads the partition is not fetched (an
    assigned partition is otherwise read to its end, and then polled, for as long as control runs)."""
    producer = await start_client(make_producer(settings))
    try:
        raws = [encode("InboundCall", inbound_call(f"no-such-org-{uuid.uuid4().hex[:6]}")) for _ in range(3)]
        sent = [await producer.send_and_wait(settings.topics.requests, raw, partition=0) for raw in raws]
    finally:
        await producer.stop()
    reader = InboundReader(settings)
    await reader.start()
    try:
        tp = TopicPartition(settings.topics.requests, 0)
        for raw, meta in zip(raws, sent):
            assert await reader.read(0, meta.offset) == raw
            assert reader._consumer.paused() == {tp}, "the partition is still fetched after the read"
        assert await reader.read(0, sent[0].offset) == raws[0]  # and a later read of an earlier record works
    finally:
        await reader.stop()
