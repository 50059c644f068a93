"""Faults inside a stage: each is survived, visible, and loses no call.

Faults are injected into the real running components (a broker error while producing, a crash of a
supervised loop, a stolen lease, a record that cannot be decoded); everything else is real.
"""
from __future__ import annotations

import asyncio
import json
import logging
import time
import uuid
from typing import Any

import aiohttp
import pytest
import redis.asyncio as aioredis
from aiohttp import web
from aiokafka import TopicPartition
from aiokafka.admin import NewTopic
from aiokafka.errors import KafkaConnectionError

from control.replay import read_dead_letters
from core.consume import UNDECODABLE_RECORDS
from core.config_feed import ConfigFollower
from core.kafka import make_admin, make_consumer, make_producer, stop_consumer
from core.metrics import PRODUCE_RETRIES, TASK_CRASHES
from core.settings import Settings
from core.snapshot import ConfigSnapshot
from ingress.app import READER
from ingress.lease import NoPartitionFree, PartitionLease
from ingress.replies import ReplyReader
from schemas import CodecError, decode, encode
from tests.support import IngressInstance, serving, wait_until


async def _echo(ingress: IngressInstance, org: str, body: str) -> tuple[int, dict[str, Any]]:
    async with aiohttp.ClientSession() as s:
        async with s.post(f"{ingress.url}/{org}/echo", data=body, timeout=aiohttp.ClientTimeout(total=30)) as r:
            return r.status, await r.json()


async def _readyz(url: str) -> tuple[int, dict[str, Any]]:
    async with aiohttp.ClientSession() as s:
        async with s.get(f"{url}/readyz") as r:
            return r.status, await r.json()


def _counter(metric: Any, *labels: str) -> float:
    return metric.labels(*labels)._value.get()


async def test_a_broker_error_while_egress_produces_the_reply_is_retried_not_lost(
    egress: dict[str, Any], ingress: IngressInstance, echo_api: dict[str, Any], caplog: pytest.LogCaptureFixture
) -> None:
    producer = egress["worker"]._producer
    real = producer.send  # egress sends a round's records together, then awaits their acknowledgements
    failures = {"left": 2}

    async def flaky(*args: Any, **kwargs: Any) -> Any:
        if failures["left"] > 0:
            failures["left"] -= 1
            raise KafkaConnectionError("injected: broker unreachable")
        return await real(*args, **kwargs)

    before = _counter(PRODUCE_RETRIES, "egress")
    producer.send = flaky
    try:
        with caplog.at_level(logging.WARNING, logger="egress"):
            status, body = await _echo(ingress, echo_api["org"], "survives a produce failure")
    finally:
        producer.send = real
    assert status == 200 and body["body"] == "survives a produce failure"
    assert failures["left"] == 0
    assert _counter(PRODUCE_RETRIES, "egress") == before + 2
    assert any("injected: broker unreachable" in r.getMessage() for r in caplog.records)


async def test_a_crashed_reply_reader_is_logged_counted_unready_and_restarted(
    ingress: IngressInstance, echo_api: dict[str, Any], caplog: pytest.LogCaptureFixture
) -> None:
    assert ingress.app is not None
    reader = ingress.app[READER]
    consumer = reader._consumer
    real = consumer.getmany
    crashed = asyncio.Event()

    async def poisoned(*args: Any, **kwargs: Any) -> Any:
        if not crashed.is_set():
            crashed.set()
            raise RuntimeError("injected: reply reader fault")
        return await real(*args, **kwargs)

    before = _counter(TASK_CRASHES, "reply-reader")
    consumer.getmany = poisoned
    try:
        with caplog.at_level(logging.ERROR, logger="core.tasks"):
            await asyncio.wait_for(crashed.wait(), 10)
            status, checks = await _readyz(ingress.url)
            assert status == 503 and "reply-reader" in checks["checks"]["replies"]
            assert _counter(TASK_CRASHES, "reply-reader") == before + 1
            crash_logs = [r for r in caplog.records if "reply-reader crashed" in r.getMessage()]
            assert crash_logs and crash_logs[0].exc_info is not None  # with its traceback
            # Restarted: the next call is answered.
            status, body = await _echo(ingress, echo_api["org"], "after the crash")
            assert status == 200 and body["body"] == "after the crash"
            await wait_until(lambda: reader._loop._running_since is not None, timeout_s=10)
    finally:
        consumer.getmany = real

    async def ready_again() -> bool:
        return (await _readyz(ingress.url))[0] == 200

    for _ in range(100):
        if await ready_again():
            break
        await asyncio.sleep(0.1)
    else:
        raise AssertionError("ingress never became ready again after the reader restarted")


