"""Replay jobs in the background: send each job's messages at its pace, and record what became of them.

Two supervised loops in the control app:

- the sender polls for jobs with messages still to send and runs each (a few at once) under a session
  advisory lock, so one control instance runs a job at a time and a job's pace holds across instances.
  Each message is claimed in PostgreSQL before it is sent (control/store/replays.py): a control restart
  resumes a job from its pending rows and never sends a claimed one again, so a job sends each message at
  most once (a stop that comes between a claim and the hand-over to the producer gives the claim back). A
  message that was claimed and never answered is recorded ``unanswered`` after its deadline.
- the answer reader consumes ``<prefix>.results.replays`` as a consumer group of its own
  (``<group_prefix>.replay-answers``), records each Reply as its message's outcome and commits after
  writing; every second it also links new dead letters of replayed attempts (indexed by
  control/dead_letters.py), times out unanswered messages and marks finished jobs done.
"""
from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

import asyncpg
import redis.asyncio as aioredis

from control.replay import InboundReader, revive
from control.store.replays import (
    api_serves,
    claim_item,
    finish_jobs,
    later_attempts,
    link_dead_letters,
    mark_sent,
    pending_items,
    record_answer,
    record_unsendable,
    release_claim,
    running_jobs,
    time_out_items,
)
from core.kafka import make_consumer, make_producer, stop_consumer
from core.settings import Settings
from core.tasks import Supervised, cancel_and_wait
from schemas import CodecError, decode

__all__ = ["ANSWERS_GROUP", "ReplayJobs"]

log = logging.getLogger(__name__)

ANSWERS_GROUP = "replay-answers"
MAX_RUNNING = 4  # jobs one instance sends at once (each holds a pooled connection for its lock)
POLL_S = 0.5
SWEEP_S = 1.0
ANSWER_GRACE_S = 30  # past a replayed call's deadline, before it is recorded unanswered
REDIS_LOOKBACK = 20  # later attempts whose completion egress may have recorded in Redis


