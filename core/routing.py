"""Path templates and the per-organisation route table.

A template is a path of literal segments and ``{name}`` parameters, such as
``/orders/{id}``. A trailing ``{name+}`` parameter takes the rest of the path.
When several templates match, the one with more literal segments wins, the way
Kong ranks plain paths before patterns; then a non-greedy one; then the longer;
then the one added first. Two templates of the same shape in one organisation
with a method in common clash, and the control plane refuses them.

A :class:`RouteTable` is a trie of path segments: adding or removing a route
touches only its own branch, and matching does not grow with the table.
"""
from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from core.errors import FieldError, InvalidInput, MethodNotAllowed, NotFound

__all__ = ["ANY_METHOD", "HTTP_METHODS", "PathTemplate", "RouteTable", "parse_template"]

HTTP_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
ANY_METHOD = "*"
_PARAM = re.compile(r"^\{([A-Za-z_][A-Za-z0-9_]{0,63})(\+?)\}$")
_LITERAL = re.compile(r"^[A-Za-z0-9._~!$&'()*,;=:@%-]+$")
MAX_TEMPLATE_LEN = 512


@dataclass(frozen=True, slots=True)
class PathTemplate:
    text: str
    segments: tuple[str | None, ...]  # None marks a parameter
    params: tuple[str, ...]
    greedy: bool  # the last parameter takes the rest of the path

    @property
    def shape(self) -> tuple[Any, ...]:
        return (tuple(s if s is not None else "{}" for s in self.segments), self.greedy)

    @property
    def literal_count(self) -> int:
        return len(self.segments) - len(self.params)  # one parameter per None segment

    def match(self, parts: list[str]) -> dict[str, str] | None:
        n = len(self.segments)
        if self.greedy:
            if len(parts) < n:
                return None
        elif len(parts) != n:
            return None
        values: dict[str, str] = {}
        names = iter(self.params)
        for i, seg in enumerate(self.segments):
            if seg is None:
                name = next(names)
                if self.greedy and i == n - 1:
                    rest = "/".join(parts[i:])
                    if not rest:
                        return None
                    values[name] = rest
                else:
                    if not parts[i]:
                        return None
                    values[name] = parts[i]
            elif seg != parts[i]:
                return None
        return values


def parse_template(text: str, field_name: str = "path") -> PathTemplate:
    """Parse a path template, or raise :class:`InvalidInput` naming the field."""

    def bad(msg: str) -> InvalidInput:
        return InvalidInput(f"invalid path template: {msg}", fields=[FieldError(field_name, msg)], code="invalid_path")

    if not isinstance(text, str) or not text.startswith("/"):
        raise bad("must start with '/'")
    if len(text) > MAX_TEMPLATE_LEN:
        raise bad(f"longer than {MAX_TEMPLATE_LEN} characters")
    raw = text[1:].split("/") if text != "/" else []
    if raw and raw[-1] == "":
        raise bad("must not end with '/'")
    segments: list[str | None] = []
    params: list[str] = []
    greedy = False
    for i, seg in enumerate(raw):
        if seg == "":
            raise bad("empty segment '//'")
        if seg in (".", ".."):  # clients resolve dot segments before sending: such a path is never asked for
            raise bad(f"segment {seg!r}: dot segments are resolved by clients, so no call could reach it")
        if "%" in seg:  # calls are matched on their decoded path
            raise bad(f"segment {seg!r}: write the character itself, not a percent-escape (calls are matched decoded)")
        if _LITERAL.match(seg):  # the common case first; a literal has no braces
            segments.append(seg)
            continue
        m = _PARAM.match(seg)
        if m:
            name, plus = m.groups()
            if name in params:
                raise bad(f"parameter {{{name}}} appears twice")
            if plus and i != len(raw) - 1:
                raise bad(f"{{{name}+}} must be the last segment")
            params.append(name)
            segments.append(None)
            greedy = bool(plus)
        elif "{" in seg or "}" in seg:
            raise bad(f"segment {seg!r}: a parameter must fill a whole segment, as {{name}}")
        else:
            raise bad(f"segment {seg!r} has characters not allowed in a path")
    return PathTemplate(text, tuple(segments), tuple(params), greedy)


