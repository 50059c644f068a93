"""The skeleton pipeline: the least three processes joined by Kafka cost per call with these libraries.

Issue 8 asks that ingress, processors and egress together use at most 2x the in-process baseline's
CPU per call. This measures what that shape costs before any Junction code runs: an aiohttp edge
that produces each call (about an InboundCall's size) and waits for the reply on a topic it reads,
a bare aiokafka relay (bench/kafka_relay.py), and an aiokafka worker that makes the REST call on
aiohttp and produces the reply. Same client factory, broker profile, event loop and upstream stub
as the stages; no routing, codec, auth, de-duplication, breaker, metrics or faust. The stages
cannot use less CPU per call than this, so its ratio to the baseline is the target's floor::

    python -m bench.skeleton --broker kafka --phases c64,r300

Prints, per phase, the skeleton's CPU per call (each process and the sum) and the baseline's, run
one after the other on the same machine; writes bench/results/skeleton-<broker>.json.
"""
from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import shutil
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

from aiohttp import ClientSession, ClientTimeout, web
from aiokafka import TopicPartition

from bench.broker_floor import new_topics
from bench.load import fixed_concurrency
from bench.procs import spawn, stop, wait_http_ok
from bench.run import RESULTS, routes_file, start_broker, wait_for_coordinator
from bench.stages import phase_cpu
from core.kafka import ensure_topics, make_consumer, make_producer, wait_for_broker
from core.settings import Settings, load_settings
from junction.broker import free_port
from junction.cli import use_uvloop

__all__ = ["main"]

ROLES = ("edge", "relay", "worker")
PAD = b"x" * 240  # with the key and the path, about an InboundCall's 300 bytes


async def edge(port: int, requests: str, results: str, partitions: int) -> None:
    """Produce each HTTP call, answer it with the reply read back from ``results``."""
    settings = load_settings()
    producer = make_producer(settings)
    replies = make_consumer(settings)
    waiting: dict[bytes, asyncio.Future[bytes]] = {}
    await producer.start()
    await replies.start()
    tps = [TopicPartition(results, p) for p in range(partitions)]
    replies.assign(tps)
    await replies.seek_to_end(*tps)

    async def read_replies() -> None:
        while True:
            for records in (await replies.getmany(timeout_ms=1000, max_records=500)).values():
                for record in records:
                    future = waiting.pop(record.key, None)
                    if future is not None and not future.done():
                        future.set_result(record.value)

    async def handle(request: web.Request) -> web.Response:
        body = await request.read()
        key = uuid.uuid4().hex.encode()
        future = waiting[key] = asyncio.get_running_loop().create_future()
        try:
            await producer.send_and_wait(requests, value=request.path.encode() + body + PAD, key=key)
            async with asyncio.timeout(10):  # as the gateway bounds its wait
                reply = await future
        finally:
            waiting.pop(key, None)
        return web.Response(body=reply, content_type="application/json")

    reader = asyncio.create_task(read_replies())
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        await asyncio.Event().wait()
    finally:
        reader.cancel()
        await runner.cleanup()
        await replies.stop()
        await producer.stop()


async def worker(calls: str, results: str, group: str, upstream: str) -> None:
    """Consume each call, make the REST call, produce its answer; calls run concurrently, as egress'."""
    settings = load_settings()
    consumer = make_consumer(settings, calls, group=group)
    producer = make_producer(settings)
    session = ClientSession(timeout=ClientTimeout(total=10))
    await consumer.start()
    await producer.start()
    tasks: set[asyncio.Task[None]] = set()

    async def one(key: bytes) -> None:
        async with session.get(upstream) as response:
            body = await response.read()
        await producer.send_and_wait(results, value=body + PAD, key=key)

    try:
        while True:
            for records in (await consumer.getmany(timeout_ms=1000, max_records=500)).values():
                for record in records:
                    task = asyncio.create_task(one(record.key))
                    tasks.add(task)
                    task.add_done_callback(tasks.discard)
    finally:
        await session.close()
        await producer.stop()
        await consumer.stop()


