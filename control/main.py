"""Run the control service until ``stop`` is set."""
from __future__ import annotations

import asyncio

from control.app import create_app
from core.http import serve
from core.settings import Settings

__all__ = ["run"]


async def run(settings: Settings, stop: asyncio.Event) -> None:
    await serve(create_app(settings), settings.control_host, settings.control_port, stop)
