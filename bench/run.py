"""``make bench``: the full sync path against the in-process baseline, in one run.

On the chosen broker (``--broker embedded``: Tansu; ``--broker kafka``: Apache Kafka of the run's
own, fetched with Maven and started on free ports; ``KAFKA_BOOTSTRAP_SERVERS`` set: that Kafka),
with PostgreSQL and Redis of the run's own unless ``JUNCTION_DATABASE_URL`` / ``JUNCTION_REDIS_URL``
are set. Starts the upstream stub and ingress, processors and egress as separate processes (as
``junction up`` runs them) and measures them; then the broker floor (three bare aiokafka hops at
the same rate) and the in-process baseline. Around each throughput phase it reads the CPU time of
every process involved. Writes bench/results/pipeline-<broker>.json (and a timestamped copy) and
prints a one-line summary with the targets.
"""
from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import json
import os
import platform
import shutil
import tempfile
import time
import uuid
from collections.abc import Awaitable
from pathlib import Path
from typing import Any

from aiokafka.errors import KafkaError

from bench.broker_floor import broker_floor, relay_cpu
from bench.load import LoadResult, fixed_concurrency, fixed_rate
from bench.procs import cpu_seconds, machine_busy_seconds, spawn, stop, wait_http_ok
from core.kafka import ensure_topics, make_admin, wait_for_broker
from core.settings import Settings, load_settings
from junction.broker import EmbeddedBroker, free_port
from junction.embedded_stores import EmbeddedStores
from junction.kafka_local import KAFKA_VERSION, LocalKafka, fetch

RESULTS = Path(__file__).parent / "results"
# The targets, for Apache Kafka; the embedded run reports them for comparison only.
TARGET_RATIO = 0.5
TARGET_P99_MS = 30.0
# Issue 8: ingress, processors and egress together use at most this many times the baseline's CPU per
# call. Broker-independent; control (its metrics stage reads the same topics, off the path) is shown apart.
TARGET_CPU_RATIO = 2.0
STAGES = ("ingress", "processors", "egress")


@dataclasses.dataclass
class Broker:
    kind: str  # "embedded" or "kafka"
    bootstrap: str
    pid: int | None  # None: an external broker, whose CPU is not ours to read
    version: str


async def start_broker(kind: str, stack: contextlib.AsyncExitStack) -> Broker:
    external = os.environ.get("KAFKA_BOOTSTRAP_SERVERS")
    if external:
        return Broker("kafka", external, None, "external")
    if kind == "embedded":
        tansu = EmbeddedBroker(free_port())
        tansu.start()
        stack.callback(tansu.stop)
        await tansu.wait_ready()
        assert tansu.process is not None
        return Broker("embedded", tansu.bootstrap, tansu.process.pid, Path(tansu.process.args[0]).name)
    home = Path(tempfile.mkdtemp(prefix="junction-bench-kafka-"))
    stack.callback(shutil.rmtree, home, True)
    kafka = LocalKafka(home, free_port(), free_port(), libs=fetch())
    kafka.start()
    stack.callback(kafka.stop)
    await kafka.wait_ready()
    assert kafka.process is not None
    return Broker("kafka", kafka.bootstrap, kafka.process.pid, f"Apache Kafka {KAFKA_VERSION}")


async def start_stores(settings: Settings, stack: contextlib.AsyncExitStack) -> tuple[Settings, dict[str, int]]:
    """``settings`` with database and Redis URLs (the configured ones, else servers of this run's own),
    and the pids of the servers started here."""
    stores = EmbeddedStores(settings.with_overrides(embedded_postgres_port=free_port(), embedded_redis_port=free_port()),
                            durable=False)
    await stores.start()
    stack.callback(stores.stop)
    pids = {name: server.process.pid for name, server in (("postgres", stores.postgres), ("redis", stores.redis))
            if server is not None and server.process is not None}
    return stores.apply(settings), pids


async def migrate(settings: Settings) -> None:
    from control.migrate import apply_migrations
    from core.db import make_pool

    pool = await make_pool(settings, max_size=1)
    try:
        await apply_migrations(pool)
    finally:
        await pool.close()


async def cpu_during(pids: dict[str, int | None], load: Awaitable[LoadResult]) -> tuple[LoadResult, dict[str, float]]:
    """``load``'s result, and the CPU seconds (user + system) each process of ``pids`` used while it ran."""
    known = {name: pid for name, pid in pids.items() if pid is not None}
    # The bench process itself is the load generator; its children are the others, so no tree.
    before = {name: cpu_seconds(pid, tree=name != "load generator") for name, pid in known.items()}
    result = await load
    return result, {name: cpu_seconds(pid, tree=name != "load generator") - before[name] for name, pid in known.items()}


