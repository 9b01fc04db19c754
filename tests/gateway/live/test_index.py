"""Matching by index (gateway.live.index): a change is classified only by the live queries it can concern,
with the same verdicts as classifying it by every query, and memory bounded by what clients hold."""

from __future__ import annotations

import random
from typing import Any

import orjson
import pytest

from adapters.query import matches
from adapters.values import MISSING
from gateway.live import index as index_module
from gateway.live.index import NULL, QueryIndex, alternatives, value_key
from gateway.live.query import Kind, SharedQuery


def query(where: dict[str, Any]) -> SharedQuery:
    key = orjson.dumps(where, option=orjson.OPT_SORT_KEYS).decode()
    return SharedQuery(("p", "db", "c", key), where, "id")


def filed(*wheres: dict[str, Any]) -> tuple[QueryIndex, list[SharedQuery]]:
    idx = QueryIndex()
    queries = [query(w) for w in wheres]
    for q in queries:
        idx[q.key[3]] = q
    return idx, queries


class Changes:
    """Feeds changes of documents through an index as the manager does, and says what each query heard."""

    def __init__(self, idx: QueryIndex) -> None:
        self.idx = idx
        self.docs: dict[str, dict[str, Any]] = {}
        self.version = 0
        self.classified = 0

    def write(self, doc_id: str, doc: dict[str, Any] | None, *, with_before: bool = True
              ) -> dict[SharedQuery, Kind]:
        self.version += 1
        before = self.docs.get(doc_id) if with_before else None
        if doc is None:
            self.docs.pop(doc_id, None)
        else:
            self.docs[doc_id] = doc
        heard: dict[SharedQuery, Kind] = {}
        for q in self.idx.candidates(doc_id, self.version, doc, before):
            self.classified += 1
            result = q.classify(doc_id, self.version, doc, before=before)
            if result is not None and result[1] is not None:
                heard[q] = result[1]
        return heard


def test_value_keys_follow_json_equality() -> None:
    assert value_key(1) == value_key(1.0) and hash(value_key(1)) == hash(value_key(1.0))
    assert len({value_key(v) for v in (1, True, "1", None, False, 0)}) == 6
    assert value_key(None) is NULL and value_key(MISSING) is NULL
    assert value_key([1]) is None and value_key({"a": 1}) is None


def test_what_a_query_is_filed_under() -> None:
    assert alternatives({"u": {"$eq": "a"}}) == [[("u", "a")]]
    assert alternatives({"n": {"$in": [1, 2, 1.0]}}) == [[("n", 1), ("n", 2)]]
    assert alternatives({"n": {"$gt": 1}}) == []
    assert alternatives({"$or": [{"a": {"$eq": 1}}, {"b": {"$in": [2, 3]}}]}) == [[("a", 1), ("b", 2), ("b", 3)]]
    assert alternatives({"$or": [{"a": {"$eq": 1}}, {"b": {"$gt": 2}}]}) == [], "one open branch: not indexable"
    assert alternatives({"$and": [{"a": {"$gt": 1}}, {"b": {"$eq": 2}}]}) == [[("b", 2)]]


def test_equality_matches_only_its_own_queries() -> None:
    idx, qs = filed(*({"userId": f"u{n}"} for n in range(1000)))
    ch = Changes(idx)
    assert ch.write("t1", {"id": "t1", "userId": "u7"}) == {qs[7]: "insert"}
    assert ch.classified == 1, "one of 1,000 queries was asked"
    assert ch.write("t1", {"id": "t1", "userId": "u7", "text": "x"}) == {qs[7]: "update"}
    assert ch.write("t2", {"id": "t2", "userId": "nobody"}) == {}
    assert ch.classified == 2


def test_in_and_types_are_kept_apart() -> None:
    idx, (q_in, q_one, q_true, q_str) = filed({"n": {"$in": [1, 2]}}, {"n": 1.0}, {"n": True}, {"n": "1"})
    ch = Changes(idx)
    assert ch.write("a", {"id": "a", "n": 1}) == {q_in: "insert", q_one: "insert"}
    assert ch.write("b", {"id": "b", "n": 2.0}) == {q_in: "insert"}
    assert ch.write("c", {"id": "c", "n": True}) == {q_true: "insert"}
    assert ch.write("d", {"id": "d", "n": "1"}) == {q_str: "insert"}
    assert ch.write("e", {"id": "e", "n": [1]}) == {}, "an array equals no scalar"