def split_path(path: str) -> list[str]:
    if path in ("", "/"):
        return []
    return path.strip("/").split("/") if path.startswith("/") else path.split("/")


_METHOD_SETS: dict[frozenset[str], frozenset[str]] = {}


def _method_set(methods: Iterable[str]) -> frozenset[str]:
    """The upper-cased methods, one shared set per distinct combination (a
    table of thousands of routes holds a handful of them)."""
    wanted = frozenset([m.upper() for m in methods])
    shared = _METHOD_SETS.get(wanted)
    if shared is None:
        if len(_METHOD_SETS) >= 1024:
            return wanted
        shared = _METHOD_SETS[wanted] = wanted
    return shared


class _Route:
    __slots__ = ("template", "methods", "target", "key", "rank")

    def __init__(self, template: PathTemplate, methods: frozenset[str], target: Any, key: Any, order: int) -> None:
        self.template = template
        self.methods = methods
        self.target = target
        self.key = key
        # Precedence: more literal segments first; among equals, non-greedy first,
        # then longer; then the order the routes were added in.
        self.rank = (-template.literal_count, template.greedy, -len(template.segments), order)

    def allows(self, method: str) -> bool:
        return ANY_METHOD in self.methods or method in self.methods or (method == "HEAD" and "GET" in self.methods)

    def __repr__(self) -> str:
        return f"_Route({self.template.text!r}, {sorted(self.methods)}, {self.target!r})"


class _Node:
    """One path segment of the trie. ``ends`` holds the routes whose template
    ends here; ``greedy`` those whose ``{rest+}`` starts at this depth. The
    containers are made when first needed: most nodes hold one of them."""

    __slots__ = ("literals", "param", "ends", "greedy")

    def __init__(self) -> None:
        self.literals: dict[str, _Node] | None = None
        self.param: _Node | None = None
        self.ends: dict[Any, _Route] | None = None
        self.greedy: dict[Any, _Route] | None = None

    def empty(self) -> bool:
        return not (self.literals or self.param or self.ends or self.greedy)


