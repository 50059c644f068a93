"""No loss (issue 11): requests sent while egress is SIGKILLed and restarted all end accounted for.

Starts a real ``junction up`` (on its embedded broker; ``--broker kafka``: on Apache Kafka of the run's own,
fetched with Maven; ``KAFKA_BOOTSTRAP_SERVERS`` set: on that Kafka), an upstream stub on loopback in this
process, and one API to it. Sends ``--requests`` HTTP requests (default 2,000) at ``--concurrency`` (50)
through ingress, each tagged with a unique ``X-No-Loss-Tag`` header, and SIGKILLs the egress process once
``--kill-after`` of them were answered; ``junction up`` restarts it.

Every request is then classified, once, in this order:

- ``answered_2xx``: the upstream's answer reached the caller;
- ``answered_504``: no reply within the API's timeout (the deadline); the call may still have run upstream;
- ``dead_lettered``: any other outcome whose call is on the dead-letter topic (read from its start; matched by
  the X-Correlation-Id the caller got, or by the tag in the letter's original);
- ``answered_other_error``: another status, not dead-lettered;
- ``missing``: no answer at all and no dead letter: lost.

The stub counts how often the upstream ran each request (at-least-once: a call in egress when it was
killed may run again; egress skips calls it completed). Writes bench/results/no_loss-<broker>.json and
bench/results/no_loss.json, and prints the counts.
"""
from __future__ import annotations

import argparse
import asyncio
import collections
import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web
from aiokafka import TopicPartition

from bench.procs import stop, wait_http_ok
from core.kafka import make_consumer
from core.settings import Settings, load_settings
from junction.broker import die_with_parent, free_port
from junction.sdk import JunctionClient
from schemas import CodecError, decode

__all__ = ["OUTCOMES", "TAG_HEADER", "no_loss", "up_environment"]

RESULTS = Path(__file__).parent / "results"
TAG_HEADER = "X-No-Loss-Tag"
CORRELATION_HEADER = "X-Correlation-Id"
OUTCOMES = ("answered_2xx", "answered_504", "dead_lettered", "answered_other_error", "missing")
ORG = "noloss"
PORTS = ("INGRESS", "CONTROL", "PROCESSORS", "EGRESS", "DEMO_UPSTREAM", "EMBEDDED_BROKER", "EMBEDDED_POSTGRES",
         "EMBEDDED_REDIS", "INGRESS_METRICS", "CONTROL_METRICS", "PROCESSORS_METRICS", "EGRESS_METRICS")


def up_environment(data_dir: str, kafka_bootstrap: str | None = None) -> dict[str, str]:
    """The environment of a `junction up` of this run's own: free ports, its own names and data folder,
    nothing inherited from the caller's JUNCTION_* settings."""
    run = uuid.uuid4().hex[:8]
    env = {k: v for k, v in os.environ.items() if not k.startswith("JUNCTION_") and k != "KAFKA_BOOTSTRAP_SERVERS"}
    env.update({f"JUNCTION_{name}_PORT": str(free_port()) for name in PORTS})
    env.update({
        "JUNCTION_TOPIC_PREFIX": f"nl{run}", "JUNCTION_GROUP_PREFIX": f"nl{run}", "JUNCTION_DATA_DIR": data_dir,
        "JUNCTION_ALLOW_PRIVATE_TARGETS": "1", "JUNCTION_ADMIN_EMAIL": "ops@example.com",
        "JUNCTION_ADMIN_PASSWORD": "a-long-password", "JUNCTION_LOG_LEVEL": "WARNING",
    })
    if kafka_bootstrap:
        env["KAFKA_BOOTSTRAP_SERVERS"] = kafka_bootstrap
    return env


