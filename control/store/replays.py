"""Replay jobs and their items (migration 060): create, claim, record answers, page, read.

An item is claimed (``pending`` -> ``sending``) in a transaction that holds an advisory lock on its
correlation id, as does every answer recorded for that id. So a correlation id has at most one replay
in flight across all jobs and control instances, and the check "did a later attempt already succeed?"
cannot race an answer arriving: two jobs asked at once send a message once.
"""
from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from typing import Any

import asyncpg

from control.store.dead_letters import LetterFilter
from control.store.keyset import Keyset, Position

__all__ = [
    "ACTIVE", "FINAL", "Claim", "JobSpec", "claim_item", "create_job", "finish_jobs", "get_job", "job_items",
    "job_view", "later_attempts", "link_dead_letters", "mark_sent", "page_jobs", "pending_items", "record_answer",
    "record_unsendable", "release_claim", "running_jobs", "select_letters", "succeeded_correlations", "time_out_items",
]

ACTIVE = ("pending", "sending", "sent")
FINAL = ("succeeded", "failed", "unanswered", "skipped_already_done", "not_replayable")
_LOCK = "SELECT pg_advisory_xact_lock(hashtextextended(current_schema() || ':replay:' || $1, 0))"
_JOB_PAGE = Keyset("j.created_at", "j.id", newest_first=True)
_JOB_COLS = ("j.id, j.org_id, o.slug AS org_slug, j.created_by, j.created_by_email, j.selection, j.config,"
             " j.rate_per_second, j.force, j.status, j.total, j.created_at, j.finished_at")
_COUNTS = ("(SELECT jsonb_build_object("
           "'pending', count(*) FILTER (WHERE i.state = 'pending'),"
           "'sent', count(*) FILTER (WHERE i.state IN ('sending', 'sent', 'succeeded', 'failed', 'unanswered')),"
           "'answered', count(*) FILTER (WHERE i.status IS NOT NULL OR i.new_dead_letter_id IS NOT NULL),"
           "'succeeded', count(*) FILTER (WHERE i.state = 'succeeded'),"
           "'failed', count(*) FILTER (WHERE i.state IN ('failed', 'unanswered', 'not_replayable')),"
           "'skipped', count(*) FILTER (WHERE i.state = 'skipped_already_done'),"
           "'finished', count(*) FILTER (WHERE i.state NOT IN ('pending', 'sending', 'sent')))"
           " FROM replay_items i WHERE i.job_id = j.id) AS counts")


@dataclass(frozen=True)
class JobSpec:
    org_id: str
    selection: dict[str, Any]
    config: str
    rate_per_second: int
    force: bool
    created_by: str | None
    created_by_email: str | None


@dataclass(frozen=True)
class Claim:
    """What claiming an item decided: ``send`` with its attempt, ``wait`` (another replay of the same
    correlation id is in flight), or ``done`` (the item left ``pending`` some other way)."""

    verdict: str
    attempt: int = 0


async def select_letters(conn: asyncpg.Connection, org_id: str, *, ids: list[str] | None = None,
                         letters: LetterFilter | None = None, limit: int) -> list[asyncpg.Record]:
    """The organisation's dead letters named by ``ids`` or matching ``letters``, oldest first (at most ``limit``)."""
    cols = "id, correlation_id, attempt, stage, error_code, org_slug"
    if ids is not None:
        return await conn.fetch(f"SELECT {cols} FROM dead_letters WHERE org_id = $1 AND id = ANY($2::uuid[])"
                                " ORDER BY failed_at, id LIMIT $3", org_id, ids, limit)
    f = letters or LetterFilter()
    where, args = ["org_id = $1"], [org_id]  # type: list[str], list[Any]
    for clause, value in (("api_id = ?", f.api_id), ("stage = ?", f.stage), ("error_code = ?", f.error_code),
                          ("correlation_id = ?", f.correlation_id), ("failed_at >= ?", f.since), ("failed_at < ?", f.until)):
        if value is not None:
            args.append(value)
            where.append(clause.replace("?", f"${len(args)}"))
    args.append(limit)
    return await conn.fetch(f"SELECT {cols} FROM dead_letters WHERE {' AND '.join(where)}"
                            f" ORDER BY failed_at, id LIMIT ${len(args)}", *args)


