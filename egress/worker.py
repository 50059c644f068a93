"""The egress worker: consume OutboundCalls, call upstreams, produce Replies.

At least once: offsets are committed only for finished calls (a call is
finished once its Reply and any dead letter were acknowledged by the broker;
see core/outbox.py), and a redelivered call whose ``call_id`` was already
taken is not made again. The worker builds none of its collaborators: they
come from egress/assemble.py.
"""
from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

from aiokafka import ConsumerRebalanceListener, ConsumerRecord, TopicPartition
from aiokafka.errors import CommitFailedError, KafkaError

from core.consume import fetch_decoded
from core.errors import CircuitOpen, DeadlineExceeded, JunctionError, UpstreamError, UpstreamNotConnected
from core.headers import asking_identity, pairs_to_records, records_to_pairs, with_correlation_id
from core.messages import (INVALID_REPLY_PARTITION, dead_letter, error_reply, expired, nobody_waits, now_ms,
                           reply_route_error, reply_target, undecodable_call)
from core.metrics import DEAD_LETTERS, DUPLICATES_SKIPPED, EXPIRED_DROPPED, NO_API, UPSTREAM_CALLS, UPSTREAM_LATENCY
from core.tasks import Supervised, bounded, finish_or_cancel
from core.scripts import has_response_transform, script_ctx, script_response, script_secrets
from core.settings import Settings
from egress.assemble import EgressParts, build_parts
from egress.balancer import origins_of, with_origin
from egress.breaker import Ticket
from egress.caller import UpstreamResponse
from core.kafka import STOP_CONSUMER_S, Outgoing, stop_consumer
from egress.retry import TRANSIENT_STATUSES, Attempts, TransientAnswer, may_retry, parse_retry_after, policy_for, with_retries
from egress.soap import SoapArgumentsInvalid, soap_options
from egress.upstream_auth import with_target_headers
from schemas import CodecError, encode

__all__ = ["EgressWorker"]

log = logging.getLogger(__name__)

KILL_WAIT_S = 3.0
# aiokafka awaits the revocation callback with no bound, and a commit retries a coordinator that is away
# for as long as it is away: the whole group's rebalance would wait for it.
REVOKE_COMMIT_S = 5.0
STEP_S = 5.0  # for each other step of a stop


class _Revocations(ConsumerRebalanceListener):
    def __init__(self, worker: "EgressWorker") -> None:
        self._worker = worker

    async def on_partitions_revoked(self, revoked: set[TopicPartition]) -> None:
        # Offsets left uncommitted are redelivered to the next owner, whose de-duplication skips those done.
        await bounded(f"egress: committing the offsets of {len(revoked)} revoked partitions", self._worker._commit(),
                      REVOKE_COMMIT_S)
        self._worker._offsets.forget(set(revoked))

    async def on_partitions_assigned(self, assigned: set[TopicPartition]) -> None:
        return None


