"""What the control app holds while it runs, filled in by its cleanup contexts."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import asyncpg
from aiohttp import web

from control.auth import TokenIssuer
from core.settings import Settings

__all__ = ["STATE", "ControlState"]


@dataclass
class ControlState:
    settings: Settings
    schemas: dict[str, dict[str, Any]]
    pool: asyncpg.Pool | None = None
    tokens: TokenIssuer | None = None
    redis: Any = None
    relay: Any = None  # control.outbox.OutboxRelay
    sandbox: Any = None  # sandbox.SandboxPool, when the sandbox package is present
    extras: dict[str, Any] = field(default_factory=dict)

    @property
    def db(self) -> asyncpg.Pool:
        if self.pool is None:
            raise RuntimeError("database pool not started")
        return self.pool


STATE: web.AppKey[ControlState] = web.AppKey("control_state", ControlState)
