"""``make bench-config``: the cost of the configuration snapshot at scale.

Two shapes of configuration, as the control plane publishes them (one org event,
then a connector per ten APIs, then the APIs, as ConfigEvent records):

- ``one-org``: 10,000 APIs in one organisation;
- ``many-orgs``: 100 organisations of 1,000 APIs each (100,000 APIs).

For each it measures

- the cold start of a :class:`ConfigSnapshot`: applying every event (target ≤ 5 s),
  and the same with the Avro decoding the config follower does for each record;
- one API change applied to the loaded snapshot (a new version with a new path and
  methods), one API added and one deleted: the time ``apply`` holds the event loop
  (target ≤ 5 ms);

then the cost of resolving a route with 10 APIs in the organisation and with
10,000 (it should be about the same), and, unless ``--no-follower``, how long a
:class:`ConfigFollower` takes to read 10,000 APIs' events from the embedded broker
until it is synced, and the longest it held the event loop meanwhile.

Every figure is taken twice: wall-clock time, and the CPU time of this process
(``time.process_time``). On an idle machine they agree; on a busy one (other
processes wanting the cores: the load average is recorded) the wall-clock
figures include time spent waiting for a core, and the CPU figures are the ones
to compare with the targets.

Prints a summary and writes bench/results/config.json. A benchmark, not a test:
nothing here fails on a slow figure.
"""
from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import platform
import random
import statistics
import sys
import time
import uuid
from pathlib import Path
from typing import Any

from core.errors import MethodNotAllowed, NotFound
from core.snapshot import ConfigSnapshot
from schemas import decode, encode

RESULTS = Path(__file__).parent / "results"
TARGET_COLD_START_S = 5.0
TARGET_CHANGE_MS = 5.0
CONNECTORS_EVERY = 10  # one connector per ten APIs
METHOD_SETS = (["GET"], ["GET", "POST"], ["PUT", "PATCH", "DELETE"], ["*"], ["POST"])


def _id(*parts: object) -> str:
    return str(uuid.uuid5(uuid.NAMESPACE_URL, "/".join(map(str, parts))))


def api_path(i: int) -> str:
    """A mix of shapes like a real organisation's: plain paths, one or two
    parameters, and catch-alls; distinct per ``i``, so no two clash."""
    svc, ver = f"svc{i % 97}", f"v{1 + i % 3}"
    kind = i % 8
    if kind in (0, 1):
        return f"/{svc}/{ver}/res{i}"
    if kind in (2, 3, 4):
        return f"/{svc}/{ver}/res{i}/{{id}}"
    if kind == 5:
        return f"/{svc}/{ver}/res{i}/{{id}}/items/{{item}}"
    if kind == 6:
        return f"/{svc}/{{tenant}}/res{i}/{{id}}"
    return f"/{svc}/files{i}/{{rest+}}"


def request_for(i: int) -> str:
    """A request path the API ``i`` serves."""
    return (api_path(i).replace("{id}", "42").replace("{item}", "7").replace("{tenant}", "t1")
            .replace("{rest+}", "a/b/c.txt"))


class EventIds:
    def __init__(self) -> None:
        self.n = 0

    def __call__(self) -> int:
        self.n += 1
        return self.n


def _event(ids: EventIds, kind: str, id_: str, org: str, version: int, op: str, doc: dict[str, Any] | None) -> dict[str, Any]:
    return {"event_id": ids(), "kind": kind, "id": id_, "org": org, "version": version, "op": op,
            "document": json.dumps(doc) if doc is not None else None, "emitted_at_ms": 0}


