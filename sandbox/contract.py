"""The script contract seen from the gateway: script identity, results, compile check."""
from __future__ import annotations

from dataclasses import dataclass, field

from ._compiler import compile_script, script_filename
from .errors import ScriptCompileError

__all__ = ["ScriptRef", "TransformResult", "compile_check"]


@dataclass(frozen=True)
class ScriptRef:
    """One compiled version of a connector script.

    Workers cache the compiled code per ``(org, connector_id, version)``; a
    cached entry is reused only when its source is identical, so a version
    number that is (wrongly) reused with new source is recompiled, never stale.
    """

    org: str
    connector_id: str
    version: int
    source: str = field(repr=False)


@dataclass
class TransformResult:
    """``value`` has the shape of the input dict; None when there is no transform_response."""

    value: dict | None
    logs: list[str]


def compile_check(source: str) -> None:
    """Compile ``source`` under the sandbox rules; raise :class:`ScriptCompileError` if it fails.

    Synchronous, in-process and fast (no worker involved): RestrictedPython
    compilation plus the contract check (a top-level ``def transform_request``
    taking ``(request, ctx)``; ``transform_response(response, ctx)`` optional).
    Runtime-only problems (a disallowed import, say) surface on the first call.
    """
    code, line, message = compile_script(source, script_filename("check", "check", 0))
    if code is None:
        raise ScriptCompileError(line, message)
