"""Path templates and the per-organisation route table.

A template is a path of literal segments and ``{name}`` parameters, such as
``/orders/{id}``. A trailing ``{name+}`` parameter takes the rest of the path.
When several templates match, the one with more literal segments wins, the way
Kong ranks plain paths before patterns. Two templates of the same shape in one
organisation with a method in common clash, and the control plane refuses them.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from core.errors import FieldError, InvalidInput, MethodNotAllowed, NotFound

__all__ = ["ANY_METHOD", "HTTP_METHODS", "PathTemplate", "RouteTable", "parse_template"]

HTTP_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
ANY_METHOD = "*"
_PARAM = re.compile(r"^\{([A-Za-z_][A-Za-z0-9_]{0,63})(\+?)\}$")
_LITERAL = re.compile(r"^[A-Za-z0-9._~!$&'()*,;=:@%-]+$")
MAX_TEMPLATE_LEN = 512


@dataclass(frozen=True)
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
        return sum(1 for s in self.segments if s is not None)

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
        elif not _LITERAL.match(seg):
            raise bad(f"segment {seg!r} has characters not allowed in a path")
        else:
            segments.append(seg)
    return PathTemplate(text, tuple(segments), tuple(params), greedy)


def split_path(path: str) -> list[str]:
    if path in ("", "/"):
        return []
    return path.strip("/").split("/") if path.startswith("/") else path.split("/")


@dataclass
class _Route:
    template: PathTemplate
    methods: frozenset[str]
    target: Any

    def allows(self, method: str) -> bool:
        return ANY_METHOD in self.methods or method in self.methods or (method == "HEAD" and "GET" in self.methods)


@dataclass
class RouteTable:
    """The routes of one organisation, matched by method and path."""

    routes: list[_Route] = field(default_factory=list)

    def add(self, template: PathTemplate, methods: list[str] | frozenset[str], target: Any) -> None:
        self.routes.append(_Route(template, frozenset(m.upper() for m in methods), target))
        # More literal segments first; among equals, non-greedy first.
        self.routes.sort(key=lambda r: (-r.template.literal_count, r.template.greedy, -len(r.template.segments)))

    def clashes(self, template: PathTemplate, methods: list[str], ignore: Any = None) -> Any | None:
        """The target of an existing route this one would clash with, if any."""
        wanted = frozenset(m.upper() for m in methods)
        for r in self.routes:
            if r.target is ignore or (ignore is not None and getattr(r.target, "get", None) and r.target.get("id") == ignore):
                continue
            if r.template.shape != template.shape:
                continue
            if ANY_METHOD in wanted or ANY_METHOD in r.methods or wanted & r.methods:
                return r.target
        return None

    def match(self, method: str, path: str) -> tuple[Any, dict[str, str]]:
        parts = split_path(path)
        allowed: set[str] = set()
        for r in self.routes:
            params = r.template.match(parts)
            if params is None:
                continue
            if r.allows(method):
                return r.target, params
            allowed |= r.methods
        if allowed:
            raise MethodNotAllowed(f"{method} is not allowed on {path}", headers={"Allow": ",".join(sorted(allowed))})
        raise NotFound(f"no API at {path}", code="route_not_found")
