"""The Grafana dashboard's PromQL, read the way a promtool check would start: balanced, with known metric names."""
from __future__ import annotations

import importlib
import json
import re
from pathlib import Path
from typing import Any

DASHBOARD = Path("infra/grafana/junction-dashboard.json")
PROMETHEUS = Path("infra/prometheus/prometheus.yml")

# PromQL words that are not metric names (functions are recognised by the "(" after them).
_KEYWORDS = {"by", "without", "on", "ignoring", "group_left", "group_right", "and", "or", "unless", "bool", "offset"}
_NAME = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*")
_PAIRS = {")": "(", "]": "[", "}": "{"}


def dashboard_queries(dashboard: dict[str, Any]) -> list[str]:
    """Every PromQL expression of the dashboard: its panels' targets and its query variables."""
    exprs = [t["expr"] for panel in dashboard["panels"] for t in panel.get("targets", [])]
    for var in dashboard["templating"]["list"]:
        if var["type"] == "query":
            exprs.append(var["query"]["query"] if isinstance(var["query"], dict) else var["query"])
    return exprs


def _without_strings(expr: str) -> str:
    return re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)


def balanced(expr: str) -> bool:
    stack: list[str] = []
    for ch in _without_strings(expr):
        if ch in "([{":
            stack.append(ch)
        elif ch in _PAIRS and (not stack or stack.pop() != _PAIRS[ch]):
            return False
    return not stack


def metric_names(expr: str) -> set[str]:
    """The metric names ``expr`` selects (label matchers, ranges, grouping labels and functions removed)."""
    s = _without_strings(expr)
    s = re.sub(r"\{[^{}]*\}", " ", s)
    s = re.sub(r"\[[^\]]*\]", " ", s)
    s = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", s)
    s = re.sub(r"label_values\(\s*([a-zA-Z_:][a-zA-Z0-9_:]*)\s*,\s*[a-zA-Z_]\w*\s*\)", r" \1 ", s)
    names = set()
    for m in _NAME.finditer(s):
        before = s[m.start() - 1] if m.start() else " "
        if before.isdigit() or before == "." or before == "$":
            continue  # part of a number or a Grafana variable
        if s[m.end():].lstrip().startswith("(") or m.group(0) in _KEYWORDS:
            continue
        names.add(m.group(0))
    return names


def exposed_names(text: str) -> set[str]:
    """Family names (from ``# TYPE``) and sample names in a /metrics text."""
    names = set()
    for line in text.splitlines():
        if line.startswith("# TYPE "):
            family, kind = line.split()[2:4]
            names.add(family)
            if kind == "histogram":
                names |= {f"{family}_bucket", f"{family}_sum", f"{family}_count"}
            elif kind == "counter":
                names.add(family if family.endswith("_total") else f"{family}_total")
        elif line and not line.startswith("#"):
            names.add(re.split(r"[{ ]", line, maxsplit=1)[0])
    return names


def load_dashboard() -> dict[str, Any]:
    return json.loads(DASHBOARD.read_text())


def import_services() -> None:
    """Import every service, which registers all their metrics in this process's registry."""
    for module in ("control.app", "egress.app", "core.outbox", "ingress.app", "processors.app"):
        importlib.import_module(module)
