"""The segment trie behind RouteTable and ConfigSnapshot answers exactly as a
brute-force matcher following the documented precedence, including after
incremental updates and deletes; and an API event touches only that API's
route. (No timings here: bench/config_bench.py measures.)"""
from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given, settings as hsettings, strategies as st

import core.snapshot as snapshot_module
from core.errors import MethodNotAllowed, NotFound
from core.routing import RouteTable, parse_template
from core.snapshot import ConfigSnapshot

# A small alphabet, so templates collide, overlap and shadow each other often.
LITERALS = ["a", "b", "c"]
ROUTE_METHODS = ["GET", "POST", "DELETE", "*"]
REQUEST_METHODS = ["GET", "HEAD", "POST", "DELETE", "PUT"]


# -- the reference: every route tried, in precedence order ---------------------
def ref_split(path: str) -> list[str]:
    if path in ("", "/"):
        return []
    return path.strip("/").split("/") if path.startswith("/") else path.split("/")


def ref_params(template: str, parts: list[str]) -> dict[str, str] | None:
    """Brute force: does the template match, and with which parameters?"""
    segs = [] if template == "/" else template[1:].split("/")
    greedy = bool(segs) and segs[-1].endswith("+}")
    if len(parts) < len(segs) or (not greedy and len(parts) != len(segs)):
        return None
    params: dict[str, str] = {}
    for i, seg in enumerate(segs):
        if seg.startswith("{"):
            value = "/".join(parts[i:]) if greedy and i == len(segs) - 1 else parts[i]
            if not value:
                return None
            params[seg.strip("{}+")] = value
        elif seg != parts[i]:
            return None
    return params


def ref_rank(template: str) -> tuple[int, bool, int]:
    """More literal segments first; then non-greedy; then longer (ties: first added)."""
    segs = [] if template == "/" else template[1:].split("/")
    literals = sum(1 for s in segs if not s.startswith("{"))
    return (-literals, bool(segs) and segs[-1].endswith("+}"), -len(segs))


def ref_allows(methods: list[str], method: str) -> bool:
    return "*" in methods or method in methods or (method == "HEAD" and "GET" in methods)


def ref_match(routes: list[tuple[str, list[str], str]], method: str, path: str) -> tuple[Any, ...]:
    """``routes`` are (template, methods, name) in the order added."""
    parts = ref_split(path)
    matching = sorted((r for r in routes if ref_params(r[0], parts) is not None), key=lambda r: ref_rank(r[0]))
    for template, methods, name in matching:
        if ref_allows(methods, method):
            return ("ok", name, ref_params(template, parts))
    if matching:
        return ("405", ",".join(sorted({m for _, methods, _ in matching for m in methods})))
    return ("404", "route_not_found")


def outcome(call: Any) -> tuple[Any, ...]:
    try:
        target, params = call()
    except MethodNotAllowed as exc:
        return ("405", exc.headers["Allow"])
    except NotFound as exc:
        return ("404", exc.code)
    return ("ok", target, params)


# -- strategies ----------------------------------------------------------------
@st.composite
def templates(draw: Any) -> str:
    n = draw(st.integers(0, 4))
    segs = []
    for i in range(n):
        kind = draw(st.sampled_from(["lit", "lit", "param", "greedy"] if i == n - 1 else ["lit", "lit", "param"]))
        segs.append(draw(st.sampled_from(LITERALS)) if kind == "lit" else f"{{p{i}}}" if kind == "param" else f"{{p{i}+}}")
    return "/" + "/".join(segs)


methods_st = st.lists(st.sampled_from(ROUTE_METHODS), min_size=1, max_size=3, unique=True)


@st.composite
def request_paths(draw: Any) -> str:
    segs = draw(st.lists(st.sampled_from([*LITERALS, "x", "a.b", ""]), max_size=6))
    path = "/".join(segs)
    return draw(st.sampled_from(["/" + path, "/" + path + "/", path, "//" + path]))


requests = st.lists(st.tuples(st.sampled_from(REQUEST_METHODS), request_paths()), min_size=1, max_size=8)

# An operation on the table: add (or replace) route k, or remove it.
ops = st.lists(st.one_of(st.tuples(st.just("add"), st.integers(0, 11), templates(), methods_st),
                         st.tuples(st.just("remove"), st.integers(0, 11))), min_size=1, max_size=40)


@hsettings(max_examples=400, deadline=None)
@given(st.lists(st.tuples(templates(), methods_st), max_size=25), requests)
def test_trie_matches_the_brute_force_reference(routes: list[tuple[str, list[str]]],
                                                 reqs: list[tuple[str, str]]) -> None:
    table = RouteTable()
    model = []
    for i, (template, methods) in enumerate(routes):
        table.add(parse_template(template), methods, f"r{i}")
        model.append((template, methods, f"r{i}"))
    for method, path in reqs:
        assert outcome(lambda: table.match(method, path)) == ref_match(model, method, path), (method, path)


