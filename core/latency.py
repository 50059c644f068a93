"""The latency histogram that metrics are stored as: fixed log-spaced buckets, mergeable by addition.

Bucket ``i`` (1 ≤ i < BUCKETS) holds values in ``[FLOOR_MS * R**(i-1), FLOOR_MS * R**i)`` with
``R = 2 ** (1/8)``; bucket 0 holds everything below ``FLOOR_MS``; the last bucket everything above
its lower edge (about 55 minutes). A quantile is read as the geometric middle of the bucket holding
the rank asked for, so for any value from ``FLOOR_MS`` up to the last bucket the answer is within a
relative error of ``RELATIVE_ERROR`` (``sqrt(R) - 1``, about 4.4 %) of the exact nearest-rank
quantile; below ``FLOOR_MS`` it is within ``FLOOR_MS`` absolutely.

Histograms are sparse ``{bucket index: count}`` maps (JSON object keys are strings in storage):
adding two is adding counts per key, so 10 s windows from any number of instances roll up to
1 min and 1 h exactly, which a sample never could.
"""
from __future__ import annotations

import math
from collections.abc import Iterable, Mapping

__all__ = ["BUCKETS", "FLOOR_MS", "RATIO", "RELATIVE_ERROR", "bucket_of", "merge", "nearest_rank", "quantile", "value_of"]

RATIO = 2 ** (1 / 8)
FLOOR_MS = 0.1
BUCKETS = 200  # the last bucket starts at 0.1 ms * 2**(199/8), about 55 minutes
RELATIVE_ERROR = math.sqrt(RATIO) - 1
_LOG_RATIO = math.log(RATIO)


def bucket_of(ms: float) -> int:
    """The bucket a latency of ``ms`` milliseconds falls in."""
    if not ms >= FLOOR_MS:  # also NaN
        return 0
    i = int(math.floor(math.log(ms / FLOOR_MS) / _LOG_RATIO)) + 1
    # Floating point may put an exact edge one bucket low or high: settle it by the edges themselves.
    if ms < FLOOR_MS * RATIO ** (i - 1):
        i -= 1
    elif ms >= FLOOR_MS * RATIO ** i:
        i += 1
    return max(1, min(i, BUCKETS - 1))


def value_of(bucket: int) -> float:
    """The value a bucket stands for: its geometric middle (half the floor for bucket 0)."""
    if bucket <= 0:
        return FLOOR_MS / 2
    return FLOOR_MS * RATIO ** (bucket - 1) * math.sqrt(RATIO)


def merge(histograms: Iterable[Mapping[str | int, int]]) -> dict[int, int]:
    out: dict[int, int] = {}
    for hist in histograms:
        for key, count in hist.items():
            out[int(key)] = out.get(int(key), 0) + int(count)
    return out


def nearest_rank(count: int, q: float) -> int:
    """The 1-based rank of quantile ``q`` among ``count`` values (nearest-rank definition)."""
    return max(1, min(count, math.ceil(q * count)))


def quantile(hist: Mapping[str | int, int], q: float) -> float | None:
    """Quantile ``q`` (0 < q ≤ 1) of the values counted in ``hist``; None when it counts none."""
    buckets = sorted((int(k), int(v)) for k, v in hist.items() if int(v) > 0)
    total = sum(v for _, v in buckets)
    if total == 0:
        return None
    rank = nearest_rank(total, q)
    seen = 0
    for bucket, n in buckets:
        seen += n
        if seen >= rank:
            return value_of(bucket)
    return value_of(buckets[-1][0])  # not reached: seen ends at total ≥ rank
