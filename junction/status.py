"""``junction status``: every service's readiness, consumer lag and recent traffic, as a table or JSON.

Readiness is each service's ``/readyz``, lag its ``/metrics`` (``junction_consumer_lag``): both need
nothing but the ports of the settings. The stages' groups' lag is also asked of the broker (committed offsets
against the ends), which holds it even for a stage that cannot answer. Calls and errors come from the management API's cross-organisation
metrics (``GET /api/v1/metrics``, the last minute) when a global admin's token is given (JUNCTION_TOKEN or
``--token``); without one, from ingress' ``/metrics`` counters, since that ingress started. With a token it
also says whether every instance has applied the configuration (``GET /api/v1/config/applied``).
"""
from __future__ import annotations

import argparse
import asyncio
import json
from datetime import datetime, timedelta, timezone
from typing import Any

import aiohttp
from prometheus_client.parser import text_string_to_metric_families

from core.consumer_lag import LAG_METRIC
from core.settings import Settings
from junction.sdk import describe_not_applied

__all__ = ["collect", "render", "run"]

SERVICES = ("ingress", "processors", "egress", "control")
_TIMEOUT = aiohttp.ClientTimeout(total=5)
GROUP_LAG_TIMEOUT_S = 10.0


def _urls(settings: Settings, service: str) -> tuple[str, str | None]:
    """(its /readyz, its /metrics or None when it serves none), where `junction up` puts them."""
    host, port = {
        "ingress": (settings.ingress_host, settings.ingress_port),
        "processors": (settings.ingress_host, settings.processors_port),
        "egress": (settings.ingress_host, settings.egress_port),
        "control": (settings.control_host, settings.control_port),
    }[service]
    metrics_port = getattr(settings, f"{service}_metrics_port")
    return (f"http://{host}:{port}/readyz",
            f"http://{settings.metrics_host}:{metrics_port}/metrics" if metrics_port else None)


async def _readiness(session: aiohttp.ClientSession, url: str) -> dict[str, Any]:
    try:
        async with session.get(url, timeout=_TIMEOUT) as resp:
            body = await resp.json(content_type=None)
            return {"ready": resp.status == 200, "checks": body.get("checks", {})}
    except (aiohttp.ClientError, asyncio.TimeoutError, ValueError) as exc:
        return {"ready": False, "checks": {}, "error": f"{type(exc).__name__}: {exc}"[:200] or "unreachable"}


async def _scrape(session: aiohttp.ClientSession, url: str | None) -> dict[str, list[Any]]:
    """Samples of the metrics at ``url`` by sample name (empty when it is not served or not reachable)."""
    if url is None:
        return {}
    try:
        async with session.get(url, timeout=_TIMEOUT) as resp:
            text = await resp.text() if resp.status == 200 else ""
    except (aiohttp.ClientError, asyncio.TimeoutError):
        return {}
    samples: dict[str, list[Any]] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples.setdefault(sample.name, []).append(sample)
    return samples


def _lag(samples: dict[str, list[Any]]) -> list[dict[str, Any]]:
    return [{"group": s.labels["group"], "topic": s.labels["topic"], "partition": int(s.labels["partition"]),
             "lag": int(s.value)} for s in samples.get(LAG_METRIC, [])]


def _counted_traffic(samples: dict[str, list[Any]]) -> list[dict[str, Any]]:
    """Calls and errors (4xx and 5xx answers) per organisation from ingress' counters."""
    orgs: dict[str, dict[str, Any]] = {}
    for s in samples.get("junction_ingress_requests_total", []):
        row = orgs.setdefault(s.labels["org"], {"org": s.labels["org"], "calls": 0, "errors": 0})
        row["calls"] += int(s.value)
        if s.labels["status"] in ("4xx", "5xx"):
            row["errors"] += int(s.value)
    return sorted(orgs.values(), key=lambda r: r["org"])


