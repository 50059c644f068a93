"""The load generator: closed-loop throughput and open-loop latency.

Latency is measured from each request's scheduled start, so a stalled server
cannot hide its queueing (no coordinated omission).
"""
from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass

import aiohttp

__all__ = ["LoadResult", "fixed_concurrency", "fixed_rate"]


@dataclass
class LoadResult:
    sent: int
    ok: int
    errors: int
    seconds: float
    latencies_ms: list[float]

    @property
    def rps(self) -> float:
        return self.ok / self.seconds if self.seconds else 0.0

    def percentile(self, p: float) -> float:
        if not self.latencies_ms:
            return float("nan")
        data = sorted(self.latencies_ms)
        k = min(len(data) - 1, max(0, int(round(p / 100 * (len(data) - 1)))))
        return data[k]

    def summary(self) -> dict[str, float]:
        return {
            "sent": self.sent, "ok": self.ok, "errors": self.errors, "seconds": round(self.seconds, 3),
            "rps": round(self.rps, 1), "p50_ms": round(self.percentile(50), 2),
            "p95_ms": round(self.percentile(95), 2), "p99_ms": round(self.percentile(99), 2),
        }


async def _one(session: aiohttp.ClientSession, url: str, body: bytes) -> bool:
    try:
        async with session.post(url, data=body) as resp:
            await resp.read()
            return resp.status == 200
    except (aiohttp.ClientError, asyncio.TimeoutError):
        return False


async def fixed_concurrency(url: str, *, concurrency: int, seconds: float, body: bytes = b'{"n":1}') -> LoadResult:
    latencies: list[float] = []
    counts = {"sent": 0, "ok": 0}
    until = time.perf_counter() + seconds
    conn = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=conn, timeout=aiohttp.ClientTimeout(total=30)) as session:

        async def worker() -> None:
            while time.perf_counter() < until:
                t0 = time.perf_counter()
                counts["sent"] += 1
                if await _one(session, url, body):
                    counts["ok"] += 1
                    latencies.append((time.perf_counter() - t0) * 1000)

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        elapsed = time.perf_counter() - started
    return LoadResult(counts["sent"], counts["ok"], counts["sent"] - counts["ok"], elapsed, latencies)


async def fixed_rate(url: str, *, rate: float, seconds: float, body: bytes = b'{"n":1}') -> LoadResult:
    latencies: list[float] = []
    counts = {"ok": 0}
    total = int(rate * seconds)
    conn = aiohttp.TCPConnector(limit=2000)
    async with aiohttp.ClientSession(connector=conn, timeout=aiohttp.ClientTimeout(total=30)) as session:
        start = time.perf_counter()

        async def shot(scheduled: float) -> None:
            if await _one(session, url, body):
                counts["ok"] += 1
                latencies.append((time.perf_counter() - scheduled) * 1000)

        tasks = []
        for i in range(total):
            scheduled = start + i / rate
            delay = scheduled - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(shot(scheduled)))
        await asyncio.gather(*tasks)
        elapsed = time.perf_counter() - start
    return LoadResult(total, counts["ok"], total - counts["ok"], elapsed, latencies)