async def succeeded_correlations(conn: asyncpg.Connection, org_id: str, correlation_ids: list[str]) -> set[str]:
    """Those of ``correlation_ids`` a replay already delivered."""
    rows = await conn.fetch("SELECT DISTINCT correlation_id FROM replay_items WHERE org_id = $1"
                            " AND correlation_id = ANY($2::text[]) AND state = 'succeeded'", org_id, correlation_ids)
    return {r["correlation_id"] for r in rows}


async def create_job(conn: asyncpg.Connection, spec: JobSpec, letters: list[asyncpg.Record]) -> str:
    job_id = str(uuid.uuid4())
    await conn.execute(
        "INSERT INTO replay_jobs (id, org_id, created_by, created_by_email, selection, config, rate_per_second, force,"
        " status, total) VALUES ($1, $2, $3, $4, $5::jsonb, $6, $7, $8, $9, $10)",
        job_id, spec.org_id, spec.created_by, spec.created_by_email, json.dumps(spec.selection), spec.config,
        spec.rate_per_second, spec.force, "running" if letters else "done", len(letters))
    await conn.executemany(
        "INSERT INTO replay_items (job_id, dead_letter_id, seq, org_id, org_slug, correlation_id, letter_attempt,"
        " letter_stage, letter_code) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
        [(job_id, r["id"], n, spec.org_id, r["org_slug"], r["correlation_id"], r["attempt"], r["stage"], r["error_code"])
         for n, r in enumerate(letters)])
    if not letters:
        await conn.execute("UPDATE replay_jobs SET finished_at = clock_timestamp() WHERE id = $1", job_id)
    return job_id


async def running_jobs(conn: asyncpg.Connection) -> list[asyncpg.Record]:
    """Jobs with items still to send, oldest first."""
    return await conn.fetch(
        "SELECT j.id, j.config, j.rate_per_second, j.force FROM replay_jobs j WHERE j.status = 'running'"
        " AND EXISTS (SELECT 1 FROM replay_items i WHERE i.job_id = j.id AND i.state = 'pending') ORDER BY j.created_at")


async def pending_items(conn: asyncpg.Connection, job_id: str, limit: int) -> list[asyncpg.Record]:
    return await conn.fetch(
        "SELECT i.dead_letter_id, i.org_id, i.org_slug, i.correlation_id, i.letter_attempt, d.original, d.original_topic,"
        " d.inbound_partition, d.inbound_offset, d.api_id FROM replay_items i LEFT JOIN dead_letters d ON d.id = i.dead_letter_id"
        " WHERE i.job_id = $1 AND i.state = 'pending' ORDER BY i.seq LIMIT $2", job_id, limit)


async def later_attempts(conn: asyncpg.Connection, org_id: str, correlation_id: str) -> tuple[int, set[int]]:
    """The highest attempt known of ``correlation_id`` (dead letters and replays), and the attempts known to
    have failed (a dead letter, or a replay answered with an error)."""
    rows = await conn.fetch(
        "SELECT attempt, true AS failed FROM dead_letters WHERE org_id = $1 AND correlation_id = $2"
        " UNION ALL SELECT attempt, state IN ('failed', 'unanswered') FROM replay_items"
        " WHERE org_id = $1 AND correlation_id = $2 AND attempt IS NOT NULL", org_id, correlation_id)
    highest = max((int(r["attempt"]) for r in rows), default=1)
    return highest, {int(r["attempt"]) for r in rows if r["failed"]}


