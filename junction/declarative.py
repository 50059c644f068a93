"""Declarative configuration: an organisation's connectors, consumers, APIs and alert rules as one document,
exported and applied.

As Kong's decK does for Kong. ``junction config export --org acme > acme.json`` writes every connector,
consumer, API and alert rule of the organisation, keyed by name (an API names its connector and the
consumers its ``auth.consumers`` allows, a rule the API it watches, so a document can be applied to
another organisation). ``junction config apply acme.json``
makes the organisation match it: it creates what is missing, updates what differs and, with ``--prune``,
deletes what the document does not name. It prints the plan; ``--dry-run`` stops there. Applying the same
document again changes nothing, so a deployment script can apply it on every run.

- A field left out of an entry is left as it is on the server; an export writes every field.
- The organisation's caller policies for all of its APIs (an org admin's to set): its default ``rate_limit``,
  ``ip_restriction`` and default ``cors``, are fields of the document; its quotas, slug and ``enabled`` (a
  global admin's) are not.
- A consumer is its name and whether it is enabled. Its credentials (API keys, a basic password, OAuth
  clients) are kept only as hashes and are never in a document: issue them in each organisation.
- A rule's webhook secret is never exported (``webhook_secret_set`` says there is one): give it as
  ``${JUNCTION_SECRET_<NAME>}`` where the organisation has none.
- Secrets are never exported: they read ``********`` (a jwt secret: ``secret_set``), which apply leaves as
  stored. Where there is nothing stored (a new organisation), the document says ``${JUNCTION_SECRET_<NAME>}``
  and the variable holds the value; without it, the plan names the field before anything changes. Only
  variables named ``JUNCTION_SECRET_*`` are read, and only where a secret is taken: a document cannot pull
  anything else out of the environment, nor put a secret in clear into a script, a header or a plain setting. A secret given in clear cannot be compared with the stored one, so it is always sent
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
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import yaml

from control.bodies import TAG_RULE, is_tag
from control.store.orgs import CALLER_POLICIES
from control.store.resources import with_tags
from control.validation import check_schema
from core.connector_secrets import MASK
from core.upstream_secrets import AUTH_SECRETS, TLS_SECRETS, secret_values
from junction.sdk import JunctionAPIError, JunctionClient, _etag, path_segment

__all__ = ["FORMAT", "ApplyFailed", "Change", "DocumentError", "Plan", "apply_plan", "dump", "export_document",
           "load_document", "make_plan"]

FORMAT = "junction/v1"
MAX_DOCUMENT_BYTES = 64 * 1024 * 1024
MAX_NESTING = 64
MAX_INDENT = 512
# Kept by the server, not part of what a document says.
SERVER_FIELDS = frozenset({"id", "org", "org_id", "version", "created_at", "updated_at"})
SECRET_REF = re.compile(r"\$\{(JUNCTION_SECRET_[A-Z0-9_]+)\}")
# A document's lists: (the kind, as a plan names it; its request schema; its path under /orgs/{org}/).
KINDS = {"connectors": ("connector", "ConnectorCreate", "connectors"),
         "consumers": ("consumer", "ConsumerCreate", "consumers"),
         "apis": ("api", "ApiCreate", "apis"),
         "alert_rules": ("alert_rule", "AlertRuleCreate", "alert-rules")}
PLURALS = {kind: plural for plural, (kind, _, _) in KINDS.items()}
SEGMENTS = {kind: segment for kind, _, segment in KINDS.values()}
# The order of a plan's changes: what others name is made first and deleted last. A rule that moves from an
# API the plan deletes to another is released first (disabled, watching nothing), updated at the end.
RANK = {("org", "update"): 0, ("connector", "create"): 0, ("connector", "update"): 0, ("consumer", "create"): 0, ("consumer", "update"): 0,
        ("alert_rule", "delete"): 1, ("alert_rule", "release"): 1, ("api", "delete"): 2, ("api", "create"): 3,
        ("api", "update"): 3, ("alert_rule", "create"): 4, ("alert_rule", "update"): 4, ("connector", "delete"): 5,
        ("consumer", "delete"): 5}
# What a document says of a consumer; the rest of its view is the summary of its credentials.
CONSUMER_FIELDS = ("name", "enabled", "tags", "rate_limit")
# Read-only fields of a view, which a document may repeat: never a difference.
SECRET_SET = "webhook_secret_set"
READ_ONLY = frozenset({SECRET_SET})
# The organisation's own settings a document holds (an org admin's to change): the policies of its APIs.
ORG_FIELDS = CALLER_POLICIES
# How a plan's messages name each kind.
LABELS = {"connectors": "connector", "consumers": "consumer", "apis": "API", "alert_rules": "alert rule"}
# A reference as a document holds it: (the kind it names, where in the entry, the name or id) -> what to keep.
Visit = Callable[[str, str, str], str]


class DocumentError(Exception):
    """The document cannot be applied as it is; ``fields`` name each fault (as the API's 422 does)."""

    def __init__(self, fields: list[tuple[str, str]]) -> None:
        super().__init__(f"{fields[0][0]}: {fields[0][1]}" + (f" (and {len(fields) - 1} more)" if len(fields) > 1 else ""))
        self.fields = fields


@dataclass
class Change:
    action: str  # create, update, delete, or release (an alert rule let go of an API about to be deleted)
    kind: str  # org (its own settings), connector, consumer, api or alert_rule
    name: str
    fields: list[str] = field(default_factory=list)  # an update's top-level fields that differ
    body: dict[str, Any] = field(default_factory=dict, repr=False)  # what is sent (names, not ids, for references)
    id: str | None = None  # the resource's, for an update or a delete
    version: int | None = None  # the version the plan read: the update's If-Match

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"action": self.action, "kind": self.kind, "name": self.name}
        if self.action in ("update", "release"):
            out["fields"] = self.fields
        return out