async def test_a_stolen_reply_lease_stops_that_partition_and_the_instance_serves_from_another(
    settings: Settings, ingress: IngressInstance, echo_api: dict[str, Any]
) -> None:
    assert ingress.app is not None
    reader = ingress.app[READER]
    lease = reader._lease
    first = reader.tp.partition
    r = aioredis.from_url(settings.redis_dsn)
    try:
        # Another instance takes the partition (as after a long pause of this one, when the lease expired).
        await r.set(lease._key(first), "someone-else", px=settings.reply_lease_ttl_ms)
        await wait_until(lambda: reader._tp is not None and reader._tp.partition != first,
                         timeout_s=settings.reply_lease_ttl_ms / 1000 + 5)
        assert reader._consumer.assignment() == {reader.tp}  # the stolen partition is no longer read
        assert await r.get(lease._key(first)) == b"someone-else"  # and never taken back
        status, body = await _echo(ingress, echo_api["org"], "on the new partition")
        assert status == 200 and body["body"] == "on the new partition"
    finally:
        await r.delete(lease._key(first))
        await r.aclose()


async def test_a_reply_reader_that_cannot_start_says_why_even_if_closing_fails_too(
    settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    """Every reply partition is leased by others, and Redis fails as the reader gives up: the caller still
    learns that no partition was free (not the clean-up's error), and the clean-up's failure is logged."""
    r = aioredis.from_url(settings.redis_dsn)
    lease = PartitionLease(settings, r, owner="starved")
    taken: list[str] = []  # only these are ours to delete: another instance of the run may hold the rest
    try:
        for key in (lease._key(p) for p in range(settings.reply_partitions)):
            if await r.set(key, "someone-else", px=60_000, nx=True):
                taken.append(key)
        lease.release = _failing_release  # type: ignore[method-assign]
        reader = ReplyReader(settings, lease)
        with caplog.at_level(logging.WARNING, logger="ingress.replies"), pytest.raises(NoPartitionFree):
            await reader.start()
        assert "injected: Redis gone while releasing" in caplog.text
        assert reader._consumer is None  # and it let go of the consumer it had started
    finally:
        if taken:
            await r.delete(*taken)
        await r.aclose()


async def _failing_release() -> None:
    raise ConnectionError("injected: Redis gone while releasing")


async def test_an_undecodable_call_is_dead_lettered_and_the_next_call_is_served(
    settings: Settings, ingress: IngressInstance, echo_api: dict[str, Any], caplog: pytest.LogCaptureFixture
) -> None:
    before = _counter(UNDECODABLE_RECORDS, "egress")
    producer = make_producer(settings)
    await producer.start()
    key = uuid.uuid4().hex.encode()  # the producer's correlation id, as the contract keys a call
    try:
        with caplog.at_level(logging.WARNING, logger="core.consume"):
            sent = await producer.send_and_wait(settings.topics.calls, key=key, value=b"\xc3\x01not an avro record")
            await wait_until(lambda: _counter(UNDECODABLE_RECORDS, "egress") == before + 1)
    finally:
        await producer.stop()
    _assert_skip_logged(caplog, "egress", settings.topics.calls, sent.partition, sent.offset,
                        b"\xc3\x01not an avro record", "OutboundCall")
    status, body = await _echo(ingress, echo_api["org"], "after the poison")
    assert status == 200 and body["body"] == "after the poison"
    found: list[Any] = []
    for _ in range(50):
        found = [v for v in await read_dead_letters(settings, limit=0)
                 if v.letter["stage"] == "egress" and v.letter["error_code"] == "undecodable"
                 and v.letter["original"] == b"\xc3\x01not an avro record"]
        if found:
            break
        await asyncio.sleep(0.1)
    assert found, "the undecodable record left no dead letter"
    assert [v.letter["correlation_id"] for v in found] == [key.decode()]  # an operator finds it by its key


async def test_an_undecodable_inbound_call_is_dead_lettered_under_its_key_when_the_key_is_a_correlation_id(
    settings: Settings, ingress: IngressInstance, echo_api: dict[str, Any]
) -> None:
    """A producer that wrote JSON instead of Avro finds its failed call by the correlation id it keyed it
    with; a key that could not be one (a line break would forge log lines) is not taken."""
    good, bad = uuid.uuid4().hex, f"{uuid.uuid4().hex}\nFORGED"
    producer = make_producer(settings)
    await producer.start()
    try:
        for key in (good, bad):
            await producer.send_and_wait(settings.topics.requests, key=key.encode(), value=b'{"org": "x", "method": "GET"}')
    finally:
        await producer.stop()
    letters: list[Any] = []
    for _ in range(100):
        letters = [v.letter for v in await read_dead_letters(settings, limit=0)
                   if v.letter["stage"] == "processors" and v.letter["original"] == b'{"org": "x", "method": "GET"}']
        if len(letters) == 2:
            break
        await asyncio.sleep(0.1)
    assert sorted(v["correlation_id"] for v in letters) == ["", good]
    assert all(v["error_code"] == "undecodable" and v["org"] == "" for v in letters)
    status, body = await _echo(ingress, echo_api["org"], "after the poison")
    assert status == 200 and body["body"] == "after the poison"


async def test_an_outbound_call_posted_straight_to_egress_with_a_bad_reply_route_is_dead_lettered_uncalled(
    settings: Settings, ingress: IngressInstance
) -> None:
    """Processors are not the only way onto the calls topic: egress checks the reply routing itself."""
    calls: list[str] = []

    async def count(request: web.Request) -> web.Response:
        calls.append(request.path_qs)
        return web.json_response({})

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", count)
    async with serving(app) as counting:
        await _post_forged_calls(settings, counting, calls)


async def _post_forged_calls(settings: Settings, upstream: str, calls: list[str]) -> None:
    org = f"o{uuid.uuid4().hex[:8]}"
    producer = make_producer(settings)
    await producer.start()
    cases = {"p999": (settings.topics.replies, 999), "config": (settings.topics.config, 0)}
    try:
        for tag, (topic, partition) in cases.items():
            await producer.send_and_wait(settings.topics.calls, key=tag.encode(), value=encode("OutboundCall", {
                "correlation_id": f"{org}-{tag}", "call_id": f"{org}-{tag}.1", "org": org, "method": "POST",
                "url": f"{upstream}/echo?forged={tag}", "body": b"forged", "deadline_ms": int(time.time() * 1000) + 10_000,
                "reply_topic": topic, "reply_partition": partition}))
    finally:
        await producer.stop()
    expected = {f"{org}-p999": "invalid_reply_partition", f"{org}-config": "invalid_reply_topic"}
    found: dict[str, str] = {}
    for _ in range(100):
        found = {v.letter["correlation_id"]: v.letter["error_code"]
                 for v in await read_dead_letters(settings, org=org, limit=0) if v.letter["stage"] == "egress"}
        if len(found) == 2:
            break
        await asyncio.sleep(0.1)
    assert found == expected
    assert not calls


def _assert_skip_logged(caplog: pytest.LogCaptureFixture, reader: str, topic: str, partition: int, offset: int,
                        value: bytes, expected: str) -> None:
    """Once, at WARNING, with where the record is and the codec's reason it could not be read."""
    with pytest.raises(CodecError) as reason:
        decode(value, expected=expected)
    where = f"{topic}[{partition}]@{offset}"
    # By this reader: control's observe stage (running in this process for other tests) skips it too.
    found = [r for r in caplog.records if r.name == "core.consume" and where in r.getMessage()
             and r.getMessage().startswith(f"{reader} ")]
    assert len(found) == 1, [r.getMessage() for r in caplog.records]
    assert found[0].levelno == logging.WARNING and found[0].exc_info is None
    assert reader in found[0].getMessage() and str(reason.value) in found[0].getMessage()


async def test_an_undecodable_reply_is_skipped_logged_counted_and_the_next_call_is_answered(
    settings: Settings, ingress: IngressInstance, echo_api: dict[str, Any], caplog: pytest.LogCaptureFixture
) -> None:
    assert ingress.app is not None
    partition = ingress.app[READER].tp.partition
    before = _counter(UNDECODABLE_RECORDS, "reply-reader")
    producer = make_producer(settings)
    await producer.start()
    try:
        with caplog.at_level(logging.WARNING, logger="core.consume"):
            sent = await producer.send_and_wait(settings.topics.replies, key=b"poison", value=b"\xc3\x01not a reply",
                                                partition=partition)
            await wait_until(lambda: _counter(UNDECODABLE_RECORDS, "reply-reader") == before + 1)
    finally:
        await producer.stop()
    _assert_skip_logged(caplog, "reply-reader", settings.topics.replies, partition, sent.offset,
                        b"\xc3\x01not a reply", "Reply")
    status, body = await _echo(ingress, echo_api["org"], "after a poisoned reply")
    assert status == 200 and body["body"] == "after a poisoned reply"
    assert _counter(UNDECODABLE_RECORDS, "reply-reader") == before + 1  # logged and counted once


async def test_an_undecodable_config_record_is_skipped_logged_counted_and_the_next_event_applies(
    settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    # A config topic of its own: every reader of the shared one would meet the poison for the rest of the run.
    own = settings.with_overrides(topic_prefix=f"{settings.topic_prefix}-poison-{uuid.uuid4().hex[:6]}")
    admin = make_admin(own)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(own.topics.config, 1, 1, topic_configs={"cleanup.policy": "compact"})])
    finally:
        await admin.close()
    event = {"event_id": 1, "kind": "org", "id": "o-after", "org": "o-after", "version": 1, "op": "upsert",
             "document": json.dumps({"id": "o-after", "slug": "o-after", "name": "o-after"})}
    poison = b"\xc3\x01not a config event"
    producer = make_producer(own)
    await producer.start()
    try:
        sent = await producer.send_and_wait(own.topics.config, key=b"poison", value=poison)
        await producer.send_and_wait(own.topics.config, key=b"o-after", value=encode("ConfigEvent", event))
    finally:
        await producer.stop()
    before = _counter(UNDECODABLE_RECORDS, "config-follower")
    snapshot = ConfigSnapshot()
    follower = ConfigFollower(own, snapshot)
    with caplog.at_level(logging.WARNING, logger="core.consume"):
        await follower.start()
        try:
            await follower.wait_synced()
            await wait_until(lambda: "o-after" in snapshot.orgs)
            await follower.ready()  # the follower is alive and serving, not crashed by the poison
        finally:
            await follower.stop()
    assert _counter(UNDECODABLE_RECORDS, "config-follower") == before + 1
    _assert_skip_logged(caplog, "config-follower", own.topics.config, 0, sent.offset, poison, "ConfigEvent")


