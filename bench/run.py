"""``make bench``: the full sync path against the in-process baseline, in one run.

Starts the embedded broker (or uses KAFKA_BOOTSTRAP_SERVERS), the upstream
stub, and ingress, processors and egress as separate processes (as
``junction up`` runs them), then the broker floor (three bare aiokafka hops at
the same rate) and the in-process baseline. Writes bench/results/pipeline.json
and prints a one-line summary.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import subprocess
import sys
import time
import uuid
from pathlib import Path

from bench.broker_floor import broker_floor
from bench.load import fixed_concurrency, fixed_rate
from core.kafka import ensure_topics, wait_for_broker
from core.settings import load_settings
from junction.broker import EmbeddedBroker, die_with_parent, free_port
from tests.support import wait_http_ok

RESULTS = Path(__file__).parent / "results"


def _spawn(args: list[str], env: dict[str, str]) -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, *args], env=env, stdin=subprocess.DEVNULL, preexec_fn=die_with_parent)


async def measure(url: str, *, concurrency: int, rate: float, seconds: float) -> dict[str, object]:
    """Latency at the offered rate first, then throughput, then latency again:
    the embedded broker slows down as it holds more records (it never deletes
    any), and the second figure shows by how much."""
    await fixed_concurrency(url, concurrency=16, seconds=2)  # warm-up
    latency = await fixed_rate(url, rate=rate, seconds=seconds)
    await asyncio.sleep(1)
    throughput = await fixed_concurrency(url, concurrency=concurrency, seconds=seconds)
    await asyncio.sleep(1)
    latency_after = await fixed_rate(url, rate=rate, seconds=seconds)
    return {"latency_at_rate": latency.summary(), "throughput": throughput.summary(),
            "latency_at_rate_after_throughput": latency_after.summary()}


async def main(seconds: float, concurrency: int, rate: float) -> dict[str, object]:
    run = uuid.uuid4().hex[:8]
    broker = None
    procs: list[subprocess.Popen[bytes]] = []
    work = Path(os.environ.get("TMPDIR", "/tmp")) / f"junction-bench-{run}"
    work.mkdir(parents=True, exist_ok=True)
    try:
        overrides: dict[str, object] = dict(
            topic_prefix=f"b{run}", group_prefix=f"b{run}", redis_prefix=f"jb:{run}:", database_schema=f"b_{run}",
            ingress_port=free_port(), processors_port=free_port(), egress_port=free_port(),
            data_dir=str(work), log_level="WARNING", allow_private_targets=True,
        )
        if not os.environ.get("KAFKA_BOOTSTRAP_SERVERS"):
            broker = EmbeddedBroker(free_port())
            broker.start()
            await broker.wait_ready()
            overrides["kafka_bootstrap_servers"] = broker.bootstrap
            overrides["broker_profile"] = "embedded"
        upstream_port = free_port()
        routes = work / "routes.json"
        routes.write_text(json.dumps({
            "orgs": [{"slug": "bench", "name": "Bench"}],
            "connectors": [{"id": "stub", "org": "bench", "name": "stub", "target": {"protocol": "rest", "url": f"http://127.0.0.1:{upstream_port}/items", "method": "*"}}],
            "apis": [{"id": "items", "org": "bench", "name": "items", "methods": ["*"], "path": "/items", "connector": "stub", "timeout_ms": 10000}],
        }))
        overrides["routes_file"] = str(routes)
        settings = load_settings(**overrides)
        await wait_for_broker(settings)
        await ensure_topics(settings)
        env = {**os.environ, **settings.to_env()}
        procs.append(_spawn(["-m", "bench.upstream", "--port", str(upstream_port)], env))
        for service in ("egress", "processors", "ingress"):
            procs.append(_spawn(["-m", "junction", "serve", service], env))
        await wait_http_ok(f"http://127.0.0.1:{upstream_port}/ready")
        for port in (settings.egress_port, settings.processors_port, settings.ingress_port):
            await wait_http_ok(f"http://127.0.0.1:{port}/readyz")
        pipeline = await measure(f"http://127.0.0.1:{settings.ingress_port}/bench/items", concurrency=concurrency, rate=rate, seconds=seconds)
        for p in procs[1:]:
            p.terminate()
        for p in procs[1:]:
            p.wait(timeout=20)
        del procs[1:]
        floor = (await broker_floor(settings, rate=rate, seconds=seconds)).summary()

        base_port = free_port()
        procs.append(_spawn(["-m", "bench.baseline", "--port", str(base_port), "--routes", str(routes)], env))
        await wait_http_ok(f"http://127.0.0.1:{base_port}/bench/items")
        baseline = await measure(f"http://127.0.0.1:{base_port}/bench/items", concurrency=concurrency, rate=rate, seconds=seconds)
        return {
            "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
            "broker": "embedded" if broker else settings.bootstrap_servers,
            "params": {"seconds": seconds, "concurrency": concurrency, "rate": rate},
            "pipeline": pipeline,
            "baseline": baseline,
            "broker_floor_three_hops_at_rate": floor,
            "targets": {"rps_min": 1000, "p99_ms_max_at_300rps": 30},
        }
    finally:
        for p in procs:
            if p.poll() is None:
                p.terminate()
        for p in procs:
            try:
                p.wait(timeout=20)
            except subprocess.TimeoutExpired:
                p.kill()
        if broker is not None:
            broker.stop()


def cli() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--rate", type=float, default=300)
    args = parser.parse_args()
    result = asyncio.run(main(args.seconds, args.concurrency, args.rate))
    RESULTS.mkdir(exist_ok=True)
    stamp = time.strftime("%Y%m%dT%H%M%S")
    for name in (f"pipeline-{stamp}.json", "pipeline.json"):
        (RESULTS / name).write_text(json.dumps(result, indent=2))
    p, b, f = result["pipeline"], result["baseline"], result["broker_floor_three_hops_at_rate"]
    pa = p["latency_at_rate_after_throughput"]
    print(
        f"pipeline: {p['throughput']['rps']} req/s @c{args.concurrency}, p50/p95/p99 {p['latency_at_rate']['p50_ms']}/"
        f"{p['latency_at_rate']['p95_ms']}/{p['latency_at_rate']['p99_ms']} ms @{args.rate:.0f} req/s "
        f"(after the throughput run: {pa['p50_ms']}/{pa['p95_ms']}/{pa['p99_ms']}) | "
        f"baseline: {b['throughput']['rps']} req/s, p50/p95/p99 {b['latency_at_rate']['p50_ms']}/"
        f"{b['latency_at_rate']['p95_ms']}/{b['latency_at_rate']['p99_ms']} ms | "
        f"broker floor (3 bare hops @{args.rate:.0f}/s): p50/p99 {f['p50_ms']}/{f['p99_ms']} ms"
    )


if __name__ == "__main__":
    cli()