def test_nested_fields_and_null() -> None:
    idx, (q_city, q_null) = filed({"address.city": "Oslo"}, {"owner.id": None})
    ch = Changes(idx)
    assert ch.write("a", {"id": "a", "address": {"city": "Oslo"}, "owner": {"id": "x"}}) == {q_city: "insert"}
    assert ch.write("b", {"id": "b", "address": {"city": "Rome"}}) == {q_null: "insert"}, "missing is null"
    assert ch.write("c", {"id": "c", "address": "Oslo", "owner": {"id": None}}) == {q_null: "insert"}


@pytest.mark.parametrize("with_before", [True, False], ids=["before-image", "no-before-image"])
def test_moving_in_and_out_of_an_indexed_query(with_before: bool) -> None:
    idx, (alice, bob) = filed({"userId": "alice"}, {"userId": "bob"})
    ch = Changes(idx)
    assert ch.write("t", {"id": "t", "userId": "alice"}, with_before=with_before) == {alice: "insert"}
    # given away: alice's query hears it left (from the before-image, or because it holds it), bob's that it came
    assert ch.write("t", {"id": "t", "userId": "bob"}, with_before=with_before) == {alice: "delete", bob: "insert"}
    assert ch.write("t", None, with_before=with_before) == {bob: "delete"}
    assert "t" not in alice.matched and "t" not in bob.matched and len(idx.holders) == 0


def test_before_image_tells_a_move_out_the_query_did_not_hold() -> None:
    idx, (alice,) = filed({"userId": "alice"})
    ch = Changes(idx)
    ch.docs["t"] = {"id": "t", "userId": "alice"}  # written before the query existed (not in its snapshot)
    assert ch.write("t", {"id": "t", "userId": "bob"}) == {alice: "delete"}


def test_queries_without_an_index_still_match() -> None:
    idx, (everything, big, not_a, indexed) = filed({}, {"n": {"$gte": 10}}, {"u": {"$ne": "a"}}, {"u": "a"})
    ch = Changes(idx)
    assert ch.write("x", {"id": "x", "u": "a", "n": 20}) == {everything: "insert", big: "insert", indexed: "insert"}
    assert ch.write("x", {"id": "x", "u": "b", "n": 1}) == {everything: "update", big: "delete", not_a: "insert",
                                                            indexed: "delete"}
    assert idx.stats()["fallback"] == 3


def test_or_and_mixes() -> None:
    idx, (either, both, open_or) = filed(
        {"$or": [{"u": "a"}, {"tags": {"$in": ["x", "y"]}}]},
        {"$and": [{"n": {"$gt": 1}}, {"u": "b"}], "done": False},
        {"$or": [{"u": "c"}, {"n": {"$lt": 0}}]},
    )
    assert idx.stats()["fallback"] == 1, "only the $or with an open branch scans"
    ch = Changes(idx)
    assert ch.write("1", {"id": "1", "u": "z", "tags": "y"}) == {either: "insert"}
    assert ch.write("2", {"id": "2", "u": "b", "n": 5, "done": False}) == {both: "insert"}
    assert ch.write("2", {"id": "2", "u": "b", "n": 5, "done": True}) == {both: "delete"}
    assert ch.write("3", {"id": "3", "u": "q", "n": -1}) == {open_or: "insert"}
    assert ch.write("3", {"id": "3", "u": "a", "n": 1}) == {open_or: "delete", either: "insert"}


def test_a_query_is_filed_where_it_costs_least() -> None:
    idx, qs = filed(*({"done": False, "userId": f"u{n}"} for n in range(100)))
    ch = Changes(idx)
    assert ch.write("t", {"id": "t", "done": False, "userId": "u3"}) == {qs[3]: "insert"}
    assert ch.classified <= 2, "not every query with done: false"


def test_stale_and_replayed_changes_are_dropped() -> None:
    idx, (q,) = filed({"u": "a"})
    assert idx.candidates("d", 5, {"u": "a"}) == [q]
    assert q.classify("d", 5, {"u": "a"}) is not None
    assert idx.candidates("d", 5, {"u": "a"}) == [], "a replay"
    assert idx.candidates("d", 4, {"u": "b"}) == [], "older than what was seen"