class EgressWorker:
    def __init__(self, settings: Settings, parts: EgressParts | None = None) -> None:
        """``parts`` are the collaborators to use; without them, those :func:`build_parts` makes
        from ``settings`` (the convenience tests use; build inside the running event loop)."""
        parts = parts if parts is not None else build_parts(settings)
        self._settings = settings
        self.snapshot = parts.snapshot
        self._follower = parts.follower
        self._sandbox = parts.sandbox
        self._sealer = parts.sealer
        self._upstream_auth = parts.upstream_auth
        self._offsets = parts.offsets
        self._sem = asyncio.Semaphore(settings.egress_concurrency)
        self._tasks: set[asyncio.Task[None]] = set()
        self._running: set[str] = set()  # call_ids being made by this worker now
        self._caller = parts.caller
        self._soap = parts.soap
        self._breakers = parts.breakers
        self._balancer = parts.balancer
        self._targets = parts.targets
        self._consumer = parts.consumer
        self._producer = parts.producer
        self._outbox = parts.outbox
        self._redis = parts.redis
        self._completed = parts.completed
        self._consumer_started = False
        self._consume_loop = Supervised("egress-consume", self._consume)
        self._commit_loop = Supervised("egress-commit", self._commit_periodically)

    # -- lifecycle ---------------------------------------------------------
    async def start(self) -> None:
        await self._sandbox.start()
        await self._follower.start()
        await self._follower.wait_synced()
        await self._completed.start()
        await self._producer.start()
        self._outbox.start()
        await self._caller.start()
        await self._consumer.start()
        self._consumer_started = True
        self._consumer.subscribe([self._settings.topics.calls], listener=_Revocations(self))
        self._consume_loop.start()
        self._commit_loop.start()

    async def stop(self, *, grace_s: float = 5.0) -> None:
        """Stop taking calls, let those in flight finish (bounded), commit, leave."""
        for loop in (self._consume_loop, self._commit_loop):
            await bounded(f"egress: stopping {loop.name}", loop.stop(), STEP_S)
        await finish_or_cancel(self._tasks, grace_s, KILL_WAIT_S)
        # Each step bounded (core/tasks.py): a stuck one is logged by name and the rest still close.
        await bounded("egress: writing the last de-duplication records", self._completed.stop(), STEP_S)
        await bounded("egress: committing the finished offsets", self._commit(), REVOKE_COMMIT_S)
        await stop_consumer(self._consumer)
        await self._shutdown_clients()

    async def _shutdown_clients(self) -> None:
        await bounded("egress: the outbox", self._outbox.stop(), STEP_S)
        await bounded("egress: the upstream HTTP client", self._caller.stop(), STEP_S)
        await bounded("egress: the Kafka producer", self._producer.stop(), STEP_S)
        await bounded("egress: Redis", self._close_redis(), STEP_S)
        await bounded("egress: the configuration follower", self._follower.stop(), STEP_S + STOP_CONSUMER_S)
        await bounded("egress: the sandbox pool", self._sandbox.stop(), STEP_S)

    async def _close_redis(self) -> None:
        await self._redis.aclose()
        # A command cancelled mid-flight (by kill) leaves its connection checked out.
        await self._redis.connection_pool.disconnect(inuse_connections=True)

    async def kill(self) -> None:
        """Stop without finishing or committing: as a crash would, for tests of redelivery."""
        doomed = [t for t in (self._consume_loop.task, self._commit_loop.task, self._outbox.task, self._completed.task,
                              *self._tasks) if t is not None]
        for task in doomed:
            task.cancel()
        # A crash waits for nothing: a task still unwinding after this is abandoned.
        await asyncio.wait(doomed, timeout=KILL_WAIT_S)
        await stop_consumer(self._consumer, timeout_s=KILL_WAIT_S)
        await self._shutdown_clients()

    async def check(self) -> None:
        await self._consume_loop.check()
        await self._commit_loop.check()
        await self._outbox.check()
        await self._completed.check()

    async def wait_assigned(self, timeout_s: float = 60.0) -> None:
        """Until the group has given this worker its partitions (a join takes seconds on Apache Kafka)."""
        loop = asyncio.get_running_loop()
        until = loop.time() + timeout_s
        while not self._consumer_started or not self._consumer.assignment():
            if loop.time() > until:
                raise TimeoutError(f"egress was assigned no partition within {timeout_s}s")
            await asyncio.sleep(0.05)

    async def sandbox_ready(self) -> None:
        await self._sandbox.check()

    async def config_ready(self) -> None:
        await self._follower.ready()

    async def ping_redis(self) -> None:
        await self._redis.ping()

    async def ping_broker(self) -> None:
        await self._producer.client.fetch_all_metadata()

    # -- consuming ---------------------------------------------------------
    async def _consume(self) -> None:
        if self._consume_loop.crashes:
            # Restarted after a crash: records fetched but never started must be fetched again.
            for tp in self._consumer.assignment():
                resume = self._offsets.resume_from(tp)
                if resume is not None:
                    self._consumer.seek(tp, resume)

        def seen(record: Any) -> bool:
            # Already started before a restart of this loop.
            return self._offsets.seen(TopicPartition(record.topic, record.partition), record.offset)

        while True:
            fetched = await fetch_decoded(self._consumer, expected="OutboundCall", reader="egress",
                                          timeout_ms=1000, max_records=500, skip=seen)
            for record, exc in fetched.undecodable:
                # Logged and counted like every reader's; egress also leaves the record in the dead letters.
                tp = TopicPartition(record.topic, record.partition)
                self._start(tp, record.offset, self._outbox.deliver([self._undecodable(exc, record)]))
            decoded = [(TopicPartition(r.topic, r.partition), r.offset, r.value, call) for r, call in fetched.decoded]
            already = await self._completed.done([c["call_id"] for _, _, _, c in decoded])
            for tp, offset, raw, call in decoded:
                # Made already, or being made now: a copy of a call in flight (a producer's retry after a lost
                # ack, in the same partition, so on this worker) waits on nothing and is not made twice; the
                # first copy answers it.
                if call["call_id"] in already or call["call_id"] in self._running:
                    DUPLICATES_SKIPPED.inc()
                    self._offsets.started(tp, offset)
                    self._offsets.finished(tp, offset)
                    continue
                await self._sem.acquire()
                self._running.add(call["call_id"])  # after the wait: a loop cancelled there leaves none behind
                self._start(tp, offset, self._handle(tp, offset, raw, call), acquired=True)

    def _start(self, tp: TopicPartition, offset: int, work: Any, *, acquired: bool = False) -> None:
        """Run ``work`` for one record; its offset is committable only once the work has finished."""
        self._offsets.started(tp, offset)

        async def run() -> None:
            try:
                await work
            except Exception:  # noqa: BLE001 - logged; the offset stays uncommitted
                log.exception("%s@%s could not be finished; it stays uncommitted and is redelivered", tp, offset)
                return
            finally:
                if acquired:
                    self._sem.release()
            self._offsets.finished(tp, offset)

        task = asyncio.create_task(run())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _undecodable(self, exc: CodecError, record: ConsumerRecord[Any, Any]) -> Outgoing:
        return self._dead_letter(undecodable_call(record.key), JunctionError(str(exc), code="undecodable"), record.value)

    async def _commit_periodically(self) -> None:
        while True:
            await asyncio.sleep(0.2)
            try:
                await self._commit()
            except (CommitFailedError, KafkaError) as exc:
                log.warning("commit failed, will retry: %s", exc)

    async def _commit(self) -> None:
        offsets = self._offsets.committable()
        if offsets and self._consumer_started:
            await self._consumer.commit(offsets)
            self._offsets.mark_committed(offsets)

    # -- one call ----------------------------------------------------------
    async def _handle(self, tp: TopicPartition, offset: int, raw: bytes, call: dict[str, Any]) -> None:
        """One call, isolated: whatever fails in it becomes its own error reply and dead letter.

        Returning means the reply and any dead letter were acknowledged by the broker (they go out
        with those of the other calls finishing now, see core/outbox.py); only then is the offset
        finished (see :meth:`_start`). A cancellation (stop, crash) leaves it unfinished, so the call
        is redelivered rather than lost.
        """
        called = False
        try:
            try:
                records, called = await self._process(call, raw)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - one bad call must not take the worker down
                log.exception("egress failed on %s@%s (%r)", tp, offset, call.get("correlation_id"))  # %r: no line a message forges
                err = JunctionError("egress failed on this call", code="internal_error", status=500)
                records = [self._dead_letter(call, err, call.get("original") or raw, [repr(exc)]),
                           *self._reply(call, error_reply(call, err, stage="egress"))]
            await self._outbox.deliver(records)
            if called:
                self._completed.mark(call["call_id"], call["deadline_ms"])
        finally:
            self._running.discard(call["call_id"])

    async def _process(self, call: dict[str, Any], raw: bytes) -> tuple[list[Outgoing], bool]:
        """The records to produce for the call (its reply, dead letters), and whether the upstream was called."""
        late = call["deadline_ms"] <= now_ms()
        if late and not nobody_waits(call, self._settings):
            EXPIRED_DROPPED.labels("egress").inc()  # its caller had its 504 from ingress
            return [], False
        route_error = await self._reply_route_error(call)
        if route_error is not None:
            # Processors check this too; a call written straight onto the calls topic is checked here,
            # before anything is called: its only record is the dead letter.
            return [self._dead_letter(call, route_error, raw)], False
        if late:
            EXPIRED_DROPPED.labels("egress").inc()
            err = expired()
            return [*self._reply(call, error_reply(call, err, stage="egress")), self._dead_letter(call, err, raw)], False
        records: list[Outgoing] = []
        started = time.perf_counter()
        attempts = Attempts()
        try:
            reply = await self._call_upstream(call, attempts)
            UPSTREAM_CALLS.labels(call["org"], call.get("api_id") or NO_API, f"{reply['status'] // 100}xx").inc()
            if attempts.gave_up is not None:
                gave_up = UpstreamError(f"upstream answered {reply['status']} after {attempts.made} attempt(s)",
                                        code="upstream_unavailable", status=reply["status"])
                records.append(self._dead_letter(call, gave_up, call.get("original") or raw, [f"attempts: {attempts.made}"]))
            reply = await self._transform_response(call, reply)
        except JunctionError as err:
            UPSTREAM_CALLS.labels(call["org"], call.get("api_id") or NO_API, err.code).inc()
            reply = error_reply(call, err, stage="egress")
            # A SOAP call whose arguments make no envelope is the caller's fault (422), but, like every failure
            # to load a WSDL or build an envelope, it is kept for the operator.
            if isinstance(err, (UpstreamError, SoapArgumentsInvalid)):
                details = [f"attempts: {attempts.made}", *err.extra.get("traceback", []), *getattr(err, "script_logs", []),
                           *_detail_lines(err)]
                records.append(self._dead_letter(call, err, call.get("original") or raw, details))
        finally:
            UPSTREAM_LATENCY.labels(call["org"], call.get("api_id") or NO_API).observe(time.perf_counter() - started)
        return [*records, *self._reply(call, reply)], True

    async def _breaker_verdict(self, ticket: Ticket, exc: BaseException | None) -> None:
        if exc is None:
            await self._breakers.succeeded(ticket)
        elif isinstance(exc, DeadlineExceeded):
            await self._breakers.abandoned(ticket)  # cut short by its own deadline: says nothing of the upstream
        elif self._breakers.is_failure(exc):
            await self._breakers.failed(ticket)
        else:
            await self._breakers.succeeded(ticket)  # an answer (a client error, a SOAP fault): the upstream is up

    async def _call_upstream(self, call: dict[str, Any], attempts: Attempts) -> dict[str, Any]:
        protocol = call.get("protocol", "rest")
        if protocol not in ("rest", "soap"):
            raise UpstreamError(f"protocol {protocol!r} is not supported by this egress", code="unsupported_protocol", status=501)
        method = "POST" if protocol == "soap" else call["method"]
        connector_id = call.get("connector_id") or ""
        current = (self.snapshot.connector(connector_id, call.get("connector_version") or None)
                   or self.snapshot.connector(connector_id))
        if not (protocol == "soap" and ((current or {}).get("target") or {}).get("wsdl")) and not origins_of(current):
            # Refused before anything is fetched. An uploaded WSDL's url is only its location: nothing is fetched
            # from it, and the envelope's address is guarded when it is posted to. With origins, each is guarded
            # as it is called (send_rest): the URL's own host is never called.
            await self._targets.check(call["url"])
        headers = with_correlation_id(records_to_pairs(call["headers"]), call["correlation_id"])
        policy = policy_for(current, self._settings)
        retry_ok = may_retry(method, headers)

        def left_s() -> float:
            remaining = (call["deadline_ms"] - now_ms()) / 1000
            if remaining <= 0:
                raise DeadlineExceeded("deadline passed before the upstream answered")
            return remaining

        upstream_s = [-0.001]  # -1 ms: never sent

        async def send(prepared: Any, url: str) -> UpstreamResponse:
            """One request within the breaker of ``url``'s origin."""
            remaining = left_s()
            # A SOAP upstream is where its envelopes go (the WSDL's address, or the connector's), not where its WSDL is.
            ticket = await self._breakers.acquire(call["org"], prepared.endpoint if protocol == "soap" else url,
                                                  int(remaining * 1000))
            sent_at = time.perf_counter()
            try:
                if protocol == "soap":
                    status, body = await self._soap.send(prepared)
                    response = UpstreamResponse(status, [("Content-Type", "application/json")], body)
                else:
                    try:
                        response = await self._caller.call(method, prepared.url, prepared.headers, call["body"], remaining,
                                                           follow_redirects=self._caller.follows_redirects(connector),
                                                           ssl_context=prepared.ssl_context, origin_bound=prepared.origin_bound)
                    except JunctionError as err:
                        err = prepared.redact(err)  # its message goes to the caller and the dead letters
                        if err.detail:
                            log.warning("call %s to the upstream failed (%s): %s", call["correlation_id"], err.code, err.detail)
                        raise err from None
            except Exception as exc:
                await self._breaker_verdict(ticket, exc)
                raise
            finally:
                upstream_s[0] = time.perf_counter() - sent_at  # the last attempt's: what the upstream itself took
            # A 5xx is counted as a breaker failure, but the caller still gets the upstream's answer.
            await self._breaker_verdict(ticket, _UpstreamFailed(response) if response.status >= 500 else None)
            return response

        async def send_rest() -> UpstreamResponse:
            """To the call's URL, or with ``target.origins`` to each origin in turn until one is connected to."""
            origins = self._balancer.order(connector_id, origins_of(connector))
            for n, url in enumerate([with_origin(call["url"], o) for o in origins] or [call["url"]]):
                if origins:
                    await self._targets.check(url)
                # A token request, too, is outside the upstream's breaker: it says nothing of the upstream.
                sent = asking_identity(headers) if has_response_transform(connector) else headers
                prepared = await self._upstream_auth.prepare(connector, url, sent, left_s())
                try:
                    response = await send(prepared, url)
                except (CircuitOpen, UpstreamNotConnected):
                    if n + 1 < len(origins):
                        continue  # nothing was sent: the next origin takes it
                    raise
                if response.status == 401:
                    again = await self._upstream_auth.after_unauthorized(connector, prepared, url, headers, left_s())
                    if again is not None:
                        response = await send(again, url)  # once: a new token refused too is the upstream's answer
                return response
            raise AssertionError("unreachable: the last origin's failure is raised")

        async def attempt() -> UpstreamResponse:
            nonlocal connector
            remaining = left_s()
            connector = await self._connector(call, remaining)
            # After the script, here: the connector's own headers and credentials, which no script sees.
            if protocol == "soap":
                # Loading the WSDL and building the envelope call nothing: outside the upstream's breaker.
                sent = with_target_headers((connector or {}).get("target", {}).get("headers"), headers)
                prepared: Any = await self._soap.prepare(call["url"], call.get("soap_operation") or "", call["body"], sent,
                                                         remaining, **soap_options(call, connector))
                response = await send(prepared, call["url"])
            else:
                response = await send_rest()
            if retry_ok and response.status in TRANSIENT_STATUSES:
                retry_after = next((v for k, v in response.headers if k.lower() == "retry-after"), None)
                raise TransientAnswer(response, response.status, parse_retry_after(retry_after, time.time()))
            return response

        connector: dict[str, Any] | None = None
        try:
            response = await with_retries(attempt, policy=policy, may_retry=retry_ok, deadline_ms=call["deadline_ms"],
                                          attempts=attempts)
        except TransientAnswer as last:
            # Retries exhausted (or the deadline left no room): the caller gets the last answer, the operator a dead letter.
            attempts.gave_up = last
            response = last.response
        return {
            "correlation_id": call["correlation_id"],
            "org": call["org"],
            "status": response.status,
            "headers": pairs_to_records(response.headers),  # as received: ingress filters them once (core/headers.py)
            "body": response.body,
            "stage": "egress",
            "config_version": call.get("config_version", 0),
            "produced_at_ms": now_ms(),
            "upstream_ms": round(upstream_s[0] * 1000, 3),
        }

    async def _connector(self, call: dict[str, Any], remaining_s: float) -> dict[str, Any] | None:
        """The connector version the call was made with (waited for briefly), else the current one."""
        connector_id = call.get("connector_id") or ""
        if connector_id and call.get("connector_version"):
            await self.snapshot.caught_up("connector", connector_id, int(call["connector_version"]), min(remaining_s, 2.0))
        return self.snapshot.connector(connector_id, call.get("connector_version") or None) or self.snapshot.connector(connector_id)

    async def _transform_response(self, call: dict[str, Any], reply: dict[str, Any]) -> dict[str, Any]:
        """Run the connector's transform_response, on the version the call started with."""
        from sandbox import ScriptRef

        if not call.get("connector_id"):
            return reply
        if call.get("connector_version"):
            remaining_s = (call["deadline_ms"] - now_ms()) / 1000
            await self.snapshot.caught_up("connector", call["connector_id"], int(call["connector_version"]), min(remaining_s, 2.0))
        connector = self.snapshot.connector(call["connector_id"], call.get("connector_version"))
        if connector is None:
            connector = self.snapshot.connector(call["connector_id"])
        if not has_response_transform(connector):
            return reply
        assert connector is not None
        ref = ScriptRef(call["org"], str(connector["id"]), int(connector.get("version", 0)), connector["script"])
        api = self.snapshot.api(call.get("api_id", ""))
        response = script_response(reply["status"], records_to_pairs(reply["headers"]), reply["body"])
        ctx = script_ctx(call["org"], api, connector, self._sealer)
        result = await self._sandbox.transform_response(ref, response, ctx, secrets=script_secrets(connector, ctx))
        if result.value is None:
            return reply
        return {**reply, "status": int(result.value["status"]), "headers": pairs_to_records(result.value["headers"]),
                "body": result.value["body"]}

    async def _reply_route_error(self, call: dict[str, Any]) -> JunctionError | None:
        err = reply_route_error(call, self._settings)
        if err is not None or not call.get("reply_topic"):
            return err
        # The producer's metadata usually knows the topic already: no task, no timer, for every call.
        partitions = self._producer.client.cluster.partitions_for_topic(call["reply_topic"])
        if not partitions:
            try:
                async with asyncio.timeout(5):
                    partitions = await self._producer.partitions_for(call["reply_topic"])
            except (KafkaError, TimeoutError):
                return None  # cannot tell now; producing the reply will retry meanwhile
        if int(call["reply_partition"]) not in partitions:
            return JunctionError(f"reply_partition {call['reply_partition']} is not a partition of {call['reply_topic']}",
                                 code=INVALID_REPLY_PARTITION, status=400)
        return None

    def _reply(self, call: dict[str, Any], reply: dict[str, Any]) -> list[Outgoing]:
        target = reply_target(call, self._settings)
        if target is None:
            return []
        topic, partition = target
        return [Outgoing(topic, call["correlation_id"].encode(), encode("Reply", reply), partition)]

    def _dead_letter(self, call: dict[str, Any], err: JunctionError, original: bytes, details: list[str] | None = None) -> Outgoing:
        topics = self._settings.topics
        # A call of schema version 1 carries its InboundCall; a current one points at it (see replay).
        record = dead_letter(call, err, stage="egress", original_topic=topics.requests if call.get("original") else topics.calls,
                             original=original, details=details,
                             auth=(self.snapshot.api(str(call.get("api_id") or "")) or {}).get("auth"))
        record.update(inbound_partition=int(call.get("inbound_partition", -1)), inbound_offset=int(call.get("inbound_offset", -1)))
        DEAD_LETTERS.labels("egress", err.code).inc()
        return Outgoing(topics.dlq, (call.get("correlation_id") or "").encode(), encode("DeadLetter", record))


def _detail_lines(err: JunctionError) -> list[str]:
    """What the caller was not told of ``err`` (egress/caller.py's ``detail``), for the dead letter."""
    return [f"upstream: {err.detail}"] if err.detail else []


class _UpstreamFailed(Exception):
    def __init__(self, response: UpstreamResponse) -> None:
        self.response = response
