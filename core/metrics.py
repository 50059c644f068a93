"""Prometheus metrics of every process, defined once.

Each process exposes its own registry at ``/metrics``, with prometheus-client's
process collector (CPU, memory, open file descriptors) registered by default.
Label values are bounded: stages, status classes, error codes, and the
organisation slugs and API ids of the configuration (one series set per
configured API, never per call or caller). Names follow Prometheus: base units
in the name (``_seconds``, ``_bytes``), ``_total`` on counters;
tests/unit/test_metric_names.py checks every one.
"""
from __future__ import annotations

from prometheus_client import CONTENT_TYPE_LATEST, Counter, Gauge, Histogram, generate_latest

__all__ = [
    "CONTENT_TYPE_LATEST", "EXPIRED_DROPPED", "INGRESS_REQUESTS", "INGRESS_LATENCY", "LATE_REPLIES",
    "UPSTREAM_CALLS", "UPSTREAM_LATENCY", "DEAD_LETTERS", "DUPLICATES_SKIPPED", "PRODUCE_RETRIES", "TASK_CRASHES", "render",
    "UPSTREAM_RETRIES", "BREAKER_STATE", "CACHE_HITS", "CACHE_MISSES", "INGRESS_REQUEST_BYTES", "INGRESS_RESPONSE_BYTES",
    "EVENT_LOOP_LAG", "NO_API", "INGRESS_REFUSALS_LOGGED", "INGRESS_REFUSALS_UNLOGGED",
]

# The api label of a call that matched no API (an unknown path or organisation).
NO_API = "_none"
_LATENCY_BUCKETS = (0.002, 0.005, 0.01, 0.02, 0.03, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)

# Per organisation and API (org: a configured slug or "_unknown"; api: a configured API id or NO_API).
INGRESS_REQUESTS = Counter("junction_ingress_requests_total", "Calls answered at the edge", ["org", "api", "status"])
INGRESS_LATENCY = Histogram("junction_ingress_latency_seconds", "Edge latency, accept to answer", ["org", "api"],
                            buckets=_LATENCY_BUCKETS)
INGRESS_REQUEST_BYTES = Counter("junction_ingress_request_bytes_total", "Request body bytes received at the edge",
                                ["org", "api"])
INGRESS_RESPONSE_BYTES = Counter("junction_ingress_response_bytes_total", "Response body bytes sent from the edge",
                                 ["org", "api"])
LATE_REPLIES = Counter("junction_late_replies_total", "Replies read with no caller waiting")
EXPIRED_DROPPED = Counter("junction_expired_dropped_total", "Work dropped because its deadline had passed", ["stage"])
# outcome: the upstream's status class (2xx ...) or the error code of a call that got no answer.
UPSTREAM_CALLS = Counter("junction_upstream_calls_total", "Outbound calls", ["org", "api", "outcome"])
UPSTREAM_LATENCY = Histogram("junction_upstream_latency_seconds", "Outbound call latency, retries included",
                             ["org", "api"], buckets=_LATENCY_BUCKETS)
DEAD_LETTERS = Counter("junction_dead_letters_total", "Messages written to the dead-letter topic", ["stage", "code"])
DUPLICATES_SKIPPED = Counter("junction_duplicates_skipped_total", "Redelivered outbound calls not made again")
PRODUCE_RETRIES = Counter("junction_produce_retries_total", "Produce attempts retried while the broker was away", ["stage"])
# reason: unreachable or the transient status (429, 502, 503, 504).
UPSTREAM_RETRIES = Counter("junction_upstream_retries_total", "Outbound attempts retried after a transient failure", ["reason"])
# org: the organisation's slug (each has its own breakers); origin: scheme://host:port; at most
# egress.breaker.MAX_GAUGED_ORIGINS per process (least recently used dropped).
BREAKER_STATE = Gauge("junction_breaker_state", "Circuit breaker of an organisation's upstream origin, as this process "
                      "last saw it: 0 closed, 1 half-open, 2 open", ["org", "origin"])
# The breaker's state is in Redis; when Redis does not answer, calls go ahead as if it were closed (egress/breaker.py).
BREAKER_STORE_ERRORS = Counter("junction_breaker_store_errors_total", "Circuit-breaker reads and writes Redis did not "
                               "answer; the calls went ahead, as through a closed breaker")
# Requests an API's response cache could answer (docs/caching.md); hits / (hits + misses) is its hit ratio.
CACHE_HITS = Counter("junction_cache_hits_total", "Cacheable requests answered from the response cache", ["org", "api"])
CACHE_MISSES = Counter("junction_cache_misses_total", "Cacheable requests that went upstream (nothing stored, "
                       "or Cache-Control: no-cache)", ["org", "api"])
# Sampled by core/loop_lag.py: how late a timer fired. Anything blocking the loop delays every call.
EVENT_LOOP_LAG = Histogram("junction_event_loop_lag_seconds", "How late the event loop ran a timer due now",
                           buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5))
TASK_CRASHES = Counter("junction_task_crashes_total", "Crashes of supervised long-lived tasks (each is restarted)", ["task"])

# Calls refused at the edge, by whether the request log was told of them (ingress/refusal_log.py).
INGRESS_REFUSALS_LOGGED = Counter("junction_ingress_refusals_logged_total", "Calls refused at ingress that were told to the "
                                  "request log")
INGRESS_REFUSALS_UNLOGGED = Counter("junction_ingress_refusals_unlogged_total", "Calls refused at ingress that the request "
                                    "log was not told of: over the rate (JUNCTION_INGRESS_REFUSAL_LOG_PER_S), too many "
                                    "already being sent, or the broker refused the record", ["reason"])


def render() -> bytes:
    return generate_latest()
