"""Prometheus metrics of every process, defined once.

Each process exposes its own registry at ``/metrics``. Label values are
bounded (organisation slugs, stages, status classes), never ids.
"""
from __future__ import annotations

from prometheus_client import CONTENT_TYPE_LATEST, Counter, Gauge, Histogram, generate_latest

__all__ = [
    "CONTENT_TYPE_LATEST", "EXPIRED_DROPPED", "INGRESS_REQUESTS", "INGRESS_LATENCY", "LATE_REPLIES",
    "UPSTREAM_CALLS", "UPSTREAM_LATENCY", "DEAD_LETTERS", "DUPLICATES_SKIPPED", "PRODUCE_RETRIES", "TASK_CRASHES", "render",
    "UPSTREAM_RETRIES", "BREAKER_STATE", "CACHE_HITS", "CACHE_MISSES",
]

INGRESS_REQUESTS = Counter("junction_ingress_requests_total", "Calls answered at the edge", ["org", "status"])
INGRESS_LATENCY = Histogram(
    "junction_ingress_latency_seconds", "Edge latency, accept to answer",
    buckets=(0.002, 0.005, 0.01, 0.02, 0.03, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)
LATE_REPLIES = Counter("junction_late_replies_total", "Replies read with no caller waiting")
EXPIRED_DROPPED = Counter("junction_expired_dropped_total", "Work dropped because its deadline had passed", ["stage"])
UPSTREAM_CALLS = Counter("junction_upstream_calls_total", "Outbound calls", ["org", "outcome"])
UPSTREAM_LATENCY = Histogram("junction_upstream_latency_seconds", "Outbound call latency")
DEAD_LETTERS = Counter("junction_dead_letters_total", "Messages written to the dead-letter topic", ["stage", "code"])
DUPLICATES_SKIPPED = Counter("junction_duplicates_skipped_total", "Redelivered outbound calls not made again")
PRODUCE_RETRIES = Counter("junction_produce_retries_total", "Produce attempts retried while the broker was away", ["stage"])
# reason: unreachable or the transient status (429, 502, 503, 504).
UPSTREAM_RETRIES = Counter("junction_upstream_retries_total", "Outbound attempts retried after a transient failure", ["reason"])
# origin: scheme://host:port; at most egress.breaker.MAX_GAUGED_ORIGINS per process (least recently used dropped).
BREAKER_STATE = Gauge("junction_breaker_state", "Circuit breaker of an upstream origin, as this process last saw it: "
                      "0 closed, 1 half-open, 2 open", ["origin"])
# Requests an API's response cache could answer (docs/caching.md); hits / (hits + misses) is its hit ratio.
CACHE_HITS = Counter("junction_cache_hits_total", "Cacheable requests answered from the response cache", ["org"])
CACHE_MISSES = Counter("junction_cache_misses_total", "Cacheable requests that went upstream (nothing stored, "
                       "or Cache-Control: no-cache)", ["org"])
TASK_CRASHES = Counter("junction_task_crashes_total", "Crashes of supervised long-lived tasks (each is restarted)", ["task"])


def render() -> bytes:
    return generate_latest()
