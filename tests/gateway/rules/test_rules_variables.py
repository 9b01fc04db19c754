from __future__ import annotations

from typing import Any

import pytest

from gateway.rules.variables import (
    MISSING,
    Exists,
    Path,
    VariableSyntaxError,
    looks_like_ref,
    operand,
    parse,
    resolve,
)

ARGS: dict[str, Any] = {
    "auth": {"id": "u1", "groups": ["g1", "g2"]},
    "doc": {"u1": {"title": "mine"}, "tags": ["a", "b"], "nothing": None, "n": 0},
    "find": {"key": "u1", "idx": 1, "dunder": "__class__", "flag": True},
    "update": {"$set": {"title": "t"}},
}


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("args", ARGS),
        ("args.auth.id", "u1"),
        ("args.doc[args.auth.id]", {"title": "mine"}),
        ("args.doc[args.auth.id].title", "mine"),
        ("args.doc[args.find.key].title", "mine"),
        ("args.doc.tags[1]", "b"),
        ("args.doc.tags.0", "a"),
        ("args.doc.tags[args.find.idx]", "b"),
        ("args.doc['u1'].title", "mine"),
        ('args.doc["u1"]', {"title": "mine"}),
        ("args.auth.groups", ["g1", "g2"]),
        ("args.update.$set.title", "t"),
        ("args.doc.nothing", None),
        ("args.doc.n", 0),
        ("args.auth.missing", MISSING),
        ("args.auth.id.deeper", MISSING),
        ("args.doc.tags[5]", MISSING),
        ("args.doc[args.find.missing]", MISSING),
        ("args.doc[args.find.flag]", MISSING),  # a bool is not a key
        ("args.doc[args.find.dunder]", MISSING),  # a resolved dunder key is refused
        ("args.auth[args.find.idx]", MISSING),  # an int does not index a dict
        ("utils.exists(args.auth.id)", True),
        ("utils.exists(args.auth.nope)", False),
        ("utils.exists(args.doc.nothing)", False),
        ("utils.exists(args.doc.n)", True),
        ("utils.exists(args.doc[args.auth.id].title)", True),
    ],
)
def test_resolve(text: str, expected: Any) -> None:
    value = resolve(parse(text), ARGS)
    if expected is MISSING:
        assert value is MISSING
    else:
        assert value is not MISSING
        assert value == expected
        assert type(value) is type(expected)


@pytest.mark.parametrize(
    "text",
    [
        "args.",
        "args..id",
        "args.auth.id ",
        "args.auth id",
        "args[",
        "args.doc[args.auth.id",
        "args.doc[]",
        "args.doc[-1]",
        "args.doc[99999999]",
        "args.__class__",
        "args.auth.__dict__",
        "args.doc['__class__']",
        "args.doc[__import__]",
        "utils.exists(args.x",
        "utils.exists(args.x))",
        "utils.exist(args.x)",  # the misspelling from the docs is rejected, as in Space Cloud
        "utils.now()",
        "args.auth.id; import os",
        "args.a+b",
    ],
)
def test_malformed_references_are_errors_not_literals(text: str) -> None:
    assert looks_like_ref(text)
    with pytest.raises(VariableSyntaxError):
        parse(text)
    with pytest.raises(VariableSyntaxError):
        operand(text, ARGS)


@pytest.mark.parametrize(
    "value", ["u1", "admin", "argsx", "Args.auth.id", " args.auth.id", "", 5, None, True, [1]]
)
def test_non_references_are_literals(value: Any) -> None:
    assert not looks_like_ref(value)
    assert operand(value, ARGS) == value


def test_parse_tree_and_cache() -> None:
    ref = parse("args.doc[args.auth.id].tags[0]")
    assert ref == Path(("doc", Path(("auth", "id")), "tags", 0))
    assert parse("utils.exists(args.a)") == Exists(Path(("a",)))
    assert parse("args.doc[args.auth.id].tags[0]") is ref


def test_resolution_is_one_step() -> None:
    # a value that itself looks like a variable is data, never resolved again
    args = {"find": {"userId": "args.auth.id"}, "auth": {"id": "u1"}}
    assert operand("args.find.userId", args) == "args.auth.id"