async def _windowed_traffic(session: aiohttp.ClientSession, settings: Settings, token: str) -> list[dict[str, Any]]:
    """Calls and errors per organisation in the last minute, from the management API (a global admin's token)."""
    until = datetime.now(timezone.utc)
    query = {"step": "10s", "from": (until - timedelta(minutes=1)).isoformat(), "to": until.isoformat()}
    url = f"http://{settings.control_host}:{settings.control_port}/api/v1/metrics"
    async with session.get(url, params=query, headers={"Authorization": f"Bearer {token}"}, timeout=_TIMEOUT) as resp:
        if resp.status != 200:
            raise RuntimeError(f"GET /api/v1/metrics answered {resp.status}: {(await resp.text())[:200]}")
        body = await resp.json()
    return sorted(({"org": series["org"], "calls": sum(p["calls"] for p in series["points"]),
                    "errors": sum(p["errors"] for p in series["points"])} for series in body["series"]),
                  key=lambda r: r["org"])


async def _config_applied(session: aiohttp.ClientSession, settings: Settings, token: str) -> dict[str, Any]:
    """Whether every running instance has applied the configuration, from the management API (no waiting)."""
    url = f"http://{settings.control_host}:{settings.control_port}/api/v1/config/applied"
    try:
        async with session.get(url, headers={"Authorization": f"Bearer {token}"}, timeout=_TIMEOUT) as resp:
            if resp.status != 200:
                return {"error": f"GET /api/v1/config/applied answered {resp.status}: {(await resp.text())[:200]}"}
            return dict(await resp.json())
    except (aiohttp.ClientError, asyncio.TimeoutError, ValueError) as exc:
        return {"error": f"{type(exc).__name__}: {exc}"[:200]}


# The stages' consumer groups (unprefixed) and the topic each reads. What the broker holds for them, committed
# offsets against the ends, is what waits for a stage even when the stage cannot say (hung, stopped, restarting).
STAGE_GROUPS = {"processors": ("processors", "requests"), "egress": ("egress", "calls")}


async def _group_lag(settings: Settings) -> dict[str, list[dict[str, Any]]]:
    """Per stage, each partition's committed offset, end and lag, asked of the broker (never joining a group)."""
    from core.kafka import make_consumer, partition_ends, start_client, stop_consumer, topic_partitions

    out: dict[str, list[dict[str, Any]]] = {}
    ends_reader = await start_client(make_consumer(settings, background=True))
    try:
        for service, (role, attr) in STAGE_GROUPS.items():
            topic = getattr(settings.topics, attr)
            tps = await topic_partitions(settings, topic)
            # In the group but never joining it (no subscription, no assignment): it only asks for offsets.
            offsets = await start_client(make_consumer(settings, background=True, group_id=settings.group_id(role)))
            try:
                committed = {tp: await offsets.committed(tp) for tp in tps}
            finally:
                await stop_consumer(offsets)
            ends_reader.assign(tps)
            ends = await partition_ends(settings, ends_reader, tps)
            out[service] = [{"group": role, "topic": topic, "partition": tp.partition, "committed": committed[tp],
                             "end": ends[tp], "lag": max(0, ends[tp] - (committed[tp] or 0))} for tp in tps]
    finally:
        await stop_consumer(ends_reader)
    return out


