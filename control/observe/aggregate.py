"""Windowed aggregates of finished calls: per organisation, API and window, at 10 s, 1 min and 1 h.

Everything here adds up: two aggregates of the same key merge by summing counts, sums and
histogram buckets, so it does not matter how calls are split between flushes or instances.
"""
from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from control.observe.outcome import Finished
from core.latency import bucket_of

__all__ = ["STEPS", "Aggregate", "WindowKey", "aggregate"]

STEPS = (10, 60, 3600)  # seconds: each call counts once at each resolution


@dataclass(frozen=True, order=True)
class WindowKey:
    step_s: int
    bucket_ms: int  # start of the window, epoch ms
    org_id: str
    api_id: str


@dataclass
class Aggregate:
    calls: int = 0
    status_2xx: int = 0
    status_3xx: int = 0
    status_4xx: int = 0
    status_5xx: int = 0
    status_other: int = 0
    errors: dict[str, int] = field(default_factory=dict)
    latency_count: int = 0
    latency_sum_ms: float = 0.0
    latency_hist: dict[int, int] = field(default_factory=dict)
    upstream_count: int = 0
    upstream_sum_ms: float = 0.0
    upstream_hist: dict[int, int] = field(default_factory=dict)
    bytes_in: int = 0
    bytes_out: int = 0

    def add(self, call: Finished) -> None:
        self.calls += 1
        klass = call.status // 100
        if 2 <= klass <= 5:
            setattr(self, f"status_{klass}xx", getattr(self, f"status_{klass}xx") + 1)
        else:
            self.status_other += 1
        if call.status >= 400:
            code = call.error_code or f"http_{call.status}"
            self.errors[code] = self.errors.get(code, 0) + 1
        if call.latency_ms is not None:
            self.latency_count += 1
            self.latency_sum_ms += call.latency_ms
            b = bucket_of(call.latency_ms)
            self.latency_hist[b] = self.latency_hist.get(b, 0) + 1
        if call.upstream_ms is not None:
            self.upstream_count += 1
            self.upstream_sum_ms += call.upstream_ms
            b = bucket_of(call.upstream_ms)
            self.upstream_hist[b] = self.upstream_hist.get(b, 0) + 1
        self.bytes_in += call.bytes_in
        self.bytes_out += call.bytes_out


def aggregate(calls: Iterable[Finished], steps: tuple[int, ...] = STEPS) -> dict[WindowKey, Aggregate]:
    """The aggregates of ``calls`` at every resolution. Calls of no known organisation are only
    in the request log: there is nobody to show their metrics to."""
    out: dict[WindowKey, Aggregate] = {}
    for call in calls:
        if call.org_id is None:
            continue
        for step in steps:
            span = step * 1000
            key = WindowKey(step, call.at_ms - call.at_ms % span, call.org_id, call.api_id)
            out.setdefault(key, Aggregate()).add(call)
    return out
