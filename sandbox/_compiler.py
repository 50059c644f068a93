"""Restricted compilation of connector scripts.

Shared by :func:`sandbox.compile_check` (in the service process) and the worker.
No ``core`` imports here: the worker must not load the gateway's packages.
"""
from __future__ import annotations

import ast
import re
from types import CodeType

from RestrictedPython import compile_restricted_exec

__all__ = ["MAX_SOURCE_CHARS", "compile_script", "script_filename"]

MAX_SOURCE_CHARS = 256 * 1024
_LINE = re.compile(r"^Line (\d+): (.*)$", re.S)


def script_filename(org: str, connector_id: str, version: int) -> str:
    return f"<connector {org}/{connector_id} v{version}>"


def _first_error(errors: tuple[str, ...] | list[str]) -> tuple[int, str]:
    text = str(errors[0])
    match = _LINE.match(text)
    if match:
        return int(match.group(1)), match.group(2).strip()
    return 1, text.strip()


def _check_contract(tree: ast.Module) -> tuple[int, str] | None:
    names: dict[str, ast.stmt] = {}
    for node in tree.body:
        if isinstance(node, ast.FunctionDef):
            names[node.name] = node
        elif isinstance(node, (ast.Assign, ast.AnnAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            for target in targets:
                if isinstance(target, ast.Name) and target.id in ("transform_request", "transform_response"):
                    return node.lineno, f"{target.id} must be defined with a top-level 'def'"
    if "transform_request" not in names:
        return 1, "the script must define a top-level function transform_request(request, ctx)"
    for name in ("transform_request", "transform_response"):
        fn = names.get(name)
        if fn is None:
            continue
        args = fn.args
        positional = len(args.posonlyargs) + len(args.args)
        if args.vararg is None and positional < 2:
            return fn.lineno, f"{name} must accept two arguments ({'request' if name.endswith('request') else 'response'}, ctx)"
    return None


def compile_script(source: object, filename: str = "<connector>") -> tuple[CodeType | None, int, str]:
    """Compile ``source`` with RestrictedPython.

    Returns ``(code, 0, "")`` on success, ``(None, line, message)`` otherwise.
    """
    if not isinstance(source, str):
        return None, 1, "the script source must be text"
    if len(source) > MAX_SOURCE_CHARS:
        return None, 1, f"the script is larger than {MAX_SOURCE_CHARS} characters"
    if "\x00" in source:
        line = source.count("\n", 0, source.index("\x00")) + 1
        return None, line, "the script contains a NUL character"
    try:
        result = compile_restricted_exec(source, filename)
    except (ValueError, TypeError, MemoryError, RecursionError, OverflowError) as exc:
        return None, 1, f"the script cannot be compiled: {type(exc).__name__}: {exc}"
    if result.errors or result.code is None:
        return (None, *_first_error(result.errors or ["Line 1: the script cannot be compiled"]))
    try:
        tree = ast.parse(source, filename)
    except (SyntaxError, ValueError, RecursionError, MemoryError) as exc:  # pragma: no cover - RP parsed it
        return None, getattr(exc, "lineno", None) or 1, str(exc)
    problem = _check_contract(tree)
    if problem is not None:
        return (None, *problem)
    return result.code, 0, ""