async def test_a_consumer_whose_own_clean_up_is_cancelled_still_stops_and_closes_its_connections(
    settings: Settings,
) -> None:
    """aiokafka's ``stop()`` re-raises the cancellation of a fetch it cancels while that fetch backs off after a
    failed request (aio-libs/aiokafka#647), and leaves its connections open. Every stage stops its consumers
    with ``stop_consumer``, which finishes the stop; a cancellation of the caller itself still goes through."""

    async def backing_off() -> None:
        await asyncio.sleep(3600)  # stands for a fetch in its retry backoff after a timed-out request

    async def with_a_fetch_backing_off(fetch: Any = backing_off) -> tuple[Any, asyncio.Task[None]]:
        consumer = make_consumer(settings)
        await consumer.start()
        consumer.assign([TopicPartition(settings.topics.config, 0)])
        await consumer.getmany(timeout_ms=50)  # connected to the partition's leader
        task = asyncio.create_task(fetch())
        consumer._fetcher._pending_tasks.add(task)  # injected where aiokafka keeps its in-flight fetches
        await asyncio.sleep(0)  # the fetch is running
        return consumer, task

    def open_connections(consumer: Any) -> int:
        return sum(1 for conn in consumer._client._conns.values() if conn.connected())

    plain, _ = await with_a_fetch_backing_off()
    assert open_connections(plain) > 0
    with pytest.raises(asyncio.CancelledError):  # the library's behaviour this guards against
        await plain.stop()
    assert open_connections(plain) > 0
    await plain._client.close()

    guarded, _ = await with_a_fetch_backing_off()
    await stop_consumer(guarded)
    assert open_connections(guarded) == 0

    async def slow_to_cancel() -> None:
        try:
            await asyncio.sleep(3600)
        except asyncio.CancelledError:
            await asyncio.sleep(30)  # holds stop() inside its clean-up while the caller is cancelled
            raise

    held, fetch = await with_a_fetch_backing_off(slow_to_cancel)
    stopping = asyncio.create_task(stop_consumer(held))
    await wait_until(lambda: fetch.cancelling() > 0)
    stopping.cancel()
    with pytest.raises(asyncio.CancelledError):
        await stopping
    fetch.cancel()
    await held._client.close()