async def claim_item(conn: asyncpg.Connection, job_id: str, item: asyncpg.Record, *, force: bool,
                     done_elsewhere: set[int], timeout_ms: int) -> Claim:
    """Claim one pending item for sending (see the module doc). ``done_elsewhere``: later attempts egress
    recorded as called (Redis) that no failure explains; with ``force`` they and recorded successes are ignored."""
    cid, org_id, dl_id = item["correlation_id"], item["org_id"], item["dead_letter_id"]
    async with conn.transaction():
        await conn.execute(_LOCK, cid)
        state = await conn.fetchval("SELECT state FROM replay_items WHERE job_id = $1 AND dead_letter_id = $2 FOR UPDATE",
                                    job_id, dl_id)
        if state != "pending":
            return Claim("done")
        others = await conn.fetch(
            "SELECT job_id, attempt, state FROM replay_items WHERE org_id = $1 AND correlation_id = $2"
            " AND state IN ('sending', 'sent', 'succeeded') AND NOT (job_id = $3 AND dead_letter_id = $4)",
            org_id, cid, job_id, dl_id)
        if any(o["state"] in ("sending", "sent") for o in others):
            return Claim("wait")
        succeeded = [o for o in others if o["state"] == "succeeded" and o["attempt"] > item["letter_attempt"]]
        if not force and (succeeded or done_elsewhere):
            how = (f"attempt {succeeded[0]['attempt']} succeeded in replay job {succeeded[0]['job_id']}" if succeeded
                   else f"egress already completed attempt {min(done_elsewhere)}")
            await conn.execute("UPDATE replay_items SET state = 'skipped_already_done', message = $3"
                               " WHERE job_id = $1 AND dead_letter_id = $2", job_id, dl_id, how)
            return Claim("done")
        highest, _ = await later_attempts(conn, org_id, cid)
        attempt = highest + 1
        await conn.execute(
            "UPDATE replay_items SET state = 'sending', attempt = $3, sent_at = clock_timestamp(),"
            " deadline_at = clock_timestamp() + make_interval(secs => $4::float8 / 1000)"
            " WHERE job_id = $1 AND dead_letter_id = $2", job_id, dl_id, attempt, timeout_ms)
        return Claim("send", attempt)


async def mark_sent(conn: asyncpg.Connection, job_id: str, dead_letter_id: str, *, config: str, topic: str) -> None:
    # Its answer may already be recorded (a fast pipeline): the state moves on only from 'sending'.
    await conn.execute("UPDATE replay_items SET state = CASE WHEN state = 'sending' THEN 'sent' ELSE state END,"
                       " config = $3, topic = $4 WHERE job_id = $1 AND dead_letter_id = $2", job_id, dead_letter_id, config, topic)


async def release_claim(conn: asyncpg.Connection, job_id: str, dead_letter_id: str) -> None:
    """Give back a claim whose message never reached the producer (the job was stopped first): pending again."""
    await conn.execute("UPDATE replay_items SET state = 'pending', attempt = NULL, sent_at = NULL, deadline_at = NULL"
                       " WHERE job_id = $1 AND dead_letter_id = $2 AND state = 'sending'", job_id, dead_letter_id)


async def api_serves(conn: asyncpg.Connection, org_id: str, api_id: str) -> bool:
    """Whether ``api_id`` is an enabled API of the organisation now."""
    return bool(await conn.fetchval(
        "SELECT 1 FROM apis WHERE org_id = $1 AND id::text = $2 AND coalesce((content->>'enabled')::boolean, true)",
        org_id, api_id))


async def record_unsendable(conn: asyncpg.Connection, job_id: str, dead_letter_id: str, reason: str) -> None:
    await conn.execute("UPDATE replay_items SET state = 'not_replayable', message = $3, attempt = NULL, deadline_at = NULL"
                       " WHERE job_id = $1 AND dead_letter_id = $2 AND state IN ('pending', 'sending')",
                       job_id, dead_letter_id, reason)


async def record_answer(conn: asyncpg.Connection, org_slug: str, correlation_id: str, status: int,
                        code: str | None, message: str | None) -> bool:
    """The Reply of the replay of ``correlation_id`` in flight (there is at most one; a late answer still
    counts); False if none is."""
    async with conn.transaction():
        await conn.execute(_LOCK, correlation_id)
        result = await conn.execute(
            "UPDATE replay_items SET state = CASE WHEN $3 < 400 THEN 'succeeded' ELSE 'failed' END, status = $3,"
            " code = coalesce(code, $4), message = coalesce(message, $5), answered_at = coalesce(answered_at, clock_timestamp())"
            " WHERE org_slug = $1 AND correlation_id = $2 AND state IN ('sending', 'sent', 'unanswered')"
            " AND attempt = (SELECT max(attempt) FROM replay_items WHERE org_slug = $1 AND correlation_id = $2)",
            org_slug, correlation_id, status, code, message)
    return result != "UPDATE 0"


