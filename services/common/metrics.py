"""Metrics that every service shares (contract section 7); service-specific ones live with each service."""

from __future__ import annotations

import bisect
import math
import threading
from collections.abc import Iterable, Iterator, Sequence

from prometheus_client import REGISTRY, Counter
from prometheus_client.metrics_core import HistogramMetricFamily, Metric
from prometheus_client.registry import CollectorRegistry


def _le(bound: float) -> str:
    """A bucket bound as prometheus-client writes it (`1.0`, `0.005`, `+Inf`)."""
    return "+Inf" if math.isinf(bound) else repr(bound)


class _HistogramSeries:
    """One label set's buckets (not cumulative) and sum."""

    def __init__(self, bounds: tuple[float, ...], lock: threading.Lock):
        self._bounds = bounds
        self._lock = lock
        self.counts = [0] * len(bounds)
        self.sum = 0.0

    def observe(self, value: float) -> None:
        """Observe one value."""
        self.observe_many((value,))

    def observe_many(self, values: Iterable[float]) -> None:
        """Observe a batch of values at once: a binary search each, one lock for the batch."""
        bounds, counts, total = self._bounds, [0] * len(self._bounds), 0.0
        for value in values:
            counts[bisect.bisect_left(bounds, value)] += 1  # the first bucket whose bound is >= value
            total += value
        with self._lock:
            self.counts = [a + b for a, b in zip(self.counts, counts, strict=True)]
            self.sum += total


class BatchHistogram:
    """A Prometheus histogram that takes a whole batch of observations in one call.

    prometheus-client's `Histogram.observe` takes one value (a linear bucket search and two locked
    increments each); the services observe one delay per event, thousands per batch, so this
    collector counts a batch and then adds it under one lock. It is exposed exactly as a histogram
    (`_bucket{le=...}` cumulative, `_count`, `_sum`) through the public custom-collector interface.
    """

    def __init__(self, name: str, documentation: str, labelnames: Sequence[str], buckets: Sequence[float],
                 registry: CollectorRegistry | None = REGISTRY):
        self.name, self.documentation, self.labelnames = name, documentation, tuple(labelnames)
        self._bounds = (*sorted(float(b) for b in buckets if not math.isinf(b)), math.inf)
        self._series: dict[tuple[str, ...], _HistogramSeries] = {}
        self._lock = threading.Lock()
        if registry is not None:
            registry.register(self)

    def labels(self, *values: str) -> _HistogramSeries:
        """The series of one label set (created on first use)."""
        if len(values) != len(self.labelnames):
            raise ValueError(f"{self.name} takes labels {self.labelnames}, got {values}")
        key = tuple(str(v) for v in values)
        series = self._series.get(key)
        if series is None:
            with self._lock:
                series = self._series.setdefault(key, _HistogramSeries(self._bounds, self._lock))
        return series

    def describe(self) -> list[Metric]:
        return [HistogramMetricFamily(self.name, self.documentation, labels=self.labelnames)]

    def collect(self) -> Iterator[Metric]:
        family = HistogramMetricFamily(self.name, self.documentation, labels=self.labelnames)
        with self._lock:
            snapshot = [(key, list(s.counts), s.sum) for key, s in self._series.items()]
        for key, counts, total in snapshot:
            cumulative, buckets = 0, []
            for bound, n in zip(self._bounds, counts, strict=True):
                cumulative += n
                buckets.append((_le(bound), cumulative))
            family.add_metric(list(key), buckets, total)
        yield family


EVENTS = Counter(
    "casefeedback_events", "Events seen by a service, by type and result", ["service", "type", "result"]
)
DEADLETTERS = Counter("casefeedback_deadletter", "Records sent to feedback.deadletter, by reason", ["reason"])
EVENT_DELAY = BatchHistogram(
    "casefeedback_event_delay_seconds",
    "Seconds from intake accepting an event to this service having applied it",
    ["service"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300),
)
