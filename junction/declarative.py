"""Declarative configuration: an organisation's connectors and APIs as one document, exported and applied.

As Kong's decK does for Kong. ``junction config export --org acme > acme.json`` writes every connector and
API of the organisation, keyed by name (an API names its connector). ``junction config apply acme.json``
makes the organisation match it: it creates what is missing, updates what differs and, with ``--prune``,
deletes what the document does not name. It prints the plan; ``--dry-run`` stops there. Applying the same
document again changes nothing, so a deployment script can apply it on every run.

- A field left out of an entry is left as it is on the server; an export writes every field.
- Secrets are never exported: they read ``********``, which apply leaves as stored. Where there is nothing
  stored (a new organisation), the document says ``${JUNCTION_SECRET_<NAME>}`` and the variable holds the
  value. Only variables named ``JUNCTION_SECRET_*`` are read: a document cannot pull anything else out of
  the environment. A secret given in clear cannot be compared with the stored one, so it is always sent
  (the server writes no new version when it is unchanged).
- The whole document is checked before anything changes: its shape, unique names, each API's connector,
  and each entry against the server's own request schemas (from its OpenAPI document).
- Each change is one request, with ``If-Match`` on the version the plan read: a resource changed meanwhile
  stops the apply (412). Apply is not one transaction: a failure stops it, and the error lists the changes
  already made; fix the cause and apply again.
"""
from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import yaml

from control.validation import check_schema
from junction.sdk import JunctionAPIError, JunctionClient

__all__ = ["FORMAT", "ApplyFailed", "Change", "DocumentError", "Plan", "apply_plan", "export_document",
           "load_document", "make_plan"]

FORMAT = "junction/v1"
MAX_DOCUMENT_BYTES = 64 * 1024 * 1024
MAX_NESTING = 64
MAX_INDENT = 512
# Kept by the server, not part of what a document says.
SERVER_FIELDS = frozenset({"id", "org", "org_id", "version", "created_at", "updated_at"})
SECRET_REF = re.compile(r"\$\{(JUNCTION_SECRET_[A-Z0-9_]+)\}")
KINDS = {"connectors": ("connector", "ConnectorCreate"), "apis": ("api", "ApiCreate")}


class DocumentError(Exception):
    """The document cannot be applied as it is; ``fields`` name each fault (as the API's 422 does)."""

    def __init__(self, fields: list[tuple[str, str]]) -> None:
        super().__init__(f"{fields[0][0]}: {fields[0][1]}" + (f" (and {len(fields) - 1} more)" if len(fields) > 1 else ""))
        self.fields = fields


@dataclass
class Change:
    action: str  # create, update or delete
    kind: str  # connector or api
    name: str
    fields: list[str] = field(default_factory=list)  # an update's top-level fields that differ
    body: dict[str, Any] = field(default_factory=dict, repr=False)  # what is sent (names, not ids, for connectors)
    id: str | None = None  # the resource's, for an update or a delete
    version: int | None = None  # the version the plan read: the update's If-Match

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"action": self.action, "kind": self.kind, "name": self.name}
        if self.action == "update":
            out["fields"] = self.fields
        return out


@dataclass
class Plan:
    org: str
    changes: list[Change]
    kept: list[dict[str, str]]  # on the server, not in the document, and not pruned
    connector_ids: dict[str, str]  # connector name -> id, as on the server before the apply

    def to_dict(self) -> dict[str, Any]:
        return {"org": self.org, "changes": [c.to_dict() for c in self.changes], "not_in_document": self.kept}


class ApplyFailed(Exception):
    def __init__(self, change: Change, error: JunctionAPIError, done: list[Change]) -> None:
        super().__init__(f"{change.action} {change.kind} {change.name!r} failed: {error.status} {error.code}: "
                         f"{error.message}")
        self.change = change
        self.error = error
        self.done = done


def _content(resource: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in resource.items() if k not in SERVER_FIELDS}


async def export_document(client: JunctionClient, org: str) -> dict[str, Any]:
    """Every connector and API of ``org``, keyed by name, secrets masked."""
    slug = (await client.get_org(org))["slug"]
    connectors = await client.list_connectors(slug)
    names = {c["id"]: c["name"] for c in connectors}
    apis = await client.list_apis(slug)
    return {
        "format": FORMAT,
        "org": slug,
        "connectors": [_content(c) for c in sorted(connectors, key=lambda c: c["name"])],
        "apis": [{**_content(a), "connector": names.get(a["connector"], a["connector"])}
                 for a in sorted(apis, key=lambda a: a["name"])],
    }


