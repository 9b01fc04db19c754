"""The db worker's metrics: operations per alias/op/outcome, their latency, and each alias's state.

Each worker has its own `Registry`: served on the worker's own `--metrics-port` (`worker.http`),
and merged into the gateway's `/metrics` when the worker runs inside `space-cloud run`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from mesh.metrics import HistogramValue, Labels, Registry, Value
from worker.databases import Database

OUTCOMES = ("ok", "client_error", "unavailable", "timeout", "busy", "expired", "error")
"""ok; client_error (4xx); unavailable (503: breaker open, cannot connect); timeout (504);
busy (refused: the alias's bulkhead was full); expired (dropped before it started); error (500)."""


class WorkerMetrics:
    def __init__(self, databases: Callable[[], Iterable[Database]]) -> None:
        self.registry = r = Registry()
        self._databases = databases
        self.ops = r.counter("sc_db_operations", "Database operations by project, alias, op and outcome",
                             ["project", "alias", "op", "outcome"])
        self.latency = r.histogram("sc_db_operation_seconds", "Time to answer a database operation (all outcomes)",
                                   ["project", "alias", "op"])
        self.events = r.counter("sc_db_change_events", "Change events published after committed writes",
                                ["project", "alias"])
        self.late = r.counter("sc_db_late_commits", "Writes that committed after their caller was answered 504",
                              ["project", "alias"])
        r.gauge("sc_db_in_flight", "Operations running per alias", ["project", "alias"],
                read=lambda: self._each(lambda d: d.bulkhead.running))
        r.gauge("sc_db_waiting", "Operations waiting for a turn per alias", ["project", "alias"],
                read=lambda: self._each(lambda d: d.bulkhead.waiting))
        r.gauge("sc_db_breaker_state", "Per alias: 0 closed (serving), 1 half-open (probing), 2 open (failing fast)",
                ["project", "alias"], read=lambda: self._each(lambda d: d.breaker.state))
        r.gauge("sc_db_connected", "Per alias: 1 when its pool is connected", ["project", "alias"],
                read=lambda: self._each(lambda d: 1 if d.adapter is not None else 0))

    def _each(self, value: Callable[[Database], float]) -> list[tuple[Labels, float]]:
        return [((d.spec.project, d.spec.alias), float(value(d))) for d in self._databases()]

    def op(self, db: Database, op: str, outcome: str) -> Value:
        return self.ops.child(db.spec.project, db.spec.alias, op, outcome)

    def timer(self, db: Database, op: str) -> HistogramValue:
        return self.latency.child(db.spec.project, db.spec.alias, op)