async def no_loss(env: dict[str, str], *, requests: int = 2000, concurrency: int = 50, kill_after: int | None = None,
                  timeout_ms: int = 10_000, log: Path | None = None) -> dict[str, Any]:
    """Run ``junction up`` with ``env`` (see :func:`up_environment`), send the requests, kill egress once
    ``kill_after`` (default: half) were answered, and return the report."""
    settings = load_settings(env)
    kill_after = requests // 2 if kill_after is None else kill_after
    log = log or Path(settings.data_dir) / "up.log"
    executed: collections.Counter[str] = collections.Counter()

    async def upstream(request: web.Request) -> web.Response:
        await request.read()
        executed[request.headers.get(TAG_HEADER, "")] += 1
        return web.json_response({"ok": True})

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", upstream)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    upstream_port = free_port()
    await web.TCPSite(runner, "127.0.0.1", upstream_port).start()
    proc = _start_up(env, log)
    try:
        ingress = f"http://127.0.0.1:{settings.ingress_port}"
        await wait_http_ok(f"{ingress}/readyz", timeout_s=120, proc=proc)
        await wait_http_ok(f"http://127.0.0.1:{settings.control_port}/readyz", timeout_s=60, proc=proc)
        await _configure(settings, f"http://127.0.0.1:{upstream_port}/echo", timeout_ms)
        url = f"{ingress}/{ORG}/echo"
        await _wait_served(url)
        executed.clear()  # the warm-up calls are no part of the run
        started = time.monotonic()
        answers, kill = await _load(url, proc.pid, settings, requests=requests, concurrency=concurrency,
                                    kill_after=kill_after, timeout_ms=timeout_ms)
        load_s = time.monotonic() - started
        await asyncio.sleep(2)  # dead letters and upstream calls of the last calls in flight
        letters = await _dead_letters(settings)
    finally:
        await asyncio.to_thread(_stop_up, proc)
        await runner.cleanup()
    restarts = log.read_text(errors="replace").count("egress exited with -9; restarting")
    report = classify(answers, letters, executed)
    report.update({"params": {"requests": requests, "concurrency": concurrency, "kill_after_answered": kill_after,
                              "timeout_ms": timeout_ms},
                   "broker": "embedded" if settings.uses_embedded_broker else "kafka",
                   "load_seconds": round(load_s, 2), "egress_kill": {**kill, "restarts_logged": restarts}})
    return report


def classify(answers: dict[str, tuple[int | None, str]], letters: list[dict[str, Any]],
             executed: collections.Counter[str]) -> dict[str, Any]:
    """The report: one outcome per request (see the module doc), the status counts, the dead letters,
    and how often the upstream ran each request."""
    lettered_ids = {letter["correlation_id"] for letter in letters}
    lettered_tags = {letter["tag"] for letter in letters if letter["tag"]}
    outcomes: dict[str, str] = {}
    for tag, (status, correlation_id) in answers.items():
        dead = tag in lettered_tags or (correlation_id and correlation_id in lettered_ids)
        if status is not None and 200 <= status < 300:
            outcomes[tag] = "answered_2xx"
        elif status == 504:
            outcomes[tag] = "answered_504"
        elif dead:
            outcomes[tag] = "dead_lettered"
        elif status is not None:
            outcomes[tag] = "answered_other_error"
        else:
            outcomes[tag] = "missing"
    counts = collections.Counter(outcomes.values())
    ours = {tag for tag in answers}
    runs = collections.Counter(min(executed[tag], 2) for tag in answers)
    by_outcome_runs = {o: dict(sorted(collections.Counter(executed[t] for t, x in outcomes.items() if x == o).items()))
                       for o in OUTCOMES if counts[o]}
    return {
        "sent": len(answers),
        "outcomes": {o: counts[o] for o in OUTCOMES},
        "accounted_for": len(answers) - counts["missing"],
        "missing_tags": sorted(t for t, o in outcomes.items() if o == "missing")[:20],
        "by_status": {str(k): v for k, v in sorted(collections.Counter(str(s) for s, _ in answers.values()).items())},
        "dead_letters": {"total": len(letters), "ours": sum(1 for x in letters if x["tag"] in ours),
                         "by_code": dict(collections.Counter(x["error_code"] for x in letters)),
                         "also_answered_2xx": sum(1 for t, o in outcomes.items() if o == "answered_2xx" and t in lettered_tags),
                         "also_answered_504": sum(1 for t, o in outcomes.items() if o == "answered_504" and t in lettered_tags)},
        "upstream": {"never_ran": runs[0], "ran_once": runs[1], "ran_more_than_once": runs[2],
                     "duplicate_tags": sorted(t for t in answers if executed[t] > 1)[:20],
                     "answered_2xx_but_never_ran": sum(1 for t, o in outcomes.items() if o == "answered_2xx" and not executed[t]),
                     "runs_by_outcome": by_outcome_runs,
                     "untagged_or_foreign_calls": sum(n for t, n in executed.items() if t not in ours)},
    }


