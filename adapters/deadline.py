"""The deadline of the database work being done now, set by the db worker and read by the adapters.

A context variable, so every statement run for one request sees that request's deadline without it
being passed through each adapter method. Times are `time.monotonic()` seconds.

The write rule (what a 504 for a write means, docs/operations.md): under a deadline every write ends
with a COMMIT the adapter sends itself (never a lone autocommitted statement, whose bytes could reach
the database after the deadline, e.g. from a stalled proxy), and `before_commit()` refuses to send it
once the deadline has passed: the transaction is rolled back instead.

Each statement is given what is left as its own timeout (`statement_budget`), and is cancelled in
the database when that passes: PostgreSQL through asyncpg's `timeout=` (a cancel request to the
server), MariaDB by `SET STATEMENT max_statement_time=… FOR …` (MySQL: `MAX_EXECUTION_TIME` on
SELECTs), SQLite by `interrupt()`, Mongo by `pymongo.timeout()`. The answer is `Timeout`: "<db>
statement exceeded its deadline of <s>s".
"""

from __future__ import annotations

import time
from contextvars import ContextVar, Token

from common.errors import Timeout

_DEADLINE: ContextVar[float | None] = ContextVar("sc_db_deadline", default=None)


def set_deadline(at: float | None) -> Token[float | None]:
    """Work started from now on (in this context) should be finished by `at` (None: no deadline)."""
    return _DEADLINE.set(at)


def reset_deadline(token: Token[float | None]) -> None:
    _DEADLINE.reset(token)


def deadline() -> float | None:
    return _DEADLINE.get()


def remaining() -> float | None:
    """Seconds left (may be negative); None when no deadline is set."""
    at = _DEADLINE.get()
    return None if at is None else at - time.monotonic()


def before_commit() -> None:
    """Raise `Timeout` (so the transaction rolls back) when the deadline has passed; call it right before
    sending COMMIT."""
    at = _DEADLINE.get()
    if at is not None and time.monotonic() >= at:
        raise Timeout(f"the deadline passed {time.monotonic() - at:.3g}s before the commit; the write was "
                      "rolled back")


def statement_budget(db: str) -> float | None:
    """Seconds the next statement on `db` may run (None: no deadline); `Timeout` when none are left.
    SQL drivers give it to each statement as its timeout and cancel the statement when it passes."""
    left = remaining()
    if left is not None and left <= 0.001:
        raise exceeded(db, max(left, 0.0))
    return left


def exceeded(db: str, budget: float) -> Timeout:
    """The error for a statement that ran out of its `budget` seconds (and was cancelled)."""
    return Timeout(f"{db} statement exceeded its deadline of {budget:.3g}s")


def rolled_back(exc: Timeout) -> Timeout:
    """`exc`, met by a write, saying that the write was rolled back (nothing of it is committed)."""
    if "rolled back" in exc.message:
        return exc
    return Timeout(f"{exc.message}; the write was rolled back")
