"""The naming audit: every metric a service exports follows Prometheus' conventions, with bounded labels."""
from __future__ import annotations

import re

from prometheus_client import REGISTRY

from tests.monitoring_support import import_services

# Ids of single calls, callers or requests: one series each would grow without bound.
UNBOUNDED_LABELS = {"correlation_id", "call_id", "request_id", "id", "path", "url", "consumer", "key", "user", "email",
                    "ip", "address", "trace_id"}
NON_BASE_UNITS = re.compile(r"_(ms|milliseconds|microseconds|us|ns|minutes|hours|days|kb|mb|gb|kilobytes|megabytes|percent)(_|$)")
SNAKE = re.compile(r"[a-z][a-z0-9]*(_[a-z0-9]+)*")


def _families() -> list:
    import_services()
    return [f for f in REGISTRY.collect() if f.name.startswith("junction_")]


def test_names_are_snake_case_in_base_units_with_counters_ending_in_total() -> None:
    families = _families()
    assert len(families) >= 20
    for family in families:
        name = family.name
        assert SNAKE.fullmatch(name), name
        assert not NON_BASE_UNITS.search(name), f"{name}: use base units (_seconds, _bytes)"
        assert family.documentation.strip(), f"{name} has no help"
        if family.type == "counter":
            # prometheus-client adds _total to the samples; a name that ended in it would read _total_total.
            assert not name.endswith("_total") and all(s.name in (f"{name}_total", f"{name}_created") for s in family.samples)
        else:
            assert not name.endswith("_total"), f"{name}: only counters end in _total"
        if family.type == "histogram":
            assert name.endswith(("_seconds", "_bytes", "_records")), f"{name}: a histogram names its unit"
        if re.search(r"latency|duration|_time", name):
            assert name.endswith("_seconds"), f"{name}: times are in seconds"


def test_labels_are_snake_case_and_bounded() -> None:
    for family in _families():
        labels = {k for s in family.samples for k in s.labels} - {"le"}
        # Labelled metrics with no children yet have no samples: read their declared names too.
        declared = getattr(REGISTRY._names_to_collectors.get(family.name), "_labelnames", ())
        for label in labels | set(declared):
            assert SNAKE.fullmatch(label), f"{family.name}: label {label}"
            assert label not in UNBOUNDED_LABELS, f"{family.name}: label {label} is unbounded"


def test_every_process_exports_its_resources() -> None:
    names = {f.name for f in REGISTRY.collect()}
    assert {"process_cpu_seconds", "process_resident_memory_bytes", "process_open_fds"} <= names