def _parse(text: str) -> Any:
    """JSON (an export) with the C parser; else YAML, safely: no tags (data, never code), no aliases, and a
    bounded nesting (PyYAML's scanner takes time quadratic in the depth of flow collections and of
    indentation: a few kilobytes could hold it for minutes)."""
    try:
        return json.loads(text)
    except ValueError:
        pass
    brackets = re.sub(r"[^\[\]{}]", "", text)
    depth = deepest = 0
    for ch in brackets:
        depth = depth + 1 if ch in "[{" else max(0, depth - 1)
        deepest = max(deepest, depth)
    indent = max((len(line) - len(line.lstrip(" ")) for line in text.splitlines()), default=0)
    if deepest > MAX_NESTING or indent > MAX_INDENT:
        raise DocumentError([("(document)", f"is nested too deeply (at most {MAX_NESTING} levels of brackets and "
                                            f"{MAX_INDENT} columns of indentation)")])
    _no_aliases(text)
    return yaml.safe_load(text)


def _no_aliases(text: str) -> None:
    # An alias repeats a node without its bytes: a few lines of them can expand to gigabytes ("billion
    # laughs"). A configuration document has no use for them.
    for event in yaml.parse(text, Loader=yaml.SafeLoader):
        if isinstance(event, yaml.AliasEvent):
            raise DocumentError([("(document)", "YAML aliases (*name) are not accepted")])


def _substitute(value: Any, env: Mapping[str, str], where: str, errors: list[tuple[str, str]]) -> Any:
    if isinstance(value, str):
        def one(match: re.Match[str]) -> str:
            name = match.group(1)
            if name not in env:
                errors.append((where, f"${{{name}}}: the variable {name} is not set"))
                return match.group(0)
            return env[name]
        return SECRET_REF.sub(one, value)
    if isinstance(value, dict):
        return {k: _substitute(v, env, f"{where}.{k}", errors) for k, v in value.items()}
    if isinstance(value, list):
        return [_substitute(v, env, f"{where}[{i}]", errors) for i, v in enumerate(value)]
    return value


def load_document(text: str, env: Mapping[str, str]) -> dict[str, Any]:
    """The document in ``text`` (JSON or YAML), its ``${JUNCTION_SECRET_*}`` filled from ``env``, its
    shape checked; DocumentError naming every fault."""
    if len(text.encode()) > MAX_DOCUMENT_BYTES:
        raise DocumentError([("(document)", f"is larger than {MAX_DOCUMENT_BYTES // (1024 * 1024)} MiB")])
    try:
        doc = _parse(text)
    except yaml.YAMLError as exc:
        raise DocumentError([("(document)", f"is not valid JSON or YAML: {exc}")]) from exc
    except RecursionError as exc:
        raise DocumentError([("(document)", "is nested too deeply")]) from exc
    if not isinstance(doc, dict):
        raise DocumentError([("(document)", f"must be an object with format, connectors and apis, not "
                                            f"{type(doc).__name__}")])
    errors: list[tuple[str, str]] = []
    if doc.get("format") != FORMAT:
        errors.append(("format", f"must be {FORMAT!r}"))
    for key in sorted(set(doc) - {"format", "org", *KINDS}):
        errors.append((key, "is not a field of a Junction configuration document"))
    if "org" in doc and not isinstance(doc["org"], str):
        errors.append(("org", "must be an organisation's slug"))
    for plural in KINDS:
        entries = doc.setdefault(plural, [])
        if not isinstance(entries, list):
            errors.append((plural, "must be a list"))
            continue
        seen: set[str] = set()
        for i, entry in enumerate(entries):
            where = f"{plural}[{i}]"
            if not isinstance(entry, dict):
                errors.append((where, "must be an object"))
                continue
            name = entry.get("name")
            if not isinstance(name, str) or not name:
                errors.append((f"{where}.name", "is required: entries are matched by name"))
            elif name in seen:
                errors.append((f"{where}.name", f"{name!r} is named twice"))
            else:
                seen.add(name)
            for key in sorted(SERVER_FIELDS & set(entry)):
                if key != "org":  # an export's own org field is harmless; the others would mislead
                    errors.append((f"{where}.{key}", "is kept by the server: leave it out"))
            try:
                entries[i] = _substitute({k: v for k, v in entry.items() if k not in SERVER_FIELDS}, env, where, errors)
            except RecursionError:
                errors.append((where, "is nested too deeply"))
    if errors:
        raise DocumentError(errors)
    return doc


