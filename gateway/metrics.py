"""The gateway's metrics (`GET /metrics`, Prometheus text format).

Kept cheap on the hot paths: children are looked up once per label set and cached, updates are
plain additions (`mesh.metrics`). Gauges that describe the current state (sockets, live queries,
breakers) are read from the objects themselves at scrape time, costing nothing per request.

Process-wide counters that code without a `Core` at hand updates (WebSocket frames) live in
`FRAMES`; every gateway registry reports them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from mesh.metrics import HistogramValue, Labels, Registry, Value


class FrameCounters:
    """WebSocket frames queued to clients and dropped because a client's send queue overflowed."""

    __slots__ = ("dropped", "queued", "slow_closes")

    def __init__(self) -> None:
        self.queued = 0
        self.dropped = 0
        self.slow_closes = 0


FRAMES = FrameCounters()

CALL_OUTCOMES = ("ok", "client_error", "error", "timeout", "unavailable", "no_instance", "rejected", "breaker_open")
"""ok; client_error (the function raised a 4xx); error (500); timeout (504); unavailable (503 from the
service); no_instance (nothing serves it); rejected (this gateway's limit for the service was full);
breaker_open (failed fast: the service has been failing)."""


class GatewayMetrics:
    def __init__(self) -> None:
        self.registry = r = Registry()
        self._requests = r.counter("sc_http_requests", "HTTP requests by route template, method and status",
                                   ["route", "method", "status"])
        self._latency = r.histogram("sc_http_request_seconds", "HTTP request latency by route template", ["route"])
        self._calls = r.counter("sc_function_calls", "Function calls by project, service, function and outcome",
                                ["project", "service", "function", "outcome"])
        self._call_latency = r.histogram("sc_function_call_seconds", "Function call latency (all outcomes)",
                                         ["project", "service", "function"])
        self._retries = r.counter("sc_function_retries", "Retries of functions their service declares idempotent",
                                  ["project", "service", "function"])
        self._denials = r.counter("sc_rule_denials", "Requests a security rule refused, by operation", ["op"])
        self.sockets_opened = r.counter("sc_websocket_connections_opened", "WebSocket connections accepted").child()
        r.gauge("sc_websocket_frames_queued", "WebSocket frames queued to clients (process total)",
                read=lambda: [((), float(FRAMES.queued))])
        r.gauge("sc_websocket_frames_dropped", "WebSocket frames dropped: the client's send queue overflowed "
                "(process total)", read=lambda: [((), float(FRAMES.dropped))])
        r.gauge("sc_websocket_slow_consumers", "WebSocket connections closed as slow consumers (process total)",
                read=lambda: [((), float(FRAMES.slow_closes))])
        self.events_received = r.counter("sc_live_events_received", "Change events received for live queries").child()
        self.events_fanned_out = r.counter("sc_live_events_fanned_out",
                                           "Change events sent to live-query subscribers (one per subscriber)").child()
        self._keys: dict[tuple[str, str, int], tuple[Value, HistogramValue]] = {}

    def gauge(self, name: str, documentation: str, labels: list[str],
              read: Callable[[], Iterable[tuple[Labels, float]]]) -> None:
        """A gauge read at scrape time (the composition root adds those about its parts)."""
        self.registry.gauge(name, documentation, labels, read)

    def request(self, route: str, method: str, status: int, seconds: float) -> None:
        key = (route, method, status)
        found = self._keys.get(key)
        if found is None:
            found = self._keys[key] = (self._requests.child(route, method, str(status)), self._latency.child(route))
        found[0].value += 1
        found[1].observe(seconds)

    def call(self, project: str, service: str, func: str) -> CallStats:
        return CallStats(self, project, service, func)

    def denied(self, op: str) -> None:
        self._denials.child(op).value += 1


class CallStats:
    """The children of one (project, service, function), resolved once."""

    __slots__ = ("_labels", "_metrics", "_outcomes", "latency", "retries")

    def __init__(self, metrics: GatewayMetrics, project: str, service: str, func: str) -> None:
        self._metrics = metrics
        self._labels = (project, service, func)
        self._outcomes: dict[str, Value] = {}
        self.latency = metrics._call_latency.child(project, service, func)
        self.retries = metrics._retries.child(project, service, func)

    def outcome(self, outcome: str) -> None:
        found = self._outcomes.get(outcome)
        if found is None:
            found = self._outcomes[outcome] = self._metrics._calls.child(*self._labels, outcome)
        found.value += 1
