"""Every eval operator x every type, through ``evaluate`` (literals and variables)."""

from __future__ import annotations

from typing import Any

import pytest

from gateway.rules import evaluate, validate_rule
from gateway.rules.match import ALL_OPS, OPS
from tests.gateway.rules.rules_fakes import FakeContext, match, state

# (low, high) per type: low < high where ordering exists
VALUES: dict[str, tuple[Any, Any]] = {
    "string": ("apple", "banana"),
    "number": (1, 2.5),
    "bool": (False, True),
    "date": ("2020-01-01T00:00:00Z", "2020-06-01T12:00:00+02:00"),
}

# op -> [(pick f1, pick f2, expected)] where "lo"/"hi" pick from VALUES; lists for in/notIn
CASES: dict[str, list[tuple[str, Any, bool]]] = {
    "==": [("lo", "lo", True), ("lo", "hi", False)],
    "!=": [("lo", "hi", True), ("lo", "lo", False)],
    "<": [("lo", "hi", True), ("lo", "lo", False), ("hi", "lo", False)],
    "<=": [("lo", "lo", True), ("lo", "hi", True), ("hi", "lo", False)],
    ">": [("hi", "lo", True), ("lo", "lo", False), ("lo", "hi", False)],
    ">=": [("lo", "lo", True), ("hi", "lo", True), ("lo", "hi", False)],
    "in": [("lo", ["hi", "lo"], True), ("lo", ["hi"], False), ("lo", [], False)],
    "notIn": [("lo", ["hi"], True), ("lo", [], True), ("lo", ["hi", "lo"], False)],
}


def _pick(kind: str, which: Any) -> Any:
    lo, hi = VALUES[kind]
    if isinstance(which, list):
        return [_pick(kind, w) for w in which]
    return lo if which == "lo" else hi


SUPPORTED = [
    (kind, op, left, right, expected)
    for kind, ops in OPS.items()
    for op in ops
    for left, right, expected in CASES[op]
]
UNSUPPORTED = [(kind, op) for kind in OPS for op in ALL_OPS if op not in OPS[kind]]


@pytest.mark.parametrize(("kind", "op", "left", "right", "expected"), SUPPORTED)
async def test_operator_by_type_literals(kind: str, op: str, left: str, right: Any, expected: bool) -> None:
    rule = match(op, kind, _pick(kind, left), _pick(kind, right))
    assert validate_rule(rule) == []
    decision = await evaluate(rule, state(), FakeContext())
    assert decision.allowed is expected
    assert decision.status == (200 if expected else 403)
    if not expected:
        assert decision.message == "Auth: The two fields do not match"


@pytest.mark.parametrize(("kind", "op", "left", "right", "expected"), SUPPORTED)
async def test_operator_by_type_variables(kind: str, op: str, left: str, right: Any, expected: bool) -> None:
    rule = match(op, kind, "args.doc.a", "args.doc.b")
    args = state(doc={"a": _pick(kind, left), "b": _pick(kind, right)})
    assert (await evaluate(rule, args, FakeContext())).allowed is expected


@pytest.mark.parametrize(("kind", "op"), UNSUPPORTED)
async def test_unsupported_operator_for_type_denies_and_is_reported(kind: str, op: str) -> None:
    lo, hi = VALUES[kind]
    rule = match(op, kind, lo, hi)
    decision = await evaluate(rule, state(), FakeContext())
    assert (decision.allowed, decision.status) == (False, 403)
    assert "not supported" in decision.message
    assert any("not supported" in p for p in validate_rule(rule))


@pytest.mark.parametrize(
    ("f1", "op", "f2", "expected"),
    [
        ("2020-01-01T00:00:00Z", "==", "2020-01-01T01:00:00+01:00", True),  # same instant
        ("2020-01-01T00:00:00", "==", "2020-01-01T00:00:00Z", True),  # naive = UTC
        ("2020-01-01", "<", "2020-01-01T00:00:01Z", True),
        (0, "==", "1970-01-01T00:00:00Z", True),  # epoch seconds
        (1577836800, ">=", "2020-01-01T00:00:00Z", True),
        (1577836800.5, ">", "2020-01-01T00:00:00Z", True),
        ("2020-01-01T00:00:00Z", "in", [0, "2020-01-01T00:00:00+00:00"], True),
        ("2020-01-01T00:00:00Z", "notIn", ["garbage", True, 0], True),
    ],
)
async def test_date_forms(f1: Any, op: str, f2: Any, expected: bool) -> None:
    decision = await evaluate(match(op, "date", f1, f2), state(), FakeContext())
    assert decision.allowed is expected


@pytest.mark.parametrize(
    ("kind", "f1", "f2"),
    [
        ("string", "1", 1),
        ("string", 1, "1"),
        ("string", None, "x"),
        ("number", "1", 1),
        ("number", 1, "1"),
        ("number", True, 1),
        ("number", 1, True),
        ("number", None, 0),
        ("bool", "true", True),
        ("bool", True, "true"),
        ("bool", 1, True),
        ("bool", 0, False),
        ("date", "not a date", "2020-01-01"),
        ("date", True, 1),
        ("date", "2020-01-01", [2020]),
        ("date", 10**20, 0),
    ],
)
async def test_type_mismatch_never_matches(kind: str, f1: Any, f2: Any) -> None:
    for op in ("==", "!="):
        decision = await evaluate(
            match(op, kind, "args.doc.a", "args.doc.b"), state(doc={"a": f1, "b": f2}), FakeContext()
        )
        assert (decision.allowed, decision.status) == (False, 403), op
        assert decision.message == "Auth: Incorrect rule field type"


@pytest.mark.parametrize(
    ("kind", "f1", "f2"),
    [
        ("number", 1, [True]),
        ("number", 1, ["1"]),
        ("bool", True, [1]),
        ("string", "1", [1]),
        ("number", 1, "1"),
    ],
)
async def test_in_compares_items_strictly(kind: str, f1: Any, f2: Any) -> None:
    decision = await evaluate(
        match("in", kind, "args.doc.a", "args.doc.b"), state(doc={"a": f1, "b": f2}), FakeContext()
    )
    assert not decision.allowed


async def test_not_in_needs_a_list() -> None:
    decision = await evaluate(
        match("notIn", "string", "args.doc.a", "args.doc.b"), state(doc={"a": "x", "b": "x"}), FakeContext()
    )
    assert (decision.allowed, decision.message) == (False, "Auth: Incorrect rule field type")


async def test_utils_exists_with_bool_match() -> None:
    rule = match("==", "bool", "utils.exists(args.find.userId)", True)
    assert (await evaluate(rule, state(find={"userId": "u1"}), FakeContext())).allowed
    assert not (await evaluate(rule, state(find={}), FakeContext())).allowed
    assert not (await evaluate(rule, state(find={"userId": None}), FakeContext())).allowed