def test_memory_is_bounded_by_what_clients_hold() -> None:
    idx, qs = filed(*({"userId": f"u{n}"} for n in range(200)), {"n": {"$gt": 5}})
    ch = Changes(idx)
    for n in range(5000):
        ch.write(f"d{n}", {"id": f"d{n}", "userId": "nobody", "n": 1})
    assert all(not q.matched for q in qs), "no query remembers documents it does not hold"
    assert idx.stats()["held"] == 0 and idx.stats()["recent"] <= index_module.RECENT
    ch.write("mine", {"id": "mine", "userId": "u1", "n": 1})
    assert qs[1].matched.keys() == {"mine"} and idx.stats()["held"] == 1


def test_unfiling_a_query_forgets_it() -> None:
    idx, (a, b) = filed({"u": "a"}, {"n": {"$gt": 1}})
    ch = Changes(idx)
    ch.write("x", {"id": "x", "u": "a", "n": 2})
    del idx[a.key[3]]
    idx.pop(b.key[3])
    assert idx.stats() == {"queries": 0, "fallback": 0, "paths": 0, "held": 0, "recent": 1}
    assert ch.write("y", {"id": "y", "u": "a", "n": 2}) == {}


FIELDS = ("u", "n", "a.b")
VALUES: tuple[Any, ...] = ("a", "b", 1, 1.0, 2, True, False, None, [1], {"b": 1})


def _random_where(rnd: random.Random, depth: int = 0) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for _ in range(rnd.randint(0, 2)):
        f = rnd.choice(FIELDS)
        op = rnd.choice(("$eq", "$eq", "$in", "$ne", "$gt", "$nin"))
        if op in ("$in", "$nin"):
            out[f] = {op: [rnd.choice(VALUES[:8]) for _ in range(rnd.randint(0, 3))]}
        elif op == "$gt":
            out[f] = {op: rnd.choice((0, 1, "a"))}
        else:
            out[f] = {op: rnd.choice(VALUES[:8])}
    if depth < 2 and rnd.random() < 0.3:
        out[rnd.choice(("$or", "$and"))] = [_random_where(rnd, depth + 1) for _ in range(rnd.randint(1, 3))]
    return out


def _random_doc(rnd: random.Random) -> dict[str, Any]:
    doc: dict[str, Any] = {}
    for f in ("u", "n"):
        if rnd.random() < 0.8:
            doc[f] = rnd.choice(VALUES)
    if rnd.random() < 0.5:
        doc["a"] = {"b": rnd.choice(VALUES)} if rnd.random() < 0.8 else rnd.choice(VALUES)
    return doc


@pytest.mark.parametrize("seed", range(6))
def test_same_verdicts_as_asking_every_query(seed: int) -> None:
    """Random queries and writes: the index hears of every change exactly what classifying it by
    every query says, and each query ends up holding exactly the documents that match it."""
    rnd = random.Random(seed)
    wheres = {orjson.dumps(w, option=orjson.OPT_SORT_KEYS).decode(): w for w in
              (_random_where(rnd) for _ in range(60))}
    idx, indexed = filed(*wheres.values())
    _, scanned = filed(*wheres.values())
    ch = Changes(idx)
    for step in range(1500):
        doc_id = f"d{rnd.randint(0, 40)}"
        doc = None if rnd.random() < 0.15 else {"id": doc_id, **_random_doc(rnd)}
        before = ch.docs.get(doc_id) if rnd.random() < 0.7 else None
        heard = ch.write(doc_id, doc, with_before=False) if before is None else ch.write(doc_id, doc)
        expected: dict[int, Kind] = {}
        for n, q in enumerate(scanned):
            result = q.classify(doc_id, ch.version, doc, before=before)
            if result is not None and result[1] is not None:
                expected[n] = result[1]
        assert {indexed.index(q): kind for q, kind in heard.items()} == expected, (step, doc_id, doc, before)
    for q in indexed:
        assert set(q.matched) == {d for d, doc in ch.docs.items() if matches(q.where, doc)}
