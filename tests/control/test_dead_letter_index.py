"""The dead-letter indexer copies the dead-letter topic into PostgreSQL: once, cleaned, and for good."""
from __future__ import annotations

import asyncio
import uuid
from typing import Any

from control.dead_letters import DeadLetterIndexer
from core.kafka import ensure_topics, make_producer
from core.messages import now_ms
from core.settings import Settings
from schemas import encode
from tests.dead_letter_support import inbound_call, letter_bytes
from tests.support import wait_until


async def _isolated(settings: Settings, **overrides: Any) -> Settings:
    tag = uuid.uuid4().hex[:8]
    s = settings.with_overrides(topic_prefix=f"{settings.topic_prefix}-dl{tag}", group_prefix=f"{settings.group_prefix}-dl{tag}",
                                **overrides)
    await ensure_topics(s)
    return s


async def _produce(settings: Settings, values: list[bytes]) -> None:
    producer = make_producer(settings)
    await producer.start()
    try:
        for value in values:
            await producer.send_and_wait(settings.topics.dlq, key=b"k", value=value)
    finally:
        await producer.stop()


async def _count(control: Any, slug: str) -> int:
    return int(await control.pool.fetchval("SELECT count(*) FROM dead_letters WHERE org_slug = $1", slug))


async def _until_count(control: Any, slug: str, n: int) -> None:
    counts = [0]

    async def poll() -> bool:
        counts[0] = await _count(control, slug)
        return counts[0] >= n

    for _ in range(200):
        if await poll():
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"{counts[0]} of {n} dead letters indexed")


async def test_letters_are_indexed_once_across_restarts_and_outlive_the_broker(control: Any) -> None:
    org = (await control.new_org("idx"))["slug"]
    s = await _isolated(control.settings)
    first = [letter_bytes(org) for _ in range(3)]
    await _produce(s, first)
    indexer = DeadLetterIndexer(s, control.pool)
    indexer.start()
    try:
        await _until_count(control, org, 3)
    finally:
        await indexer.stop()
    row = await control.pool.fetchrow("SELECT org_id, stage, error_code FROM dead_letters WHERE org_slug = $1 LIMIT 1", org)
    assert row["org_id"] is not None and (row["stage"], row["error_code"]) == ("processors", "transform_failed")

    # Restarted, in its group: it goes on from its committed offsets.
    await _produce(s, [letter_bytes(org)])
    indexer = DeadLetterIndexer(s, control.pool)
    indexer.start()
    try:
        await _until_count(control, org, 4)
    finally:
        await indexer.stop()
    # An indexer that reads the whole topic again (a new group: offsets lost) adds nothing.
    again = DeadLetterIndexer(s.with_overrides(group_prefix=s.group_prefix + "-again"), control.pool)
    again.start()
    try:
        await wait_until(lambda: again.indexed == 0 and again.skipped == 0 and _seen(again) >= 4, timeout_s=15)
    finally:
        await again.stop()
    assert await _count(control, org) == 4

    # The broker loses its data: a new, empty dead-letter topic, the same group. The rows stay, and a new
    # letter at offset 0 is a new row, not taken for the old one at that offset.
    fresh = await _isolated(control.settings)
    fresh = fresh.with_overrides(group_prefix=s.group_prefix)
    await _produce(fresh, [letter_bytes(org)])
    indexer = DeadLetterIndexer(fresh, control.pool)
    indexer.start()
    try:
        await _until_count(control, org, 5)
    finally:
        await indexer.stop()
    assert await _count(control, org) == 5


def _seen(indexer: DeadLetterIndexer) -> int:
    return indexer.indexed + indexer.duplicates


async def test_an_original_written_with_credentials_is_cleaned_on_the_way_in_and_old_rows_expire(control: Any) -> None:
    org = (await control.new_org("idx"))["slug"]
    s = await _isolated(control.settings, dlq_retention_days=14)
    secret = f"tok-{uuid.uuid4().hex}"
    call = inbound_call(org, headers=[{"name": "Authorization", "value": f"Bearer {secret}"}])
    # As a version that did not redact wrote it: the original in clear, the value in a traceback.
    legacy = encode("DeadLetter", {"correlation_id": call["correlation_id"], "org": org, "stage": "processors",
                                   "error_code": "transform_failed", "error_message": f"bad {secret}",
                                   "original_topic": "x", "original": encode("InboundCall", call),
                                   "failed_at_ms": now_ms(), "details": [f"Bearer {secret}"]})
    old = letter_bytes(org, failed_at_ms=now_ms() - 30 * 86_400_000)
    await _produce(s, [legacy, old, b"not a dead letter"])
    indexer = DeadLetterIndexer(s, control.pool)
    indexer.start()
    try:
        await _until_count(control, org, 2)
        await wait_until(lambda: indexer.skipped == 1)
        assert await indexer.purge() >= 1
    finally:
        await indexer.stop()
    rows = await control.pool.fetch("SELECT original, error_message, details::text AS details FROM dead_letters"
                                    " WHERE org_slug = $1", org)
    assert len(rows) == 1
    assert secret.encode() not in rows[0]["original"] and b"Authorization" not in rows[0]["original"]
    assert secret not in rows[0]["error_message"] and secret not in rows[0]["details"]


async def test_a_letter_is_its_organisations_only_if_the_api_it_names_is_one_of_its_apis(control: Any) -> None:
    """A slug can be given up and taken by another organisation while a call waits in a topic: the letter of
    the old tenant's call must not be handed to the new one (bodies included)."""
    from tests.dead_letter_support import index_letters

    old = await control.new_org("dl-slug")
    slug = old["slug"]
    api = await control.new_api(slug, (await control.new_connector(slug))["id"])
    other = (await control.new_org("dl-other"))["slug"]
    theirs = await control.new_api(other, (await control.new_connector(other))["id"])
    t = control.admin_token
    # The organisation's own API, no API at all (an async producer's unroutable call): the organisation's.
    own, unnamed = await index_letters(control.pool, [letter_bytes(slug, api_id=api["id"]), letter_bytes(slug)])
    # Another organisation's API, an API that does not exist, an api_id that is no id: nobody's.
    foreign, gone, junk = await index_letters(control.pool, [
        letter_bytes(slug, api_id=theirs["id"]), letter_bytes(slug, api_id=str(uuid.uuid4())),
        letter_bytes(slug, api_id="'; DROP TABLE apis; --")])
    r = await control.call("GET", f"/api/v1/orgs/{slug}/dead-letters", t)
    assert {i["id"] for i in r.body["items"]} == {own, unnamed}, r.body
    r = await control.call("GET", f"/api/v1/orgs/{other}/dead-letters", t)
    assert r.body["items"] == [], r.body
    for letter in (foreign, gone, junk):
        assert await control.pool.fetchval("SELECT org_id FROM dead_letters WHERE id = $1", uuid.UUID(letter)) is None

    # The slug renamed and taken by a new organisation; a letter of the old tenant's call arrives late.
    r = await control.call("PATCH", f"/api/v1/orgs/{slug}", t, {"slug": f"{slug}-was"})
    assert r.status == 200, r.body
    r = await control.call("POST", "/api/v1/orgs", t, {"slug": slug, "name": "new tenant"})
    assert r.status == 201, r.body
    (late,) = await index_letters(control.pool, [letter_bytes(slug, api_id=api["id"], code="late_letter")])
    r = await control.call("GET", f"/api/v1/orgs/{slug}/dead-letters", t)
    assert r.body["items"] == [], r.body
    assert (await control.call("GET", f"/api/v1/orgs/{slug}/dead-letters/{late}", t)).status == 404