async def link_dead_letters(conn: asyncpg.Connection, window_s: int = 3600) -> int:
    """Attach each new dead letter of a replayed attempt to its item (same correlation id and attempt): the
    replay failed again. An item still waiting for its Reply is failed by it."""
    result = await conn.execute(
        "UPDATE replay_items i SET new_dead_letter_id = d.id,"
        " state = CASE WHEN i.state IN ('sending', 'sent', 'unanswered') THEN 'failed' ELSE i.state END,"
        " code = coalesce(i.code, d.error_code), message = coalesce(i.message, d.error_message),"
        " answered_at = coalesce(i.answered_at, clock_timestamp())"
        " FROM dead_letters d WHERE i.new_dead_letter_id IS NULL AND i.attempt IS NOT NULL"
        " AND i.sent_at > clock_timestamp() - make_interval(secs => $1) AND d.org_id = i.org_id"
        " AND d.correlation_id = i.correlation_id AND d.attempt = i.attempt", window_s)
    return int(result.split()[-1])


async def time_out_items(conn: asyncpg.Connection, grace_s: int) -> int:
    """Items sent whose deadline passed ``grace_s`` ago without an answer: a stage dropped them as expired."""
    result = await conn.execute(
        "UPDATE replay_items SET state = 'unanswered', code = 'no_answer',"
        " message = 'no reply or dead letter within the deadline' WHERE state IN ('sending', 'sent')"
        " AND deadline_at < clock_timestamp() - make_interval(secs => $1)", grace_s)
    return int(result.split()[-1])


async def finish_jobs(conn: asyncpg.Connection) -> int:
    result = await conn.execute(
        "UPDATE replay_jobs j SET status = 'done', finished_at = clock_timestamp() WHERE j.status = 'running'"
        " AND NOT EXISTS (SELECT 1 FROM replay_items i WHERE i.job_id = j.id AND i.state IN ('pending', 'sending', 'sent'))")
    return int(result.split()[-1])


async def page_jobs(conn: asyncpg.Connection, org_id: str, limit: int, after: Position | None) -> list[asyncpg.Record]:
    """Newest first (created_at, then id); ``after`` is the last row of the previous page."""
    args: list[Any] = [org_id]
    return await conn.fetch(f"SELECT {_JOB_COLS}, {_COUNTS} FROM replay_jobs j JOIN organisations o ON o.id = j.org_id"
                            f" WHERE j.org_id = $1 AND {_JOB_PAGE.after(after, args)} {_JOB_PAGE.order(limit, args)}",
                            *args)


async def get_job(conn: asyncpg.Connection, org_id: str, job_id: str) -> asyncpg.Record | None:
    return await conn.fetchrow(f"SELECT {_JOB_COLS}, {_COUNTS} FROM replay_jobs j JOIN organisations o ON o.id = j.org_id"
                               " WHERE j.org_id = $1 AND j.id = $2", org_id, job_id)


async def job_items(conn: asyncpg.Connection, job_id: str) -> list[dict[str, Any]]:
    rows = await conn.fetch(
        "SELECT dead_letter_id, correlation_id, letter_attempt, letter_stage, letter_code, state, attempt, config, topic,"
        " status, code, message, new_dead_letter_id, sent_at, answered_at FROM replay_items WHERE job_id = $1 ORDER BY seq",
        job_id)
    return [{"dead_letter_id": str(r["dead_letter_id"]), "correlation_id": r["correlation_id"],
             "letter": {"attempt": r["letter_attempt"], "stage": r["letter_stage"], "error_code": r["letter_code"]},
             "outcome": r["state"], "attempt": r["attempt"], "config": r["config"], "topic": r["topic"],
             "status": r["status"], "code": r["code"], "message": r["message"],
             "new_dead_letter_id": str(r["new_dead_letter_id"]) if r["new_dead_letter_id"] else None,
             "sent_at": r["sent_at"].isoformat() if r["sent_at"] else None,
             "answered_at": r["answered_at"].isoformat() if r["answered_at"] else None} for r in rows]


def job_view(row: asyncpg.Record) -> dict[str, Any]:
    counts = row["counts"]
    counts = json.loads(counts) if isinstance(counts, str) else counts
    selection = row["selection"]
    selection = json.loads(selection) if isinstance(selection, str) else selection
    return {"id": str(row["id"]), "org": row["org_slug"], "org_id": str(row["org_id"]), "status": row["status"],
            **selection, "config": row["config"], "rate_per_second": row["rate_per_second"], "force": row["force"],
            "created_by": row["created_by_email"], "created_at": row["created_at"].isoformat(),
            "finished_at": row["finished_at"].isoformat() if row["finished_at"] else None,
            "progress": {"total": row["total"], **{k: int(counts.get(k, 0)) for k in
                                                   ("pending", "sent", "answered", "succeeded", "failed", "skipped", "finished")}}}
