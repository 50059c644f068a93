"""Sandbox errors: subclasses of the one error model in :mod:`core.errors`.

Runtime failures use the core classes directly: ``TransformError``
(``transform_failed``), ``TransformTimeout`` (``transform_timeout``) and
``TransformMemory`` (``transform_memory``). A script's ``reject()`` becomes a
plain :class:`core.errors.JunctionError` carrying the script's code and status.
"""
from __future__ import annotations

from core.errors import FieldError, InvalidInput

__all__ = ["ScriptCompileError"]


class ScriptCompileError(InvalidInput):
    """The script does not compile under the sandbox rules (422 ``script_invalid``)."""

    status = 422
    code = "script_invalid"

    def __init__(self, line: int, message: str) -> None:
        super().__init__(
            f"script line {line}: {message}",
            fields=[FieldError("script", f"line {line}: {message}")],
            extra={"line": line, "message": message},
        )
        self.line = line
