"""The Mongo adapter over pymongo's native async API (or `mongo_fake` for `mongomock://`).

Documents carry a string `_id` (generated when missing) and an internal version
`_v`, stripped from everything returned. Batches run in a session transaction when
the server is a replica set or mongos; on a standalone server (and the fake) they
run in order and, on failure, undo what already ran from pre-images (all or
nothing, but not isolated from concurrent readers).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Iterator
from contextlib import AsyncExitStack, contextmanager
from dataclasses import replace
from typing import Any

import pymongo
from pymongo import AsyncMongoClient, ReturnDocument
from pymongo.uri_parser import parse_uri

from adapters import deadline
from adapters.base import Change, Doc, ReadOptions, WriteRequest, WritesAsBatch
from adapters.clock import new_id, next_version
from adapters.documents import check_doc
from adapters.indexes import declared
from adapters.limits import check_nesting, check_write_size, result_number
from adapters.mongo_errors import mongo_errors
from adapters.names import VERSION_FIELD, check_collection
from adapters.namespaces import check_namespace, configured, explicit_table, mongo_database, mongo_prefix
from adapters.query import validate_find, validate_options, validate_pipeline, validate_update
from adapters.updates import apply_update, current_date, upsert_doc
from adapters.values import compare, equal
from common.errors import Conflict, InvalidQuery, NotFound, ServiceUnavailable, SpaceCloudError, Timeout

log = logging.getLogger("space_cloud.adapters")
Undo = Callable[[], Awaitable[None]]
V = VERSION_FIELD
_TIMEOUTS: dict[str, Any] = {"serverSelectionTimeoutMS": 3000, "connectTimeoutMS": 3000}
"""Defaults; the same options in the conn URI win (pymongo would let keyword arguments win)."""


def _strip(doc: Doc) -> Doc:
    doc.pop(V, None)
    return doc


def _with_version(update: Doc, version: int) -> Doc:
    """The update as sent to Mongo: $currentDate as ISO strings, plus the new version."""
    out = {op: dict(fields) for op, fields in update.items() if op != "$currentDate"}
    sets = out.setdefault("$set", {})
    for field, spec in update.get("$currentDate", {}).items():
        sets[field] = current_date(spec)
    sets[V] = version
    return out


@contextmanager
def _bounded() -> Iterator[None]:
    """The request's deadline (`adapters.deadline`) as pymongo's own timeout: each operation inside
    is given what is left (the server stops it too: maxTimeMS) and ends with `Timeout` when it passes.
    Undo steps after a failed batch run outside it."""
    left = deadline.remaining()
    if left is None:
        yield
        return
    if left <= 0:
        raise Timeout("mongo operation exceeded its deadline")
    with pymongo.timeout(left):
        yield


def _would_store(doc: Doc, update: Doc) -> None:
    """Refuse an update whose result could not be stored or read back on every database (nested
    deeper than `MAX_DOC_DEPTH`, a number beyond 64 bits, an operator on the wrong type), with the
    same errors as SQL, before Mongo sees it. Documents holding values no JSON document has
    (ObjectIds, dates: written by other tools) are left to Mongo."""
    try:
        after = apply_update(doc, update)
    except TypeError:  # compare() met a BSON value
        return
    check_nesting(after, "the updated document")


def _restore(c: Any, before: Doc) -> Undo:
    """An undo step putting back a document's pre-image."""

    async def step() -> None:
        await c.replace_one({"_id": before["_id"]}, before, upsert=True)

    return step


class _Key:
    __slots__ = ("v",)

    def __init__(self, v: Any) -> None:
        self.v = v

    def __lt__(self, other: _Key) -> bool:
        return compare(self.v, other.v) < 0


