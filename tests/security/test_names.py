"""Collection names are matched as the database matches them: another spelling of a protected collection
never slips past its rules to `default`, on any database."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest

from tests.support.live import LiveClient
from tests.support.stack import database_params, stack

ALLOW = {op: {"rule": "allow"} for op in ("create", "read", "update", "delete", "aggr")}
CASE_INSENSITIVE = ("sqlite", "mysql")


@pytest.mark.parametrize("db", database_params())
async def test_another_spelling_gets_the_collections_own_rules(db: str, tmp_path: Path, nats_url: str) -> None:
    secret = "secret_" + uuid.uuid4().hex[:8]
    collections = {"default": {"rules": ALLOW}, secret: {"rules": {"create": {"rule": "allow"},
                                                                   "read": {"rule": "deny"}}}}
    async with stack(db, tmp_path, nats_url, collections=collections) as st:
        r = await st.http.post(st.crud(secret, "create"), json={"op": "one", "doc": {st.id: "s1", "pin": "1234"}})
        assert r.status_code == 200, r.text
        for spelling in (secret.upper(), secret.capitalize(), secret.swapcase()):
            for kind, body in (("read", {"find": {}}), ("aggr", {"pipe": [{"$match": {}}]}),
                               ("read", {"op": "count", "find": {}})):
                r = await st.http.post(st.crud(spelling, kind), json=body)
                assert "1234" not in r.text, (spelling, kind, r.text)
                if db in CASE_INSENSITIVE:  # one table: its rules apply
                    assert r.status_code in (401, 403), (spelling, kind, r.text)
                else:  # a different collection on this database: nothing of the secret one
                    assert r.status_code == 200 and r.json()["result"] in ([], 0), (spelling, r.text)


async def test_a_live_query_hears_writes_made_under_another_spelling(tmp_path: Path, nats_url: str) -> None:
    col = "notes_" + uuid.uuid4().hex[:8]
    async with stack("sqlite", tmp_path, nats_url, collections={"default": {"rules": ALLOW}}) as st:
        lc = await LiveClient.connect(st.gw.ws_url, st.project)
        try:
            assert (await lc.subscribe("q", col, st.alias, {}))["ack"] is True
            r = await st.http.post(st.crud(col.upper(), "create"), json={"op": "one", "doc": {"id": "n1", "t": "x"}})
            assert r.status_code == 200
            await lc.until(lambda: "n1" in lc.snapshot("q"))
        finally:
            await lc.close()