async def measure(url: str, pids: dict[str, int | None], *, concurrency: int, rate: float, seconds: float,
                  warmup: float) -> dict[str, object]:
    """Warm-up, latency at the offered rate, then throughput, then latency again (a broker that slows
    down as it fills shows in the second figure). CPU per call is read around the throughput phase and
    the first latency phase."""
    await fixed_concurrency(url, concurrency=16, seconds=warmup)
    # Per-call CPU falls as the rate grows (each broker request then carries more records; see
    # bench/skeleton.py), so the throughput phase compares the pipeline and the baseline each at its own
    # rate; this phase compares them at the same one.
    latency, used_at_rate = await cpu_during(pids, fixed_rate(url, rate=rate, seconds=seconds))
    at_rate = {name: round(s * 1000 / max(1, latency.ok), 3) for name, s in used_at_rate.items()}
    await asyncio.sleep(1)
    busy_before = machine_busy_seconds()
    throughput, used = await cpu_during(pids, fixed_concurrency(url, concurrency=concurrency, seconds=seconds))
    busy = machine_busy_seconds() - busy_before
    # Whatever else ran on the machine meanwhile (another user's tests, say) competed for the same cores.
    used["other processes"] = max(0.0, busy - sum(used.values()))
    calls = max(1, throughput.ok)
    cpu = {name: {"ms_per_call": round(s * 1000 / calls, 3), "cores": round(s / throughput.seconds, 2)}
           for name, s in used.items()}
    await asyncio.sleep(1)
    latency_after = await fixed_rate(url, rate=rate, seconds=seconds)
    return {"latency_at_rate": latency.summary(), "throughput": throughput.summary(),
            "latency_at_rate_after_throughput": latency_after.summary(), "cpu_during_throughput": cpu,
            "cpu_ms_per_call_at_rate": at_rate}


async def wait_for_coordinator(settings: Settings, timeout_s: float = 30.0) -> None:
    """A fresh Apache Kafka creates its offsets topic on the first coordinator lookup; waiting for it here
    keeps the stages' first group joins from logging a page of "coordinator dead" warnings."""
    admin = make_admin(settings)
    await admin.start()
    try:
        until = time.monotonic() + timeout_s
        while True:
            try:
                await admin.find_coordinator(settings.group_id("egress"))
                return
            except KafkaError:
                if time.monotonic() > until:
                    raise
                await asyncio.sleep(0.2)
    finally:
        await admin.close()


def routes_file(work: Path, upstream_port: int) -> Path:
    path = work / "routes.json"
    path.write_text(json.dumps({
        "orgs": [{"slug": "bench", "name": "Bench"}],
        "connectors": [{"id": "stub", "org": "bench", "name": "stub",
                        "target": {"protocol": "rest", "url": f"http://127.0.0.1:{upstream_port}/items", "method": "*"}}],
        "apis": [{"id": "items", "org": "bench", "name": "items", "methods": ["*"], "path": "/items", "connector": "stub",
                  "timeout_ms": 10000}],
    }))
    return path


@dataclasses.dataclass
class Pipeline:
    """A running pipeline of the benchmark's own: its broker, stores, upstream stub and stages."""

    broker: Broker
    settings: Settings
    env: dict[str, str]
    routes: Path
    procs: dict[str, Any]  # name -> subprocess.Popen
    pids: dict[str, int | None]  # every process whose CPU is read, the load generator (this one) included

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.settings.ingress_port}/bench/items"


async def start_pipeline(kind: str, stack: contextlib.AsyncExitStack, *, control: bool = True) -> Pipeline:
    """Broker, stores, the upstream stub and the stages as separate processes (as `junction up` runs
    them), each ready; all stopped and removed when ``stack`` closes."""
    run = uuid.uuid4().hex[:8]
    work = Path(tempfile.mkdtemp(prefix=f"junction-bench-{run}-"))
    os.chmod(work, 0o755)  # our own folder: PostgreSQL runs as nobody under root and must reach it
    stack.callback(shutil.rmtree, work, True)
    broker = await start_broker(kind, stack)
    upstream_port = free_port()
    routes = routes_file(work, upstream_port)
    settings = load_settings(
        kafka_bootstrap_servers=broker.bootstrap, broker_profile="embedded" if broker.kind == "embedded" else "kafka",
        topic_prefix=f"b{run}", group_prefix=f"b{run}", redis_prefix=f"jb:{run}:", database_schema=f"b_{run}",
        ingress_port=free_port(), processors_port=free_port(), egress_port=free_port(), control_port=free_port(),
        data_dir=str(work), log_level="WARNING", allow_private_targets=True, routes_file=str(routes),
        # No /metrics listeners: nothing scrapes them here, and their fixed default ports may be taken.
        **{name: 0 for name in Settings.__dataclass_fields__ if name.endswith("_metrics_port")},
    )
    settings, store_pids = await start_stores(settings, stack)
    await migrate(settings)
    await wait_for_broker(settings)
    await ensure_topics(settings)
    await wait_for_coordinator(settings)
    env = {**os.environ, **settings.to_env()}

    procs = {"upstream": spawn(["-m", "bench.upstream", "--port", str(upstream_port)], env)}
    # Control too: its observe stage reads every topic for metrics and request logs, off the request
    # path; its CPU is reported beside the three stages', not in their sum.
    services = (("control", settings.control_port),) if control else ()
    services += (("egress", settings.egress_port), ("processors", settings.processors_port),
                 ("ingress", settings.ingress_port))
    for service, _ in services:
        procs[service] = spawn(["-m", "junction", "serve", service], env)
    stack.callback(stop, list(procs.values()))
    await wait_http_ok(f"http://127.0.0.1:{upstream_port}/ready", proc=procs["upstream"])
    for service, port in services:
        await wait_http_ok(f"http://127.0.0.1:{port}/readyz", proc=procs[service])
    pids: dict[str, int | None] = {name: p.pid for name, p in procs.items()}
    pids.update({"broker": broker.pid, **store_pids, "load generator": os.getpid()})
    return Pipeline(broker, settings, env, routes, procs, pids)


