"""The db worker: a NATS service (queue group `sc.db`) that owns the database pools and publishes change events.

It sits beside `mesh/` (how to speak over NATS) and `adapters/` (how to speak to databases) and uses
both; the gateway asks it through `mesh` and never imports it, except to run one in-process.
"""

from worker.service import DbWorker, run_worker
from worker.spec import DatabaseSpec

__all__ = ["DatabaseSpec", "DbWorker", "run_worker"]