def ref_shape(template: str) -> tuple[Any, ...]:
    segs = [] if template == "/" else template[1:].split("/")
    return tuple("{}" if s.startswith("{") else s for s in segs), bool(segs) and segs[-1].endswith("+}")


def ref_clash(routes: list[tuple[str, list[str], str]], template: str, methods: list[str]) -> str | None:
    """The first route (in precedence order) of the same shape with a method in common."""
    for other, other_methods, name in sorted(routes, key=lambda r: ref_rank(r[0])):
        if ref_shape(other) == ref_shape(template) and (
                "*" in methods or "*" in other_methods or set(methods) & set(other_methods)):
            return name
    return None


@hsettings(max_examples=300, deadline=None)
@given(ops, requests, st.tuples(templates(), methods_st), st.integers(0, 40))
def test_trie_after_incremental_updates_and_deletes(operations: list[tuple[Any, ...]],
                                                     reqs: list[tuple[str, str]],
                                                     probe: tuple[str, list[str]], probe_from: int) -> None:
    """A replaced route keeps its place among equals (the snapshot keeps an
    API's place when it changes), a removed one loses it. Clash checks agree
    too, from whenever the first is asked."""
    table = RouteTable()
    model: dict[int, tuple[str, list[str], str]] = {}  # insertion-ordered, like the snapshot's APIs
    order: dict[int, int] = {}
    counter = 0
    for n, op in enumerate(operations):
        key = op[1]
        if op[0] == "add":
            template, methods = op[2], op[3]
            if key not in order:
                order[key] = counter
                counter += 1
            table.add(parse_template(template), methods, f"k{key}.{n}", key=key, order=order[key])
            model[key] = (template, methods, f"k{key}.{n}")
        else:
            removed = table.remove(key)
            assert (removed is None) == (key not in model)
            model.pop(key, None)
            order.pop(key, None)
        assert len(table) == len(model)
        for method, path in reqs:
            assert outcome(lambda: table.match(method, path)) == ref_match(list(model.values()), method, path)
        if n >= probe_from:
            assert table.clashes(parse_template(probe[0]), probe[1]) == ref_clash(list(model.values()), *probe)
    for key in list(model):
        table.remove(key)
    assert len(table) == 0 and table._root.empty()  # every branch pruned


# -- the snapshot, event by event ------------------------------------------------
ORG_IDS = ["o1", "o2"]
SLUGS = ["acme", "beta", "gamma", "delta"]

snapshot_ops = st.lists(st.one_of(
    st.tuples(st.just("api"), st.integers(0, 9), st.sampled_from(ORG_IDS), templates(), methods_st,
              st.booleans() | st.just(True)),
    st.tuples(st.just("delete"), st.integers(0, 9)),
    st.tuples(st.just("rename"), st.sampled_from(ORG_IDS), st.sampled_from(SLUGS)),
), min_size=1, max_size=30)


def _event(kind: str, id_: str, op: str, doc: dict[str, Any] | None) -> dict[str, Any]:
    return {"kind": kind, "id": id_, "op": op, "org": "", "version": (doc or {}).get("version", 0),
            "document": json.dumps(doc) if doc is not None else None}


@hsettings(max_examples=250, deadline=None)
@given(snapshot_ops, requests)
def test_snapshot_matches_a_full_rebuild_after_every_event(operations: list[tuple[Any, ...]],
                                                           reqs: list[tuple[str, str]]) -> None:
    """APIs move between organisations, change path, methods and enabled, are
    deleted and come back, organisations change slug: after each event every
    organisation answers as the reference over its APIs in the order first seen."""
    snap = ConfigSnapshot()
    slugs = {"o1": "acme", "o2": "beta"}
    for org_id, slug in slugs.items():
        snap.apply(_event("org", org_id, "upsert", {"id": org_id, "slug": slug, "name": slug, "enabled": True}))
    model: dict[str, dict[str, Any]] = {}  # id -> api, in the order first seen (re-added: last)
    for op in operations:
        if op[0] == "api":
            _, n, org_id, template, methods, enabled = op
            id_ = f"api{n}"
            version = model[id_]["version"] + 1 if id_ in model else 1
            doc = {"id": id_, "org": slugs[org_id], "org_id": org_id, "path": template, "methods": methods,
                   "connector": "", "version": version, "enabled": enabled}
            snap.apply(_event("api", id_, "upsert", doc))
            model[id_] = doc
        elif op[0] == "delete":
            id_ = f"api{op[1]}"
            snap.apply(_event("api", id_, "delete", None))
            model.pop(id_, None)
        else:
            _, org_id, slug = op
            if slug in (s for o, s in slugs.items() if o != org_id):
                continue  # slugs are unique
            slugs[org_id] = slug
            snap.apply(_event("org", org_id, "upsert", {"id": org_id, "slug": slug, "name": slug, "enabled": True}))
        for org_id, slug in slugs.items():
            routes = [(a["path"], a["methods"], a["id"]) for a in model.values()
                      if a["org_id"] == org_id and a["enabled"]]
            for method, path in reqs:
                def resolve() -> tuple[Any, dict[str, str]]:
                    m = snap.resolve(slug, method, path)
                    assert m.org["slug"] == slug and m.api["org"] == slug
                    return m.api["id"], m.path_params
                assert outcome(resolve) == ref_match(routes, method, path), (slug, method, path)


