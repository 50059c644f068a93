"""Kafka consumer lag of every consumer in this process, computed at scrape time.

``junction_consumer_lag{group, topic, partition}``: records between a
partition's high-water mark (as the consumer's last fetch saw it) and the
consumer's position (the next record it hands to the application). Both are the
consumer's own state, so a scrape costs no broker round trip. ``group`` is the
consumer group, or, for a reader that assigns its partitions itself (no group),
the reader's name. A partition not fetched yet has no sample.

The faust consumer runs in a thread of its own; its state is read without a
lock, so a scrape racing a rebalance skips that consumer (one sample missed).
"""
from __future__ import annotations

import weakref
from collections.abc import Iterator
from typing import Any

from prometheus_client.core import REGISTRY, GaugeMetricFamily
from prometheus_client.registry import Collector

__all__ = ["LAG_METRIC", "track"]

LAG_METRIC = "junction_consumer_lag"

# consumer -> its group label; weak, so a stopped and dropped consumer leaves by itself.
_tracked: weakref.WeakKeyDictionary[Any, str] = weakref.WeakKeyDictionary()


def track(consumer: Any, group: str) -> None:
    """Report ``consumer``'s lag under ``group`` from now on (an aiokafka consumer)."""
    _tracked[consumer] = group


def _lags(consumer: Any) -> Iterator[tuple[str, int, int]]:
    """(topic, partition, lag) of each assigned partition with a known position and high-water mark."""
    subscription = consumer._subscription.subscription  # aiokafka keeps positions here; position() is async
    assignment = subscription.assignment if subscription is not None else None
    if assignment is None:
        return
    for tp in list(assignment.tps):
        state = assignment.state_value(tp)
        if state is None or state.highwater is None or not state.has_valid_position:
            continue
        # Tansu's high-water mark can trail a position by a batch: never report a negative lag.
        yield tp.topic, tp.partition, max(0, state.highwater - state.position)


class _ConsumerLag(Collector):
    def collect(self) -> Iterator[GaugeMetricFamily]:
        family = GaugeMetricFamily(LAG_METRIC, "Records between a partition's high-water mark and this process's "
                                   "consumer position", labels=["group", "topic", "partition"])
        seen: dict[tuple[str, str, str], int] = {}
        for consumer, group in list(_tracked.items()):
            try:
                lags = list(_lags(consumer))
            except (RuntimeError, AttributeError, KeyError):  # changed under us by a rebalance or a stop
                continue
            for topic, partition, lag in lags:
                key = (group, topic, str(partition))
                seen[key] = max(lag, seen.get(key, 0))  # two readers of one partition: the one further behind
        for key, lag in sorted(seen.items(), key=lambda item: (item[0][0], item[0][1], int(item[0][2]))):
            family.add_metric(list(key), lag)
        yield family


REGISTRY.register(_ConsumerLag())
