"""Which live queries of a collection a change can concern: matching by index, not by scan.

A `QueryIndex` holds a collection's `SharedQuery`s (it is the mapping from canonical `where` to
query that the manager keeps) and files each one under the values its `where` requires of one
field: `{userId: "u1"}` under (userId, "u1"), `{n: {$in: [1, 2]}}` under (n, 1) and (n, 2), an
`$or` under what each branch requires. A change is then classified only by the queries filed under
its document's values (after the write, and before it where the change carries that), by the
queries that hold the document (they must hear that it left), and by the few queries with no
indexable predicate (`$gt`, `$ne`, `{}`). Its cost grows with the queries it concerns, plus one
dictionary look-up per indexed field, whatever the number of queries.

Keys follow `adapters.values.equal` exactly: 1 and 1.0 are one key, 1 and True and "1" are three,
null and a missing field are one; an object or array never equals a scalar, so it is never looked up.

Memory is bounded by what clients hold: the documents each query matches (`SharedQuery.matched`,
mirrored here per document in `holders`) and, for the whole collection, the versions of the last
`RECENT` documents changed (to drop a replayed or reordered change), never queries x documents.
"""

from __future__ import annotations

import collections
from collections.abc import Hashable, Iterator, MutableMapping
from typing import Any

from adapters.base import Doc
from adapters.documents import get_path
from adapters.query import validate_find
from adapters.values import MISSING

from .query import Holders, SharedQuery

RECENT = 4096
"""Documents of one collection whose last version is remembered whatever queries match them."""

Pair = tuple[str, Hashable]
"""(dotted path, value key)"""


class _Tag:
    __slots__ = ("name",)

    def __init__(self, name: str) -> None:
        self.name = name

    def __repr__(self) -> str:
        return self.name


NULL, TRUE, FALSE = _Tag("null"), _Tag("true"), _Tag("false")


def value_key(value: Any) -> Hashable | None:
    """The key two values share exactly when `equal` says they are equal (None: an object or array,
    which no `$eq`/`$in` argument equals)."""
    if value is None or value is MISSING:
        return NULL
    if value is True:
        return TRUE
    if value is False:
        return FALSE
    if isinstance(value, str | int | float):
        return value
    return None


def alternatives(find: Doc) -> list[list[Pair]]:
    """Ways to file a validated find: each is a list of (path, key) of which every matching document
    has at least one. Empty when nothing in it is indexable."""
    out: list[list[Pair]] = []
    for key, cond in find.items():
        if key == "$and":
            for sub in cond:
                out.extend(alternatives(sub))
        elif key == "$or":
            union: list[Pair] = []
            for sub in cond:
                branch = alternatives(sub)
                if not branch:
                    break
                best: list[Pair] = min(branch, key=_size)
                union.extend(best)
            else:
                out.append(_unique(union))
        else:
            if "$eq" in cond:
                out.append([(key, value_key(cond["$eq"]))])
            if "$in" in cond:
                out.append(_unique([(key, value_key(v)) for v in cond["$in"]]))
    return out


def _size(pairs: list[Pair]) -> int:
    return len(pairs)


def _unique(pairs: list[Pair]) -> list[Pair]:
    return list(dict.fromkeys(pairs))


class QueryIndex(MutableMapping[str, SharedQuery]):
    """A collection's live queries by canonical `where`, filed for matching (see the module docstring)."""

    def __init__(self) -> None:
        self._queries: dict[str, SharedQuery] = {}
        self._buckets: dict[str, dict[Hashable, dict[SharedQuery, None]]] = {}
        self._parts: dict[str, list[str]] = {}
        self._filed: dict[SharedQuery, list[Pair]] = {}
        self._fallback: dict[SharedQuery, None] = {}
        self.holders = Holders()
        self._recent: collections.OrderedDict[str, int] = collections.OrderedDict()

    # -- the mapping ----------------------------------------------------------------------------

    def __getitem__(self, key: str) -> SharedQuery:
        return self._queries[key]

    def __setitem__(self, key: str, query: SharedQuery) -> None:
        if key in self._queries:
            self._unfile(self._queries.pop(key))
        self._queries[key] = query
        self._file(query)

    def __delitem__(self, key: str) -> None:
        self._unfile(self._queries.pop(key))

    def __iter__(self) -> Iterator[str]:
        return iter(self._queries)

    def __len__(self) -> int:
        return len(self._queries)

    # -- filing ---------------------------------------------------------------------------------

    def _file(self, query: SharedQuery) -> None:
        query.holders = self.holders
        for doc_id in query.matched:
            self.holders.hold(doc_id, query)
        options = alternatives(validate_find(query.where))
        if not options:
            self._fallback[query] = None
            return
        pairs = min(options, key=self._cost)
        self._filed[query] = pairs
        for path, key in pairs:
            bucket = self._buckets.get(path)
            if bucket is None:
                bucket = self._buckets[path] = {}
                self._parts[path] = path.split(".")
            bucket.setdefault(key, {})[query] = None

    def _cost(self, pairs: list[Pair]) -> tuple[int, int]:
        """(queries a change filed there would be classified by, fields no query uses yet): a new field
        costs every change one look-up, much less than classifying a query, so it only breaks ties."""
        cost, new = 0, 0
        for path, key in pairs:
            bucket = self._buckets.get(path)
            if bucket is None:
                new += 1
            cost += 1 + (len(bucket.get(key, ())) if bucket is not None else 0)
        return cost, new

    def _unfile(self, query: SharedQuery) -> None:
        query.forget()
        query.holders = None
        self._fallback.pop(query, None)
        for path, key in self._filed.pop(query, ()):
            bucket = self._buckets[path]
            queries = bucket[key]
            queries.pop(query, None)
            if not queries:
                del bucket[key]
                if not bucket:
                    del self._buckets[path]
                    del self._parts[path]

    # -- matching -------------------------------------------------------------------------------

    def candidates(self, doc_id: str, version: int, doc: Doc | None, before: Doc | None = None
                   ) -> list[SharedQuery]:
        """The queries a change of `doc_id` to `version` can concern (none if an equal or newer version of
        it was already seen): `doc` after the change (None for a delete), `before` it where known."""
        last = self._recent.get(doc_id)
        if last is not None and version <= last:
            return []
        self._recent[doc_id] = version
        self._recent.move_to_end(doc_id)
        if len(self._recent) > RECENT:
            self._recent.popitem(last=False)
        found: dict[SharedQuery, None] = dict.fromkeys(self.holders.of(doc_id))
        for path, parts in self._parts.items():
            bucket = self._buckets[path]
            for image in (doc, before):
                if image is None:
                    continue
                key = value_key(get_path(image, parts))
                if key is not None:
                    queries = bucket.get(key)
                    if queries:
                        found.update(queries)
        found.update(self._fallback)
        return list(found)

    def forget(self) -> None:
        """Drop what every query holds (after a gap in the change log its clients start again)."""
        for query in self._queries.values():
            query.forget()
        self._recent.clear()

    def stats(self) -> dict[str, int]:
        """Sizes, for tests and benchmarks."""
        return {"queries": len(self._queries), "fallback": len(self._fallback), "paths": len(self._buckets),
                "held": len(self.holders), "recent": len(self._recent)}
