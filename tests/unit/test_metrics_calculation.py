"""Property 19 (metrics calculation): the stored aggregates equal those computed directly.

The observe stage's join and storage functions run against the session's real PostgreSQL (no
broker): each call's arrival and reply are recorded in shuffled flushes, then the windows are read
back as the management API reads them. Counts must match exactly; percentiles within the
histogram's documented relative error (core/latency.py).
"""
from __future__ import annotations

import random
import uuid
from collections import defaultdict
from datetime import datetime, timezone
from typing import Any

import asyncpg
from hypothesis import HealthCheck, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from control.store.metrics import points, window_rows
from core.latency import (
    FLOOR_MS,
    RELATIVE_ERROR,
    bucket_of,
    nearest_rank,
    quantile,
    value_of,
)
from core.settings import Settings
from core.snapshot import ConfigSnapshot
from control.observe import events
from control.observe.outcome import finish
from control.observe.store import record, sweep

PROPS = hsettings(max_examples=25, deadline=None, database=None,
                  suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
BASE_MS = 1_700_000_000_000 - 1_700_000_000_000 % 3_600_000  # an hour boundary
STATUSES = [200, 201, 204, 301, 400, 404, 429, 500, 502, 504]


calls_strategy = st.lists(st.fixed_dictionaries({
    "org": st.integers(0, 1),
    "api": st.sampled_from(["", "a", "b"]),
    "status": st.sampled_from(STATUSES),
    "code": st.one_of(st.none(), st.sampled_from(["upstream_timeout", "rate_limited", "transform_failed"])),
    "arrival_ms": st.integers(0, 3 * 3_600_000),  # across 10 s, 1 min and 1 h windows
    "latency_ms": st.integers(1, 600_000),
    "upstream_ms": st.one_of(st.none(), st.floats(0.1, 100_000, allow_nan=False)),
    "bytes_in": st.integers(0, 10_000),
    "bytes_out": st.integers(0, 10_000),
}), min_size=1, max_size=60)


def _expected(calls: list[dict[str, Any]], org_ids: list[str]) -> dict[tuple[int, str, str, int], dict[str, Any]]:
    out: dict[tuple[int, str, str, int], dict[str, Any]] = {}
    for c in calls:
        at = BASE_MS + c["arrival_ms"]
        for step in (10, 60, 3600):
            key = (step, org_ids[c["org"]], c["api"], at - at % (step * 1000))
            e = out.setdefault(key, {"calls": 0, "classes": defaultdict(int), "errors": defaultdict(int),
                                     "latency": [], "upstream": [], "bytes_in": 0, "bytes_out": 0})
            e["calls"] += 1
            klass = c["status"] // 100
            e["classes"][f"{klass}xx" if 2 <= klass <= 5 else "other"] += 1
            if c["status"] >= 400:
                e["errors"][c["code"] or f"http_{c['status']}"] += 1
            e["latency"].append(float(c["latency_ms"]))
            if c["upstream_ms"] is not None:
                e["upstream"].append(c["upstream_ms"])
            e["bytes_in"] += c["bytes_in"]
            e["bytes_out"] += c["bytes_out"]
    return out


def _close(estimate: float | None, values: list[float], q: float) -> bool:
    exact = sorted(values)[nearest_rank(len(values), q) - 1]
    assert estimate is not None
    return abs(estimate - exact) <= RELATIVE_ERROR * exact + 1e-9 or (exact < FLOOR_MS and estimate <= FLOOR_MS)


def test_the_histogram_error_bound_holds_at_bucket_edges() -> None:
    for ms in [FLOOR_MS, 0.11, 1.0, 1.0905, 99.99, 1234.5, 3_000_000.0]:
        assert abs(value_of(bucket_of(ms)) - ms) <= RELATIVE_ERROR * ms + 1e-12
    assert quantile({}, 0.5) is None


@PROPS
@given(calls=calls_strategy, seed=st.integers(0, 2**32 - 1))
async def test_property_metrics_calculation(log_db: asyncpg.Pool, settings: Settings, calls: list[dict[str, Any]], seed: int) -> None:
    org_ids = [str(uuid.uuid4()), str(uuid.uuid4())]
    slugs = [f"m19-{o[:8]}" for o in org_ids]
    snapshot = ConfigSnapshot()
    for slug, id_ in zip(slugs, org_ids):
        snapshot.orgs[slug] = {"id": id_, "slug": slug}
    partials: list[events.Partial] = []
    for i, c in enumerate(calls):
        cid, org, at = f"c{i}-{uuid.uuid4().hex[:8]}", slugs[c["org"]], BASE_MS + c["arrival_ms"]
        partials.append(events.from_request({
            "correlation_id": cid, "org": org, "api_id": c["api"], "method": "GET", "path": "/x",
            "body": b"x" * c["bytes_in"], "received_at_ms": at, "deadline_ms": at + 30_000,
            "reply_topic": settings.topics.replies, "reply_partition": 0}, at, settings, snapshot))
        partials.append(events.from_reply({
            "correlation_id": cid, "org": org, "status": c["status"], "body": b"y" * c["bytes_out"],
            "error_code": c["code"] if c["status"] >= 400 else None, "produced_at_ms": at + c["latency_ms"],
            "upstream_ms": -1.0 if c["upstream_ms"] is None else c["upstream_ms"]}, at + c["latency_ms"], snapshot))
    # Any order, any split into flushes: arrival and reply of a call often land in different ones.
    rng = random.Random(seed)
    rng.shuffle(partials)
    cuts = sorted(rng.sample(range(1, len(partials)), min(3, len(partials) - 1)))
    async with log_db.acquire() as conn:
        finished = 0
        for batch in (partials[a:b] for a, b in zip([0, *cuts], [*cuts, len(partials)])):
            finished += len(await record(conn, batch, now_ms=BASE_MS))
        # Redelivery changes nothing: every call is already done.
        assert await record(conn, partials, now_ms=BASE_MS) == []
        assert finished == len(calls)
        expected = _expected(calls, org_ids)
        since = datetime.fromtimestamp(BASE_MS / 1000 - 3600, timezone.utc)
        until = datetime.fromtimestamp(BASE_MS / 1000 + 5 * 3600, timezone.utc)
        for step in (10, 60, 3600):
            for org_id in org_ids:
                for api in ("", "a", "b"):
                    got = {p["t"]: p for p in points(await window_rows(conn, step_s=step, since=since, until=until,
                                                                       org_id=org_id, api_id=api))}
                    want = {datetime.fromtimestamp(k[3] / 1000, timezone.utc).isoformat(): v
                            for k, v in expected.items() if k[:3] == (step, org_id, api)}
                    assert set(got) == set(want)
                    for t, e in want.items():
                        p = got[t]
                        assert p["calls"] == e["calls"]
                        assert {k: v for k, v in p["status"].items() if v} == dict(e["classes"])
                        assert p["error_codes"] == dict(e["errors"])
                        assert (p["bytes_in"], p["bytes_out"]) == (e["bytes_in"], e["bytes_out"])
                        for name, q in (("p50", 0.5), ("p95", 0.95), ("p99", 0.99)):
                            assert _close(p["latency_ms"][name], e["latency"], q), (name, p["latency_ms"], sorted(e["latency"]))
                            if e["upstream"]:
                                assert _close(p["upstream_ms"][name], e["upstream"], q)
                            else:
                                assert p["upstream_ms"][name] is None
            # Merged across APIs (what the organisation's series shows) the bound still holds.
            whole = points(await window_rows(conn, step_s=step, since=since, until=until, org_id=org_ids[0]))
            for p in whole:
                lat = [v for k, e in expected.items() if k[0] == step and k[1] == org_ids[0]
                       and datetime.fromtimestamp(k[3] / 1000, timezone.utc).isoformat() == p["t"] for v in e["latency"]]
                assert p["calls"] == len(lat)
                assert _close(p["latency_ms"]["p99"], lat, 0.99)


async def test_fire_and_forget_and_lost_replies_are_finished_by_the_sweep(log_db: asyncpg.Pool, settings: Settings) -> None:
    org_id, slug = str(uuid.uuid4()), f"m19-{uuid.uuid4().hex[:8]}"
    snapshot = ConfigSnapshot()
    snapshot.orgs[slug] = {"id": org_id, "slug": slug}
    at = BASE_MS
    sent = events.from_request({"correlation_id": "ff", "org": slug, "method": "POST", "path": "/x", "body": b"",
                                "received_at_ms": at, "deadline_ms": at + 1000}, at, settings, snapshot)
    lost = events.from_request({"correlation_id": "lost", "org": slug, "method": "GET", "path": "/x", "body": b"",
                                "received_at_ms": at, "deadline_ms": at + 1000, "reply_topic": settings.topics.replies,
                                "reply_partition": 0}, at, settings, snapshot)
    handoff = events.from_call({"correlation_id": "ff", "org": slug, "api_id": ""}, at + 5, snapshot)
    async with log_db.acquire() as conn:
        assert await record(conn, [sent, lost, handoff], now_ms=at) == []
        await conn.execute("UPDATE request_logs SET seen_at = now() - interval '1 hour' WHERE org = $1", slug)
        done = {f.correlation_id: f for f in await sweep(conn, now_ms=at + 60_000, grace_s=1)}
        assert done["ff"].status == 202 and done["ff"].latency_ms == 5
        assert done["lost"].status == 504 and done["lost"].error_code == "no_reply" and done["lost"].latency_ms == 1000
        rows = await conn.fetch("SELECT correlation_id, done FROM request_logs WHERE org = $1", slug)
        assert {r["correlation_id"] for r in rows if r["done"]} == {"ff", "lost"}


def test_a_dead_letter_alone_finishes_only_a_call_that_waits_for_no_reply() -> None:
    row = {"org": "o", "correlation_id": "c", "org_id": None, "received_ms": 10, "expects_reply": True,
           "dlq_code": "transform_failed", "failed_ms": 20}
    assert finish(row, now_ms=30) is None
    f = finish({**row, "expects_reply": False}, now_ms=30)
    assert f is not None and f.status == 502 and f.latency_ms == 10
