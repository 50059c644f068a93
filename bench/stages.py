"""The three stages alone, phase after phase: the CPU each uses per call, to compare two builds.

``make bench`` measures everything once, with the broker floor and the baseline in between; runs of
identical code then spread by 10-20%. This starts the pipeline only (no control: its metrics stage
is off the request path), warms it up once, and repeats load phases, printing the CPU time of
ingress, processors and egress per call in each. Run it alternately on two builds and compare the
means::

    python -m bench.stages --broker kafka --phases r300,c64,c64

A phase is ``c<N>`` (N calls in flight, closed loop) or ``r<N>`` (N calls a second). Writes
bench/results/stages-<broker>.json.
"""
from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import time
from typing import Any

from bench.load import LoadResult, fixed_concurrency, fixed_rate
from bench.run import RESULTS, STAGES, cpu_during, start_pipeline

__all__ = ["main", "phase_cpu", "run_phase"]


async def run_phase(url: str, phase: str, seconds: float) -> LoadResult:
    """One load phase: ``c<N>`` (N calls in flight, closed loop) or ``r<N>`` (N calls a second)."""
    kind, number = phase[:1], phase[1:]
    if kind == "c" and number.isdigit():
        return await fixed_concurrency(url, concurrency=int(number), seconds=seconds)
    if kind == "r" and number.replace(".", "", 1).isdigit():
        return await fixed_rate(url, rate=float(number), seconds=seconds)
    raise SystemExit(f"unknown phase {phase!r}: c<calls in flight> or r<calls a second>")


async def phase_cpu(url: str, pids: dict[str, int], phase: str, seconds: float) -> dict[str, Any]:
    """One load phase, its summary and the CPU ms per call of each process of ``pids`` (and their sum)."""
    load, used = await cpu_during(pids, run_phase(url, phase, seconds))
    calls = max(1, load.ok)
    per_call = {name: round(used[name] * 1000 / calls, 3) for name in pids}
    return {"phase": phase, **load.summary(), "cpu_ms_per_call": per_call, "sum_ms": round(sum(per_call.values()), 3)}


async def main(kind: str, phases: list[str], seconds: float, warmup: float) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    async with contextlib.AsyncExitStack() as stack:
        p = await start_pipeline(kind, stack, control=False)
        await fixed_concurrency(p.url, concurrency=16, seconds=warmup)
        for phase in phases:
            await asyncio.sleep(1)
            row = await phase_cpu(p.url, {name: p.procs[name].pid for name in STAGES}, phase, seconds)
            rows.append(row)
            print(f"{phase}: {row['rps']} req/s, p50/p99 {row['p50_ms']}/{row['p99_ms']} ms, errors {row['errors']} | "
                  f"CPU ms/call {row['cpu_ms_per_call']} = {row['sum_ms']}", flush=True)
    return rows


def cli() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--broker", choices=("embedded", "kafka"), default="embedded")
    parser.add_argument("--phases", default="r300,c64,c64", help="comma-separated: c<calls in flight>, r<calls a second>")
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--warmup", type=float, default=None, help="seconds at concurrency 16 (default: 15 on Kafka, 2 on Tansu)")
    args = parser.parse_args()
    warmup = args.warmup if args.warmup is not None else (15.0 if args.broker == "kafka" else 2.0)
    rows = asyncio.run(main(args.broker, args.phases.split(","), args.seconds, warmup))
    RESULTS.mkdir(exist_ok=True)
    out = {"when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "broker": args.broker, "phases": rows}
    (RESULTS / f"stages-{args.broker}.json").write_text(json.dumps(out, indent=2) + "\n")


if __name__ == "__main__":
    cli()
