"""Metrics cheap enough for the hot paths, exposed in the Prometheus format by `prometheus-client`.

A family (`Counter`, `Gauge`, `Histogram`) hands out one child per label values; callers keep the
child and update a plain number (`child.value += 1`, `child.observe(s)`): no lock, no label lookup,
no allocation per request. Every process runs its metrics on one event loop, so none is needed. A
`Registry` is a `prometheus_client` collector: at scrape time it turns the numbers into metric families
(and asks gauges computed on demand, such as open sockets, for their values then).
"""

from __future__ import annotations

import bisect
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Protocol

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.exposition import CONTENT_TYPE_LATEST, generate_latest

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
"""Seconds."""

CONTENT_TYPE = CONTENT_TYPE_LATEST

Labels = tuple[str, ...]


class Value:
    __slots__ = ("value",)

    def __init__(self) -> None:
        self.value = 0.0

    def inc(self, amount: float = 1.0) -> None:
        self.value += amount


class HistogramValue:
    __slots__ = ("bounds", "counts", "sum")

    def __init__(self, bounds: tuple[float, ...]) -> None:
        self.bounds = bounds
        self.counts = [0] * (len(bounds) + 1)
        self.sum = 0.0

    def observe(self, amount: float) -> None:
        self.counts[bisect.bisect_left(self.bounds, amount)] += 1
        self.sum += amount


class _Family:
    kind = ""

    def __init__(self, name: str, documentation: str, labels: Sequence[str] = ()) -> None:
        self.name = name
        self.documentation = documentation
        self.labels = tuple(labels)

    def collect(self) -> Metric:
        raise NotImplementedError


class Counter(_Family):
    """`name` is written without `_total` (the exposition adds it)."""

    def __init__(self, name: str, documentation: str, labels: Sequence[str] = ()) -> None:
        super().__init__(name, documentation, labels)
        self.children: dict[Labels, Value] = {}

    def child(self, *values: str) -> Value:
        found = self.children.get(values)
        if found is None:
            found = self.children[values] = Value()
        return found

    def collect(self) -> Metric:
        family = CounterMetricFamily(self.name, self.documentation, labels=self.labels)
        for values, v in list(self.children.items()):
            family.add_metric(list(values), v.value)
        return family


class Gauge(_Family):
    """Set children by hand, or give `read`: called at scrape time for (label values, value) pairs."""

    def __init__(self, name: str, documentation: str, labels: Sequence[str] = (),
                 read: Callable[[], Iterable[tuple[Labels, float]]] | None = None) -> None:
        super().__init__(name, documentation, labels)
        self.children: dict[Labels, Value] = {}
        self.read = read

    def child(self, *values: str) -> Value:
        found = self.children.get(values)
        if found is None:
            found = self.children[values] = Value()
        return found

    def collect(self) -> Metric:
        family = GaugeMetricFamily(self.name, self.documentation, labels=self.labels)
        pairs: Iterable[tuple[Labels, float]] = (
            self.read() if self.read is not None else [(k, v.value) for k, v in self.children.items()]
        )
        for values, value in pairs:
            family.add_metric(list(values), value)
        return family


class Histogram(_Family):
    def __init__(self, name: str, documentation: str, labels: Sequence[str] = (),
                 buckets: tuple[float, ...] = LATENCY_BUCKETS) -> None:
        super().__init__(name, documentation, labels)
        self.buckets = tuple(sorted(buckets))
        self.children: dict[Labels, HistogramValue] = {}

    def child(self, *values: str) -> HistogramValue:
        found = self.children.get(values)
        if found is None:
            found = self.children[values] = HistogramValue(self.buckets)
        return found

    def collect(self) -> Metric:
        family = HistogramMetricFamily(self.name, self.documentation, labels=self.labels)
        for values, h in list(self.children.items()):
            total, buckets = 0, []
            for bound, count in zip((*h.bounds, float("inf")), h.counts, strict=True):
                total += count
                buckets.append(("+Inf" if bound == float("inf") else repr(bound), float(total)))
            family.add_metric(list(values), buckets, h.sum)
        return family


class Collects(Protocol):
    """Anything with prometheus_client's `collect()`."""

    def collect(self) -> Iterable[Metric]: ...


class Registry:
    """The metric families of one process (a `prometheus_client` collector); `include` merges another
    collector (the db worker's registry in the gateway's process, or its worker process)."""

    def __init__(self) -> None:
        self.families: list[_Family] = []
        self.included: list[Collects] = []

    def add(self, family: _Family) -> None:
        if any(f.name == family.name for f in self.families):
            raise ValueError(f"metric {family.name} is registered twice")
        self.families.append(family)

    def counter(self, name: str, documentation: str, labels: Sequence[str] = ()) -> Counter:
        family = Counter(name, documentation, labels)
        self.add(family)
        return family

    def gauge(self, name: str, documentation: str, labels: Sequence[str] = (),
              read: Callable[[], Iterable[tuple[Labels, float]]] | None = None) -> Gauge:
        family = Gauge(name, documentation, labels, read)
        self.add(family)
        return family

    def histogram(self, name: str, documentation: str, labels: Sequence[str] = (),
                  buckets: tuple[float, ...] = LATENCY_BUCKETS) -> Histogram:
        family = Histogram(name, documentation, labels, buckets)
        self.add(family)
        return family

    def include(self, other: Collects) -> None:
        """Serve `other`'s metrics too (another registry, or a collector such as a worker process's)."""
        if other is not self and other not in self.included:
            self.included.append(other)

    def collect(self) -> Iterator[Metric]:
        for family in self.families:
            yield family.collect()
        for other in self.included:
            yield from other.collect()

    def render(self) -> bytes:
        """The text exposition format (what `/metrics` answers)."""
        return generate_latest(self)