def test_an_api_event_touches_only_that_api(monkeypatch: pytest.MonkeyPatch) -> None:
    """Structural, not timed: with 2,000 APIs in one organisation, changing,
    adding or deleting one parses one template and leaves every other route
    object in place."""
    snap = ConfigSnapshot()
    snap.apply(_event("org", "o1", "upsert", {"id": "o1", "slug": "acme", "name": "Acme"}))
    for i in range(2000):
        snap.apply(_event("api", f"a{i}", "upsert", {"id": f"a{i}", "org": "acme", "org_id": "o1",
                                                      "path": f"/svc{i % 50}/{{id}}/op{i}", "methods": ["GET"],
                                                      "version": 1}))
    table = snap._tables["acme"]
    before = set(table.routes)  # route objects, by identity
    parsed: list[str] = []
    real_parse = snapshot_module.parse_template
    monkeypatch.setattr(snapshot_module, "parse_template", lambda text, *a: parsed.append(text) or real_parse(text, *a))

    snap.apply(_event("api", "a7", "upsert", {"id": "a7", "org": "acme", "org_id": "o1", "path": "/moved/{id}",
                                              "methods": ["POST"], "version": 2}))
    assert parsed == ["/moved/{id}"]
    assert snap._tables["acme"] is table and len(table) == 2000
    after = set(table.routes)
    assert len(before - after) == 1 and len(after - before) == 1
    assert snap.resolve("acme", "POST", "/moved/9").api["id"] == "a7"
    with pytest.raises(NotFound):
        snap.resolve("acme", "GET", "/svc7/1/op7")
    assert snap.resolve("acme", "GET", "/svc8/1/op8").api["id"] == "a8"

    snap.apply(_event("api", "a8", "delete", None))
    assert parsed == ["/moved/{id}"] and len(table) == 1999
    with pytest.raises(NotFound):
        snap.resolve("acme", "GET", "/svc8/1/op8")


def test_ten_thousand_routes_match_like_ten() -> None:
    """Correctness at scale (the cost is measured by make bench-config)."""
    table = RouteTable()
    for i in range(10_000):
        table.add(parse_template(f"/svc{i % 100}/v{i // 100}/{{id}}"), ["GET"], i)
    table.add(parse_template("/svc1/{rest+}"), ["*"], "rest")
    assert table.match("GET", "/svc42/v7/xyz") == (742, {"id": "xyz"})
    assert table.match("POST", "/svc1/v3/xyz") == ("rest", {"rest": "v3/xyz"})
    with pytest.raises(MethodNotAllowed) as info:
        table.match("POST", "/svc2/v3/xyz")
    assert info.value.headers["Allow"] == "GET"
    with pytest.raises(NotFound):
        table.match("GET", "/svc2/v100/xyz")


def test_ties_go_to_the_api_seen_first_and_a_change_keeps_its_place() -> None:
    """/a/{x} and /{y}/b rank equal on /a/b: the API first seen wins, today as
    before the trie; a new version keeps the API's place, a delete loses it."""
    snap = ConfigSnapshot()
    snap.apply(_event("org", "o1", "upsert", {"id": "o1", "slug": "acme", "name": "Acme"}))

    def put(id_: str, path: str, version: int) -> None:
        snap.apply(_event("api", id_, "upsert", {"id": id_, "org": "acme", "org_id": "o1", "path": path,
                                                 "methods": ["GET"], "version": version}))

    put("first", "/a/{x}", 1)
    put("second", "/{y}/b", 1)
    assert snap.resolve("acme", "GET", "/a/b").api["id"] == "first"
    put("first", "/a/{z}", 2)
    assert snap.resolve("acme", "GET", "/a/b").api["id"] == "first"
    snap.apply(_event("api", "first", "delete", None))
    put("first", "/a/{x}", 3)
    assert snap.resolve("acme", "GET", "/a/b").api["id"] == "second"