@dataclass
class Plan:
    org: str
    changes: list[Change]
    kept: list[dict[str, str]]  # on the server, not in the document, and not pruned
    ids: dict[str, dict[str, str]]  # by kind: name -> id, as on the server before the apply

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


def _references(plural: str, entry: Mapping[str, Any], visit: Visit) -> dict[str, Any]:
    """``entry`` with each reference it makes to another kind (an API's connector and ``auth.consumers``, a
    rule's ``api``) replaced by what ``visit`` makes of it: the one place that knows where references are."""
    out = dict(entry)
    if plural == "apis":
        if isinstance(out.get("connector"), str):
            out["connector"] = visit("connectors", "connector", out["connector"])
        auth = out.get("auth")
        if isinstance(auth, dict) and isinstance(auth.get("consumers"), list):
            out["auth"] = {**auth, "consumers": [visit("consumers", f"auth.consumers[{j}]", c) if isinstance(c, str)
                                                 else c for j, c in enumerate(auth["consumers"])]}
    elif plural == "alert_rules" and isinstance(out.get("api"), str):
        out["api"] = visit("apis", "api", out["api"])
    return out


def _through(maps: Mapping[str, Mapping[str, str]]) -> Visit:
    """References looked up by kind in ``maps`` (names to ids, or ids to names); what is not there stays."""
    return lambda kind, _, ref: maps.get(kind, {}).get(ref, ref)


def _stand_in(kind: str, where: str, ref: str) -> str:
    # An id for a name, for the schema check: the id of what the plan has yet to make is not known.
    return str(uuid.uuid5(uuid.NAMESPACE_URL, ref))


def _stored_tags(entry: dict[str, Any], tag: str | None = None) -> dict[str, Any]:
    """An entry's tags in the order the server keeps them (sorted), so that their order is no change, with the
    document's ``tag`` among them; tags that are no list of texts stay, for the schema check to name."""
    tags = entry.get("tags", [] if tag is not None else None)
    if not isinstance(tags, list) or not all(isinstance(t, str) for t in tags):
        return entry
    return {**entry, "tags": sorted(set(tags) | ({tag} if tag is not None else set()))}