async def main(kind: str, seconds: float, concurrency: int, rate: float, warmup: float) -> dict[str, Any]:
    async with contextlib.AsyncExitStack() as stack:
        p = await start_pipeline(kind, stack)
        pipeline = await measure(p.url, p.pids, concurrency=concurrency, rate=rate, seconds=seconds, warmup=warmup)
        stop([p.procs[s] for s in ("ingress", "processors", "egress", "control")])  # the floor gets the machine to itself

        floor = (await broker_floor(p.settings, rate=rate, seconds=seconds)).summary()
        floor_cpu = await relay_cpu(p.settings, p.env, concurrency=concurrency, seconds=seconds, warmup=3.0)

        base_port = free_port()
        baseline_proc = spawn(["-m", "bench.baseline", "--port", str(base_port), "--routes", str(p.routes)], p.env)
        stack.callback(stop, [baseline_proc])
        await wait_http_ok(f"http://127.0.0.1:{base_port}/bench/items", proc=baseline_proc)
        baseline = await measure(f"http://127.0.0.1:{base_port}/bench/items",
                                 {"baseline": baseline_proc.pid, "upstream": p.procs["upstream"].pid,
                                  "load generator": os.getpid()},
                                 concurrency=concurrency, rate=rate, seconds=seconds, warmup=warmup)
        result: dict[str, Any] = {
            "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
            "broker": {"kind": p.broker.kind, "version": p.broker.version, "bootstrap": p.broker.bootstrap},
            "broker_profile": dataclasses.asdict(p.settings.broker),
            "params": {"seconds": seconds, "concurrency": concurrency, "rate": rate, "warmup_seconds": warmup},
            "pipeline": pipeline,
            "baseline": baseline,
            "broker_floor_three_hops_at_rate": floor,
            "broker_floor_cpu_three_relays": floor_cpu,
        }
    return result


def targets(result: dict[str, Any]) -> dict[str, Any]:
    """The issue's two targets: throughput ≥ 0.5× the baseline of the same run, and p99 ≤ 30 ms at the
    offered rate both before and after the throughput phase (the worse of the two counts)."""
    p, b = result["pipeline"], result["baseline"]
    ratio = p["throughput"]["rps"] / b["throughput"]["rps"] if b["throughput"]["rps"] else 0.0
    p99 = max(p["latency_at_rate"]["p99_ms"], p["latency_at_rate_after_throughput"]["p99_ms"])
    errors = sum(p[k]["errors"] for k in ("latency_at_rate", "throughput", "latency_at_rate_after_throughput"))
    stages_ms = sum(p["cpu_during_throughput"][s]["ms_per_call"] for s in STAGES)
    base_ms = b["cpu_during_throughput"]["baseline"]["ms_per_call"]
    cpu_ratio = stages_ms / base_ms if base_ms else 0.0
    stages_at_rate = sum(p["cpu_ms_per_call_at_rate"][s] for s in STAGES)
    base_at_rate = b["cpu_ms_per_call_at_rate"]["baseline"]
    return {
        "cpu_ms_per_call_stages": round(stages_ms, 3), "cpu_ratio": round(cpu_ratio, 2), "cpu_met": cpu_ratio <= TARGET_CPU_RATIO,
        "cpu_ms_per_call_stages_at_rate": round(stages_at_rate, 3),
        "cpu_ratio_at_rate": round(stages_at_rate / base_at_rate, 2) if base_at_rate else 0.0,
        "throughput_ratio": round(ratio, 2), "throughput_met": ratio >= TARGET_RATIO,
        "p99_ms_worst": p99, "p99_met": p99 <= TARGET_P99_MS and errors == 0, "pipeline_errors": errors,
    }