def _start_up(env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with open(log, "ab") as out:  # the child keeps its own copy; a long run would fill a pipe
        return subprocess.Popen([sys.executable, "-m", "junction", "up"], env=env, stdin=subprocess.DEVNULL,
                                stdout=out, stderr=subprocess.STDOUT, preexec_fn=die_with_parent)


def _stop_up(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGINT)
    stop([proc], timeout_s=60)


async def _configure(settings: Settings, target: str, timeout_ms: int) -> None:
    async with JunctionClient(f"http://127.0.0.1:{settings.control_port}") as c:
        await c.login(settings.admin_email, settings.admin_password)
        await c.create_org(ORG, "No loss")
        conn = await c.create_connector(ORG, "echo", {"protocol": "rest", "url": target, "method": "POST"})
        await c.create_api(ORG, "echo", ["POST"], "/echo", conn["id"], timeout_ms=timeout_ms)


async def _wait_served(url: str, timeout_s: float = 60.0) -> None:
    """The API is served once its configuration reached ingress and processors."""
    until = time.monotonic() + timeout_s
    last = "no answer"
    async with aiohttp.ClientSession() as session:
        while True:
            with contextlib.suppress(aiohttp.ClientError):
                async with session.post(url, data=b"{}", headers={TAG_HEADER: "warm-up"}) as r:
                    if r.status == 200:
                        return
                    last = f"{r.status} {(await r.read())[:300]!r}"
            if time.monotonic() > until:
                raise TimeoutError(f"{url} not served within {timeout_s} s (last answer: {last})")
            await asyncio.sleep(0.2)


async def _load(url: str, root: int, settings: Settings, *, requests: int, concurrency: int, kill_after: int,
                timeout_ms: int) -> tuple[dict[str, tuple[int | None, str]], dict[str, Any]]:
    """Send every request once; returns tag -> (status or None for no answer, X-Correlation-Id), and the kill."""
    answers: dict[str, tuple[int | None, str]] = {}
    queue: collections.deque[str] = collections.deque(f"r{i:05d}" for i in range(requests))
    kill: dict[str, Any] = {}
    timeout = aiohttp.ClientTimeout(total=timeout_ms / 1000 + 30)
    async with aiohttp.ClientSession(timeout=timeout, connector=aiohttp.TCPConnector(limit=concurrency)) as session:
        async def worker() -> None:
            while queue:
                tag = queue.popleft()
                try:
                    async with session.post(url, data=b'{"n":1}', headers={TAG_HEADER: tag}) as r:
                        await r.read()
                        answers[tag] = (r.status, r.headers.get(CORRELATION_HEADER, ""))
                except (aiohttp.ClientError, TimeoutError):
                    answers[tag] = (None, "")

        async def killer() -> None:
            while len(answers) < kill_after and (queue or len(answers) < requests):
                await asyncio.sleep(0.01)
            pid = _service_pid(root, "egress")
            at = time.monotonic()
            os.kill(pid, signal.SIGKILL)
            kill.update({"pid": pid, "after_answered": len(answers)})
            ready = f"http://127.0.0.1:{settings.egress_port}/readyz"
            while True:
                with contextlib.suppress(aiohttp.ClientError, LookupError, TimeoutError):
                    if _service_pid(root, "egress") != pid:
                        async with session.get(ready, timeout=aiohttp.ClientTimeout(total=2)) as r:
                            if r.status == 200:
                                break
                if time.monotonic() - at > 120:
                    raise TimeoutError("egress was not ready again within 120 s of its kill")
                await asyncio.sleep(0.05)
            kill["ready_again_s"] = round(time.monotonic() - at, 2)

        await asyncio.gather(killer(), *(worker() for _ in range(concurrency)))
    return answers, kill


def _service_pid(root: int, service: str) -> int:
    """The pid of the `junction serve <service>` child of ``root``."""
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            parent = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            cmd = (entry / "cmdline").read_bytes().split(b"\0")
        except (OSError, IndexError, ValueError):
            continue
        if parent == root and cmd[-3:-1] == [b"serve", service.encode()]:
            return int(entry.name)
    raise LookupError(f"no {service} under {root}")


async def _dead_letters(settings: Settings) -> list[dict[str, Any]]:
    """Every record of the dead-letter topic, from its start to its end now: correlation id, error code, and
    the tag of the original call (its X-No-Loss-Tag header), if any."""
    consumer = make_consumer(settings, enable_auto_commit=False, auto_offset_reset="earliest")
    await consumer.start()
    try:
        await consumer.topics()  # fresh metadata
        parts = consumer.partitions_for_topic(settings.topics.dlq) or set()
        tps = [TopicPartition(settings.topics.dlq, p) for p in sorted(parts)]
        if not tps:
            return []
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        end = await consumer.end_offsets(tps)
        out: list[dict[str, Any]] = []
        while [tp for tp in tps if await consumer.position(tp) < end[tp]]:
            batch = await consumer.getmany(*tps, timeout_ms=1000)
            for records in batch.values():
                out.extend(_letter(r.value) for r in records if r.value is not None)
        return out
    finally:
        await consumer.stop()


def _letter(value: bytes) -> dict[str, Any]:
    try:
        _, letter = decode(value, expected="DeadLetter")
    except CodecError:
        return {"correlation_id": "", "error_code": "undecodable", "tag": ""}
    tag = ""
    with contextlib.suppress(CodecError):
        _, original = decode(letter["original"])
        tag = next((h["value"] for h in original.get("headers", []) if h["name"].lower() == TAG_HEADER.lower()), "")
    return {"correlation_id": letter["correlation_id"], "error_code": letter["error_code"], "tag": tag}


def summary(report: dict[str, Any]) -> str:
    o, up, kill = report["outcomes"], report["upstream"], report["egress_kill"]
    return (f"no loss ({report['broker']}): {report['sent']} requests, egress SIGKILLed after {kill['after_answered']} "
            f"answered (ready again in {kill.get('ready_again_s')} s, restarts logged: {kill['restarts_logged']}) | "
            + ", ".join(f"{name} {o[name]}" for name in OUTCOMES)
            + f" | statuses {report['by_status']} | dead letters {report['dead_letters']['total']} "
            f"(ours {report['dead_letters']['ours']}) | upstream ran: never {up['never_ran']}, once {up['ran_once']}, "
            f"more than once {up['ran_more_than_once']} | load {report['load_seconds']} s")


async def _main(args: argparse.Namespace) -> dict[str, Any]:
    async with contextlib.AsyncExitStack() as stack:
        bootstrap = os.environ.get("KAFKA_BOOTSTRAP_SERVERS")
        if args.broker == "kafka" and not bootstrap:
            from bench.run import start_broker

            bootstrap = (await start_broker("kafka", stack)).bootstrap
        data_dir = tempfile.mkdtemp(prefix="junction-no-loss-")
        os.chmod(data_dir, 0o755)  # our own folder; the embedded PostgreSQL may run as nobody
        stack.callback(shutil.rmtree, data_dir, True)
        return await no_loss(up_environment(data_dir, bootstrap), requests=args.requests, concurrency=args.concurrency,
                             kill_after=args.kill_after, timeout_ms=args.timeout_ms)
    raise AssertionError("unreachable")


def cli() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--broker", choices=("embedded", "kafka"), default="embedded")
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=50)
    parser.add_argument("--kill-after", type=int, default=None, help="answered requests before the kill (default: half)")
    parser.add_argument("--timeout-ms", type=int, default=10_000, help="the API's timeout: a later answer is a 504")
    args = parser.parse_args()
    report = asyncio.run(_main(args))
    report["when"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    report["summary"] = line = summary(report)
    RESULTS.mkdir(exist_ok=True)
    for name in (f"no_loss-{report['broker']}.json", "no_loss.json"):
        (RESULTS / name).write_text(json.dumps(report, indent=2))
    print(line)
    sys.exit(1 if report["outcomes"]["missing"] else 0)


if __name__ == "__main__":
    cli()