def _shown(plural: str, have: Mapping[str, Any], names: Mapping[str, Mapping[str, str]]) -> dict[str, Any]:
    """What the server has, as a document says it: without server fields, references by name (an id left as
    it is when nothing of that id exists); a consumer without the summary of its credentials."""
    if plural == "consumers":
        return {k: have[k] for k in CONSUMER_FIELDS if have.get(k) is not None}
    return _references(plural, _content(have), _through(names))


async def _current(client: JunctionClient, slug: str, *,
                   need_consumers: bool) -> dict[str, dict[str, dict[str, Any]] | None]:
    """What the organisation has, by kind and name. Consumers are its admins' (viewers get 403): unless
    they are needed, None where the caller may not read them."""
    try:
        consumers: dict[str, dict[str, Any]] | None = {c["name"]: c for c in await client.list_consumers(slug)}
    except JunctionAPIError as err:
        if err.status != 403 or need_consumers:
            raise
        consumers = None
    return {"connectors": {c["name"]: c for c in await client.list_connectors(slug)}, "consumers": consumers,
            "apis": {a["name"]: a for a in await client.list_apis(slug)},
            "alert_rules": {r["name"]: r async for r in client.iter_alert_rules(slug)}}


def _names(current: Mapping[str, Mapping[str, Mapping[str, Any]] | None], plural: str) -> dict[str, str]:
    return {r["id"]: name for name, r in (current[plural] or {}).items()}


async def export_document(client: JunctionClient, org: str, tag: str | None = None) -> dict[str, Any]:
    """Every connector, consumer, API and alert rule of ``org``, keyed by name, secrets masked. For a caller
    who may not read consumers, without them (its APIs' ``auth.consumers`` then stay ids). With ``tag``, only
    those with that tag, and not the organisation's own settings: a team's part of it (:func:`make_plan`)."""
    org_row = await client.get_org(org)
    slug = org_row["slug"]
    current = await _current(client, slug, need_consumers=False)
    names = {plural: _names(current, plural) for plural in KINDS}
    doc: dict[str, Any] = {"format": FORMAT, "org": slug}
    doc.update({"tag": tag} if tag is not None else {k: org_row.get(k) for k in ORG_FIELDS})
    for plural, by_name in current.items():
        if by_name is not None:
            # Tags as stored: none rather than `tags: []`, which most resources would repeat.
            doc[plural] = [with_tags(_shown(plural, r, names)) for _, r in sorted(by_name.items())
                           if tag is None or tag in r.get("tags", [])]
    return doc


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