def _met(ok: bool) -> str:
    return "MET" if ok else "MISSED"


def summary(result: dict[str, Any], t: dict[str, Any]) -> str:
    p, b, f = result["pipeline"], result["baseline"], result["broker_floor_three_hops_at_rate"]
    rate = result["params"]["rate"]
    la, lb = p["latency_at_rate"], p["latency_at_rate_after_throughput"]
    cpu = {**p["cpu_during_throughput"], "baseline": b["cpu_during_throughput"]["baseline"]}
    cpu_text = ", ".join(f"{name} {cpu[name]['ms_per_call']}" for name in (*STAGES, "broker", "baseline")
                         if name in cpu)
    if "control" in cpu:
        cpu_text += f" (off the request path: control's metrics stage {cpu['control']['ms_per_call']})"
    scope = "" if result["broker"]["kind"] == "kafka" else " (the targets are for Apache Kafka; shown for comparison)"
    return (
        f"[{result['broker']['version']}, warm-up {result['params']['warmup_seconds']:.0f} s] "
        f"pipeline: {p['throughput']['rps']} req/s @c{result['params']['concurrency']}, "
        f"p50/p95/p99 {la['p50_ms']}/{la['p95_ms']}/{la['p99_ms']} ms @{rate:.0f} req/s "
        f"(after the throughput run: {lb['p50_ms']}/{lb['p95_ms']}/{lb['p99_ms']}) | "
        f"baseline: {b['throughput']['rps']} req/s, p50/p95/p99 {b['latency_at_rate']['p50_ms']}/"
        f"{b['latency_at_rate']['p95_ms']}/{b['latency_at_rate']['p99_ms']} ms | "
        f"broker floor (3 bare hops @{rate:.0f}/s): p50/p99 {f['p50_ms']}/{f['p99_ms']} ms | "
        f"CPU ms/call: {cpu_text}; three bare Kafka relays @c{result['params']['concurrency']}: "
        f"{result['broker_floor_cpu_three_relays']['cpu_ms_per_message']} ms/message at "
        f"{result['broker_floor_cpu_three_relays']['rps']} msg/s (cores used by other processes during the throughput phases: pipeline "
        f"{p['cpu_during_throughput']['other processes']['cores']}, baseline {b['cpu_during_throughput']['other processes']['cores']}) | "
        f"targets{scope}: throughput >= {TARGET_RATIO}x baseline: {t['throughput_ratio']}x {_met(t['throughput_met'])}; "
        f"stages' CPU <= {TARGET_CPU_RATIO:.0f}x baseline's: {t['cpu_ms_per_call_stages']} ms = {t['cpu_ratio']}x "
        f"{_met(t['cpu_met'])} (at {rate:.0f} req/s, not a target: {t['cpu_ms_per_call_stages_at_rate']} ms against "
        f"{b['cpu_ms_per_call_at_rate']['baseline']} = {t['cpu_ratio_at_rate']}x); "
        f"p99 <= {TARGET_P99_MS:.0f} ms @{rate:.0f} req/s: {t['p99_ms_worst']} ms {_met(t['p99_met'])}"
        + (f" ({t['pipeline_errors']} failed calls)" if t["pipeline_errors"] else "")
    )


def cli() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--broker", choices=("embedded", "kafka"), default="embedded")
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--rate", type=float, default=300)
    parser.add_argument("--warmup", type=float, default=None,
                        help="seconds of load before the first measurement (default: 30 on Apache Kafka, 2 on the embedded broker)")
    args = parser.parse_args()
    # A freshly started JVM spends its first ~30 s under load compiling (its JIT threads then use as
    # much CPU as the broker's own); a production Kafka is long past that. Tansu needs no warming, and
    # longer would only fill it (it slows down as it fills).
    external = bool(os.environ.get("KAFKA_BOOTSTRAP_SERVERS"))
    warmup = args.warmup if args.warmup is not None else 30.0 if args.broker == "kafka" or external else 2.0
    result = asyncio.run(main(args.broker, args.seconds, args.concurrency, args.rate, warmup))
    t = result["targets"] = targets(result)
    line = result["summary"] = summary(result, t)
    RESULTS.mkdir(exist_ok=True)
    kind = result["broker"]["kind"]
    stamp = time.strftime("%Y%m%dT%H%M%S")
    for name in (f"pipeline-{kind}-{stamp}.json", f"pipeline-{kind}.json"):
        (RESULTS / name).write_text(json.dumps(result, indent=2))
    print(line)


if __name__ == "__main__":
    cli()
