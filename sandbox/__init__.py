"""Connector scripts: sandboxed Python transforms run in a pool of worker processes.

See ``docs/connectors.md`` for the script contract and ``docs/sandbox.md`` for
the threat model.
"""
from __future__ import annotations

from .contract import ScriptRef, TransformResult, compile_check
from .errors import ScriptCompileError
from .pool import SandboxPool, pool_for

__all__ = ["SandboxPool", "ScriptCompileError", "ScriptRef", "TransformResult", "compile_check", "pool_for"]
