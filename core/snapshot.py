"""The hot configuration snapshot every request-path instance keeps.

It is built from ConfigEvent records: read from the compacted config topic by
:class:`ConfigFollower`, or, before a control plane exists, from a routes file.
The request path only calls :meth:`ConfigSnapshot.resolve` and
:meth:`ConfigSnapshot.connector`; where events come from does not matter to it.

Documents (JSON in ConfigEvent.document):
  org:       {"id", "slug", "name"}
  api:       {"id", "org" (slug), "name", "protocol", "methods", "path",
              "connector" (id), "timeout_ms", "auth", "version"}
  connector: {"id", "org" (slug), "name", "target": {"protocol", "url", "method", ...},
              "script" (str or null), "settings" (dict), "version"}
"""
from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from core.errors import NotFound
from core.routing import RouteTable, parse_template

__all__ = ["ConfigSnapshot", "RouteMatch", "events_from_file"]

HISTORY = 8  # connector versions kept for calls still in flight

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RouteMatch:
    org: dict[str, Any]
    api: dict[str, Any]
    connector: dict[str, Any] | None
    path_params: dict[str, str]


class ConfigSnapshot:
    def __init__(self) -> None:
        self.orgs: dict[str, dict[str, Any]] = {}  # by slug
        self._org_ids: dict[str, str] = {}  # id -> slug
        self.apis: dict[str, dict[str, Any]] = {}
        self.connectors: dict[str, dict[str, Any]] = {}
        # Recent versions of each connector, so a call finishes on the version it started with.
        self._connector_history: dict[str, dict[int, dict[str, Any]]] = {}
        self._tables: dict[str, RouteTable] = {}
        self.last_event_id = 0
        self._listeners: list[Callable[[dict[str, Any]], None]] = []

    # -- reading ----------------------------------------------------------
    def resolve(self, org_slug: str, method: str, path: str) -> RouteMatch:
        """Find the API serving ``method path`` in an organisation.

        Raises NotFound (unknown organisation or route) or MethodNotAllowed.
        """
        org = self.orgs.get(org_slug)
        if org is None or org.get("enabled") is False:
            raise NotFound(f"unknown organisation {org_slug!r}", code="org_not_found")
        table = self._tables.get(org_slug)
        if table is None:
            raise NotFound(f"no API at {path}", code="route_not_found")
        api, params = table.match(method, path)
        return RouteMatch(org, api, self.connectors.get(api.get("connector", "")), params)

    def api(self, api_id: str) -> dict[str, Any] | None:
        return self.apis.get(api_id)

    def connector(self, connector_id: str, version: int | None = None) -> dict[str, Any] | None:
        """The current connector, or the given version of it while it is recent."""
        if version is None:
            return self.connectors.get(connector_id)
        return self._connector_history.get(connector_id, {}).get(int(version))

    def version_of(self, kind: str, id_: str) -> int | None:
        store = {"api": self.apis, "connector": self.connectors}.get(kind)
        doc = store.get(id_) if store is not None else None
        return None if doc is None else int(doc.get("version", 0))

    async def caught_up(self, kind: str, id_: str, version: int, timeout_s: float) -> bool:
        """Wait until this snapshot holds ``version`` (or later) of a resource.

        Instances read the config topic independently, so one may see a change
        a moment before another; a stage that receives work made with a newer
        version waits for it briefly instead of answering from stale config.
        """
        loop = asyncio.get_running_loop()
        until = loop.time() + timeout_s
        while (self.version_of(kind, id_) or 0) < version:
            if loop.time() >= until:
                return False
            await asyncio.sleep(0.01)
        return True

    def on_change(self, listener: Callable[[dict[str, Any]], None]) -> None:
        self._listeners.append(listener)

    # -- writing ----------------------------------------------------------
    def apply(self, event: dict[str, Any]) -> None:
        """Apply one ConfigEvent record. Events older than what was applied
        for the same resource are ignored, so replays and duplicates are harmless."""
        kind, id_, op = event["kind"], event["id"], event["op"]
        doc = json.loads(event["document"]) if event.get("document") else None
        self.last_event_id = max(self.last_event_id, int(event.get("event_id", 0)))
        if kind == "org":
            self._apply_org(id_, op, doc)
        elif kind in ("api", "connector"):
            store = self.apis if kind == "api" else self.connectors
            current = store.get(id_)
            if current is not None and doc is not None and int(doc.get("version", 0)) < int(current.get("version", 0)) and op != "delete":
                return
            if op == "delete":
                store.pop(id_, None)
                self._connector_history.pop(id_, None)
            elif doc is not None:
                store[id_] = doc
                if kind == "connector":
                    history = self._connector_history.setdefault(id_, {})
                    history[int(doc.get("version", 0))] = doc
                    for old in sorted(history)[:-HISTORY]:
                        del history[old]
            if kind == "api":
                self._rebuild(self._org_of(doc or current or {}))
        else:
            log.debug("ignoring config event of kind %s", kind)
        for listener in self._listeners:
            listener(event)

    def _org_of(self, doc: dict[str, Any]) -> str:
        org = doc.get("org", "")
        return self._org_ids.get(org, org)

    def _apply_org(self, id_: str, op: str, doc: dict[str, Any] | None) -> None:
        old_slug = self._org_ids.get(id_)
        if op == "delete":
            if old_slug:
                self.orgs.pop(old_slug, None)
                self._tables.pop(old_slug, None)
                self._org_ids.pop(id_, None)
            return
        assert doc is not None
        slug = doc["slug"]
        if old_slug and old_slug != slug:
            self.orgs.pop(old_slug, None)
            self._tables.pop(old_slug, None)
        self.orgs[slug] = doc
        self._org_ids[id_] = slug
        for api in self.apis.values():
            if api.get("org_id") == id_:
                api["org"] = slug
        self._rebuild(slug)

    def _rebuild(self, org_slug: str) -> None:
        if not org_slug:
            return
        table = RouteTable()
        for api in self.apis.values():
            if self._org_of(api) != org_slug or api.get("enabled") is False:
                continue
            try:
                table.add(parse_template(api["path"]), api.get("methods") or ["*"], api)
            except Exception as exc:  # a bad document must not take the others down
                log.error("skipping API %s: %s", api.get("id"), exc)
        self._tables[org_slug] = table

    def load(self, events: Iterable[dict[str, Any]]) -> None:
        for event in events:
            self.apply(event)


def events_from_file(path: str | Path) -> list[dict[str, Any]]:
    """ConfigEvents from a routes file (YAML or JSON) with ``orgs``,
    ``connectors`` and ``apis`` lists of documents."""
    text = Path(path).read_text()
    if str(path).endswith((".yaml", ".yml")):
        import yaml

        data = yaml.safe_load(text) or {}
    else:
        data = json.loads(text)
    events = []
    n = 0
    for kind, key in (("org", "orgs"), ("connector", "connectors"), ("api", "apis")):
        for doc in data.get(key, []):
            n += 1
            if kind == "org":
                doc.setdefault("id", doc["slug"])
            doc.setdefault("version", 1)
            events.append({"event_id": n, "kind": kind, "id": str(doc["id"]), "org": doc.get("org", doc.get("slug", "")),
                           "version": doc["version"], "op": "upsert", "document": json.dumps(doc)})
    return events
