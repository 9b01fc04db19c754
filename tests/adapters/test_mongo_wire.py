"""What the mongo-nx backend offers besides CRUD: change streams per collection, and no transactions
as far as the adapter can tell (see "Mongo test backends" in docs/database-adapters.md)."""

from __future__ import annotations

from pymongo import AsyncMongoClient

from adapters.base import ReadOptions
from adapters.registry import create_adapter
from tests.support.mongo import DATABASE, next_changes, watch_supported


async def test_nx_change_streams_see_adapter_writes_and_resume(nx_mongo_url: str) -> None:
    adapter = create_adapter("mongo", nx_mongo_url, namespace=DATABASE)
    client: AsyncMongoClient[dict[str, object]] = AsyncMongoClient(nx_mongo_url)
    try:
        assert await watch_supported(client, DATABASE, "watched")
        async with await client[DATABASE]["watched"].watch() as stream:
            await adapter.create("watched", [{"_id": "w1", "n": 1}])
            await adapter.update("watched", "one", {"_id": "w1"}, {"$set": {"n": 2}})
            await adapter.delete("watched", "one", {"_id": "w1"})
            events = await next_changes(stream, 3)
        assert [(e["operationType"], e["documentKey"]) for e in events] == [
            ("insert", {"_id": "w1"}), ("update", {"_id": "w1"}), ("delete", {"_id": "w1"}),
        ]
        assert events[1]["fullDocument"]["n"] == 2
        async with await client[DATABASE]["watched"].watch(resume_after=events[0]["_id"]) as stream:
            again = await next_changes(stream, 2)
        assert [e["operationType"] for e in again] == ["update", "delete"]
    finally:
        await adapter.drop("watched")  # type: ignore[attr-defined]
        await adapter.close()
        await client.close()


async def test_nx_looks_standalone_so_batches_use_compensation(nx_mongo_url: str) -> None:
    """nx-27017 accepts session transactions, but they share one SQLite connection with every
    client (not isolated; an abort also undoes other clients' writes): the adapter must not use them."""
    adapter = create_adapter("mongo", nx_mongo_url, namespace=DATABASE)
    try:
        await adapter.connect()
        assert adapter.transactions is False  # type: ignore[attr-defined]
        assert await adapter.read("nothing_here", "count", {}, ReadOptions()) == 0
    finally:
        await adapter.close()