class MongoAdapter(WritesAsBatch):
    """`Adapter` for MongoDB, for one project (`namespace`): its collections are those of the
    database named after it; when the URI (else `database`) names another database, its collections
    there are prefixed `<project>.` (`adapters.namespaces`). A collection's `table:` option names
    the exact collection instead."""

    kind = "mongo"
    id_field = "_id"

    def __init__(
        self, conn: str, *, namespace: str, collections: dict[str, dict[str, Any]] | None = None,
        database: str | None = None,
    ) -> None:
        self.conn = conn
        self.fake = conn.startswith("mongomock://")
        uri = {} if self.fake else parse_uri(conn)
        self.namespace = check_namespace(namespace)
        self.collections: dict[str, dict[str, Any]] = dict(collections or {})
        configured(self.kind, self.collections)
        named = uri.get("database") or database
        if named:
            self.database, self.prefix = named, "" if named == namespace else mongo_prefix(namespace)
        else:
            self.database, self.prefix = mongo_database(namespace), ""
        self.transactions = False
        self._timeouts = {k: v for k, v in _TIMEOUTS.items() if k not in uri.get("options", {})}
        self._client: Any = None
        self._indexed: set[str] = set()
        """Collections whose declared indexes were made by this adapter."""

    async def connect(self) -> None:
        if self._client is not None:
            return
        if self.fake:
            from adapters.mongo_fake import FakeClient

            self._client = FakeClient(self.conn)
            return
        client: Any = AsyncMongoClient(self.conn, **self._timeouts)
        try:
            with mongo_errors():
                hello = await client.admin.command("hello")
        except ServiceUnavailable:
            await client.close()
            raise
        self.transactions = "setName" in hello or hello.get("msg") == "isdbgrid"
        self._client = client

    async def close(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            await client.close()

    async def drop(self, col: str) -> None:
        """Drop a collection (admin and test helper; not part of `Adapter`)."""
        c = await self._col(col)
        with mongo_errors():
            await c.drop()
        self._indexed.discard(self.collection_name(col))

    def collection_name(self, col: str) -> str:
        """The Mongo collection that holds `col` (its `table:` option, else `col` in the namespace)."""
        check_collection(col)
        config = configured(self.kind, self.collections).get(col)
        if config is not None and "table" in config:
            return explicit_table(self.kind, config["table"]).table
        return self.prefix + col

    async def _col(self, col: str) -> Any:
        name = self.collection_name(col)
        await self.connect()
        c = self._client[self.database][name]
        if name not in self._indexed:
            await self._make_indexes(col, c)
            self._indexed.add(name)
        return c

    async def _make_indexes(self, col: str, c: Any) -> None:
        """The indexes `col`'s config declares (`indexes:`), made once per collection and process; a
        failure is logged and leaves the collection as it is."""
        try:
            wanted = declared(self.collections, self.kind, col)
        except InvalidQuery as exc:
            log.warning("%s: %s: no indexes", col, exc.message)
            return
        for index in wanted:
            try:
                with mongo_errors():
                    await c.create_index([(path, pymongo.ASCENDING) for path in index],
                                         name="sc_ix_" + "__".join(index))
            except SpaceCloudError as exc:
                log.warning("%s: the index on %s could not be made: %s", col, ", ".join(index), exc.message)

    async def read(self, col: str, op: str, find: Doc, options: ReadOptions) -> Any:
        o = options
        if op not in ("one", "all", "count", "distinct"):
            raise InvalidQuery(f"invalid read op {op!r}")
        validate_options(o.select, o.sort, o.skip, o.limit, o.distinct, id_field=self.id_field)
        find = validate_find(find)
        c = await self._col(col)
        with mongo_errors(), _bounded():
            if op == "count":
                return await c.count_documents(find)
            if op == "distinct":
                if not o.distinct:
                    raise InvalidQuery("read op distinct needs options.distinct")
                out: list[Any] = []
                for value in await c.distinct(o.distinct, find):
                    if value is not None and not any(equal(value, seen) for seen in out):
                        out.append(value)
                return sorted(out, key=_Key)
            select = dict(o.select or {})
            if not o.versions and not any(v for k, v in select.items() if k != self.id_field) and not (
                select.get("_id") == 1
            ):
                select[V] = 0
            sort = list((o.sort or {}).items()) or None
            limit = 1 if op == "one" else o.limit or 0
            docs = await c.find(find, select, sort=sort, skip=o.skip or 0, limit=limit).to_list(None)
        if not o.versions:
            docs = [_strip(d) for d in docs]
        if op == "one":
            if not docs:
                raise NotFound("no document matches the find")
            return docs[0]
        return docs

    async def aggregate(self, col: str, op: str, pipeline: list[Doc]) -> Any:
        if op not in ("one", "all"):
            raise InvalidQuery(f"invalid aggregate op {op!r}")
        stages = validate_pipeline(pipeline)
        c = await self._col(col)
        with mongo_errors(), _bounded():
            docs = [_strip(d) for d in await (await c.aggregate(stages)).to_list(None)]
        for doc in docs:
            for name, value in doc.items():
                result_number(value, f"aggregation output {name!r}")
        if op == "one":
            if not docs:
                raise NotFound("the pipeline returned no document")
            return docs[0]
        return docs

    def _check(self, req: WriteRequest) -> WriteRequest:
        check_collection(req.col)
        if req.type == "create":
            docs = [req.doc] if req.op == "one" and isinstance(req.doc, dict) else req.doc
            if req.op not in ("one", "all") or not isinstance(docs, list):
                raise InvalidQuery("create needs op 'one' with an object doc or op 'all' with an array")
            ready = []
            for doc in docs:
                doc = dict(check_doc(doc, self.id_field))
                if not isinstance(doc.setdefault("_id", new_id()), str):
                    raise InvalidQuery("_id must be a string")
                ready.append(doc)
            return WriteRequest("create", req.col, "all", ready)
        ops = ("one", "all", "upsert") if req.type == "update" else ("one", "all")
        if req.type not in ("update", "delete") or req.op not in ops:
            raise InvalidQuery(f"invalid {req.type} op {req.op!r}")
        update = validate_update(req.update, id_field=self.id_field) if req.type == "update" else None
        return WriteRequest(req.type, req.col, req.op, find=validate_find(req.find), update=update)

    async def batch(self, reqs: list[WriteRequest]) -> list[Change]:
        check_write_size(reqs)
        checked = [self._check(r) for r in reqs]
        await self.connect()
        changes: list[Change] = []
        undo: list[Undo] = []
        async with AsyncExitStack() as stack:
            session = None
            if self.transactions:
                session = await stack.enter_async_context(self._client.start_session())
                await stack.enter_async_context(await session.start_transaction())
            try:
                with mongo_errors(), _bounded():
                    for req in checked:
                        c = await self._col(req.col)
                        done = await self._write(c, req, session, undo)
                        changes.extend(replace(ch, col=req.col) for ch in done)
            except BaseException:
                if session is None:
                    for step in reversed(undo):
                        with mongo_errors():
                            await step()
                raise
        return changes

    async def _write(self, c: Any, req: WriteRequest, s: Any, undo: list[Undo]) -> list[Change]:
        if req.type == "create":
            return await self._insert(c, req.doc if isinstance(req.doc, list) else [], s, undo)
        docs = await c.find(req.find, sort=[("_id", 1)], limit=0 if req.op == "all" else 1, session=s).to_list(None)
        if req.type == "delete":
            if not docs and req.op == "one":
                raise NotFound("no document matches the find")
            if docs:
                await c.delete_many({"_id": {"$in": [d["_id"] for d in docs]}}, session=s)
                undo.append(lambda: c.insert_many(docs))
            return [Change("delete", d["_id"], None, int(d.get(V) or 0) + 1, before=_strip(dict(d))) for d in docs]
        assert req.update is not None
        if not docs:
            if req.op == "one":
                raise NotFound("no document matches the find")
            return await self._upsert(c, req, s, undo) if req.op == "upsert" else []
        out = []
        for doc in docs:
            after = await self._update_one(c, doc, req.find, req.update, s)
            if after is not None:
                undo.append(_restore(c, doc))
                version = after.pop(V)
                out.append(Change("update", after["_id"], after, version, before=_strip(dict(doc))))
        return out

    async def _update_one(self, c: Any, doc: Doc, find: Doc, update: Doc, s: Any) -> Doc | None:
        """Update one document, retrying if a concurrent write changed its version."""
        for _ in range(10):
            _would_store({k: v for k, v in doc.items() if k != V}, update)
            version = next_version(doc.get(V))
            after = await c.find_one_and_update(
                {"_id": doc["_id"], V: doc.get(V)}, _with_version(update, version),
                return_document=ReturnDocument.AFTER, session=s,
            )
            if after is not None:
                return dict(after)
            fresh = await c.find({"$and": [{"_id": doc["_id"]}, find]}, limit=1, session=s).to_list(None)
            if not fresh:
                return None
            doc = fresh[0]
        raise Conflict(f"document with id {doc['_id']} is being updated concurrently")

    async def _upsert(self, c: Any, req: WriteRequest, s: Any, undo: list[Undo]) -> list[Change]:
        assert req.update is not None
        _would_store(upsert_doc(req.find), req.update)
        update = _with_version(req.update, next_version(None))
        eq_id = req.find.get("_id", {}).get("$eq")
        if eq_id is None:
            update.setdefault("$setOnInsert", {})["_id"] = new_id()
        elif not isinstance(eq_id, str):
            raise InvalidQuery("_id must be a string")
        after = await c.find_one_and_update(
            req.find, update, upsert=True, return_document=ReturnDocument.AFTER, session=s
        )
        undo.append(lambda: c.delete_many({"_id": after["_id"]}))
        after = dict(after)
        version = after.pop(V)
        return [Change("insert", after["_id"], after, version)]

    async def _insert(self, c: Any, docs: list[Doc], s: Any, undo: list[Undo]) -> list[Change]:
        ids = [d["_id"] for d in docs]
        dupes = [i for n, i in enumerate(ids) if i in ids[:n]]
        if not dupes:
            dupes = [d["_id"] for d in await c.find({"_id": {"$in": ids}}, {"_id": 1}, session=s).to_list(None)]
        if dupes:
            raise Conflict(f"document with id {dupes[0]} already exists")
        versions = [next_version(None) for _ in docs]
        stored = [{**d, V: v} for d, v in zip(docs, versions, strict=True)]
        if stored:
            await c.insert_many(stored, session=s)
            undo.append(lambda: c.delete_many({"_id": {"$in": ids}}))
        return [Change("insert", d["_id"], dict(d), v) for d, v in zip(docs, versions, strict=True)]
