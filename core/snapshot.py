"""The hot configuration snapshot every request-path instance keeps.

It is built from ConfigEvent records: read from the compacted config topic by
:class:`ConfigFollower`, or, before a control plane exists, from a routes file.
The request path only calls :meth:`ConfigSnapshot.resolve` and
:meth:`ConfigSnapshot.connector`; where events come from does not matter to it.

Documents (JSON in ConfigEvent.document):
  org:       {"id", "slug", "name", "enabled", "version", "rate_limit" (dict or null),
              "ip_restriction" (dict or null: applies to every API of it besides the API's own),
              "cors" (dict or null: the policy of its APIs that have no "cors")}
  api:       {"id", "org" (slug), "org_id", "name", "protocol", "methods", "path",
              "connector" (id), "timeout_ms", "auth" (a jwt secret as "secret_sealed"),
              "rate_limit" (dict or null), "version", "enabled", "async_fallback", "idempotency_ttl_s",
              "cache" (dict or null), "cors" (dict or null, core/cors.py),
              "ip_restriction" (dict or null, core/client_address.py),
              and for protocol soap "contract" (core/soap_contract.py)}
  connector: {"id", "org" (slug), "org_id", "name", "target": {"protocol", "url", "method", ...,
              "secrets_sealed" (upstream credentials, core/upstream_secrets.py)},
              "script" (str or null), "settings" (dict, without the secret ones),
              "secret_settings_sealed" (only with secret settings), "version"}
  consumer:  {"id", "org" (slug), "org_id", "name", "enabled", "version", "rate_limit" (dict or null),
              "keys": [{"id", "prefix", "hash" (hex SHA-256 of the key), "expires_at_ms" (int or null)}],
              "basic": {"username", "password_hash" (bcrypt)} or null,
              "oauth_clients": [{"client_id", "secret_hash" (hex SHA-256), "scopes": [...]}]}
"""
from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Iterable
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
    """Organisations, APIs and connectors by id, and one route table per organisation.

    Each API has its own entry in its organisation's table: applying an event
    touches only the entries of the resource it names (an organisation's
    event, the entries of that organisation's APIs whose table changes).
    """

    def __init__(self) -> None:
        self.orgs: dict[str, dict[str, Any]] = {}  # by slug
        self._org_ids: dict[str, str] = {}  # id -> slug
        self.apis: dict[str, dict[str, Any]] = {}
        self.connectors: dict[str, dict[str, Any]] = {}
        # Recent versions of each connector, so a call finishes on the version it started with.
        self._connector_history: dict[str, dict[int, dict[str, Any]]] = {}
        self._tables: dict[str, RouteTable] = {}  # by organisation slug
        self._placed: dict[str, str] = {}  # API id -> the slug of the table holding its route
        # Ties between routes of equal precedence go to the API seen first (the order of ``apis``).
        self._api_order: dict[str, int] = {}
        self._next_order = 0
        # API ids by the ``org`` and ``org_id`` of their documents, to find those an organisation's event moves.
        self._apis_by_org: dict[str, set[str]] = {}
        self._apis_by_org_id: dict[str, set[str]] = {}
        # Consumers (callers of APIs) and the indexes caller authentication looks them up by.
        self.consumers: dict[str, dict[str, Any]] = {}
        self._key_hashes: dict[str, tuple[str, str]] = {}  # sha256 of a key -> (consumer id, key id)
        self._usernames: dict[str, set[str]] = {}  # Basic username -> consumer ids (of any organisation)
        self._consumer_names: dict[str, set[str]] = {}
        self._client_ids: dict[str, str] = {}  # OAuth2 client id -> consumer id

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

    def consumer(self, consumer_id: str) -> dict[str, Any] | None:
        return self.consumers.get(consumer_id)

    def consumer_by_key_hash(self, key_hash: str) -> tuple[dict[str, Any], dict[str, Any]] | None:
        """(consumer, key) of the API key whose SHA-256 (hex) is ``key_hash``."""
        found = self._key_hashes.get(key_hash)
        consumer = self.consumers.get(found[0]) if found else None
        if found is None or consumer is None:
            return None
        key = next((k for k in consumer.get("keys") or [] if str(k.get("id")) == found[1]), None)
        return None if key is None else (consumer, key)

    def consumer_by_username(self, org: dict[str, Any], username: str) -> dict[str, Any] | None:
        return self._one_of(org, self._usernames.get(username, ()))

    def consumer_by_reference(self, org: dict[str, Any], ref: str) -> dict[str, Any] | None:
        """An organisation's consumer by id, else by name (when exactly one has it)."""
        by_id = self._one_of(org, (ref,) if ref in self.consumers else ())
        return by_id or self._one_of(org, self._consumer_names.get(ref, ()))

    def consumer_by_client_id(self, org: dict[str, Any], client_id: str) -> dict[str, Any] | None:
        cid = self._client_ids.get(client_id)
        return self._one_of(org, (cid,) if cid else ())

    def _one_of(self, org: dict[str, Any], ids: Iterable[str]) -> dict[str, Any] | None:
        """The single consumer among ``ids`` that belongs to ``org`` (by id when both say, else slug)."""
        found = []
        for cid in ids:
            c = self.consumers.get(cid)
            if c is None:
                continue
            if c.get("org_id") and org.get("id"):
                mine = str(c["org_id"]) == str(org["id"])
            else:
                mine = bool(c.get("org")) and c.get("org") == org.get("slug")
            if mine:
                found.append(c)
        return found[0] if len(found) == 1 else None

    def version_of(self, kind: str, id_: str) -> int | None:
        store = {"api": self.apis, "connector": self.connectors, "consumer": self.consumers}.get(kind)
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

    # -- writing ----------------------------------------------------------
    def apply(self, event: dict[str, Any]) -> None:
        """Apply one ConfigEvent record. Events older than what was applied
        for the same resource are ignored, so replays and duplicates are harmless."""
        kind, id_, op = event["kind"], event["id"], event["op"]
        doc = json.loads(event["document"]) if event.get("document") else None
        if kind == "org":
            if doc is not None:
                # Ingress keeps what it compiles of an organisation per version of it (ingress/per_version.py):
                # a document written before they carried one takes its event's.
                doc.setdefault("version", event.get("version", 0))
            self._apply_org(id_, op, doc)
        elif kind == "api":
            self._apply_api(id_, op, doc)
        elif kind == "connector":
            current = self.connectors.get(id_)
            if current is not None and doc is not None and int(doc.get("version", 0)) < int(current.get("version", 0)) and op != "delete":
                return
            if op == "delete":
                self.connectors.pop(id_, None)
                self._connector_history.pop(id_, None)
            elif doc is not None:
                self.connectors[id_] = doc
                history = self._connector_history.setdefault(id_, {})
                history[int(doc.get("version", 0))] = doc
                if len(history) > HISTORY:
                    for old in sorted(history)[:-HISTORY]:
                        del history[old]
        elif kind == "consumer":
            self._apply_consumer(id_, op, doc)
        else:
            log.debug("ignoring config event of kind %s", kind)

    def _apply_consumer(self, id_: str, op: str, doc: dict[str, Any] | None) -> None:
        current = self.consumers.get(id_)
        if current is not None and doc is not None and int(doc.get("version", 0)) < int(current.get("version", 0)) and op != "delete":
            return
        if current is not None:
            self._unindex_consumer(id_, current)
            del self.consumers[id_]
        if op != "delete" and doc is not None:
            self.consumers[id_] = doc
            self._index_consumer(id_, doc)

    def _consumer_entries(self, doc: dict[str, Any]) -> list[tuple[dict[str, set[str]], str]]:
        entries: list[tuple[dict[str, set[str]], str]] = [(self._consumer_names, str(doc.get("name") or ""))]
        username = (doc.get("basic") or {}).get("username")
        if username:
            entries.append((self._usernames, str(username)))
        return entries

    def _index_consumer(self, id_: str, doc: dict[str, Any]) -> None:
        for key in doc.get("keys") or []:
            if key.get("hash"):
                self._key_hashes[str(key["hash"]).lower()] = (id_, str(key.get("id")))
        for client in doc.get("oauth_clients") or []:
            if client.get("client_id"):
                self._client_ids[str(client["client_id"])] = id_
        for index, name in self._consumer_entries(doc):
            index.setdefault(name, set()).add(id_)

    def _unindex_consumer(self, id_: str, doc: dict[str, Any]) -> None:
        for key in doc.get("keys") or []:
            h = str(key.get("hash") or "").lower()
            if self._key_hashes.get(h, ("",))[0] == id_:
                del self._key_hashes[h]
        for client in doc.get("oauth_clients") or []:
            if self._client_ids.get(str(client.get("client_id"))) == id_:
                del self._client_ids[str(client.get("client_id"))]
        for index, name in self._consumer_entries(doc):
            ids = index.get(name)
            if ids is not None:
                ids.discard(id_)
                if not ids:
                    del index[name]

    def _apply_api(self, id_: str, op: str, doc: dict[str, Any] | None) -> None:
        current = self.apis.get(id_)
        if current is not None and doc is not None and int(doc.get("version", 0)) < int(current.get("version", 0)) and op != "delete":
            return
        if op == "delete":
            if current is not None:
                self._unindex(id_, current)
                del self.apis[id_]
                self._api_order.pop(id_, None)
            self._unplace(id_)
        elif doc is not None:
            if current is None:
                self._api_order[id_] = self._next_order
                self._next_order += 1
            else:
                self._unindex(id_, current)
            self.apis[id_] = doc
            self._index(id_, doc)
            self._place(id_)

    def _index(self, id_: str, doc: dict[str, Any]) -> None:
        self._apis_by_org.setdefault(str(doc.get("org", "")), set()).add(id_)
        if doc.get("org_id"):
            self._apis_by_org_id.setdefault(str(doc["org_id"]), set()).add(id_)

    def _unindex(self, id_: str, doc: dict[str, Any]) -> None:
        for index, key in ((self._apis_by_org, str(doc.get("org", ""))), (self._apis_by_org_id, str(doc.get("org_id") or ""))):
            ids = index.get(key)
            if ids is not None:
                ids.discard(id_)
                if not ids:
                    del index[key]

    def _org_of(self, doc: dict[str, Any]) -> str:
        org = doc.get("org", "")
        return self._org_ids.get(org, org)

    def _unplace(self, id_: str) -> None:
        slug = self._placed.pop(id_, None)
        if slug is None:
            return
        table = self._tables[slug]
        table.remove(id_)
        if not len(table):
            del self._tables[slug]

    def _place(self, id_: str) -> None:
        """Put the API's route, and only it, where its document says: in its
        organisation's table, unless it is disabled or its path is bad."""
        self._unplace(id_)
        api = self.apis[id_]
        slug = self._org_of(api)
        if not slug or api.get("enabled") is False:
            return
        try:
            template = parse_template(api["path"])
            table = self._tables.get(slug)
            if table is None:
                table = self._tables[slug] = RouteTable()
            table.add(template, api.get("methods") or ["*"], api, key=id_, order=self._api_order[id_])
        except Exception as exc:  # a bad document must not take the others down
            log.error("skipping API %s: %s", api.get("id"), exc)
            return
        self._placed[id_] = slug

    def _apply_org(self, id_: str, op: str, doc: dict[str, Any] | None) -> None:
        old_slug = self._org_ids.get(id_)
        if op == "delete":
            if old_slug:
                self.orgs.pop(old_slug, None)
                self._org_ids.pop(id_, None)
                self._place_all(self._apis_by_org.get(id_, ()))
            return
        assert doc is not None
        slug = doc["slug"]
        if old_slug and old_slug != slug:
            self.orgs.pop(old_slug, None)
        self.orgs[slug] = doc
        self._org_ids[id_] = slug
        # APIs naming the organisation by id change table when its slug does;
        # APIs carrying its org_id take its slug.
        moved = set(self._apis_by_org.get(id_, ())) if old_slug != slug else set()
        for api_id in list(self._apis_by_org_id.get(id_, ())):
            api = self.apis[api_id]
            if api.get("org") != slug:
                self._unindex(api_id, api)
                api["org"] = slug
                self._index(api_id, api)
                moved.add(api_id)
        self._place_all(moved)

    def _place_all(self, ids: Iterable[str]) -> None:
        for api_id in list(ids):
            self._place(api_id)

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