async def test_an_egress_stop_with_a_stuck_commit_and_leave_still_closes_everything_else(
    settings: Settings, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A commit that retries a coordinator which is away, and a leave-group nobody answers, each hold aiokafka
    for as long as that lasts. Egress' stop gives each step a bound, names the one that ran out, and closes
    the rest; before, such a stop hung the whole shutdown (and a test session's teardown with it)."""
    import core.kafka
    import egress.worker as worker_module
    from egress.assemble import build_parts
    from egress.worker import EgressWorker

    for module, name in ((worker_module, "REVOKE_COMMIT_S"), (core.kafka, "STOP_CONSUMER_S")):
        monkeypatch.setattr(module, name, 0.3)  # the bounds of a real stop are seconds; the behaviour is the same
    parts = build_parts(settings)
    # A group of its own: the session's egress group must not see this member come and go.
    await parts.consumer.stop()  # never started; closed so that it is not reported unclosed
    parts.consumer = make_consumer(settings, group=f"egress-stuck-{uuid.uuid4().hex[:8]}")
    worker = EgressWorker(settings, parts)
    await worker.start()
    await worker.wait_assigned()
    tp = next(iter(parts.consumer.assignment()))
    parts.offsets.started(tp, 0)
    parts.offsets.finished(tp, 0)  # something to commit

    stuck: list[str] = []

    def hangs(what: str) -> Any:
        async def forever(*args: Any, **kwargs: Any) -> None:
            stuck.append(what)
            await asyncio.Event().wait()
        return forever

    parts.consumer.commit = hangs("commit")  # type: ignore[method-assign]
    # Where a real stop hangs: in the group coordinator's close (its leave-group), which aiokafka awaits before
    # it closes the fetcher and the connections; the heartbeat and the fetcher still run meanwhile.
    parts.consumer._coordinator.close = hangs("stop")  # type: ignore[method-assign]
    try:
        with caplog.at_level(logging.WARNING):
            await asyncio.wait_for(worker.stop(), 30)  # a bound for the test only: unbounded, this waited for ever
        # The periodic commit may have been stuck already: the stop's own commit comes after it, the leave last.
        assert "commit" in stuck and stuck[-1] == "stop", stuck
        messages = [r.getMessage() for r in caplog.records]
        assert any("committing the finished offsets did not finish within 0.3 s" in m for m in messages), messages
        assert any("stopping a Kafka consumer did not finish within 0.3 s" in m for m in messages), messages
        # What came after the stuck steps was still closed, and nothing of the consumer runs on to open a
        # connection again: neither its fetcher nor its heartbeat.
        assert not any(conn.connected() for conn in parts.consumer._client._conns.values())
        assert parts.consumer._fetcher._fetch_task.done()
        heartbeat = parts.consumer._coordinator._heartbeat_task
        assert heartbeat is None or heartbeat.done()
        assert parts.producer._closed
        assert parts.follower._consumer is None  # stopped, after the stuck steps
    finally:
        await stop_consumer(parts.consumer)  # a no-op after a stop; closes the consumer when the test failed early


async def test_a_cancelled_de_duplication_lookup_always_ends_cancelled(settings: Settings) -> None:
    """The egress consume loop looks up completed calls in Redis between fetches. redis-py bounds each write
    with ``asyncio.wait_for``, which on Python 3.11 swallows a cancellation that lands as the write completes:
    the task went on as if nothing had happened (three times in four here), and stopping egress waited for
    ever on a loop that kept consuming. core/redis.py keeps the bound without that flaw."""
    from core.redis import make_redis
    from egress.dedupe import CompletedCalls

    redis = make_redis(settings)
    completed = CompletedCalls(settings, redis)
    ids = [uuid.uuid4().hex for _ in range(8)]
    went_on = 0
    try:
        for i in range(300):
            async def lookups() -> None:
                while True:
                    await completed.done(ids)

            task = asyncio.create_task(lookups())
            # Spread the cancellation over every point of a round trip: 0 to 3 ms in.
            await asyncio.sleep((i % 30) / 10_000)
            task.cancel()
            done, _ = await asyncio.wait({task}, timeout=2)
            if not done:  # the cancellation was swallowed: the loop goes on
                went_on = i + 1
                while not task.done():
                    task.cancel()
                    await asyncio.wait({task}, timeout=0.1)
                break
            assert task.cancelled()
    finally:
        await redis.aclose()
    assert went_on == 0, f"cancellation {went_on} of 300 was swallowed by the Redis client"