class ReplayJobs:
    def __init__(self, settings: Settings, pool: asyncpg.Pool, redis: aioredis.Redis, *,
                 grace_s: int = ANSWER_GRACE_S) -> None:
        self._settings = settings
        self._pool = pool
        self._redis = redis
        self._grace_s = grace_s
        self._sender = Supervised("replay-sender", self._send_jobs)
        self._answers = Supervised("replay-answers", self._read_answers)
        self.sent = 0
        self.answers = 0

    def start(self) -> None:
        self._sender.start()
        self._answers.start()

    async def stop(self) -> None:
        await self._sender.stop()
        await self._answers.stop()

    async def check(self) -> None:
        await self._sender.check()
        await self._answers.check()

    # -- sending -----------------------------------------------------------
    async def _send_jobs(self) -> None:
        producer = make_producer(self._settings)
        reader = InboundReader(self._settings)
        running: dict[str, asyncio.Task[None]] = {}
        try:
            await producer.start()
            await reader.start()
            while True:
                for job_id, task in list(running.items()):
                    if task.done():
                        del running[job_id]
                        if not task.cancelled() and task.exception() is not None:
                            # Its rows say where it stopped: the next poll takes it up again.
                            log.error("replay job %s stopped", job_id, exc_info=task.exception())
                async with self._pool.acquire() as conn:
                    jobs = await running_jobs(conn)
                for job in jobs:
                    job_id = str(job["id"])
                    if job_id not in running and len(running) < MAX_RUNNING:
                        running[job_id] = asyncio.create_task(self._run_job(job, producer, reader), name=f"replay:{job_id}")
                await asyncio.sleep(POLL_S)
        finally:
            for task in running.values():
                await cancel_and_wait(task)
            await reader.stop()
            await producer.stop()

    async def _run_job(self, job: asyncpg.Record, producer: Any, reader: InboundReader) -> None:
        job_id = str(job["id"])
        async with self._pool.acquire() as lock_conn:
            key = "SELECT {}(hashtextextended(current_schema() || ':replay-job:' || $1, 0))"
            if not await lock_conn.fetchval(key.format("pg_try_advisory_lock"), job_id):
                return  # another control instance runs it
            try:
                await self._send_job(job, producer, reader)
            finally:
                # The pool's reset on release unlocks too; explicit, so the lock is not held while the connection idles.
                await lock_conn.fetchval(key.format("pg_advisory_unlock"), job_id)

    async def _send_job(self, job: asyncpg.Record, producer: Any, reader: InboundReader) -> None:
        job_id, force, config = str(job["id"]), bool(job["force"]), str(job["config"])
        interval = 1.0 / max(int(job["rate_per_second"]), 1)
        timeout_ms = self._settings.default_timeout_ms
        loop = asyncio.get_running_loop()
        next_at = loop.time()
        while True:
            async with self._pool.acquire() as conn:
                items = await pending_items(conn, job_id, 100)
            if not items:
                return
            progressed = False
            for item in items:
                done_elsewhere = set() if force else await self._completed_elsewhere(item)
                await asyncio.sleep(max(next_at - loop.time(), 0))
                async with self._pool.acquire() as conn:
                    claim = await claim_item(conn, job_id, item, force=force, done_elsewhere=done_elsewhere,
                                             timeout_ms=timeout_ms)
                if claim.verdict == "wait":
                    continue  # another job's replay of this call is in flight: its outcome decides
                progressed = True
                if claim.verdict != "send":
                    continue
                dl_id = str(item["dead_letter_id"])
                if config == "original" and item["api_id"]:
                    # Egress makes an original call as it was, asking nothing: the authority is here. A deleted
                    # or disabled API serves no call, as processors would refuse it with the current config.
                    async with self._pool.acquire() as conn:
                        if not await api_serves(conn, str(item["org_id"]), str(item["api_id"])):
                            await record_unsendable(conn, job_id, dl_id, "its API is deleted or disabled: the original "
                                                    "configuration has nothing to call (replay it with config current)")
                            continue
                try:
                    revived = await revive(self._settings, reader, item, attempt=claim.attempt, config=config,
                                           timeout_ms=timeout_ms)
                    acked = await producer.send(revived.topic, key=revived.key, value=revived.value)
                except CodecError as exc:
                    async with self._pool.acquire() as conn:
                        await record_unsendable(conn, job_id, dl_id, str(exc))
                    continue
                except asyncio.CancelledError:
                    # Stopped before the message reached the producer: it was not sent, so a restart may send
                    # it. (Once handed over it goes out with the producer's flush, and its answer is recorded.)
                    await asyncio.shield(self._release(job_id, dl_id))
                    raise
                await acked
                self.sent += 1
                next_at = loop.time() + interval
                async with self._pool.acquire() as conn:
                    await mark_sent(conn, job_id, dl_id, config=revived.config, topic=revived.topic)
            if not progressed:
                await asyncio.sleep(POLL_S)

    async def _release(self, job_id: str, dead_letter_id: str) -> None:
        async with self._pool.acquire() as conn:
            await release_claim(conn, job_id, dead_letter_id)

    async def _completed_elsewhere(self, item: asyncpg.Record) -> set[int]:
        """Later attempts of the item's call that egress recorded as made (its completed calls in Redis, kept a
        minute past their deadline) and that no dead letter or failed replay explains: a replay outside any job
        that went through."""
        async with self._pool.acquire() as conn:
            highest, failed = await later_attempts(conn, str(item["org_id"]), item["correlation_id"])
        first = int(item["letter_attempt"]) + 1
        attempts = [n for n in range(first, min(highest + 2, first + REDIS_LOOKBACK)) if n not in failed]
        if not attempts:
            return set()
        cid = item["correlation_id"]
        try:
            values = await self._redis.mget([self._settings.redis_key("egress-done", f"{cid}.{n}") for n in attempts])
        except (aioredis.RedisError, OSError) as exc:
            log.warning("replay: completed calls unavailable in Redis, relying on recorded outcomes: %s", exc)
            return set()
        return {n for n, v in zip(attempts, values) if v is not None}

    # -- answers -----------------------------------------------------------
    async def _read_answers(self) -> None:
        consumer = make_consumer(self._settings, self._settings.topics.replay_results, group=ANSWERS_GROUP,
                                 background=True)
        try:
            await consumer.start()
            next_sweep = 0.0
            while True:
                batches = await consumer.getmany(timeout_ms=500, max_records=500)
                if batches:
                    async with self._pool.acquire() as conn:
                        for records in batches.values():
                            for rec in records:
                                await self._record(conn, rec.value)
                    await consumer.commit()  # only now: a crash before re-reads, and recording is idempotent
                if time.monotonic() >= next_sweep:
                    await self.sweep()
                    next_sweep = time.monotonic() + SWEEP_S
        finally:
            await stop_consumer(consumer)

    async def _record(self, conn: asyncpg.Connection, value: bytes | None) -> None:
        try:
            _, reply = decode(value or b"", expected="Reply")
        except CodecError:
            log.warning("replay answers: a record that is no Reply; skipped")
            return
        if await record_answer(conn, str(reply.get("org") or ""), str(reply["correlation_id"]), int(reply["status"]),
                               reply.get("error_code") or None, reply.get("error_message") or None):
            self.answers += 1

    async def sweep(self) -> None:
        """Link new dead letters of replayed attempts, time out the unanswered, finish jobs."""
        async with self._pool.acquire() as conn:
            await link_dead_letters(conn)
            await time_out_items(conn, self._grace_s)
            await finish_jobs(conn)