class RouteTable:
    """The routes of one organisation, matched by method and path.

    Routes live in a trie of path segments, so adding or removing one costs
    the length of its template, and matching a path costs its length (times
    the branches a parameter opens), whatever the number of routes. Among the
    routes a path matches, the winner is the one with the most literal
    segments; then a non-greedy one; then the longest; then the first added.
    """

    def __init__(self) -> None:
        self._root = _Node()
        self._by_key: dict[Any, _Route] = {}
        # Routes by shape, for clashes(): built on its first call (the request path never asks).
        self._by_shape: dict[tuple[Any, ...], dict[Any, _Route]] | None = None
        self._next_order = 0

    def __len__(self) -> int:
        return len(self._by_key)

    def __contains__(self, key: Any) -> bool:
        return key in self._by_key

    @property
    def routes(self) -> list[_Route]:
        """Every route, in precedence order (for inspection; matching does not use it)."""
        return sorted(self._by_key.values(), key=lambda r: r.rank)

    def add(self, template: PathTemplate, methods: Iterable[str], target: Any, *, key: Any = None,
            order: int | None = None) -> Any:
        """Add a route; returns its key (``key``, or a new one), for :meth:`remove`.

        A route already under ``key`` is replaced. ``order`` breaks ties
        between routes of equal precedence (lower first); by default, routes
        added later come later.
        """
        if key is None:
            key = object()
        elif key in self._by_key:
            self.remove(key)
        if order is None:
            order = self._next_order
        self._next_order = max(self._next_order, order + 1)
        route = _Route(template, _method_set(methods), target, key, order)
        node = self._root
        for seg in template.segments[:-1] if template.greedy else template.segments:
            if seg is None:
                if node.param is None:
                    node.param = _Node()
                node = node.param
            else:
                if node.literals is None:
                    node.literals = {}
                child = node.literals.get(seg)
                if child is None:
                    child = node.literals[seg] = _Node()
                node = child
        if template.greedy:
            if node.greedy is None:
                node.greedy = {}
            node.greedy[key] = route
        else:
            if node.ends is None:
                node.ends = {}
            node.ends[key] = route
        self._by_key[key] = route
        if self._by_shape is not None:
            self._by_shape.setdefault(template.shape, {})[key] = route
        return key

    def remove(self, key: Any) -> Any | None:
        """Remove the route added under ``key``; its target, or None if there was none."""
        route = self._by_key.pop(key, None)
        if route is None:
            return None
        template = route.template
        if self._by_shape is not None:
            shape = template.shape
            same_shape = self._by_shape[shape]
            del same_shape[key]
            if not same_shape:
                del self._by_shape[shape]
        trail: list[tuple[_Node, str | None]] = []
        node = self._root
        for seg in template.segments[:-1] if template.greedy else template.segments:
            trail.append((node, seg))
            nxt = node.param if seg is None else node.literals[seg]  # type: ignore[index]
            assert nxt is not None
            node = nxt
        if template.greedy:
            del node.greedy[key]  # type: ignore[union-attr]
            if not node.greedy:
                node.greedy = None
        else:
            del node.ends[key]  # type: ignore[union-attr]
            if not node.ends:
                node.ends = None
        # Prune the branches left empty.
        while trail and node.empty():
            parent, seg = trail.pop()
            if seg is None:
                parent.param = None
            else:
                del parent.literals[seg]  # type: ignore[union-attr]
                if not parent.literals:
                    parent.literals = None
            node = parent
        return route.target

    def clashes(self, template: PathTemplate, methods: Iterable[str], ignore: Any = None) -> Any | None:
        """The target of an existing route this one would clash with, if any."""
        wanted = frozenset(m.upper() for m in methods)
        if self._by_shape is None:
            self._by_shape = {}
            for r in self._by_key.values():
                self._by_shape.setdefault(r.template.shape, {})[r.key] = r
        same_shape = self._by_shape.get(template.shape)
        if not same_shape:
            return None
        for r in sorted(same_shape.values(), key=lambda r: r.rank):
            if r.target is ignore or (ignore is not None and getattr(r.target, "get", None) and r.target.get("id") == ignore):
                continue
            if ANY_METHOD in wanted or ANY_METHOD in r.methods or wanted & r.methods:
                return r.target
        return None

    def candidates(self, parts: list[str]) -> list[_Route]:
        """Every route whose template matches the split path, in no particular order."""
        found: list[_Route] = []
        n = len(parts)
        stack = [(self._root, 0)]
        while stack:
            node, i = stack.pop()
            if node.greedy and i < n and (i < n - 1 or parts[i]):
                found.extend(node.greedy.values())
            if i == n:
                if node.ends:
                    found.extend(node.ends.values())
                continue
            part = parts[i]
            if node.literals:
                child = node.literals.get(part)
                if child is not None:
                    stack.append((child, i + 1))
            if node.param is not None and part:
                stack.append((node.param, i + 1))
        return found

    def match(self, method: str, path: str) -> tuple[Any, dict[str, str]]:
        parts = split_path(path)
        found = self.candidates(parts)
        best: _Route | None = None
        allowed: set[str] = set()
        for r in found:
            if r.allows(method):
                if best is None or r.rank < best.rank:
                    best = r
            else:
                allowed |= r.methods
        if best is not None:
            params = best.template.match(parts)
            assert params is not None
            return best.target, params
        if allowed:
            raise MethodNotAllowed(f"{method} is not allowed on {path}", headers={"Allow": ",".join(sorted(allowed))})
        raise NotFound(f"no API at {path}", code="route_not_found")