def _substitute(value: str, env: Mapping[str, str], where: str, errors: list[tuple[str, str]]) -> str:
    def one(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in env:
            errors.append((where, f"${{{name}}}: the variable {name} is not set"))
            return match.group(0)
        return env[name]
    return SECRET_REF.sub(one, value)


def _secret_places(plural: str, entry: dict[str, Any]) -> list[tuple[dict[str, Any], str, str]]:
    """``(object, key, path)`` of each place in an entry that takes a secret: only there is
    ``${JUNCTION_SECRET_*}`` filled in. Anywhere else (a script, a plain setting, a header) the text is kept as
    written: a secret must never land in clear where everyone who may read the resource sees it, and an
    export must apply back as it is."""
    def obj(value: Any) -> dict[str, Any] | None:
        return value if isinstance(value, dict) else None

    places: list[tuple[dict[str, Any], str, str]] = []
    if plural == "connectors":
        settings, names = obj(entry.get("settings")), entry.get("secret_fields")
        if settings is not None and isinstance(names, list):
            places += [(settings, n, f"settings.{n}") for n in names if isinstance(n, str) and n in settings]
        target = obj(entry.get("target")) or {}
        auth, tls = obj(target.get("auth")), obj(target.get("tls"))
        if auth is not None:
            places += [(auth, n, f"target.auth.{n}") for n in AUTH_SECRETS.get(str(auth.get("type")), ()) if n in auth]
        if tls is not None:
            places += [(tls, n, f"target.tls.{n}") for n in TLS_SECRETS if n in tls]
    elif plural == "apis":
        auth = obj(entry.get("auth"))
        if auth is not None and "secret" in auth:
            places.append((auth, "secret", "auth.secret"))
    elif plural == "alert_rules" and "webhook_secret" in entry:
        places.append((entry, "webhook_secret", "webhook_secret"))
    return places


def _with_secrets(plural: str, entry: dict[str, Any], env: Mapping[str, str], where: str,
                  errors: list[tuple[str, str]]) -> dict[str, Any]:
    """The entry with ``${JUNCTION_SECRET_*}`` filled in where a secret is taken (a copy of what it changes)."""
    out = dict(entry)
    for key in ("settings", "target", "auth"):
        if isinstance(out.get(key), dict):
            out[key] = {k: dict(v) if isinstance(v, dict) else v for k, v in out[key].items()}
    for holder, key, path in _secret_places(plural, out):
        if isinstance(holder[key], str):
            holder[key] = _substitute(holder[key], env, f"{where}.{path}", errors)
    return out


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
        raise DocumentError([("(document)", f"must be an object ({', '.join(('format', 'org', 'tag', *ORG_FIELDS, *KINDS))}), "
                                            f"not {type(doc).__name__}")])
    errors: list[tuple[str, str]] = []
    if doc.get("format") != FORMAT:
        errors.append(("format", f"must be {FORMAT!r}"))
    for key in sorted(set(doc) - {"format", "org", "tag", *ORG_FIELDS, *KINDS}):
        errors.append((key, "is not a field of a Junction configuration document"))
    if "tag" in doc and not is_tag(doc["tag"]):
        errors.append(("tag", f"must be one tag: {TAG_RULE}"))
    if "org" in doc and not isinstance(doc["org"], str):
        errors.append(("org", "must be an organisation's slug"))
    for plural in KINDS:
        entries = doc.get(plural, [])
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
                errors.append((f"{where}.name", "is required: entries are matched by name" if name in (None, "")
                               else "must be a string: entries are matched by name"))
            elif name in seen:
                errors.append((f"{where}.name", f"{name!r} is named twice"))
            else:
                seen.add(name)
            for key in sorted(SERVER_FIELDS & set(entry)):
                if key != "org":  # an export's own org field is harmless; the others would mislead
                    errors.append((f"{where}.{key}", "is kept by the server: leave it out"))
            entries[i] = _with_secrets(plural, {k: v for k, v in entry.items() if k not in SERVER_FIELDS}, env, where,
                                       errors)
    if errors:
        raise DocumentError(errors)
    return doc


_GIVE_IT = "which an export never carries, and the organisation has none stored: give it, as ${JUNCTION_SECRET_<NAME>}"


def _secret_errors(plural: str, entry: Mapping[str, Any], where: str,
                   have: Mapping[str, Any] | None) -> list[tuple[str, str]]:
    """The secrets an entry keeps as stored (a mask, a ``*_set`` flag: an export) where the server holds none, as
    when an export is applied to another organisation. The server would refuse them after earlier changes were
    made; the plan names them before any change."""
    have = have or {}
    if plural == "alert_rules":
        if entry.get(SECRET_SET) and not have.get(SECRET_SET) and "webhook_secret" not in entry:
            return [(f"{where}.webhook_secret", f"the rule signs its webhooks with a secret, {_GIVE_IT}")]
        return []
    if plural == "apis":
        auth, had = entry.get("auth"), have.get("auth")
        if (isinstance(auth, dict) and auth.get("mode") == "jwt" and auth.get("secret_set")
                and not {"secret", "jwks_url"} & set(auth) and not (isinstance(had, dict) and had.get("secret_set"))):
            return [(f"{where}.auth.secret", f"the API checks tokens with a jwt secret, {_GIVE_IT}")]
        return []
    if plural != "connectors":
        return []
    errors: list[tuple[str, str]] = []
    settings, stored = entry.get("settings") or {}, set(have.get("secret_fields") or [])
    for i, name in enumerate(entry.get("secret_fields") or []):
        if settings.get(name, MASK) == MASK and name not in stored:
            at = f"settings.{name}" if name in settings else f"secret_fields[{i}]"
            errors.append((f"{where}.{at}", f"is a secret setting, {_GIVE_IT}"))
    target, had_target = entry.get("target"), have.get("target")
    if isinstance(target, dict):
        kept = secret_values(had_target) if isinstance(had_target, dict) else {}
        errors += [(f"{where}.target.{slot}", f"is an upstream credential, {_GIVE_IT}")
                   for slot, value in secret_values(target).items() if value == MASK and kept.get(slot) != MASK]
    return errors


async def _global_rule_errors(client: JunctionClient, deleted_apis: Mapping[str, str]) -> list[tuple[str, str]]:
    """A global rule (in no organisation's document) watching an API the plan deletes: the deletion would be
    refused (409 api_in_use) after other changes were made. Only a global admin may read global rules; for
    anyone else the server's 409 stays the check."""
    if not deleted_apis:
        return []
    try:
        rules = [r async for r in client.iter_alert_rules(None)]
    except JunctionAPIError as err:
        if err.status != 403:
            raise
        return []
    return [("apis", f"global alert rule {r['name']!r} watches API {deleted_apis[r['api']]!r}, which --prune "
                     "deletes: change the rule first (a global admin's)")
            for r in rules if r.get("api") in deleted_apis]


async def make_plan(client: JunctionClient, org: str | None, doc: dict[str, Any], *, prune: bool,
                    tag: str | None = None) -> Plan:
    """What applying ``doc`` to the organisation (``org``, else the document's) would change; DocumentError
    before anything is changed when the document cannot be applied.

    With a tag (``tag``, or the document's), the document is one team's part of the organisation, as decK's
    select tags: every entry gets the tag, ``--prune`` deletes only what has it, and a resource of an entry's
    name without it (another team's, or nobody's) is not the document's to change."""
    target = org or doc.get("org")
    if not target:
        raise DocumentError([("org", "name the organisation: --org, or org in the document")])
    if tag is not None and doc.get("tag", tag) != tag:
        raise DocumentError([("tag", f"the document is tagged {doc['tag']!r}, not {tag!r}")])
    tag = tag if tag is not None else doc.get("tag")
    org_row = await client.get_org(target)
    slug = org_row["slug"]
    schemas = (await client.openapi())["components"]["schemas"]
    # A document with consumers needs a caller who may read them (JunctionAPIError 403 otherwise).
    current = await _current(client, slug, need_consumers="consumers" in doc)
    readable = current["consumers"] is not None
    ids = {plural: {name: r["id"] for name, r in (current[plural] or {}).items()} for plural in KINDS}
    names = {plural: _names(current, plural) for plural in KINDS}
    # A kind the document leaves out is not managed by it: kept, even with --prune (a document written
    # before consumers were part of it must not delete them, and their keys with them).
    managed = [plural for plural in KINDS if plural in doc]
    wanted = {plural: {e["name"]: e for e in doc.get(plural, [])} for plural in KINDS}

    def ours(have: Mapping[str, Any]) -> bool:
        return tag is None or tag in have.get("tags", [])

    def pruned(plural: str, name: str, have: Mapping[str, Any]) -> bool:
        return prune and plural in managed and name not in wanted[plural] and ours(have)

    # What exists once the plan is applied, by name.
    usable = {plural: set(wanted[plural]) | {n for n, have in (current[plural] or {}).items()
                                             if not pruned(plural, n, have)}
              for plural in KINDS}

    # An id where a name belongs (a document written by hand, or before it named that kind) names what has
    # it, unless it is also the name of something that stays.
    by_id = _through({plural: {i: n for i, n in names[plural].items() if i not in usable[plural]} for plural in KINDS})

    errors: list[tuple[str, str]] = []

    def missing(where: str) -> Visit:
        """A visit that notes each reference to what will not exist once the plan is applied."""
        def visit(target: str, at: str, ref: str) -> str:
            # Consumers a viewer cannot read are left to the server to check.
            if ref not in usable[target] and (target != "consumers" or readable):
                pruned = " (it is not in the document, and --prune deletes it)" if ref in ids[target] else ""
                errors.append((f"{where}.{at}", f"no {LABELS[target]} named {ref!r}{pruned}"))
            return ref
        return visit

    changes: list[Change] = []
    settings = {k: doc[k] for k in ORG_FIELDS if k in doc}
    if tag is not None:  # the organisation's own, not one team's
        errors += [(k, f"is the organisation's, not tag {tag!r}'s: leave it out of a tagged document") for k in settings]
        settings = {}
    errors += [(f.field, f.message) for f in check_schema(settings, schemas.get("OrgUpdate", {}))]
    differ = sorted(k for k, v in settings.items() if org_row.get(k) != v)
    if differ:
        changes.append(Change("update", "org", slug, differ, {k: settings[k] for k in differ}, org_row["id"],
                              org_row["version"]))
    final_rules: dict[str, Any] = {}  # rule name -> the API (name) it watches once applied
    for plural, (kind, schema_name, _) in KINDS.items():
        schema = schemas.get(schema_name, {})
        for i, entry in enumerate(doc.get(plural, [])):
            where = f"{plural}[{i}]"
            entry = _references(plural, entry, by_id)
            have = (current[plural] or {}).get(entry["name"])
            if tag is not None and "tags" not in entry:  # left out: the tags it has, and the document's
                entry = {**entry, "tags": list(have.get("tags", [])) if have is not None else []}
            entry = _stored_tags(entry, tag)
            if have is not None and not ours(have):
                errors.append((f"{where}.name", f"{LABELS[plural]} {entry['name']!r} exists without tag {tag!r}: "
                                                "it is not this document's to change"))
            if have is None:
                change = Change("create", kind, entry["name"], body=entry)
            else:
                shown = _shown(plural, have, names)
                differ = sorted(k for k, v in entry.items() if shown.get(k) != v and k not in READ_ONLY)
                change = Change("update", kind, entry["name"], differ, {**shown, **entry}, have["id"], have["version"])
            _references(plural, change.body, missing(where))
            errors += _secret_errors(plural, change.body, where, have)
            if plural == "alert_rules":
                final_rules[entry["name"]] = change.body.get("api")
            # What is sent, checked as the server will check it: an update's entry may name only what it changes.
            sent = _references(plural, change.body, _stand_in)
            errors += [(f.field, f.message) for f in check_schema(sent, schema, where)]
            if change.action == "create" or change.fields:
                changes.append(change)
    kept: list[dict[str, str]] = []
    deleted: set[tuple[str, str]] = set()
    for plural, (kind, _, _) in KINDS.items():
        for name, have in (current[plural] or {}).items():
            if name not in wanted[plural]:
                if pruned(plural, name, have):
                    changes.append(Change("delete", kind, name, id=have["id"], version=have["version"]))
                    deleted.add((kind, name))
                else:
                    if ours(have):  # another team's is not this document's to mention
                        kept.append({"kind": kind, "name": name})
                    if plural == "alert_rules":
                        final_rules[name] = _shown(plural, have, names).get("api")
    # What the plan keeps, using what it deletes: the deletion would be refused (409 connector_in_use or
    # consumer_in_use) after other changes were made. With a tag, another team's API may use this team's
    # connector; without one, a kind the document does not manage may use a kind it prunes.
    for plural in ("apis",):  # rules: below, with what the plan makes of them
        for name, have in (current[plural] or {}).items():
            if name in wanted[plural] or pruned(plural, name, have):
                continue

            def held(target: str, at: str, ref: str, name: str = name) -> str:
                if (KINDS[target][0], ref) in deleted:
                    errors.append((target, f"{LABELS[target]} {ref!r} is used by {LABELS[plural]} {name!r} ({at}), "
                                           "which this document does not manage: --prune cannot delete it"))
                return ref
            _references(plural, _shown(plural, have, names), held)
    # A rule that watches an API the plan deletes: kept as it is, the deletion would be refused (409).
    for rule, api in sorted(final_rules.items(), key=lambda r: r[0]):
        if ("api", api) in deleted and rule not in wanted["alert_rules"]:
            errors.append(("alert_rules", f"alert rule {rule!r} (not in the document) watches API {api!r}, which "
                                          "--prune deletes: name the rule in the document, or leave the API"))
    errors += await _global_rule_errors(client, {str(c.id): c.name for c in changes
                                                 if c.kind == "api" and c.action == "delete"})
    if errors:
        raise DocumentError(errors)
    # A rule moving off an API that is deleted before the API it moves to is made: let go first.
    for name, have in (current["alert_rules"] or {}).items():
        was = _shown("alert_rules", have, names).get("api")
        if ("api", was) in deleted and name in final_rules and final_rules[name] != was:
            changes.append(Change("release", "alert_rule", name, ["api", "enabled"], {"api": None, "enabled": False},
                                  have["id"], have["version"]))
    changes.sort(key=lambda c: RANK[(c.kind, c.action)])
    return Plan(slug, changes, kept, ids)


async def apply_plan(client: JunctionClient, plan: Plan) -> list[Change]:
    """Make the plan's changes in order; ApplyFailed (with those made) at the first the server refuses."""
    ids = {plural: dict(by_name) for plural, by_name in plan.ids.items()}
    versions: dict[str, int] = {}  # a resource's version after this apply changed it (a released rule)
    done: list[Change] = []
    for change in plan.changes:
        plural = PLURALS.get(change.kind, "")  # none for the organisation's own settings
        path = f"/orgs/{path_segment(plan.org)}/{SEGMENTS.get(change.kind, '')}"
        body = _references(plural, change.body, _through(ids))
        version = versions.get(str(change.id), change.version)
        try:
            if change.kind == "org":
                await client.update_org(plan.org, if_version=version, **body)
            elif change.action == "create":
                made = await client.request("POST", path, body)
                ids[plural][change.name] = made["id"]
            elif change.action == "delete":  # as every change: not if someone changed it since the plan read it
                await client.request("DELETE", f"{path}/{change.id}", headers=_etag(version))
            elif change.kind == "connector":
                await client.replace_connector(plan.org, str(change.id), body, if_version=version)
            elif change.kind == "consumer":
                await client.update_consumer(plan.org, str(change.id), if_version=version,
                                             **{k: body[k] for k in change.fields})
            elif change.kind == "api":
                await client.replace_api(plan.org, str(change.id), body, if_version=version)
            elif change.action == "release":
                made = await client.update_alert_rule(plan.org, str(change.id), if_version=version, **body)
                versions[str(change.id)] = made["version"]
            else:
                await client.replace_alert_rule(plan.org, str(change.id), body, if_version=version)
        except JunctionAPIError as err:
            raise ApplyFailed(change, err, done) from err
        done.append(change)
    return done


_OTHER_BREAKS = ("\r", "\x85", "\u2028", "\u2029")


class _BlockDumper(yaml.SafeDumper):
    """Safe YAML, with a text of several lines (a script, a WSDL) as a literal block a reviewer can read."""


def _text(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    # PyYAML falls back to a quoted scalar itself where a block cannot hold the text exactly, except for the
    # breaks YAML reads as a newline besides "\n": in single quotes or plain, NEL (U+0085) and its kin come back
    # folded into a space. Double quotes escape them.
    style = '"' if any(b in value for b in _OTHER_BREAKS) else "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_BlockDumper.add_representer(str, _text)


def dump(doc: dict[str, Any], fmt: str = "json") -> str:
    """The document as text, ``json`` or ``yaml``; ``load_document`` reads either back as the same document."""
    if fmt == "yaml":
        return yaml.dump(doc, Dumper=_BlockDumper, sort_keys=False, allow_unicode=True, width=120)
    return json.dumps(doc, indent=2, ensure_ascii=False) + "\n"