def api_doc(org_slug: str, org_id: str, i: int, version: int = 1, path: str | None = None,
            methods: list[str] | None = None) -> dict[str, Any]:
    return {"id": _id(org_slug, "api", i), "org": org_slug, "org_id": org_id, "name": f"api-{i}",
            "protocol": "rest", "methods": methods or METHOD_SETS[i % len(METHOD_SETS)], "path": path or api_path(i),
            "connector": _id(org_slug, "connector", i // CONNECTORS_EVERY), "timeout_ms": 10_000,
            "auth": {"mode": "none"}, "version": version, "enabled": True}


def org_events(ids: EventIds, org_index: int, n_apis: int) -> list[dict[str, Any]]:
    slug = f"org{org_index:03d}"
    org_id = _id(slug)
    events = [_event(ids, "org", org_id, slug, 1, "upsert", {"id": org_id, "slug": slug, "name": slug.title(),
                                                             "enabled": True})]
    for c in range((n_apis + CONNECTORS_EVERY - 1) // CONNECTORS_EVERY):
        cid = _id(slug, "connector", c)
        events.append(_event(ids, "connector", cid, slug, 1, "upsert", {
            "id": cid, "org": slug, "org_id": org_id, "name": f"backend-{c}",
            "target": {"protocol": "rest", "url": f"https://backend{c}.internal/api/{{id}}", "method": "GET"},
            "script": None, "settings": {}, "version": 1}))
    for i in range(n_apis):
        doc = api_doc(slug, org_id, i)
        events.append(_event(ids, "api", doc["id"], slug, 1, "upsert", doc))
    return events


def config_events(n_orgs: int, apis_per_org: int) -> list[dict[str, Any]]:
    ids = EventIds()
    return [e for o in range(n_orgs) for e in org_events(ids, o, apis_per_org)]


def _ms(seconds: float) -> float:
    return round(seconds * 1000, 3)


def _summary(samples: list[float]) -> dict[str, float]:
    s = sorted(samples)
    return {"median_ms": _ms(statistics.median(s)), "p99_ms": _ms(s[min(len(s) - 1, int(len(s) * 0.99))]),
            "max_ms": _ms(s[-1]), "n": len(s)}


class Clock:
    """Wall-clock and CPU time of one stretch."""

    def __enter__(self) -> Clock:
        gc.collect()
        self.wall, self.cpu = time.perf_counter(), time.process_time()
        return self

    def __exit__(self, *exc: object) -> None:
        self.wall, self.cpu = time.perf_counter() - self.wall, time.process_time() - self.cpu

    def seconds(self) -> dict[str, float]:
        return {"cpu_s": round(self.cpu, 3), "wall_s": round(self.wall, 3)}


def timed_apply(events: list[dict[str, Any]]) -> tuple[ConfigSnapshot, Clock]:
    """Every event applied one by one, as the follower does (GC on, as in a service)."""
    snap = ConfigSnapshot()
    with Clock() as clock:
        for event in events:
            snap.apply(event)
    return snap, clock


def timed_decode_apply(records: list[bytes]) -> Clock:
    """What the follower does per record, without the broker: decode, then apply."""
    snap = ConfigSnapshot()
    with Clock() as clock:
        for raw in records:
            _, event = decode(raw, expected="ConfigEvent")
            snap.apply(event)
    return clock


def _timed(call: Any, cpu: list[float], wall: list[float]) -> None:
    w, c = time.perf_counter(), time.process_time()
    call()
    cpu.append(time.process_time() - c)
    wall.append(time.perf_counter() - w)


def changes(snap: ConfigSnapshot, n_orgs: int, apis_per_org: int, samples: int, rng: random.Random) -> dict[str, Any]:
    """Time single events applied to a loaded snapshot, and check each took effect."""
    ids = EventIds()
    ids.n = 10**9
    times: dict[str, tuple[list[float], list[float]]] = {k: ([], []) for k in ("update", "add", "delete")}
    for k in range(samples):
        o, i = rng.randrange(n_orgs), rng.randrange(apis_per_org)
        slug, org_id = f"org{o:03d}", _id(f"org{o:03d}")
        api_id = _id(slug, "api", i)
        version = int(snap.apis[api_id]["version"]) + 1
        doc = api_doc(slug, org_id, i, version, path=f"/changed{k}/{{id}}", methods=["GET", "PUT"])
        event = _event(ids, "api", api_id, slug, version, "upsert", doc)
        _timed(lambda: snap.apply(event), *times["update"])
        assert snap.resolve(slug, "PUT", f"/changed{k}/1").api["id"] == api_id

        n = apis_per_org + k  # a new API
        doc = api_doc(slug, org_id, n)
        event = _event(ids, "api", doc["id"], slug, 1, "upsert", doc)
        _timed(lambda: snap.apply(event), *times["add"])
        assert snap.resolve(slug, doc["methods"][0].replace("*", "GET"), request_for(n)).api["id"] == doc["id"]

        event = _event(ids, "api", doc["id"], slug, 1, "delete", None)
        _timed(lambda: snap.apply(event), *times["delete"])
        try:
            snap.resolve(slug, "GET", request_for(n))
        except (NotFound, MethodNotAllowed):
            pass
        else:
            raise AssertionError("a deleted API still resolves")
    return {k: {"cpu": _summary(cpu), "wall": _summary(wall)} for k, (cpu, wall) in times.items()}


def resolution(sizes: tuple[int, ...], rounds: int) -> dict[str, Any]:
    """Nanoseconds per resolve in one organisation of each size, for the same
    requests (served by the first ten APIs, plus a 405 and a 404)."""
    requests = [(METHOD_SETS[i % len(METHOD_SETS)][0].replace("*", "GET"), request_for(i)) for i in range(10)]
    requests += [("GET", request_for(2)), ("GET", "/nowhere/at/all")]  # API 2 takes PUT, PATCH, DELETE: a 405
    out: dict[str, Any] = {}
    for size in sizes:
        snap = ConfigSnapshot()
        snap.load(config_events(1, size))
        slug = "org000"
        checks = []
        for method, path in requests:
            try:
                checks.append(snap.resolve(slug, method, path).api["name"])
            except (NotFound, MethodNotAllowed) as exc:
                checks.append(type(exc).__name__)
        cpu, wall = [], []
        for _ in range(rounds):
            w, c = time.perf_counter_ns(), time.process_time_ns()
            for method, path in requests:
                try:
                    snap.resolve(slug, method, path)
                except (NotFound, MethodNotAllowed):
                    pass
            cpu.append((time.process_time_ns() - c) / len(requests))
            wall.append((time.perf_counter_ns() - w) / len(requests))
        out[str(size)] = {"cpu_ns_per_resolve_median": round(statistics.median(cpu)),
                          "wall_ns_per_resolve_median": round(statistics.median(wall)),
                          "wall_ns_per_resolve_min": round(min(wall)), "answers": checks}
    return out


async def follower_read(n_apis: int) -> dict[str, Any]:
    """A ConfigFollower reading one organisation of ``n_apis`` APIs from the
    embedded broker, from start() until synced."""
    from core.config_feed import ConfigFollower
    from core.kafka import ensure_topics, make_producer, wait_for_broker
    from core.settings import load_settings
    from junction.broker import EmbeddedBroker, free_port

    if not EmbeddedBroker.available():
        return {"skipped": "no embedded broker binary"}
    broker = EmbeddedBroker(free_port())
    broker.start()
    try:
        await broker.wait_ready()
        prefix = f"bench{uuid.uuid4().hex[:8]}"
        settings = load_settings(kafka_bootstrap_servers=broker.bootstrap, broker_profile="embedded",
                                 topic_prefix=prefix, group_prefix=prefix, routes_file="")
        await wait_for_broker(settings)
        await ensure_topics(settings)
        events = config_events(1, n_apis)
        producer = make_producer(settings)
        await producer.start()
        try:
            t0 = time.perf_counter()
            futures = [await producer.send(settings.topics.config, key=f"{e['kind']}/{e['id']}".encode(),
                                           value=encode("ConfigEvent", e), partition=0) for e in events]
            await asyncio.gather(*futures)
            publish_s = time.perf_counter() - t0
        finally:
            await producer.stop()

        # The longest the event loop was held while the follower read: a ticker's worst
        # lateness, and the CPU time this process spent in that gap.
        loop = asyncio.get_running_loop()
        worst, worst_cpu = 0.0, 0.0
        stop = asyncio.Event()

        async def ticker() -> None:
            nonlocal worst, worst_cpu
            while not stop.is_set():
                t, c = loop.time(), time.process_time()
                await asyncio.sleep(0.001)
                worst = max(worst, loop.time() - t - 0.001)
                worst_cpu = max(worst_cpu, time.process_time() - c)

        snap = ConfigSnapshot()
        follower = ConfigFollower(settings, snap)
        tick = asyncio.create_task(ticker())
        t0, c0 = time.perf_counter(), time.process_time()
        await follower.start()
        await follower.wait_synced(timeout_s=120)
        read_s, cpu_s = time.perf_counter() - t0, time.process_time() - c0
        stop.set()
        await tick
        await follower.stop()
        return {"events": len(events), "apis_in_snapshot": len(snap.apis), "publish_s": round(publish_s, 3),
                "start_to_synced_s": round(read_s, 3), "cpu_s": round(cpu_s, 3), "longest_event_loop_block_ms": _ms(worst),
                "longest_event_loop_block_cpu_ms": _ms(worst_cpu)}
    finally:
        broker.stop()


def _load() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--samples", type=int, default=300, help="single-event changes timed per scenario")
    p.add_argument("--rounds", type=int, default=2000, help="rounds of the resolve loop per size")
    p.add_argument("--no-follower", action="store_true", help="skip reading from the embedded broker")
    p.add_argument("--quick", action="store_true", help="a tenth of the sizes (a smoke run)")
    p.add_argument("--out", default=str(RESULTS / "config.json"))
    args = p.parse_args(argv)
    scale = 10 if args.quick else 1
    rng = random.Random(7)

    scenarios = {"one-org": (1, 10_000 // scale), "many-orgs": (100 // scale, 1_000)}
    results: dict[str, Any] = {
        "machine": {"python": sys.version.split()[0], "platform": platform.platform(), "cores": os.cpu_count(),
                    "load_average_at_start": _load()},
        "targets": {"cold_start_s": TARGET_COLD_START_S, "change_ms": TARGET_CHANGE_MS},
        "scenarios": {},
    }
    for name, (n_orgs, per_org) in scenarios.items():
        events = config_events(n_orgs, per_org)
        records = [encode("ConfigEvent", e) for e in events]
        # The prepared input is the benchmark's, not the snapshot's: in a service each event
        # arrives, is applied and dropped. Keep the collector from walking it again and again.
        gc.collect()
        gc.freeze()
        snap, apply_clock = timed_apply(events)
        assert len(snap.apis) == n_orgs * per_org
        applied = changes(snap, n_orgs, per_org, args.samples, rng)
        del snap
        decode_clock = timed_decode_apply(records)
        results["scenarios"][name] = {
            "orgs": n_orgs, "apis_per_org": per_org, "apis": n_orgs * per_org, "events": len(events),
            "cold_start_apply": apply_clock.seconds(), "cold_start_decode_and_apply": decode_clock.seconds(),
            "change_applied": applied,
        }
        gc.unfreeze()
        del events, records
        gc.collect()

    results["resolve"] = resolution((10, 10_000 // scale), args.rounds)
    if not args.no_follower:
        try:
            results["follower"] = asyncio.run(follower_read(10_000 // scale))
        except Exception as exc:  # optional: report, do not fail the rest
            results["follower"] = {"error": f"{type(exc).__name__}: {exc}"}
    results["machine"]["load_average_at_end"] = _load()

    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2) + "\n")

    m = results["machine"]
    print(f"config snapshot benchmark (Python {m['python']}, {m['cores']} cores, load average"
          f" {m['load_average_at_start'][0]} -> {m['load_average_at_end'][0]}); CPU time [wall-clock]")
    for name, r in results["scenarios"].items():
        cold, dec = r["cold_start_apply"], r["cold_start_decode_and_apply"]
        print(f"  {name}: {r['orgs']} org(s) x {r['apis_per_org']:,} APIs ({r['events']:,} events)")
        print(f"    cold start, apply every event: {cold['cpu_s']:.2f} s [{cold['wall_s']:.2f} s]; decoding each too:"
              f" {dec['cpu_s']:.2f} s [{dec['wall_s']:.2f} s]   (target <= {TARGET_COLD_START_S:.0f} s)")
        for kind, label in (("update", "one API changed"), ("add", "one API added"), ("delete", "one API deleted")):
            c, w = r["change_applied"][kind]["cpu"], r["change_applied"][kind]["wall"]
            print(f"    {label:16} median {c['median_ms']:.3f} ms, p99 {c['p99_ms']:.3f} ms, max {c['max_ms']:.3f} ms"
                  f" [median {w['median_ms']:.3f}, p99 {w['p99_ms']:.3f}, max {w['max_ms']:.3f}]"
                  f"   (target <= {TARGET_CHANGE_MS:.0f} ms)")
    print("  resolve: " + ", ".join(
        f"{int(size):,} APIs {v['cpu_ns_per_resolve_median'] / 1000:.2f} µs [{v['wall_ns_per_resolve_median'] / 1000:.2f} µs]"
        for size, v in results["resolve"].items()))
    f = results.get("follower")
    if f:
        if "start_to_synced_s" in f:
            print(f"  follower: {f['apis_in_snapshot']:,} APIs ({f['events']:,} events) from the embedded broker,"
                  f" start to synced {f['cpu_s']:.2f} s [{f['start_to_synced_s']:.2f} s]; event loop held at most"
                  f" {f['longest_event_loop_block_cpu_ms']:.1f} ms [{f['longest_event_loop_block_ms']:.1f} ms]"
                  f" (records already fetched are applied without yielding)")
        else:
            print(f"  follower: {f}")
    print(f"  written to {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
