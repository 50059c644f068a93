"""Product code never bounds an await with ``asyncio.wait_for``.

On Python 3.11, the oldest Junction runs on, ``wait_for`` swallows a cancellation that arrives as the
awaited thing completes (CPython gh-86296, fixed in 3.12): the cancelled task carries on. In a long-lived
loop that means a stop that never ends; egress' consume loop was one, through redis-py's writes (see
core/redis.py). ``asyncio.timeout`` bounds the same way and keeps the cancellation.
"""
from __future__ import annotations

import ast
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
PACKAGES = ("core", "schemas", "ingress", "processors", "egress", "control", "sandbox", "junction", "bench")


def _wait_for_calls(source: str) -> list[int]:
    lines = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "wait_for":
            target = node.func.value
            if isinstance(target, ast.Name) and target.id == "asyncio":
                lines.append(node.lineno)
    return lines


def test_the_check_finds_a_wait_for() -> None:
    assert _wait_for_calls("import asyncio\nasync def f(x):\n    await asyncio.wait_for(x, 1)\n") == [3]
    assert _wait_for_calls("async def f(c):\n    await c.wait_for(lambda: True)\n") == []  # a Condition's own


def test_no_product_module_bounds_an_await_with_asyncio_wait_for() -> None:
    found = [f"{path.relative_to(REPO)}:{line}"
             for package in PACKAGES for path in sorted((REPO / package).rglob("*.py"))
             for line in _wait_for_calls(path.read_text(encoding="utf-8"))]
    assert found == [], f"use `async with asyncio.timeout(...)` instead of asyncio.wait_for at {found}"
