"""Sandbox overhead per call: pool.transform_request minus a direct in-process call.

Run: ``python -m bench.sandbox_bench [n]``. Prints one line and writes
``bench/results/sandbox.json``. ``run_sandbox_bench(n)`` is what the main
bench calls.
"""
from __future__ import annotations

import asyncio
import json
import os
import statistics
import sys
import time
from pathlib import Path

from sandbox import SandboxPool, ScriptRef
from sandbox._objects import Ctx, Request, _Logs, export_request

__all__ = ["run_sandbox_bench"]

IDENTITY = "def transform_request(request, ctx):\n    return None\n"
RESULTS = Path(__file__).resolve().parent / "results" / "sandbox.json"


def _request() -> dict:
    return {
        "method": "POST", "path": "/orders/42", "path_params": {"id": "42"},
        "query": [["a", "1"], ["b", "2"]],
        "headers": [["Content-Type", "application/json"], ["X-Trace", "abc"], ["Accept", "*/*"]],
        "body": b'{"name": "Ada", "qty": 2, "items": [1, 2, 3]}', "url": None,
    }


CTX = {"org": "bench", "api": "orders", "api_id": "a1", "config_version": 1, "connector_version": 1,
       "settings": {"region": "eu"}}


def _pct(values: list[float], p: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(round(p / 100 * (len(values) - 1))))]


def _direct_times(n: int) -> list[float]:
    """The same identity transform called in-process (objects built and exported the same way)."""
    ns: dict = {}
    exec(IDENTITY, ns)  # noqa: S102 - trusted benchmark source
    fn = ns["transform_request"]
    out = []
    for _ in range(n):
        req = _request()
        t0 = time.perf_counter()
        obj = Request(req)
        value = export_request(obj, fn(obj, Ctx(CTX, _Logs())))
        out.append(time.perf_counter() - t0)
        assert value == req
    return out


async def run_sandbox_bench(n: int = 2000) -> dict:
    pool = SandboxPool(workers=2)
    await pool.start()
    try:
        script = ScriptRef("bench", "identity", 1, IDENTITY)
        for _ in range(200):  # warm up both workers and their code caches
            await pool.transform_request(script, _request(), CTX)
        pool_times = []
        for _ in range(n):
            req = _request()
            t0 = time.perf_counter()
            result = await pool.transform_request(script, req, CTX)
            pool_times.append(time.perf_counter() - t0)
            assert result.value == req
    finally:
        await pool.stop()
    direct = _direct_times(n)
    d50, d99 = _pct(direct, 50), _pct(direct, 99)
    p50, p99 = _pct(pool_times, 50), _pct(pool_times, 99)
    result = {
        "calls": n,
        "pool_p50_ms": round(p50 * 1000, 4),
        "pool_p99_ms": round(p99 * 1000, 4),
        "direct_p50_ms": round(d50 * 1000, 4),
        "direct_p99_ms": round(d99 * 1000, 4),
        "overhead_p50_ms": round((p50 - d50) * 1000, 4),
        "overhead_p99_ms": round((p99 - d99) * 1000, 4),
        "pool_mean_ms": round(statistics.fmean(pool_times) * 1000, 4),
        "target_overhead_p50_ms": 0.5,
        "python": sys.version.split()[0],
        "cpus": os.cpu_count(),
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2) + "\n")
    return result


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 2000
    r = asyncio.run(run_sandbox_bench(n))
    print(f"sandbox overhead over {r['calls']} calls: p50 {r['overhead_p50_ms']:.3f} ms, "
          f"p99 {r['overhead_p99_ms']:.3f} ms (pool p50 {r['pool_p50_ms']:.3f} ms, "
          f"direct p50 {r['direct_p50_ms']:.4f} ms; target p50 <= 0.5 ms) -> {RESULTS}")


if __name__ == "__main__":
    main()
