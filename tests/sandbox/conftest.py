"""Fixtures for the sandbox tests: real worker pools, no mocks."""
from __future__ import annotations

from collections.abc import AsyncIterator

import pytest_asyncio

from sandbox import SandboxPool


@pytest_asyncio.fixture(loop_scope="session", scope="session")
async def pool() -> AsyncIterator[SandboxPool]:
    p = SandboxPool(workers=2, cpu_ms=1000, timeout_ms=3000, memory_mb=256)
    await p.start()
    yield p
    await p.stop()


@pytest_asyncio.fixture(loop_scope="session", scope="session")
async def strict_pool() -> AsyncIterator[SandboxPool]:
    """Short wall clock, generous CPU: a busy loop is killed by the wall clock."""
    p = SandboxPool(workers=2, cpu_ms=5000, timeout_ms=700, memory_mb=256)
    await p.start()
    yield p
    await p.stop()
