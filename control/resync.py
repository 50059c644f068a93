"""Re-publish the whole current configuration to the config topic.

PostgreSQL is the source of truth; the topic is a copy. A broker that lost
its data (the embedded broker keeps everything in memory, so every restart
does) would otherwise leave the request path with an empty snapshot for
configuration whose outbox rows were relayed long ago. The relay calls this
once each time it (re)connects: readers ignore versions they already hold, so
re-publishing is harmless.
"""
from __future__ import annotations

import json
import time
from typing import Any

import asyncpg

from control.documents import api_event, connector_event, consumer_event, org_event
from control.store.consumers import CONSUMER, credential_hashes
from control.store.orgs import CALLER_POLICIES, list_orgs, org_view
from control.store.outbox import OutboxEvent, last_id
from control.store.resources import API, CONNECTOR, resource_view

__all__ = ["current_config_events"]


async def current_config_events(conn: asyncpg.Connection) -> list[dict[str, Any]]:
    """ConfigEvents for every organisation, connector, consumer and API as
    they are now, orgs first and connectors and consumers before the APIs that use them."""
    reflected = await last_id(conn)
    events: list[OutboxEvent] = []
    orgs = await list_orgs(conn)
    policies = {str(r["id"]): r for r in await conn.fetch(f"SELECT id, {', '.join(CALLER_POLICIES)} FROM organisations")}
    for row in orgs:
        policy = policies.get(str(row["id"]))
        events.append(org_event({**org_view(row), **{k: json.loads(policy[k]) if policy and policy[k] else None
                                                    for k in CALLER_POLICIES}}))
    for org in orgs:
        hashes = await credential_hashes(conn, str(org["id"]))
        for row in await CONSUMER.list(conn, str(org["id"])):
            view = resource_view(row, org["slug"])
            events.append(consumer_event(view, hashes.get(view["id"])))
    for kind, to_event in ((CONNECTOR, connector_event), (API, api_event)):
        for org in orgs:
            for row in await kind.list(conn, str(org["id"])):
                events.append(to_event(resource_view(row, org["slug"])))
    now_ms = int(time.time() * 1000)
    # One event id for the whole snapshot: the last outbox id it already reflects.
    return [{"event_id": reflected, "kind": e.kind, "id": e.resource_id, "org": e.org_slug, "version": e.version,
             "op": e.op, "document": None if e.document is None else json.dumps(e.document),
             "emitted_at_ms": now_ms} for e in events]
