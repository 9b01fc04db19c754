"""A recording RuleContext for the rules tests (the engine is pure, so no NATS is needed)."""

from __future__ import annotations

from typing import Any

USER = {"id": "u1", "role": "user"}


class FakeContext:
    """Answers ``query`` with ``found`` and ``call`` with ``result``; raises ``error`` if set."""

    def __init__(self, *, found: bool = True, result: Any = None, error: Exception | None = None) -> None:
        self.found = found
        self.result: Any = {"ack": True} if result is None else result
        self.error = error
        self.queries: list[tuple[str, str, dict[str, Any]]] = []
        self.calls: list[tuple[str, str, Any, dict[str, Any] | None]] = []

    async def query(self, db: str, col: str, find: dict[str, Any]) -> bool:
        self.queries.append((db, col, find))
        if self.error is not None:
            raise self.error
        return self.found

    async def call(self, service: str, func: str, params: Any, auth: dict[str, Any] | None) -> Any:
        self.calls.append((service, func, params, auth))
        if self.error is not None:
            raise self.error
        return self.result


def match(eval_: Any, type_: Any, f1: Any, f2: Any) -> dict[str, Any]:
    return {"rule": "match", "eval": eval_, "type": type_, "f1": f1, "f2": f2}


def state(auth: dict[str, Any] | None = None, **fields: Any) -> dict[str, Any]:
    """Space Cloud args with the default user unless ``auth`` is given."""
    return {"auth": dict(USER) if auth is None else auth, "token": "jwt", **fields}
