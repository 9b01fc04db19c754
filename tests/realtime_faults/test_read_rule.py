"""No frame about a document the subscriber may not read: live, and after a resume by cursor or by time,
deletes and moves included, on every database."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import pytest

from gateway import tokens
from tests.support.live import LiveClient
from tests.support.servers import SECRET
from tests.support.stack import Stack, database_params, stack

ALLOW = {op: {"rule": "allow"} for op in ("create", "read", "update", "delete", "aggr")}
OWNER = {"rule": "match", "eval": "==", "type": "string", "f1": "args.find.userId", "f2": "args.auth.id"}


def token(st: Stack, uid: str) -> str:
    return tokens.issue({"id": uid, "role": "user"}, secret=SECRET, project=st.project, ttl=600)


@pytest.mark.parametrize("db", database_params())
async def test_no_frame_about_a_document_the_subscriber_may_not_read(db: str, tmp_path: Path, nats_url: str) -> None:
    c = "c" + uuid.uuid4().hex[:10]
    collections = {"default": {"rules": ALLOW}, c: {"rules": {**ALLOW, "read": OWNER}}}
    async with stack(db, tmp_path, nats_url, collections=collections) as st:
        i = st.id

        async def write(op: str, body: dict[str, Any]) -> None:
            r = await st.http.post(st.crud(c, op), json=body)
            assert r.status_code == 200, r.text

        await write("create", {"op": "all", "doc": [{i: "a1", "userId": "alice"}, {i: "b1", "userId": "bob"},
                                                    {i: "b2", "userId": "bob"}, {i: "a2", "userId": "alice"}]})
        clients = {who: await LiveClient.connect(st.gw.ws_url, st.project, token(st, who.split("-")[0]))
                   for who in ("alice", "bob", "alice-later")}
        try:
            acks = {}
            for who, lc in clients.items():
                user = who.split("-")[0]
                acks[who] = await lc.subscribe("q", c, st.alias, {"userId": user})
                assert acks[who]["ack"] is True, acks[who]
            later = clients.pop("alice-later")
            since, cursor = later.last_time["q"], acks["alice-later"]["cursor"]
            await later.close()

            await write("update", {"op": "one", "find": {i: "b1"}, "update": {"$set": {"n": 1}}})
            await write("delete", {"op": "one", "find": {i: "b2"}})
            await write("update", {"op": "one", "find": {i: "a2"}, "update": {"$set": {"userId": "bob"}}})
            await write("update", {"op": "one", "find": {i: "b1"}, "update": {"$set": {"userId": "alice"}}})
            await write("delete", {"op": "one", "find": {i: "a1"}})
            await write("create", {"op": "one", "doc": {i: "b3", "userId": "bob"}})

            for options in ({"cursor": cursor}, {"resumeFrom": since}):
                lc = await LiveClient.connect(st.gw.ws_url, st.project, token(st, "alice"))
                clients[f"alice {next(iter(options))}"] = lc
                ack = await lc.subscribe("q", c, st.alias, {"userId": "alice"}, **options)
                assert ack.get("resumed") is True, ack
            alice = [lc for who, lc in clients.items() if who.startswith("alice")]
            for lc in alice:
                print([(f["type"], f["docId"]) for f in lc.feeds])
            for lc in alice:
                await lc.until(lambda lc=lc: {f["docId"] for f in lc.feeds if f["type"] == "insert" or
                                              f["type"] == "update"} >= {"b1"} and any(
                                                  f["docId"] == "a1" and f["type"] == "delete" for f in lc.feeds))
            bob = clients["bob"]
            await bob.until(lambda: set(bob.snapshot("q")) == {"a2", "b3"})
            await clients["alice"].until(lambda: set(clients["alice"].snapshot("q")) == {"b1"})
            for who, lc in clients.items():
                mine = {"a1", "a2", "b1"} if who.startswith("alice") else {"b1", "b2", "b3", "a2"}
                about = {f["docId"] for f in lc.feeds}
                assert about <= mine, f"{who} heard of {sorted(about - mine)}"
                if who.startswith("alice"):
                    gone = {f["docId"] for f in lc.feeds if f["type"] == "delete"}
                    assert gone >= {"a1"}, who
        finally:
            for lc in clients.values():
                await lc.close()