async def make_plan(client: JunctionClient, org: str | None, doc: dict[str, Any], *, prune: bool) -> Plan:
    """What applying ``doc`` to the organisation (``org``, else the document's) would change; DocumentError
    before anything is changed when the document cannot be applied."""
    target = org or doc.get("org")
    if not target:
        raise DocumentError([("org", "name the organisation: --org, or org in the document")])
    slug = (await client.get_org(target))["slug"]
    schemas = (await client.openapi())["components"]["schemas"]
    current = {"connectors": {c["name"]: c for c in await client.list_connectors(slug)},
               "apis": {a["name"]: a for a in await client.list_apis(slug)}}
    connector_ids = {name: c["id"] for name, c in current["connectors"].items()}
    connector_names = {c["id"]: name for name, c in current["connectors"].items()}
    wanted = {plural: {e["name"]: e for e in doc[plural]} for plural in KINDS}

    errors: list[tuple[str, str]] = []
    usable = set(wanted["connectors"]) | (set() if prune else set(connector_ids))
    changes: list[Change] = []
    for plural, (kind, schema_name) in KINDS.items():
        schema = schemas.get(schema_name, {})
        for i, entry in enumerate(doc[plural]):
            have = current[plural].get(entry["name"])
            if have is None:
                change = Change("create", kind, entry["name"], body=entry)
            else:
                shown = _content(have)
                if plural == "apis":
                    shown["connector"] = connector_names.get(have["connector"], have["connector"])
                differ = sorted(k for k, v in entry.items() if shown.get(k) != v)
                change = Change("update", kind, entry["name"], differ, {**shown, **entry}, have["id"], have["version"])
            # What is sent, checked as the server will check it: an update's entry may name only what it changes.
            errors += [(f.field, f.message) for f in check_schema(change.body, schema, f"{plural}[{i}]")]
            if plural == "apis" and isinstance(entry.get("connector"), str) and entry["connector"] not in usable:
                why = " (it is not in the document, and --prune deletes it)" if entry["connector"] in connector_ids else ""
                errors.append((f"apis[{i}].connector", f"no connector named {entry['connector']!r}{why}"))
            if change.action == "create" or change.fields:
                changes.append(change)
    if errors:
        raise DocumentError(errors)
    kept: list[dict[str, str]] = []
    for plural, (kind, _) in KINDS.items():
        for name, have in current[plural].items():
            if name not in wanted[plural]:
                if prune:
                    changes.append(Change("delete", kind, name, id=have["id"], version=have["version"]))
                else:
                    kept.append({"kind": kind, "name": name})
    # Connectors first (APIs name them); an API pruned before one is created (a rename keeps its path);
    # connectors pruned last (no API uses them any more).
    order = {("connector", "create"): 0, ("connector", "update"): 0, ("api", "delete"): 1, ("api", "create"): 2,
             ("api", "update"): 2, ("connector", "delete"): 3}
    changes.sort(key=lambda c: order[(c.kind, c.action)])
    return Plan(slug, changes, kept, connector_ids)


async def apply_plan(client: JunctionClient, plan: Plan) -> list[Change]:
    """Make the plan's changes in order; ApplyFailed (with those made) at the first the server refuses."""
    ids = dict(plan.connector_ids)
    done: list[Change] = []
    for change in plan.changes:
        body = dict(change.body)
        if change.kind == "api" and "connector" in body:
            body["connector"] = ids.get(body["connector"], body["connector"])
        try:
            if change.action == "create":
                made = await client.request("POST", f"/orgs/{plan.org}/{change.kind}s", body)
                if change.kind == "connector":
                    ids[change.name] = made["id"]
            elif change.action == "update" and change.kind == "connector":
                await client.replace_connector(plan.org, str(change.id), body, if_version=change.version)
            elif change.action == "update":
                await client.replace_api(plan.org, str(change.id), body, if_version=change.version)
            elif change.kind == "connector":
                await client.delete_connector(plan.org, str(change.id))
            else:
                await client.delete_api(plan.org, str(change.id))
        except JunctionAPIError as err:
            raise ApplyFailed(change, err, done) from err
        done.append(change)
    return done


def dump(doc: dict[str, Any]) -> str:
    """The document as the CLI prints it."""
    return json.dumps(doc, indent=2, ensure_ascii=False)