async def main(kind: str, phases: list[str], seconds: float, warmup: float) -> dict[str, Any]:
    run = uuid.uuid4().hex[:8]
    async with contextlib.AsyncExitStack() as stack:
        work = Path(tempfile.mkdtemp(prefix=f"junction-skeleton-{run}-"))
        stack.callback(shutil.rmtree, work, True)
        broker = await start_broker(kind, stack)
        upstream_port, edge_port, base_port = free_port(), free_port(), free_port()
        settings = load_settings(
            kafka_bootstrap_servers=broker.bootstrap, broker_profile="embedded" if broker.kind == "embedded" else "kafka",
            topic_prefix=f"s{run}", group_prefix=f"s{run}", log_level="WARNING", allow_private_targets=True,
            routes_file=str(routes_file(work, upstream_port)),
            **{name: 0 for name in Settings.__dataclass_fields__ if name.endswith("_metrics_port")},
        )
        await wait_for_broker(settings)
        await ensure_topics(settings)  # the baseline's router asks the broker about the replies topic
        await wait_for_coordinator(settings)
        partitions = settings.partitions
        requests, calls, results = (f"s{run}.{name}" for name in ("requests", "calls", "results"))
        await new_topics(settings, [requests, calls, results], partitions)
        env = {**os.environ, **settings.to_env()}
        me = ["-m", "bench.skeleton"]
        procs = {
            "upstream": spawn(["-m", "bench.upstream", "--port", str(upstream_port)], env),
            "worker": spawn([*me, "worker", "--source", calls, "--target", results, "--group", "worker",
                             "--upstream", f"http://127.0.0.1:{upstream_port}/items"], env),
            "relay": spawn(["-m", "bench.kafka_relay", "--source", requests, "--target", calls, "--group", "relay"], env),
            "edge": spawn([*me, "edge", "--port", str(edge_port), "--source", results, "--target", requests,
                           "--partitions", str(partitions)], env),
        }
        stack.callback(stop, list(procs.values()))
        await wait_http_ok(f"http://127.0.0.1:{upstream_port}/ready", proc=procs["upstream"])
        url = f"http://127.0.0.1:{edge_port}/bench/items"
        await wait_http_ok(url, proc=procs["edge"])  # answers once the relay and the worker joined their groups
        await fixed_concurrency(url, concurrency=16, seconds=warmup)
        skeleton = [await phase_cpu(url, {r: procs[r].pid for r in ROLES}, phase, seconds) for phase in phases]
        stop([procs[r] for r in ROLES])  # the baseline gets the machine to itself

        baseline_proc = spawn(["-m", "bench.baseline", "--port", str(base_port), "--routes", settings.routes_file], env)
        stack.callback(stop, [baseline_proc])
        base_url = f"http://127.0.0.1:{base_port}/bench/items"
        await wait_http_ok(base_url, proc=baseline_proc)
        await fixed_concurrency(base_url, concurrency=16, seconds=min(warmup, 5.0))
        baseline = [await phase_cpu(base_url, {"baseline": baseline_proc.pid}, phase, seconds) for phase in phases]
    rows = []
    for s, b in zip(skeleton, baseline):
        ratio = s["sum_ms"] / b["sum_ms"] if b["sum_ms"] else 0.0
        rows.append({"phase": s["phase"], "skeleton": s, "baseline": b, "ratio": round(ratio, 2)})
        print(f"{s['phase']}: skeleton {s['rps']} req/s, p50/p99 {s['p50_ms']}/{s['p99_ms']} ms, CPU ms/call "
              f"{s['cpu_ms_per_call']} = {s['sum_ms']} | baseline {b['rps']} req/s, {b['sum_ms']} ms/call | "
              f"skeleton = {ratio:.2f}x the baseline", flush=True)
    return {"broker": broker.version, "phases": rows}


def cli() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="role")
    e = sub.add_parser("edge")
    e.add_argument("--port", type=int, required=True)
    e.add_argument("--source", required=True, help="the results topic it reads replies from")
    e.add_argument("--target", required=True, help="the requests topic")
    e.add_argument("--partitions", type=int, required=True)
    w = sub.add_parser("worker")
    w.add_argument("--source", required=True)
    w.add_argument("--target", required=True)
    w.add_argument("--group", required=True)
    w.add_argument("--upstream", required=True)
    parser.add_argument("--broker", choices=("embedded", "kafka"), default="embedded")
    parser.add_argument("--phases", default="c64,r300", help="comma-separated: c<calls in flight>, r<calls a second>")
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--warmup", type=float, default=None, help="seconds at concurrency 16 (default: 30 on Kafka, 2 on Tansu)")
    args = parser.parse_args()
    if args.role in ("edge", "worker"):
        use_uvloop()  # as `junction serve` runs the stages
    if args.role == "edge":
        asyncio.run(edge(args.port, args.target, args.source, args.partitions))
    elif args.role == "worker":
        asyncio.run(worker(args.source, args.target, args.group, args.upstream))
    else:
        warmup = args.warmup if args.warmup is not None else (30.0 if args.broker == "kafka" else 2.0)
        result = asyncio.run(main(args.broker, args.phases.split(","), args.seconds, warmup))
        RESULTS.mkdir(exist_ok=True)
        out = {"when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), **result}
        (RESULTS / f"skeleton-{args.broker}.json").write_text(json.dumps(out, indent=2) + "\n")


if __name__ == "__main__":
    cli()