async def collect(settings: Settings, *, token: str = "") -> dict[str, Any]:
    """The whole report: ``{services: {name: {ready, checks, consumer_lag}}, traffic: {source, orgs}}``, and
    with a token ``config``: whether every instance has applied the configuration."""
    async with aiohttp.ClientSession() as session:
        urls = {service: _urls(settings, service) for service in SERVICES}
        ready = await asyncio.gather(*(_readiness(session, urls[s][0]) for s in SERVICES))
        scraped = await asyncio.gather(*(_scrape(session, urls[s][1]) for s in SERVICES))
        services = {s: {**r, "consumer_lag": _lag(m)} for s, r, m in zip(SERVICES, ready, scraped)}
        try:
            async with asyncio.timeout(GROUP_LAG_TIMEOUT_S):
                by_broker = await _group_lag(settings)
        except Exception as exc:  # noqa: BLE001 - the broker's view is extra: its absence is said, not fatal
            by_broker = {}
            for service in STAGE_GROUPS:
                services[service]["group_lag_error"] = f"{type(exc).__name__}: {exc}"[:200]
        for service, rows in by_broker.items():
            services[service]["group_lag"] = rows
        traffic: dict[str, Any]
        if token:
            try:
                traffic = {"source": "control, last minute", "orgs": await _windowed_traffic(session, settings, token)}
            except (aiohttp.ClientError, asyncio.TimeoutError, RuntimeError) as exc:
                traffic = {"source": "control, last minute", "orgs": [], "error": str(exc)[:200]}
        else:
            traffic = {"source": "ingress /metrics, since it started", "orgs": _counted_traffic(scraped[0])}
        report: dict[str, Any] = {"services": services, "traffic": traffic}
        if token:
            report["config"] = await _config_applied(session, settings, token)
    return report


def render(report: dict[str, Any]) -> str:
    """The report as plain-text tables."""
    lines = [f"{'SERVICE':<12}{'READY':<7}{'LAG':>8}  DETAIL"]
    for name, s in report["services"].items():
        # The service's own count when it answers; else what the broker holds for its group (a hung stage).
        rows = s["consumer_lag"] or s.get("group_lag") or []
        lag = sum(row["lag"] for row in rows) if rows else "-"
        failing = [f"{check}: {result}" for check, result in s["checks"].items() if result != "ok"]
        detail = s.get("error") or "; ".join(failing)
        lines.append(f"{name:<12}{'yes' if s['ready'] else 'NO':<7}{lag!s:>8}  {detail}")
    lines += ["", f"{'SERVICE':<12}{'GROUP':<32}{'TOPIC':<32}{'PARTITION':>10}{'LAG':>8}"]
    for name, s in report["services"].items():
        for row in s["consumer_lag"]:
            lines.append(f"{name:<12}{row['group']:<32}{row['topic']:<32}{row['partition']:>10}{row['lag']:>8}")
    lines += ["", "Committed by each stage's group, as the broker has it:",
              f"{'SERVICE':<12}{'GROUP':<32}{'TOPIC':<32}{'PARTITION':>10}{'COMMITTED':>10}{'END':>10}{'LAG':>8}"]
    for name, s in report["services"].items():
        for row in s.get("group_lag", []):
            committed = "-" if row["committed"] is None else row["committed"]
            lines.append(f"{name:<12}{row['group']:<32}{row['topic']:<32}{row['partition']:>10}{committed!s:>10}"
                         f"{row['end']:>10}{row['lag']:>8}")
        if "group_lag_error" in s:
            lines.append(f"{name:<12}the broker could not be asked: {s['group_lag_error']}")
    traffic = report["traffic"]
    lines += ["", f"Calls ({traffic['source']}):", f"{'ORG':<36}{'CALLS':>10}{'ERRORS':>10}"]
    for row in traffic["orgs"]:
        lines.append(f"{row['org']:<36}{row['calls']:>10}{row['errors']:>10}")
    if not traffic["orgs"]:
        lines.append(f"  {traffic.get('error', 'none')}")
    config = report.get("config")
    if config is not None:
        if "error" in config:
            state = f"unknown ({config['error']})"
        elif config["applied"]:
            state = f"applied on every instance (config topic position {config['config_offset']})"
        else:
            state = f"NOT applied everywhere: {describe_not_applied(config)}"
        lines += ["", f"Configuration: {state}"]
    return "\n".join(lines)


def run(args: argparse.Namespace, settings: Settings) -> int:
    """Print the report; exit 1 when a service is not ready."""
    report = asyncio.run(collect(settings, token=args.token or settings.token))
    print(json.dumps(report, indent=2) if args.json else render(report))
    return 0 if all(s["ready"] for s in report["services"].values()) else 1
